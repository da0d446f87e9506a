/* conv.c (binding): Lua functions of the conv kernel family. */
#include "bind.h"

static const luaL_Reg functions[] = {
  {NULL, NULL}
};

void lcb_open_conv(lua_State *L) { lcb_setfuncs(L, functions); }
