/* gru.c (binding): Lua functions of the GRU kernels (nn/gru.c). Every tensor is checked
 * for its shape before a kernel runs; kernels free their own temporaries before any
 * error is raised. Not a layer: the buffers are owned and reused by nn/GRU.lua. */
#include "bind.h"

/* Sizes of one GRU call, read from x (B, T, C) and kernel (C, 3H). */
typedef struct {
  int64_t B, T, C, H;
} gru_dims;

static gru_dims gru_check_weights(lua_State *L, const char *fn, const lc_tensor *x,
                                  const lc_tensor *kernel, const lc_tensor *rkernel,
                                  const lc_tensor *bias, const char *bias_name) {
  gru_dims d;
  int64_t wx[3] = {-1, -1, -1};
  lcb_expect_shape(L, fn, "x", x, 3, wx, "(B, T, C)");
  d.B = x->shape[0]; d.T = x->shape[1]; d.C = x->shape[2];
  d.H = lcb_expect_gate_kernels(L, fn, kernel, rkernel, d.C, 3);
  int64_t wb[2] = {2, 3 * d.H};
  lcb_expect_shape(L, fn, bias_name, bias, 2, wb, "(2, 3H)");
  return d;
}

static void gru_check_rest(lua_State *L, const char *fn, const gru_dims *d,
                           const lc_tensor *mask, const lc_tensor *h0, const lc_tensor *gates,
                           const lc_tensor *rz, const lc_tensor *hs) {
  int64_t wm[2] = {d->B, d->T}, ws[2] = {d->B, d->H};
  int64_t wg[3] = {d->T, d->B, 3 * d->H}, wh[3] = {d->T, d->B, d->H};
  if (mask) lcb_expect_shape(L, fn, "mask", mask, 2, wm, "(B, T)");
  if (h0) lcb_expect_shape(L, fn, "h0", h0, 2, ws, "(B, H)");
  lcb_expect_shape(L, fn, "gates", gates, 3, wg, "(T, B, 3H)");
  lcb_expect_shape(L, fn, "rz", rz, 3, wg, "(T, B, 3H)");
  lcb_expect_shape(L, fn, "hs", hs, 3, wh, "(T, B, H)");
}

static void gru_check_out(lua_State *L, const char *fn, const char *arg, const gru_dims *d,
                          const lc_tensor *out, int return_sequences) {
  int64_t wseq[3] = {d->B, d->T, d->H}, wlast[2] = {d->B, d->H};
  if (return_sequences) lcb_expect_shape(L, fn, arg, out, 3, wseq, "(B, T, H)");
  else lcb_expect_shape(L, fn, arg, out, 2, wlast, "(B, H)");
}

#define DATA(t) ((t) ? (t)->data : NULL)

/* gru_forward(out, gates, rz, hs, zx, x, mask|nil, kernel, recurrent_kernel, bias,
 *             h0|nil, return_sequences) */
static int forward_impl(lua_State *L, const char *fn, int ref) {
  lc_tensor *out = lcb_check(L, 1), *gates = lcb_check(L, 2), *rz = lcb_check(L, 3);
  lc_tensor *hs = lcb_check(L, 4), *zx = lcb_check(L, 5), *x = lcb_check(L, 6);
  lc_tensor *mask = lcb_opt(L, 7), *kernel = lcb_check(L, 8), *rkernel = lcb_check(L, 9);
  lc_tensor *bias = lcb_check(L, 10), *h0 = lcb_opt(L, 11);
  int return_sequences = lua_toboolean(L, 12);
  gru_dims d = gru_check_weights(L, fn, x, kernel, rkernel, bias, "bias");
  gru_check_rest(L, fn, &d, mask, h0, gates, rz, hs);
  gru_check_out(L, fn, "out", &d, out, return_sequences);
  int64_t wz[3] = {d.B, d.T, 3 * d.H};
  lcb_expect_shape(L, fn, "zx", zx, 3, wz, "(B, T, 3H)");
  int rc = (ref ? gru_forward_ref : gru_forward)(
      out->data, gates->data, rz->data, hs->data, zx->data, x->data, DATA(mask), kernel->data,
      rkernel->data, bias->data, DATA(h0), (int)d.B, (int)d.T, (int)d.C, (int)d.H,
      return_sequences);
  if (rc != LC_OK) return luaL_error(L, "%s: out of memory", fn);
  return 0;
}

static int l_gru_forward(lua_State *L) { return forward_impl(L, "gru_forward", 0); }
static int l_gru_forward_ref(lua_State *L) { return forward_impl(L, "gru_forward_ref", 1); }

/* gru_backward(dx, dkernel, drecurrent_kernel, dbias, dh0|nil, dz, dzx, dout, x, mask|nil,
 *              kernel, recurrent_kernel, gates, rz, hs, h0|nil, return_sequences) */
