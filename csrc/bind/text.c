/* text.c (binding): Lua functions of the text kernel family. */
#include "bind.h"

static const luaL_Reg functions[] = {
  {NULL, NULL}
};

void lcb_open_text(lua_State *L) { lcb_setfuncs(L, functions); }
