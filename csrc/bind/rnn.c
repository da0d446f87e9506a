/* rnn.c (binding): Lua functions of the recurrent and attention family (nn/lstm.c,
 * nn/attention.c). Every tensor is checked for its shape before a kernel runs; the
 * kernels' own (B, H) temporaries are freed before any error is raised. Not a layer:
 * the buffers are owned and reused by the Lua layers (nn/LSTM.lua, nn/Attention.lua). */
#include "bind.h"

/* Sizes of one LSTM call, read from x (B, T, C) and kernel (C, 4H). */
typedef struct {
  int64_t B, T, C, H;
} lstm_dims;

/* steps < 0: x is (B, T, C); else x is (B, C), repeated over T = steps. kernel NULL
 * (a forward or backward given the projection): x is the input projection, C = 4H with H
 * from rkernel (H, 4H). */
static lstm_dims lstm_check_weights(lua_State *L, const char *fn, const lc_tensor *x,
                                    const lc_tensor *kernel, const lc_tensor *rkernel,
                                    const lc_tensor *bias, int64_t steps) {
  lstm_dims d;
  int64_t wx[3] = {-1, -1, -1};
  if (steps >= 0) {
    lcb_expect_shape(L, fn, "x", x, 2, wx, "(B, C) with steps");
    d.B = x->shape[0]; d.T = steps; d.C = x->shape[1];
  } else {
    lcb_expect_shape(L, fn, "x", x, 3, wx, "(B, T, C)");
    d.B = x->shape[0]; d.T = x->shape[1]; d.C = x->shape[2];
  }
  if (kernel) {
    d.H = lcb_expect_gate_kernels(L, fn, kernel, rkernel, d.C, 4);
  } else {
    int64_t wr[2] = {-1, -1};
    lcb_expect_shape(L, fn, "recurrent_kernel", rkernel, 2, wr, "(H, 4H)");
    d.H = rkernel->shape[0];
    if (rkernel->shape[1] != 4 * d.H || d.H == 0)
      luaL_error(L, "%s: recurrent_kernel is (%d, %d), expected (H, 4H)", fn,
                 (int)rkernel->shape[0], (int)rkernel->shape[1]);
    if (d.C != 4 * d.H)
      luaL_error(L, "%s: without a kernel x is the input projection, last dim 4H = %d, got %d",
                 fn, (int)(4 * d.H), (int)d.C);
  }
  int64_t wb[1] = {4 * d.H};
  lcb_expect_shape(L, fn, "bias", bias, 1, wb, "(4H)");
  return d;
}

static void lstm_check_state(lua_State *L, const char *fn, const lstm_dims *d,
                             const lc_tensor *mask, const lc_tensor *h0, const lc_tensor *c0) {
  int64_t wm[2] = {d->B, d->T}, ws[2] = {d->B, d->H};
  if (mask) lcb_expect_shape(L, fn, "mask", mask, 2, wm, "(B, T)");
  if (h0) lcb_expect_shape(L, fn, "h0", h0, 2, ws, "(B, H)");
  if (c0) lcb_expect_shape(L, fn, "c0", c0, 2, ws, "(B, H)");
}

static void lstm_check_caches(lua_State *L, const char *fn, const lstm_dims *d,
                              const lc_tensor *gates, const lc_tensor *cs, const lc_tensor *hs) {
  int64_t wg[3] = {d->T, d->B, 4 * d->H}, wc[3] = {d->T, d->B, d->H};
  lcb_expect_shape(L, fn, "gates", gates, 3, wg, "(T, B, 4H)");
  lcb_expect_shape(L, fn, "cs", cs, 3, wc, "(T, B, H)");
  lcb_expect_shape(L, fn, "hs", hs, 3, wc, "(T, B, H)");
}

static void lstm_check_out(lua_State *L, const char *fn, const char *arg, const lstm_dims *d,
                           const lc_tensor *out, int return_sequences) {
  int64_t wseq[3] = {d->B, d->T, d->H}, wlast[2] = {d->B, d->H};
  if (return_sequences) lcb_expect_shape(L, fn, arg, out, 3, wseq, "(B, T, H)");
  else lcb_expect_shape(L, fn, arg, out, 2, wlast, "(B, H)");
}