static int backward_impl(lua_State *L, const char *fn, int ref) {
  lc_tensor *dx = lcb_check(L, 1), *dkernel = lcb_check(L, 2), *drkernel = lcb_check(L, 3);
  lc_tensor *dbias = lcb_check(L, 4), *dh0 = lcb_opt(L, 5), *dz = lcb_check(L, 6);
  lc_tensor *dzx = lcb_check(L, 7), *dout = lcb_check(L, 8), *x = lcb_check(L, 9);
  lc_tensor *mask = lcb_opt(L, 10), *kernel = lcb_check(L, 11), *rkernel = lcb_check(L, 12);
  lc_tensor *gates = lcb_check(L, 13), *rz = lcb_check(L, 14), *hs = lcb_check(L, 15);
  lc_tensor *h0 = lcb_opt(L, 16);
  int return_sequences = lua_toboolean(L, 17);
  gru_dims d = gru_check_weights(L, fn, x, kernel, rkernel, dbias, "dbias");
  gru_check_rest(L, fn, &d, mask, h0, gates, rz, hs);
  int64_t ws[2] = {d.B, d.H};
  if (dh0) lcb_expect_shape(L, fn, "dh0", dh0, 2, ws, "(B, H)");
  gru_check_out(L, fn, "dout", &d, dout, return_sequences);
  lcb_expect_same(L, fn, "dx", dx, "x", x);
  lcb_expect_same(L, fn, "dkernel", dkernel, "kernel", kernel);
  lcb_expect_same(L, fn, "drecurrent_kernel", drkernel, "recurrent_kernel", rkernel);
  int64_t wdz[3] = {d.T, d.B, 3 * d.H}, wdzx[3] = {d.B, d.T, 3 * d.H};
  lcb_expect_shape(L, fn, "dz", dz, 3, wdz, "(T, B, 3H)");
  lcb_expect_shape(L, fn, "dzx", dzx, 3, wdzx, "(B, T, 3H)");
  int rc = (ref ? gru_backward_ref : gru_backward)(
      dx->data, dkernel->data, drkernel->data, dbias->data, DATA(dh0), dz->data, dzx->data,
      dout->data, x->data, DATA(mask), kernel->data, rkernel->data, gates->data, rz->data,
      hs->data, DATA(h0), (int)d.B, (int)d.T, (int)d.C, (int)d.H, return_sequences);
  if (rc != LC_OK) return luaL_error(L, "%s: out of memory", fn);
  return 0;
}

static int l_gru_backward(lua_State *L) { return backward_impl(L, "gru_backward", 0); }
static int l_gru_backward_ref(lua_State *L) { return backward_impl(L, "gru_backward_ref", 1); }

/* gru_step(h, work, x, h_prev|nil, kernel, recurrent_kernel, bias) */
static int l_gru_step(lua_State *L) {
  const char *fn = "gru_step";
  lc_tensor *h = lcb_check(L, 1), *work = lcb_check(L, 2), *x = lcb_check(L, 3);
  lc_tensor *h_prev = lcb_opt(L, 4), *kernel = lcb_check(L, 5), *rkernel = lcb_check(L, 6);
  lc_tensor *bias = lcb_check(L, 7);
  int64_t wx[2] = {-1, -1};
  lcb_expect_shape(L, fn, "x", x, 2, wx, "(B, C)");
  int64_t B = x->shape[0], C = x->shape[1];
  int64_t H = lcb_expect_gate_kernels(L, fn, kernel, rkernel, C, 3);
  int64_t wb[2] = {2, 3 * H}, ws[2] = {B, H}, ww[3] = {2, B, 3 * H};
  lcb_expect_shape(L, fn, "bias", bias, 2, wb, "(2, 3H)");
  lcb_expect_shape(L, fn, "h", h, 2, ws, "(B, H)");
  lcb_expect_shape(L, fn, "work", work, 3, ww, "(2, B, 3H)");
  if (h_prev) lcb_expect_shape(L, fn, "h_prev", h_prev, 2, ws, "(B, H)");
  if (h_prev && h_prev->data == h->data)
    return luaL_error(L, "%s: h must not share storage with h_prev", fn);
  gru_step(h->data, work->data, x->data, DATA(h_prev), kernel->data, rkernel->data,
           bias->data, (int)B, (int)C, (int)H);
  return 0;
}

static const luaL_Reg functions[] = {
  {"gru_forward", l_gru_forward}, {"gru_forward_ref", l_gru_forward_ref},
  {"gru_backward", l_gru_backward}, {"gru_backward_ref", l_gru_backward_ref},
  {"gru_step", l_gru_step},
  {NULL, NULL}
};

void lcb_open_gru(lua_State *L) { lcb_setfuncs(L, functions); }
