/* core.c: luaopen_luacap_core, the one exported symbol of luacap/core.so.
 * Builds the module table from every kernel family's opener (see bind.h). */
#include "bind.h"

#if defined(__GNUC__)
#define LC_EXPORT __attribute__((visibility("default")))
#else
#define LC_EXPORT
#endif

LC_EXPORT int luaopen_luacap_core(lua_State *L) {
  lua_newtable(L);
  lcb_open_tensor(L);
  lcb_open_image(L);
  lcb_open_h5(L);
  lcb_open_conv(L);
  lcb_open_rnn(L);
  lcb_open_gru(L);
  lcb_open_text(L);
  lcb_open_nn(L);
  lcb_open_draw(L);
  lcb_open_tf(L);
  lcb_open_attend(L);
  lcb_open_os(L);
  return 1;
}