#define DATA(t) ((t) ? (t)->data : NULL)

/* The optional steps argument at index i: nil -> -1 (x is (B, T, C)), else a count >= 0. */
static int64_t opt_steps(lua_State *L, const char *fn, int i) {
  if (lua_isnoneornil(L, i)) return -1;
  lua_Number n = luaL_checknumber(L, i);
  if (n < 0 || n != (lua_Number)(int64_t)n || n > 1e9)
    luaL_error(L, "%s: steps must be a non-negative integer, got %g", fn, (double)n);
  return (int64_t)n;
}

/* Scratch zx / dzx: (B, T, 4H), or (B, 4H) when x repeats. */
static void lstm_check_scratch(lua_State *L, const char *fn, const char *arg, const lstm_dims *d,
                               const lc_tensor *z, int repeat) {
  int64_t w3[3] = {d->B, d->T, 4 * d->H}, w2[2] = {d->B, 4 * d->H};
  if (repeat) lcb_expect_shape(L, fn, arg, z, 2, w2, "(B, 4H) with steps");
  else lcb_expect_shape(L, fn, arg, z, 3, w3, "(B, T, 4H)");
}

/* lstm_forward(out, gates, cs, hs, zx, x, mask|nil, kernel|nil, recurrent_kernel, bias,
 *              h0|nil, c0|nil, go_backwards, return_sequences, zero_output_for_mask,
 *              steps|nil)   steps: x is (B, C), the same input at each of T = steps;
 *              kernel nil: x is already x @ kernel (last dim 4H)
 * These 16 arguments, from stack index base on, checked into *a. */
#define LSTM_FORWARD_NARGS 16
static void forward_args(lua_State *L, const char *fn, int base, lstm_forward_args *a) {
  lc_tensor *out = lcb_check(L, base), *gates = lcb_check(L, base + 1);
  lc_tensor *cs = lcb_check(L, base + 2), *hs = lcb_check(L, base + 3);
  lc_tensor *zx = lcb_check(L, base + 4), *x = lcb_check(L, base + 5);
  lc_tensor *mask = lcb_opt(L, base + 6), *kernel = lcb_opt(L, base + 7);
  lc_tensor *rkernel = lcb_check(L, base + 8), *bias = lcb_check(L, base + 9);
  lc_tensor *h0 = lcb_opt(L, base + 10), *c0 = lcb_opt(L, base + 11);
  int return_sequences = lua_toboolean(L, base + 13);
  int64_t steps = opt_steps(L, fn, base + 15);
  lstm_dims d = lstm_check_weights(L, fn, x, kernel, rkernel, bias, steps);
  lstm_check_state(L, fn, &d, mask, h0, c0);
  lstm_check_caches(L, fn, &d, gates, cs, hs);
  lstm_check_out(L, fn, "out", &d, out, return_sequences);
  lstm_check_scratch(L, fn, "zx", &d, zx, steps >= 0);
  *a = (lstm_forward_args){out->data, gates->data, cs->data, hs->data, zx->data, x->data,
    DATA(mask), DATA(kernel), rkernel->data, bias->data, DATA(h0), DATA(c0), (int)d.B,
    (int)d.T, (int)d.C, (int)d.H, lua_toboolean(L, base + 12), return_sequences,
    lua_toboolean(L, base + 14), steps >= 0};
}

static int forward_impl(lua_State *L, const char *fn, int ref) {
  lstm_forward_args a;
  forward_args(L, fn, 1, &a);
  int rc = ref ? lstm_forward_ref(a.out, a.gates, a.cs, a.hs, a.zx, a.x, a.mask, a.kernel,
                                  a.rkernel, a.bias, a.h0, a.c0, a.B, a.T, a.C, a.H,
                                  a.go_backwards, a.return_sequences, a.zero_output_for_mask,
                                  a.repeat)
               : lstm_forward_pair(&a, NULL);
  if (rc != LC_OK) return luaL_error(L, "%s: out of memory", fn);
  return 0;
}

