/* conv.c (binding): Lua functions of the dense / conv2d / pool / relu kernel family.
 * Every function checks its tensors' shapes against each other and names what it found;
 * outputs are passed in by the Lua layers (they own and reuse their buffers). */
#include "bind.h"

#include <string.h>

static int check_flag(lua_State *L, int idx) { return lua_toboolean(L, idx); }

/* Checks kernel (C, OC), then x (N, C) against it; gives N, C, OC. */
static void dense_kx(lua_State *L, const char *fn, const lc_tensor *k, const lc_tensor *x,
                     int64_t *N, int64_t *C, int64_t *OC) {
  int64_t wk[2] = {-1, -1};
  lcb_expect_shape(L, fn, "kernel", k, 2, wk, "(C, OC)");
  *C = k->shape[0];
  *OC = k->shape[1];
  int64_t wx[2] = {-1, *C};
  lcb_expect_shape(L, fn, "x", x, 2, wx, "(N, C)");
  *N = x->shape[0];
}

/* dense_forward(out (N,OC), x (N,C), kernel (C,OC), bias (OC) or nil, relu[, packed]);
 * packed: pack_panels(kernel), the same kernel packed once for many calls.
 * dense_forward_ref: the same arguments but packed, plain loops (ref = 1). */
static int dense_forward_either(lua_State *L, const char *fn, int ref) {
  lc_tensor *out = lcb_check(L, 1), *x = lcb_check(L, 2), *k = lcb_check(L, 3);
  lc_tensor *b = lcb_opt(L, 4);
  int relu = check_flag(L, 5);
  lc_tensor *pk = ref ? NULL : lcb_opt(L, 6);
  int64_t N, C, OC;
  dense_kx(L, fn, k, x, &N, &C, &OC);
  int64_t wo[2] = {N, OC}, wb[1] = {OC};
  lcb_expect_shape(L, fn, "out", out, 2, wo, "(N, OC)");
  if (b) lcb_expect_shape(L, fn, "bias", b, 1, wb, "(OC)");
  if (pk && (pk->ndim != 3 || pk->shape[1] != C
             || lc_numel(pk) != packed_gemm_size((int)C, (int)OC)))
    return luaL_error(L, "%s: packed is not pack_panels of a (%d, %d) kernel", fn, (int)C, (int)OC);
  if (pk)
    dense_forward_packed(out->data, x->data, pk->data, b ? b->data : NULL, (int)N, (int)C,
                         (int)OC, relu);
  else
    (ref ? dense_forward_ref : dense_forward)(out->data, x->data, k->data, b ? b->data : NULL,
                                              (int)N, (int)C, (int)OC, relu);
  return 0;
}

static int l_dense_forward(lua_State *L) { return dense_forward_either(L, "dense_forward", 0); }

static int l_dense_forward_ref(lua_State *L) {
  return dense_forward_either(L, "dense_forward_ref", 1);
}

/* dense_backward(dx (N,C) or nil, dkernel (C,OC), dbias (OC) or nil, dout (N,OC),
 *                out (N,OC), x (N,C), kernel (C,OC), relu); adds into the gradients. */
