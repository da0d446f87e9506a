/* nn.c (binding): Lua functions of the nn kernel family. */
#include "bind.h"

static const luaL_Reg functions[] = {
  {NULL, NULL}
};

void lcb_open_nn(lua_State *L) { lcb_setfuncs(L, functions); }