static int l_lstm_forward(lua_State *L) { return forward_impl(L, "lstm_forward", 0); }
static int l_lstm_forward_ref(lua_State *L) { return forward_impl(L, "lstm_forward_ref", 1); }

/* A pair's two calls write into different tensors: wa, wb (n each) are the tensors each
 * call writes, in argument order (NULL: an optional one not given). */
static void check_disjoint_writes(lua_State *L, const char *fn, float *const *wa,
                                  float *const *wb, int n) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      if (wa[i] && wa[i] == wb[j])
        luaL_error(L, "%s: the two calls write into the same tensor (argument %d of the first, "
                   "%d of the second)", fn, i + 1, j + 1);
}

/* lstm_forward_pair(16 arguments of one lstm_forward, then 16 of another): two
 * independent forwards (a BiLSTM's two directions), run at once on a team of two threads.
 * They may share inputs, never a buffer they write. */
static int l_lstm_forward_pair(lua_State *L) {
  const char *fn = "lstm_forward_pair";
  lstm_forward_args a, b;
  forward_args(L, fn, 1, &a);
  forward_args(L, fn, 1 + LSTM_FORWARD_NARGS, &b);
  float *wa[5] = {a.out, a.gates, a.cs, a.hs, a.zx}, *wb[5] = {b.out, b.gates, b.cs, b.hs, b.zx};
  check_disjoint_writes(L, fn, wa, wb, 5);
  if (lstm_forward_pair(&a, &b) != LC_OK) return luaL_error(L, "%s: out of memory", fn);
  return 0;
}

/* lstm_backward(dx, dkernel|nil, drecurrent_kernel, dbias, dh0|nil, dc0|nil, dz, dzx,
 *               dout, x, mask|nil, kernel|nil, recurrent_kernel, gates, cs, hs, h0|nil,
 *               c0|nil, go_backwards, return_sequences, zero_output_for_mask, steps|nil)
 *               kernel nil (after a forward given the projection): x is the projection,
 *               dx its gradient, dkernel not read
 * These 22 arguments, from stack index base on, checked into *a. */
#define LSTM_BACKWARD_NARGS 22
static void backward_args(lua_State *L, const char *fn, int base, lstm_backward_args *a) {
  lc_tensor *dx = lcb_check(L, base), *dkernel = lcb_opt(L, base + 1);
  lc_tensor *drkernel = lcb_check(L, base + 2), *dbias = lcb_check(L, base + 3);
  lc_tensor *dh0 = lcb_opt(L, base + 4), *dc0 = lcb_opt(L, base + 5);
  lc_tensor *dz = lcb_check(L, base + 6), *dzx = lcb_check(L, base + 7);
  lc_tensor *dout = lcb_check(L, base + 8), *x = lcb_check(L, base + 9);
  lc_tensor *mask = lcb_opt(L, base + 10), *kernel = lcb_opt(L, base + 11);
  lc_tensor *rkernel = lcb_check(L, base + 12), *gates = lcb_check(L, base + 13);
  lc_tensor *cs = lcb_check(L, base + 14), *hs = lcb_check(L, base + 15);
  lc_tensor *h0 = lcb_opt(L, base + 16), *c0 = lcb_opt(L, base + 17);
  int return_sequences = lua_toboolean(L, base + 19);
  int64_t steps = opt_steps(L, fn, base + 21);
  lstm_dims d = lstm_check_weights(L, fn, x, kernel, rkernel, dbias, steps);
  lstm_check_state(L, fn, &d, mask, h0, c0);
  lstm_check_state(L, fn, &d, NULL, dh0, dc0);
  lstm_check_caches(L, fn, &d, gates, cs, hs);
  lstm_check_out(L, fn, "dout", &d, dout, return_sequences);
  lcb_expect_same(L, fn, "dx", dx, "x", x);
  if (kernel && !dkernel) luaL_error(L, "%s: dkernel is nil but kernel is given", fn);
  if (kernel) lcb_expect_same(L, fn, "dkernel", dkernel, "kernel", kernel);
  lcb_expect_same(L, fn, "drecurrent_kernel", drkernel, "recurrent_kernel", rkernel);
  int64_t wdz[3] = {d.T, d.B, 4 * d.H};
  lcb_expect_shape(L, fn, "dz", dz, 3, wdz, "(T, B, 4H)");
  lstm_check_scratch(L, fn, "dzx", &d, dzx, steps >= 0);
  *a = (lstm_backward_args){dx->data, kernel ? dkernel->data : NULL, drkernel->data,
    dbias->data, DATA(dh0), DATA(dc0), dz->data, dzx->data, dout->data, x->data, DATA(mask),
    DATA(kernel),
    rkernel->data, gates->data, cs->data, hs->data, DATA(h0), DATA(c0), (int)d.B, (int)d.T,
    (int)d.C, (int)d.H, lua_toboolean(L, base + 18), return_sequences,
    lua_toboolean(L, base + 20), steps >= 0};
}