static int l_dense_backward(lua_State *L) {
  static const char *fn = "dense_backward";
  lc_tensor *dx = lcb_opt(L, 1), *dk = lcb_check(L, 2), *db = lcb_opt(L, 3);
  lc_tensor *dout = lcb_check(L, 4), *out = lcb_check(L, 5), *x = lcb_check(L, 6);
  lc_tensor *k = lcb_check(L, 7);
  int relu = check_flag(L, 8);
  int64_t N, C, OC;
  dense_kx(L, fn, k, x, &N, &C, &OC);
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

/* ------------------------------------------------------------ conv2d, maxpool2d */

static int check_int(lua_State *L, int idx, const char *fn, const char *what) {
  lua_Number v = luaL_checknumber(L, idx);
  if (v < 1 || v != (lua_Number)(int)v)
    luaL_error(L, "%s: %s must be a positive integer, got %g", fn, what, (double)v);
  return (int)v;
}

static int check_padding(lua_State *L, int idx, const char *fn) {
  const char *p = luaL_optstring(L, idx, "valid");
  if (strcmp(p, "same") == 0) return 1;
  if (strcmp(p, "valid") == 0) return 0;
  return luaL_error(L, "%s: padding must be 'same' or 'valid', got '%s'", fn, p);
}

/* Fills g from x (B, IH, IW, C) and the window; raises when the output would be empty. */
static void geom_from(lua_State *L, const char *fn, lc_conv_geom *g, const lc_tensor *x,
                      int OC, int KH, int KW, int SH, int SW, int same) {
  int64_t wx[4] = {-1, -1, -1, -1};
  lcb_expect_shape(L, fn, "x", x, 4, wx, "(B, IH, IW, C)");
  if (lc_conv_geom_init(g, (int)x->shape[0], (int)x->shape[1], (int)x->shape[2],
                        (int)x->shape[3], OC, KH, KW, SH, SW, same) != LC_OK)
    luaL_error(L, "%s: a %dx%d window with 'valid' padding does not fit a %dx%d input", fn,
               KH, KW, (int)x->shape[1], (int)x->shape[2]);
}

/* Checks weight (KH, KW, C, OC), then x (B, IH, IW, C) against it, and fills g. */
static void conv_geom_args(lua_State *L, const char *fn, lc_conv_geom *g, const lc_tensor *x,
                           const lc_tensor *w, int SH, int SW, int same) {
  int64_t ww[4] = {-1, -1, -1, -1};
  lcb_expect_shape(L, fn, "weight", w, 4, ww, "(KH, KW, C, OC)");
  int64_t wx[4] = {-1, -1, -1, w->shape[2]};
  lcb_expect_shape(L, fn, "x", x, 4, wx, "(B, IH, IW, C)");
  geom_from(L, fn, g, x, (int)w->shape[3], (int)w->shape[0], (int)w->shape[1], SH, SW, same);
}

/* Reads KH, KW, SH, SW, padding at idx..idx+4 of maxpool2d_forward/backward, checks
 * x (B, IH, IW, C) and fills g. */
static void pool_geom_args(lua_State *L, const char *fn, lc_conv_geom *g, const lc_tensor *x,
                           int idx) {
  int KH = check_int(L, idx, fn, "KH"), KW = check_int(L, idx + 1, fn, "KW");
  int SH = check_int(L, idx + 2, fn, "stride SH"), SW = check_int(L, idx + 3, fn, "stride SW");
  int same = check_padding(L, idx + 4, fn);
  int64_t wx[4] = {-1, -1, -1, -1};
  lcb_expect_shape(L, fn, "x", x, 4, wx, "(B, IH, IW, C)");
  geom_from(L, fn, g, x, (int)x->shape[3], KH, KW, SH, SW, same);
}

/* conv_out_size(IH, IW, KH, KW, SH, SW, padding) -> OH, OW, pad_top, pad_left */
static int l_conv_out_size(lua_State *L) {
  static const char *fn = "conv_out_size";
  int IH = check_int(L, 1, fn, "IH"), IW = check_int(L, 2, fn, "IW");
  int KH = check_int(L, 3, fn, "KH"), KW = check_int(L, 4, fn, "KW");
  int SH = check_int(L, 5, fn, "SH"), SW = check_int(L, 6, fn, "SW");
  int same = check_padding(L, 7, fn);
  lc_conv_geom g;
  if (lc_conv_geom_init(&g, 1, IH, IW, 1, 1, KH, KW, SH, SW, same) != LC_OK)
    return luaL_error(L, "%s: a %dx%d window with 'valid' padding does not fit a %dx%d input",
                      fn, KH, KW, IH, IW);
  lua_pushinteger(L, g.OH);
  lua_pushinteger(L, g.OW);
  lua_pushinteger(L, g.pad_top);
  lua_pushinteger(L, g.pad_left);
  return 4;
}

/* Checks (out, x, weight, bias) of conv2d_forward[_ref] with args
 * (out, x, weight (KH,KW,C,OC), bias (OC) or nil, SH, SW, padding, relu). */
static void conv_forward_args(lua_State *L, const char *fn, lc_conv_geom *g, lc_tensor **out,
                              lc_tensor **x, lc_tensor **w, lc_tensor **b, int *relu) {
  *out = lcb_check(L, 1);
  *x = lcb_check(L, 2);
  *w = lcb_check(L, 3);
  *b = lcb_opt(L, 4);
  int SH = check_int(L, 5, fn, "stride SH"), SW = check_int(L, 6, fn, "stride SW");
  int same = check_padding(L, 7, fn);
  *relu = lua_toboolean(L, 8);
  conv_geom_args(L, fn, g, *x, *w, SH, SW, same);
  int64_t wo[4] = {g->B, g->OH, g->OW, g->OC}, wb[1] = {g->OC};
  lcb_expect_shape(L, fn, "out", *out, 4, wo, "(B, OH, OW, OC)");
  if (*b) lcb_expect_shape(L, fn, "bias", *b, 1, wb, "(OC)");
}

/* The optional work tensor at idx for a column buffer of need floats, or NULL. */
static float *conv_work(lua_State *L, int idx, const char *fn, size_t need) {
  lc_tensor *work = lcb_opt(L, idx);
  if (!work) return NULL;
  if (lc_numel(work) < need)
    luaL_error(L, "%s: work has %d floats, needs %d", fn, (int)lc_numel(work), (int)need);
  return work->data;
}

/* conv2d_forward(out (B,OH,OW,OC), x (B,IH,IW,C), weight (KH,KW,C,OC), bias or nil,
 *                SH, SW, padding 'same'|'valid', relu[, work]) */
static int l_conv2d_forward(lua_State *L) {
  lc_conv_geom g;
  lc_tensor *out, *x, *w, *b;
  int relu;
  conv_forward_args(L, "conv2d_forward", &g, &out, &x, &w, &b, &relu);
  float *work = conv_work(L, 9, "conv2d_forward", conv2d_forward_workspace_size(&g));
  if (conv2d_forward(out->data, x->data, w->data, b ? b->data : NULL, &g, relu, work) != LC_OK)
    return luaL_error(L, "conv2d_forward: out of memory for the column buffer");
  return 0;
}

static int l_conv2d_forward_ref(lua_State *L) {
  lc_conv_geom g;
  lc_tensor *out, *x, *w, *b;
  int relu;
  conv_forward_args(L, "conv2d_forward_ref", &g, &out, &x, &w, &b, &relu);
  conv2d_forward_ref(out->data, x->data, w->data, b ? b->data : NULL, &g, relu);
  return 0;
}

/* conv2d_backward(dx or nil, dweight, dbias or nil, dout, x, weight, SH, SW, padding[, work
 *                 [, relu_out]]): adds into the gradients; dout is the output's gradient,
 * masked by relu_out > 0 when the forward's fused relu gave relu_out (B, OH, OW, OC). */
static int l_conv2d_backward(lua_State *L) {
  static const char *fn = "conv2d_backward";
  lc_tensor *dx = lcb_opt(L, 1), *dw = lcb_check(L, 2), *db = lcb_opt(L, 3);
  lc_tensor *dout = lcb_check(L, 4), *x = lcb_check(L, 5), *w = lcb_check(L, 6);
  int SH = check_int(L, 7, fn, "stride SH"), SW = check_int(L, 8, fn, "stride SW");
  int same = check_padding(L, 9, fn);
  lc_conv_geom g;
  conv_geom_args(L, fn, &g, x, w, SH, SW, same);
  int64_t wo[4] = {g.B, g.OH, g.OW, g.OC}, wb[1] = {g.OC};
  lcb_expect_shape(L, fn, "dout", dout, 4, wo, "(B, OH, OW, OC)");
  lcb_expect_shape(L, fn, "dweight", dw, 4, w->shape, "(KH, KW, C, OC)");
  if (db) lcb_expect_shape(L, fn, "dbias", db, 1, wb, "(OC)");
  if (dx) lcb_expect_shape(L, fn, "dx", dx, 4, x->shape, "(B, IH, IW, C)");
  lc_tensor *ro = lcb_opt(L, 11);
  if (ro) lcb_expect_shape(L, fn, "relu_out", ro, 4, wo, "(B, OH, OW, OC)");
  float *work = conv_work(L, 10, fn, conv2d_backward_workspace_size(&g, dx != NULL, ro != NULL));
  if (conv2d_backward(dx ? dx->data : NULL, dw->data, db ? db->data : NULL, dout->data,
                      ro ? ro->data : NULL, x->data, w->data, &g, work) != LC_OK)
    return luaL_error(L, "conv2d_backward: out of memory for the column buffers");
  return 0;
}

/* m (2 or 4) at idx, or an error naming the function. */
static int check_tile(lua_State *L, int idx, const char *fn) {
  lua_Number m = luaL_checknumber(L, idx);
  if (m != 2 && m != 4) luaL_error(L, "%s: tile m must be 2 or 4, got %g", fn, (double)m);
  return (int)m;
}

/* winograd_filter(U (a*a, C, OC), weight (3, 3, C, OC), m): U = G g G^T, a = m + 2 */
static int l_winograd_filter(lua_State *L) {
  static const char *fn = "winograd_filter";
  lc_tensor *u = lcb_check(L, 1), *w = lcb_check(L, 2);
  int m = check_tile(L, 3, fn);
  int64_t ww[4] = {3, 3, -1, -1};
  lcb_expect_shape(L, fn, "weight", w, 4, ww, "(3, 3, C, OC)");
  int64_t wu[3] = {(int64_t)(m + 2) * (m + 2), w->shape[2], w->shape[3]};
  lcb_expect_shape(L, fn, "U", u, 3, wu, "(a*a, C, OC), a = m + 2");
  winograd_filter_transform(u->data, w->data, m, (int)w->shape[2], (int)w->shape[3]);
  return 0;
}

/* conv2d_winograd_forward(out (B,OH,OW,OC), x (B,IH,IW,C), U (a*a,C,OC), bias (OC) or nil,
 *                         m, padding 'same'|'valid', relu, work or nil): a 3x3 stride-1
 * convolution; work, any shape with at least winograd_workspace_size(...) floats, is
 * scratch kept by the caller across calls (nil: allocated per call). */
static int l_conv2d_winograd_forward(lua_State *L) {
  static const char *fn = "conv2d_winograd_forward";
  lc_tensor *out = lcb_check(L, 1), *x = lcb_check(L, 2), *u = lcb_check(L, 3);
  lc_tensor *b = lcb_opt(L, 4);
  int m = check_tile(L, 5, fn);
  int same = check_padding(L, 6, fn);
  int relu = lua_toboolean(L, 7);
  int64_t wu[3] = {(int64_t)(m + 2) * (m + 2), -1, -1};
  lcb_expect_shape(L, fn, "U", u, 3, wu, "(a*a, C, OC), a = m + 2");
  int64_t wx[4] = {-1, -1, -1, u->shape[1]};
  lcb_expect_shape(L, fn, "x", x, 4, wx, "(B, IH, IW, C)");
  lc_conv_geom g;
  geom_from(L, fn, &g, x, (int)u->shape[2], 3, 3, 1, 1, same);
  int64_t wo[4] = {g.B, g.OH, g.OW, g.OC}, wb[1] = {g.OC};
  lcb_expect_shape(L, fn, "out", out, 4, wo, "(B, OH, OW, OC)");
  if (b) lcb_expect_shape(L, fn, "bias", b, 1, wb, "(OC)");
  lc_tensor *work = lcb_opt(L, 8);
  size_t need = winograd_workspace_size(&g, m);
  if (work && lc_numel(work) < need)
    return luaL_error(L, "%s: work has %d floats, needs %d", fn, (int)lc_numel(work), (int)need);
  if (winograd_conv2d_forward(out->data, x->data, u->data, b ? b->data : NULL, &g, m, relu,
                              work ? work->data : NULL) != LC_OK)
    return luaL_error(L, "%s: out of memory for the tile buffers", fn);
  return 0;
}

/* winograd_workspace_size(B, IH, IW, C, OC, m, padding) -> floats of work it needs */
static int l_winograd_workspace_size(lua_State *L) {
  static const char *fn = "winograd_workspace_size";
  int B = check_int(L, 1, fn, "B"), IH = check_int(L, 2, fn, "IH");
  int IW = check_int(L, 3, fn, "IW"), C = check_int(L, 4, fn, "C");
  int OC = check_int(L, 5, fn, "OC"), m = check_tile(L, 6, fn);
  int same = check_padding(L, 7, fn);
  lc_conv_geom g;
  if (lc_conv_geom_init(&g, B, IH, IW, C, OC, 3, 3, 1, 1, same) != LC_OK)
    return luaL_error(L, "%s: a 3x3 window with 'valid' padding does not fit a %dx%d input",
                      fn, IH, IW);
  lua_pushinteger(L, (lua_Integer)winograd_workspace_size(&g, m));
  return 1;
}

/* conv2d_workspace_size(x (B,IH,IW,C), weight (KH,KW,C,OC), SH, SW, padding, pass[, relu])
 * -> floats of work of conv2d_forward (pass 'forward') or conv2d_backward without or with a
 * dx (pass 'backward' or 'backward_dx'; relu: with a relu_out) at today's thread count */
static int l_conv2d_workspace_size(lua_State *L) {
  static const char *fn = "conv2d_workspace_size";
  lc_tensor *x = lcb_check(L, 1), *w = lcb_check(L, 2);
  int SH = check_int(L, 3, fn, "stride SH"), SW = check_int(L, 4, fn, "stride SW");
  int same = check_padding(L, 5, fn);
  lc_conv_geom g;
  conv_geom_args(L, fn, &g, x, w, SH, SW, same);
  const char *pass = luaL_checkstring(L, 6);
  size_t n;
  if (strcmp(pass, "forward") == 0) n = conv2d_forward_workspace_size(&g);
  else if (strcmp(pass, "backward") == 0 || strcmp(pass, "backward_dx") == 0)
    n = conv2d_backward_workspace_size(&g, pass[8] == '_', lua_toboolean(L, 7));
  else
    return luaL_error(L, "%s: pass must be 'forward', 'backward' or 'backward_dx', got '%s'",
                      fn, pass);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

/* winograd_fingerprint(t) -> an 8-byte string that changes when any value of t does */
static int l_winograd_fingerprint(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  uint64_t h = winograd_fingerprint(t->data, lc_numel(t));
  unsigned char s[8];
  for (int i = 0; i < 8; i++) s[i] = (unsigned char)(h >> (8 * i));
  lua_pushlstring(L, (const char *)s, 8);
  return 1;
}

/* maxpool2d_forward(out (B,OH,OW,C), x (B,IH,IW,C), KH, KW, SH, SW, padding) */
static int l_maxpool2d_forward(lua_State *L) {
  static const char *fn = "maxpool2d_forward";
  lc_tensor *out = lcb_check(L, 1), *x = lcb_check(L, 2);
  lc_conv_geom g;
  pool_geom_args(L, fn, &g, x, 3);
  int64_t wo[4] = {g.B, g.OH, g.OW, g.C};
  lcb_expect_shape(L, fn, "out", out, 4, wo, "(B, OH, OW, C)");
  maxpool2d_forward(out->data, x->data, &g);
  return 0;
}

/* maxpool2d_backward(dx (B,IH,IW,C), dout (B,OH,OW,C), x, KH, KW, SH, SW, padding) */
static int l_maxpool2d_backward(lua_State *L) {
  static const char *fn = "maxpool2d_backward";
  lc_tensor *dx = lcb_check(L, 1), *dout = lcb_check(L, 2), *x = lcb_check(L, 3);
  lc_conv_geom g;
  pool_geom_args(L, fn, &g, x, 4);
  int64_t wo[4] = {g.B, g.OH, g.OW, g.C};
  lcb_expect_shape(L, fn, "dout", dout, 4, wo, "(B, OH, OW, C)");
  lcb_expect_shape(L, fn, "dx", dx, 4, x->shape, "(B, IH, IW, C)");
  maxpool2d_backward(dx->data, dout->data, x->data, &g);
  return 0;
}

static const luaL_Reg functions[] = {
  {"dense_forward", l_dense_forward}, {"dense_forward_ref", l_dense_forward_ref},
  {"dense_backward", l_dense_backward},
  {"relu_forward", l_relu_forward}, {"relu_backward", l_relu_backward},
  {"conv_out_size", l_conv_out_size}, {"conv2d_forward", l_conv2d_forward},
  {"conv2d_forward_ref", l_conv2d_forward_ref}, {"conv2d_backward", l_conv2d_backward},
  {"maxpool2d_forward", l_maxpool2d_forward}, {"maxpool2d_backward", l_maxpool2d_backward},
  {"winograd_filter", l_winograd_filter}, {"conv2d_winograd_forward", l_conv2d_winograd_forward},
  {"winograd_fingerprint", l_winograd_fingerprint},
  {"winograd_workspace_size", l_winograd_workspace_size},
  {"conv2d_workspace_size", l_conv2d_workspace_size},
  {NULL, NULL}
};

void lcb_open_conv(lua_State *L) { lcb_setfuncs(L, functions); }
