/* rnn.c (binding): Lua functions of the rnn kernel family. */
#include "bind.h"

static const luaL_Reg functions[] = {
  {NULL, NULL}
};

void lcb_open_rnn(lua_State *L) { lcb_setfuncs(L, functions); }
