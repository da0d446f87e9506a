/* conv.c (binding): Lua functions of the dense / conv2d / pool / relu kernel family.
 * Every function checks its tensors' shapes against each other and names what it found;
 * outputs are passed in by the Lua layers (they own and reuse their buffers). */
#include "bind.h"

#include <string.h>

static int check_flag(lua_State *L, int idx) { return lua_toboolean(L, idx); }

/* dense_forward(out (N,OC), x (N,C), kernel (C,OC), bias (OC) or nil, relu) */
static int l_dense_forward(lua_State *L) {
  static const char *fn = "dense_forward";
  lc_tensor *out = lcb_check(L, 1), *x = lcb_check(L, 2), *k = lcb_check(L, 3);
  lc_tensor *b = lcb_opt(L, 4);
  int relu = check_flag(L, 5);
  int64_t wk[2] = {-1, -1};
  lcb_expect_shape(L, fn, "kernel", k, 2, wk, "(C, OC)");
  int64_t C = k->shape[0], OC = k->shape[1];
  int64_t wx[2] = {-1, C};
  lcb_expect_shape(L, fn, "x", x, 2, wx, "(N, C)");
  int64_t N = x->shape[0];
  int64_t wo[2] = {N, OC}, wb[1] = {OC};
  lcb_expect_shape(L, fn, "out", out, 2, wo, "(N, OC)");
  if (b) lcb_expect_shape(L, fn, "bias", b, 1, wb, "(OC)");
  dense_forward(out->data, x->data, k->data, b ? b->data : NULL, (int)N, (int)C, (int)OC, relu);
  return 0;
}

/* dense_forward_ref: same arguments as dense_forward, plain loops. */
static int l_dense_forward_ref(lua_State *L) {
  static const char *fn = "dense_forward_ref";
  lc_tensor *out = lcb_check(L, 1), *x = lcb_check(L, 2), *k = lcb_check(L, 3);
  lc_tensor *b = lcb_opt(L, 4);
  int relu = check_flag(L, 5);
  int64_t wk[2] = {-1, -1};
  lcb_expect_shape(L, fn, "kernel", k, 2, wk, "(C, OC)");
  int64_t C = k->shape[0], OC = k->shape[1];
  int64_t wx[2] = {-1, C};
  lcb_expect_shape(L, fn, "x", x, 2, wx, "(N, C)");
  int64_t N = x->shape[0];
  int64_t wo[2] = {N, OC}, wb[1] = {OC};
  lcb_expect_shape(L, fn, "out", out, 2, wo, "(N, OC)");
  if (b) lcb_expect_shape(L, fn, "bias", b, 1, wb, "(OC)");
  dense_forward_ref(out->data, x->data, k->data, b ? b->data : NULL, (int)N, (int)C, (int)OC,
                    relu);
  return 0;
}

/* dense_backward(dx (N,C) or nil, dkernel (C,OC), dbias (OC) or nil, dout (N,OC),
 *                out (N,OC), x (N,C), kernel (C,OC), relu); adds into the gradients. */
static int l_dense_backward(lua_State *L) {
  static const char *fn = "dense_backward";
  lc_tensor *dx = lcb_opt(L, 1), *dk = lcb_check(L, 2), *db = lcb_opt(L, 3);
  lc_tensor *dout = lcb_check(L, 4), *out = lcb_check(L, 5), *x = lcb_check(L, 6);
  lc_tensor *k = lcb_check(L, 7);
  int relu = check_flag(L, 8);
  int64_t wk[2] = {-1, -1};
  lcb_expect_shape(L, fn, "kernel", k, 2, wk, "(C, OC)");
  int64_t C = k->shape[0], OC = k->shape[1];
  int64_t wx[2] = {-1, C};
  lcb_expect_shape(L, fn, "x", x, 2, wx, "(N, C)");
  int64_t N = x->shape[0];
  int64_t wo[2] = {N, OC}, wb[1] = {OC};
  lcb_expect_shape(L, fn, "dkernel", dk, 2, k->shape, "(C, OC)");
  if (db) lcb_expect_shape(L, fn, "dbias", db, 1, wb, "(OC)");
  lcb_expect_shape(L, fn, "dout", dout, 2, wo, "(N, OC)");
  lcb_expect_shape(L, fn, "out", out, 2, wo, "(N, OC)");
  if (dx) lcb_expect_shape(L, fn, "dx", dx, 2, x->shape, "(N, C)");
  float *dpre = NULL;
  if (relu) dpre = lcb_push(L, 2, wo)->data;   /* scratch, owned by the collector */
  dense_backward(dx ? dx->data : NULL, dk->data, db ? db->data : NULL, dpre, dout->data,
                 out->data, x->data, k->data, (int)N, (int)C, (int)OC, relu);
  return 0;
}

/* relu_forward(out, x): same number of elements; out may be x. */
static int l_relu_forward(lua_State *L) {
  lc_tensor *out = lcb_check(L, 1), *x = lcb_check(L, 2);
  lcb_expect_same(L, "relu_forward", "out", out, "x", x);
  relu_forward(out->data, x->data, lc_numel(x));
  return 0;
}

/* relu_backward(dx, dout, out): dx += dout * (out > 0). */
static int l_relu_backward(lua_State *L) {
  lc_tensor *dx = lcb_check(L, 1), *dout = lcb_check(L, 2), *out = lcb_check(L, 3);
  lcb_expect_same(L, "relu_backward", "dx", dx, "dout", dout);
  lcb_expect_same(L, "relu_backward", "dout", dout, "out", out);
  relu_backward(dx->data, dout->data, out->data, lc_numel(out));
  return 0;
}

static const luaL_Reg functions[] = {
  {"dense_forward", l_dense_forward}, {"dense_forward_ref", l_dense_forward_ref},
  {"dense_backward", l_dense_backward},
  {"relu_forward", l_relu_forward}, {"relu_backward", l_relu_backward},
  {NULL, NULL}
};

void lcb_open_conv(lua_State *L) { lcb_setfuncs(L, functions); }
