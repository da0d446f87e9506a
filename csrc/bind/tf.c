/* tf.c (binding): Lua functions of the Transformer kernels (nn/layernorm.c, nn/mha.c).
 * Every tensor is checked for its shape before a kernel runs; kernels free their own
 * workspace before any error is raised. Not layers: the buffers belong to
 * nn/LayerNorm.lua and nn/MultiHeadAttention.lua. */
#include "bind.h"

#define DATA(t) ((t) ? (t)->data : NULL)

/* layernorm_forward(out, mean, rstd, x, gamma, beta, eps): x, out (N, D) */
static int l_layernorm_forward(lua_State *L) {
  const char *fn = "layernorm_forward";
  lc_tensor *out = lcb_check(L, 1), *mean = lcb_check(L, 2), *rstd = lcb_check(L, 3);
  lc_tensor *x = lcb_check(L, 4), *gamma = lcb_check(L, 5), *beta = lcb_check(L, 6);
  lua_Number eps = luaL_checknumber(L, 7);
  if (!(eps > 0)) return luaL_error(L, "%s: eps must be > 0, got %g", fn, (double)eps);
  int64_t wx[2] = {-1, -1};
  lcb_expect_shape(L, fn, "x", x, 2, wx, "(N, D)");
  int64_t N = x->shape[0], D = x->shape[1];
  int64_t wd[1] = {D}, wn[1] = {N};
  lcb_expect_same(L, fn, "out", out, "x", x);
  lcb_expect_shape(L, fn, "gamma", gamma, 1, wd, "(D)");
  lcb_expect_shape(L, fn, "beta", beta, 1, wd, "(D)");
  lcb_expect_shape(L, fn, "mean", mean, 1, wn, "(N)");
  lcb_expect_shape(L, fn, "rstd", rstd, 1, wn, "(N)");
  layernorm_forward(out->data, mean->data, rstd->data, x->data, gamma->data, beta->data,
                    (int)N, (int)D, (float)eps);
  return 0;
}

/* layernorm_backward(dx, dgamma, dbeta, dout, x, mean, rstd, gamma) */
static int l_layernorm_backward(lua_State *L) {
  const char *fn = "layernorm_backward";
  lc_tensor *dx = lcb_check(L, 1), *dgamma = lcb_check(L, 2), *dbeta = lcb_check(L, 3);
  lc_tensor *dout = lcb_check(L, 4), *x = lcb_check(L, 5), *mean = lcb_check(L, 6);
  lc_tensor *rstd = lcb_check(L, 7), *gamma = lcb_check(L, 8);
  int64_t wx[2] = {-1, -1};
  lcb_expect_shape(L, fn, "x", x, 2, wx, "(N, D)");
  int64_t N = x->shape[0], D = x->shape[1];
  int64_t wd[1] = {D}, wn[1] = {N};
  lcb_expect_same(L, fn, "dx", dx, "x", x);
  lcb_expect_same(L, fn, "dout", dout, "x", x);
  lcb_expect_shape(L, fn, "gamma", gamma, 1, wd, "(D)");
  lcb_expect_shape(L, fn, "dgamma", dgamma, 1, wd, "(D)");
  lcb_expect_shape(L, fn, "dbeta", dbeta, 1, wd, "(D)");
  lcb_expect_shape(L, fn, "mean", mean, 1, wn, "(N)");
  lcb_expect_shape(L, fn, "rstd", rstd, 1, wn, "(N)");
  layernorm_backward(dx->data, dgamma->data, dbeta->data, dout->data, x->data, mean->data,
                     rstd->data, gamma->data, (int)N, (int)D);
  return 0;
}

/* Sizes of one attention call, read from q (B, Tq, D) and k (B, Tk, D). */
typedef struct {
  int64_t B, Tq, Tk, D, NH;
} mha_dims;