static int backward_impl(lua_State *L, const char *fn, int ref) {
  lstm_backward_args a;
  backward_args(L, fn, 1, &a);
  int rc = ref ? lstm_backward_ref(a.dx, a.dkernel, a.drkernel, a.dbias, a.dh0, a.dc0, a.dz,
                                   a.dzx, a.dout, a.x, a.mask, a.kernel, a.rkernel, a.gates,
                                   a.cs, a.hs, a.h0, a.c0, a.B, a.T, a.C, a.H, a.go_backwards,
                                   a.return_sequences, a.zero_output_for_mask, a.repeat)
               : lstm_backward_pair(&a, NULL);
  if (rc != LC_OK) return luaL_error(L, "%s: out of memory", fn);
  return 0;
}

static int l_lstm_backward(lua_State *L) { return backward_impl(L, "lstm_backward", 0); }
static int l_lstm_backward_ref(lua_State *L) { return backward_impl(L, "lstm_backward_ref", 1); }

/* lstm_backward_pair(22 arguments of one lstm_backward, then 22 of another), as
 * lstm_forward_pair: they may share inputs, never a buffer they write. */
static int l_lstm_backward_pair(lua_State *L) {
  const char *fn = "lstm_backward_pair";
  lstm_backward_args a, b;
  backward_args(L, fn, 1, &a);
  backward_args(L, fn, 1 + LSTM_BACKWARD_NARGS, &b);
  float *wa[8] = {a.dx, a.dkernel, a.drkernel, a.dbias, a.dh0, a.dc0, a.dz, a.dzx};
  float *wb[8] = {b.dx, b.dkernel, b.drkernel, b.dbias, b.dh0, b.dc0, b.dz, b.dzx};
  check_disjoint_writes(L, fn, wa, wb, 8);
  if (lstm_backward_pair(&a, &b) != LC_OK) return luaL_error(L, "%s: out of memory", fn);
  return 0;
}

