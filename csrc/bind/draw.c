/* draw.c (binding): Lua functions of the draw kernel family. */
#include "bind.h"

static const luaL_Reg functions[] = {
  {NULL, NULL}
};

void lcb_open_draw(lua_State *L) { lcb_setfuncs(L, functions); }