static mha_dims mha_check(lua_State *L, const char *fn, const lc_tensor *q, const lc_tensor *k,
                          const lc_tensor *v, const lc_tensor *probs, int heads_idx) {
  mha_dims d;
  int64_t wq[3] = {-1, -1, -1};
  lcb_expect_shape(L, fn, "q", q, 3, wq, "(B, Tq, D)");
  d.B = q->shape[0]; d.Tq = q->shape[1]; d.D = q->shape[2];
  int64_t wk[3] = {d.B, -1, d.D};
  lcb_expect_shape(L, fn, "k", k, 3, wk, "(B, Tk, D)");
  d.Tk = k->shape[1];
  lcb_expect_same(L, fn, "v", v, "k", k);
  lua_Number nh = luaL_checknumber(L, heads_idx);
  if (nh < 1 || nh != (lua_Number)(int64_t)nh || d.D % (int64_t)nh != 0)
    luaL_error(L, "%s: heads must be a positive integer dividing D = %d, got %g", fn,
               (int)d.D, (double)nh);
  d.NH = (int64_t)nh;
  int64_t wp[4] = {d.B, d.NH, d.Tq, d.Tk};
  lcb_expect_shape(L, fn, "probs", probs, 4, wp, "(B, NH, Tq, Tk)");
  return d;
}

/* mha_forward(ctx, probs, q, k, v, key_mask|nil, heads, causal) */
static int forward_impl(lua_State *L, const char *fn, int ref) {
  lc_tensor *ctx = lcb_check(L, 1), *probs = lcb_check(L, 2), *q = lcb_check(L, 3);
  lc_tensor *k = lcb_check(L, 4), *v = lcb_check(L, 5), *key_mask = lcb_opt(L, 6);
  int causal = lua_toboolean(L, 8);
  mha_dims d = mha_check(L, fn, q, k, v, probs, 7);
  lcb_expect_same(L, fn, "ctx", ctx, "q", q);
  int64_t wm[2] = {d.B, d.Tk};
  if (key_mask) lcb_expect_shape(L, fn, "key_mask", key_mask, 2, wm, "(B, Tk)");
  if (causal && d.Tq != d.Tk)
    return luaL_error(L, "%s: causal needs Tq == Tk, got Tq = %d, Tk = %d", fn, (int)d.Tq,
                      (int)d.Tk);
  if (ctx->data == q->data || ctx->data == k->data || ctx->data == v->data)
    return luaL_error(L, "%s: ctx must not share storage with q, k or v", fn);
  if (ref) {
    mha_forward_ref(ctx->data, probs->data, q->data, k->data, v->data, DATA(key_mask),
                    (int)d.B, (int)d.Tq, (int)d.Tk, (int)d.D, (int)d.NH, causal);
    return 0;
  }
  int rc = mha_forward(ctx->data, probs->data, q->data, k->data, v->data, DATA(key_mask),
                       (int)d.B, (int)d.Tq, (int)d.Tk, (int)d.D, (int)d.NH, causal);
  if (rc != LC_OK) return luaL_error(L, "%s: out of memory", fn);
  return 0;
}

static int l_mha_forward(lua_State *L) { return forward_impl(L, "mha_forward", 0); }
static int l_mha_forward_ref(lua_State *L) { return forward_impl(L, "mha_forward_ref", 1); }

/* mha_backward(dq, dk, dv, dctx, probs, q, k, v, heads) */
static int l_mha_backward(lua_State *L) {
  const char *fn = "mha_backward";
  lc_tensor *dq = lcb_check(L, 1), *dk = lcb_check(L, 2), *dv = lcb_check(L, 3);
  lc_tensor *dctx = lcb_check(L, 4), *probs = lcb_check(L, 5), *q = lcb_check(L, 6);
  lc_tensor *k = lcb_check(L, 7), *v = lcb_check(L, 8);
  mha_dims d = mha_check(L, fn, q, k, v, probs, 9);
  lcb_expect_same(L, fn, "dctx", dctx, "q", q);
  lcb_expect_same(L, fn, "dq", dq, "q", q);
  lcb_expect_same(L, fn, "dk", dk, "k", k);
  lcb_expect_same(L, fn, "dv", dv, "v", v);
  int rc = mha_backward(dq->data, dk->data, dv->data, dctx->data, probs->data, q->data,
                        k->data, v->data, (int)d.B, (int)d.Tq, (int)d.Tk, (int)d.D, (int)d.NH);
  if (rc != LC_OK) return luaL_error(L, "%s: out of memory", fn);
  return 0;
}

static const luaL_Reg functions[] = {
  {"layernorm_forward", l_layernorm_forward}, {"layernorm_backward", l_layernorm_backward},
  {"mha_forward", l_mha_forward}, {"mha_forward_ref", l_mha_forward_ref},
  {"mha_backward", l_mha_backward},
  {NULL, NULL}
};

void lcb_open_tf(lua_State *L) { lcb_setfuncs(L, functions); }