/* lstm_step(h, c, gates, x, h_prev|nil, c_prev|nil, kernel, recurrent_kernel, bias) */
static int l_lstm_step(lua_State *L) {
  const char *fn = "lstm_step";
  lc_tensor *h = lcb_check(L, 1), *c = lcb_check(L, 2), *gates = lcb_check(L, 3);
  lc_tensor *x = lcb_check(L, 4), *h_prev = lcb_opt(L, 5), *c_prev = lcb_opt(L, 6);
  lc_tensor *kernel = lcb_check(L, 7), *rkernel = lcb_check(L, 8), *bias = lcb_check(L, 9);
  int64_t wx[2] = {-1, -1};
  lcb_expect_shape(L, fn, "x", x, 2, wx, "(B, C)");
  int64_t B = x->shape[0], C = x->shape[1];
  int64_t H = lcb_expect_gate_kernels(L, fn, kernel, rkernel, C, 4);
  int64_t wb[1] = {4 * H}, ws[2] = {B, H}, wg[2] = {B, 4 * H};
  lcb_expect_shape(L, fn, "bias", bias, 1, wb, "(4H)");
  lcb_expect_shape(L, fn, "h", h, 2, ws, "(B, H)");
  lcb_expect_shape(L, fn, "c", c, 2, ws, "(B, H)");
  lcb_expect_shape(L, fn, "gates", gates, 2, wg, "(B, 4H)");
  if (h_prev) lcb_expect_shape(L, fn, "h_prev", h_prev, 2, ws, "(B, H)");
  if (c_prev) lcb_expect_shape(L, fn, "c_prev", c_prev, 2, ws, "(B, H)");
  if ((h_prev && h_prev->data == h->data) || (c_prev && c_prev->data == c->data))
    return luaL_error(L, "%s: h, c must not share storage with h_prev, c_prev", fn);
  lstm_step(h->data, c->data, gates->data, x->data, DATA(h_prev), DATA(c_prev), kernel->data,
            rkernel->data, bias->data, (int)B, (int)C, (int)H);
  return 0;
}

/* orthogonal(t): fills the 2-d t (N, M) as Keras' Orthogonal initialiser. */
static int l_orthogonal(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  if (t->ndim != 2) return luaL_error(L, "orthogonal: expected a 2-d tensor, got %d dims", t->ndim);
  int rc = orthogonal_init(t->data, (int)t->shape[0], (int)t->shape[1]);
  if (rc == LC_ENOMEM) return luaL_error(L, "orthogonal: out of memory");
  if (rc != LC_OK) return luaL_error(L, "orthogonal: the normal draw was rank deficient");
  lua_settop(L, 1);
  return 1;
}

/* (B, T, H) or (B, H) seen as (B, T, H) with T = 1. */
static void seq_dims(lua_State *L, const char *fn, const char *arg, const lc_tensor *t,
                     int64_t *B, int64_t *T, int64_t *H) {
  if (t->ndim == 3) { *B = t->shape[0]; *T = t->shape[1]; *H = t->shape[2]; return; }
  if (t->ndim == 2) { *B = t->shape[0]; *T = 1; *H = t->shape[1]; return; }
  int64_t w[3] = {-1, -1, -1};
  *B = *T = *H = 0;
  lcb_expect_shape(L, fn, arg, t, 3, w, "(B, T, H)");   /* raises: wrong ndim */
}

static void expect_seq(lua_State *L, const char *fn, const char *arg, const lc_tensor *t,
                       int ndim, int64_t B, int64_t T, int64_t H) {
  int64_t w3[3] = {B, T, H}, w2[2] = {B, H};
  if (ndim == 3) lcb_expect_shape(L, fn, arg, t, 3, w3, "(B, T, H)");
  else lcb_expect_shape(L, fn, arg, t, 2, w2, "(B, H)");
}

/* bidir_concat_forward(out, fwd, bwd, reverse): out (B, T, 2H) or (B, 2H). */
static int l_bidir_concat_forward(lua_State *L) {
  const char *fn = "bidir_concat_forward";
  lc_tensor *out = lcb_check(L, 1), *fwd = lcb_check(L, 2), *bwd = lcb_check(L, 3);
  int reverse = lua_toboolean(L, 4);
  int64_t B, T, H;
  seq_dims(L, fn, "fwd", fwd, &B, &T, &H);
  expect_seq(L, fn, "bwd", bwd, fwd->ndim, B, T, H);
  expect_seq(L, fn, "out", out, fwd->ndim, B, T, 2 * H);
  bidir_concat_forward(out->data, fwd->data, bwd->data, (int)B, (int)T, (int)H, reverse);
  return 0;
}

