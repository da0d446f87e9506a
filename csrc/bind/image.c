/* image.c (binding): Lua functions of the image kernel family. */
#include "bind.h"

static const luaL_Reg functions[] = {
  {NULL, NULL}
};

void lcb_open_image(lua_State *L) { lcb_setfuncs(L, functions); }
