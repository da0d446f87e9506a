/* h5.c (binding): Lua functions of the h5 kernel family. */
#include "bind.h"

static const luaL_Reg functions[] = {
  {NULL, NULL}
};

void lcb_open_h5(lua_State *L) { lcb_setfuncs(L, functions); }