/* bidir_concat_backward(dfwd, dbwd, dout, reverse) */
static int l_bidir_concat_backward(lua_State *L) {
  const char *fn = "bidir_concat_backward";
  lc_tensor *dfwd = lcb_check(L, 1), *dbwd = lcb_check(L, 2), *dout = lcb_check(L, 3);
  int reverse = lua_toboolean(L, 4);
  int64_t B, T, H;
  seq_dims(L, fn, "dfwd", dfwd, &B, &T, &H);
  expect_seq(L, fn, "dbwd", dbwd, dfwd->ndim, B, T, H);
  expect_seq(L, fn, "dout", dout, dfwd->ndim, B, T, 2 * H);
  bidir_concat_backward(dfwd->data, dbwd->data, dout->data, (int)B, (int)T, (int)H, reverse);
  return 0;
}

/* Checks q (B, Tq, D), v (B, Tv, D), and a (B, Tq, Tv) tensor named wname. */
static void attention_dims(lua_State *L, const char *fn, const lc_tensor *q, const lc_tensor *v,
                           const char *wname, const lc_tensor *w, int64_t *dims) {
  int64_t wq[3] = {-1, -1, -1};
  lcb_expect_shape(L, fn, "q", q, 3, wq, "(B, Tq, D)");
  int64_t wv[3] = {q->shape[0], -1, q->shape[2]};
  lcb_expect_shape(L, fn, "v", v, 3, wv, "(B, Tv, D)");
  dims[0] = q->shape[0]; dims[1] = q->shape[1]; dims[2] = v->shape[1]; dims[3] = q->shape[2];
  int64_t ww[3] = {dims[0], dims[1], dims[2]};
  lcb_expect_shape(L, fn, wname, w, 3, ww, "(B, Tq, Tv)");
}

static void attention_check_qmask(lua_State *L, const char *fn, const lc_tensor *m,
                                  const int64_t *d) {
  if (!m) return;
  int64_t wm[2] = {d[0], d[1]};
  lcb_expect_shape(L, fn, "qmask", m, 2, wm, "(B, Tq)");
}

/* attention_forward(ctx, weights, q, v[, qmask]) */
static int attention_forward_impl(lua_State *L, const char *fn, int ref) {
  lc_tensor *ctx = lcb_check(L, 1), *w = lcb_check(L, 2), *q = lcb_check(L, 3), *v = lcb_check(L, 4);
  lc_tensor *qm = lcb_opt(L, 5);
  int64_t d[4];
  attention_dims(L, fn, q, v, "weights", w, d);
  lcb_expect_same(L, fn, "ctx", ctx, "q", q);
  attention_check_qmask(L, fn, qm, d);
  (ref ? attention_forward_ref : attention_forward)(ctx->data, w->data, q->data, v->data,
                                                    qm ? qm->data : NULL,
                                                    (int)d[0], (int)d[1], (int)d[2], (int)d[3]);
  return 0;
}

static int l_attention_forward(lua_State *L) {
  return attention_forward_impl(L, "attention_forward", 0);
}
static int l_attention_forward_ref(lua_State *L) {
  return attention_forward_impl(L, "attention_forward_ref", 1);
}

/* attention_weights(weights (B, Tq, Tv), q (B, Tq, D), v (B, Tv, D)[, qmask]) */
static int l_attention_weights(lua_State *L) {
  const char *fn = "attention_weights";
  lc_tensor *w = lcb_check(L, 1), *q = lcb_check(L, 2), *v = lcb_check(L, 3);
  lc_tensor *qm = lcb_opt(L, 4);
  int64_t d[4];
  attention_dims(L, fn, q, v, "weights", w, d);
  attention_check_qmask(L, fn, qm, d);
  attention_weights(w->data, q->data, v->data, qm ? qm->data : NULL, (int)d[0], (int)d[1],
                    (int)d[2], (int)d[3]);
  return 0;
}

/* attention_backward(dq, dv, dscores, dctx|nil, q, v, weights[, qmask]); dctx nil:
 * dscores holds the weights' gradient on entry */
static int attention_backward_impl(lua_State *L, const char *fn, int ref) {
  lc_tensor *dq = lcb_check(L, 1), *dv = lcb_check(L, 2), *ds = lcb_check(L, 3);
  lc_tensor *dctx = lcb_opt(L, 4), *q = lcb_check(L, 5), *v = lcb_check(L, 6);
  lc_tensor *w = lcb_check(L, 7), *qm = lcb_opt(L, 8);
  int64_t d[4];
  attention_dims(L, fn, q, v, "weights", w, d);
  attention_check_qmask(L, fn, qm, d);
  lcb_expect_same(L, fn, "dscores", ds, "weights", w);
  if (dctx) lcb_expect_same(L, fn, "dctx", dctx, "q", q);
  lcb_expect_same(L, fn, "dq", dq, "q", q);
  lcb_expect_same(L, fn, "dv", dv, "v", v);
  (ref ? attention_backward_ref : attention_backward)(
      dq->data, dv->data, ds->data, DATA(dctx), q->data, v->data, w->data,
      qm ? qm->data : NULL, (int)d[0], (int)d[1], (int)d[2], (int)d[3]);
  return 0;
}

static int l_attention_backward(lua_State *L) {
  return attention_backward_impl(L, "attention_backward", 0);
}
static int l_attention_backward_ref(lua_State *L) {
  return attention_backward_impl(L, "attention_backward_ref", 1);
}

/* Reads the Lua arrays rep (1-based rows of src, 1..R) and shift (0..T) of n pairs into
 * rs (2n ints: reps 0-based, then shifts); raises on a bad entry (nothing to free). */
static void shift_args(lua_State *L, const char *fn, int irep, int ishift, int n, int64_t R,
                       int64_t T, int *rs) {
  luaL_checktype(L, irep, LUA_TTABLE);
  luaL_checktype(L, ishift, LUA_TTABLE);
  if ((int)lua_objlen(L, irep) != n || (int)lua_objlen(L, ishift) != n)
    luaL_error(L, "%s: rep and shift must list %d pairs (one per row of out)", fn, n);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, irep, i);
    lua_rawgeti(L, ishift, i);
    lua_Number r = lua_tonumber(L, -2), s = lua_tonumber(L, -1);
    lua_pop(L, 2);
    if (r != (lua_Number)(int64_t)r || r < 1 || r > (lua_Number)R)
      luaL_error(L, "%s: rep[%d] = %g is not a row of src (1..%d)", fn, i, (double)r, (int)R);
    if (s != (lua_Number)(int64_t)s || s < 0 || s > (lua_Number)T)
      luaL_error(L, "%s: shift[%d] = %g is not in 0..%d", fn, i, (double)s, (int)T);
    rs[i - 1] = (int)r - 1;
    rs[n + i - 1] = (int)s;
  }
}

/* shift_gather(out (B, T, W), src (R, T, W), rep, shift) and
 * shift_scatter_add(dsrc (R, T, W), dout (B, T, W), rep, shift); rep, shift Lua arrays. */
static int shift_impl(lua_State *L, int scatter) {
  const char *fn = scatter ? "shift_scatter_add" : "shift_gather";
  lc_tensor *a = lcb_check(L, 1), *b = lcb_check(L, 2);
  lc_tensor *pairs = scatter ? b : a, *reps = scatter ? a : b;
  if (pairs->ndim != 3 || reps->ndim != 3 || pairs->shape[1] != reps->shape[1]
      || pairs->shape[2] != reps->shape[2])
    return luaL_error(L, "%s: expected (B, T, W) pairs and (R, T, W) representatives, got %s "
                      "(%d dims) and %s (%d dims)", fn, scatter ? "dout" : "out", pairs->ndim,
                      scatter ? "dsrc" : "src", reps->ndim);
  int n = (int)pairs->shape[0];
  int *rs = lua_newuserdata(L, 2 * (size_t)n * sizeof(int) + 1);   /* freed by the GC */
  shift_args(L, fn, 3, 4, n, reps->shape[0], pairs->shape[1], rs);
  if (scatter) shift_scatter_add(a->data, b->data, rs, rs + n, n, (int)pairs->shape[1], (int)pairs->shape[2]);
  else shift_gather(a->data, b->data, rs, rs + n, n, (int)pairs->shape[1], (int)pairs->shape[2]);
  return 0;
}
static int l_shift_gather(lua_State *L) { return shift_impl(L, 0); }
static int l_shift_scatter_add(lua_State *L) { return shift_impl(L, 1); }

/* shift_append(out (B, T, W), src (R, Ts, W), rep, last (B, W)), Ts = T or T - 1; rep a
 * Lua array of 1-based rows of src. */
static int l_shift_append(lua_State *L) {
  const char *fn = "shift_append";
  lc_tensor *out = lcb_check(L, 1), *src = lcb_check(L, 2), *last = lcb_check(L, 4);
  if (out->ndim != 3 || src->ndim != 3 || out->shape[1] < 1
      || (src->shape[1] != out->shape[1] && src->shape[1] != out->shape[1] - 1)
      || out->shape[2] != src->shape[2])
    return luaL_error(L, "%s: expected out (B, T, W) and src (R, T, W) or (R, T - 1, W)", fn);
  int64_t wl[2] = {out->shape[0], out->shape[2]};
  lcb_expect_shape(L, fn, "last", last, 2, wl, "(B, W)");
  int n = (int)out->shape[0];
  luaL_checktype(L, 3, LUA_TTABLE);
  if ((int)lua_objlen(L, 3) != n) return luaL_error(L, "%s: rep must list %d rows", fn, n);
  int *rs = lua_newuserdata(L, (size_t)n * sizeof(int) + 1);   /* freed by the GC */
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, 3, i);
    lua_Number r = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (r != (lua_Number)(int64_t)r || r < 1 || r > (lua_Number)src->shape[0])
      return luaL_error(L, "%s: rep[%d] = %g is not a row of src (1..%d)", fn, i, (double)r,
                        (int)src->shape[0]);
    rs[i - 1] = (int)r - 1;
  }
  shift_append(out->data, src->data, rs, last->data, n, (int)out->shape[1], (int)src->shape[1],
               (int)out->shape[2]);
  return 0;
}

/* reverse_steps_add(out, a, src), all (B, T, W): out[b, t] = a[b, t] + src[b, T - 1 - t]. */
static int l_reverse_steps_add(lua_State *L) {
  const char *fn = "reverse_steps_add";
  lc_tensor *out = lcb_check(L, 1), *a = lcb_check(L, 2), *src = lcb_check(L, 3);
  int64_t w[3] = {-1, -1, -1};
  lcb_expect_shape(L, fn, "out", out, 3, w, "(B, T, W)");
  lcb_expect_same(L, fn, "a", a, "out", out);
  lcb_expect_same(L, fn, "src", src, "out", out);
  reverse_steps_add(out->data, a->data, src->data, (int)out->shape[0], (int)out->shape[1],
                    (int)out->shape[2]);
  return 0;
}

static const luaL_Reg functions[] = {
  {"shift_gather", l_shift_gather}, {"shift_scatter_add", l_shift_scatter_add},
  {"shift_append", l_shift_append}, {"reverse_steps_add", l_reverse_steps_add},
  {"attention_weights", l_attention_weights},
  {"lstm_forward", l_lstm_forward}, {"lstm_forward_ref", l_lstm_forward_ref},
  {"lstm_forward_pair", l_lstm_forward_pair}, {"lstm_backward_pair", l_lstm_backward_pair},
  {"lstm_backward", l_lstm_backward}, {"lstm_backward_ref", l_lstm_backward_ref},
  {"lstm_step", l_lstm_step}, {"orthogonal", l_orthogonal},
  {"bidir_concat_forward", l_bidir_concat_forward},
  {"bidir_concat_backward", l_bidir_concat_backward},
  {"attention_forward", l_attention_forward}, {"attention_forward_ref", l_attention_forward_ref},
  {"attention_backward", l_attention_backward},
  {"attention_backward_ref", l_attention_backward_ref},
  {NULL, NULL}
};

void lcb_open_rnn(lua_State *L) { lcb_setfuncs(L, functions); }
