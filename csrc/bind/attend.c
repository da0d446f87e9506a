/* attend.c (binding): Lua functions of the attention decoder's step kernels
 * (nn/additive_attention.c, and nn/lstm.c's cached cell). Every tensor is checked for its
 * shape before a kernel runs. Not a layer: models/sat.lua owns and reuses the buffers. */
#include "bind.h"

#define DATA(t) ((t) ? (t)->data : NULL)

/* Sizes of one attention step, read from encp (B, L, A) and feats (B, L, D); checks hp,
 * w and g (when given) against them. */
static void att_dims(lua_State *L, const char *fn, const lc_tensor *encp, const lc_tensor *hp,
                     const lc_tensor *feats, const lc_tensor *w, const lc_tensor *g,
                     int64_t *d) {
  int64_t we[3] = {-1, -1, -1};
  lcb_expect_shape(L, fn, "encp", encp, 3, we, "(B, L, A)");
  d[0] = encp->shape[0]; d[1] = encp->shape[1]; d[2] = encp->shape[2];
  int64_t wf[3] = {d[0], d[1], -1};
  lcb_expect_shape(L, fn, "feats", feats, 3, wf, "(B, L, D)");
  d[3] = feats->shape[2];
  int64_t wh[2] = {d[0], d[2]}, ww[1] = {d[2]}, wg[1] = {d[0]};
  lcb_expect_shape(L, fn, "hp", hp, 2, wh, "(B, A)");
  lcb_expect_shape(L, fn, "w", w, 1, ww, "(A)");
  if (g) lcb_expect_shape(L, fn, "g", g, 1, wg, "(B)");
}

static void expect2(lua_State *L, const char *fn, const char *arg, const lc_tensor *t,
                    int64_t a, int64_t b, const char *names) {
  int64_t want[2] = {a, b};
  lcb_expect_shape(L, fn, arg, t, 2, want, names);
}

/* additive_attention_forward(zg, z, alpha, beta, encp, hp, feats, w, g|nil) */
static int att_forward_impl(lua_State *L, const char *fn, int ref) {
  lc_tensor *zg = lcb_check(L, 1), *z = lcb_check(L, 2), *alpha = lcb_check(L, 3);
  lc_tensor *beta = lcb_check(L, 4), *encp = lcb_check(L, 5), *hp = lcb_check(L, 6);
  lc_tensor *feats = lcb_check(L, 7), *w = lcb_check(L, 8), *g = lcb_opt(L, 9);
  int64_t d[4];
  att_dims(L, fn, encp, hp, feats, w, g, d);
  expect2(L, fn, "zg", zg, d[0], d[3], "(B, D)");
  expect2(L, fn, "z", z, d[0], d[3], "(B, D)");
  expect2(L, fn, "alpha", alpha, d[0], d[1], "(B, L)");
  int64_t wb[1] = {d[0]};
  lcb_expect_shape(L, fn, "beta", beta, 1, wb, "(B)");
  (ref ? additive_attention_forward_ref : additive_attention_forward)(
      zg->data, z->data, alpha->data, beta->data, encp->data, hp->data, feats->data, w->data,
      DATA(g), (int)d[0], (int)d[1], (int)d[2], (int)d[3]);
  return 0;
}

static int l_att_forward(lua_State *L) { return att_forward_impl(L, "additive_attention_forward", 0); }
static int l_att_forward_ref(lua_State *L) {
  return att_forward_impl(L, "additive_attention_forward_ref", 1);
}

/* additive_attention_backward(dencp, dhp, dfeats, dw, dg|nil, work, dzg, dalpha|nil,
 *                             z, alpha, beta, encp, hp, feats, w) */
static int att_backward_impl(lua_State *L, const char *fn, int ref) {
  lc_tensor *dencp = lcb_check(L, 1), *dhp = lcb_check(L, 2), *dfeats = lcb_check(L, 3);
  lc_tensor *dw = lcb_check(L, 4), *dg = lcb_opt(L, 5), *work = lcb_check(L, 6);
  lc_tensor *dzg = lcb_check(L, 7), *dalpha = lcb_opt(L, 8), *z = lcb_check(L, 9);
  lc_tensor *alpha = lcb_check(L, 10), *beta = lcb_check(L, 11), *encp = lcb_check(L, 12);
  lc_tensor *hp = lcb_check(L, 13), *feats = lcb_check(L, 14), *w = lcb_check(L, 15);
  int64_t d[4];
  att_dims(L, fn, encp, hp, feats, w, dg, d);
  lcb_expect_same(L, fn, "dencp", dencp, "encp", encp);
  lcb_expect_same(L, fn, "dhp", dhp, "hp", hp);
  lcb_expect_same(L, fn, "dfeats", dfeats, "feats", feats);
  lcb_expect_same(L, fn, "dw", dw, "w", w);
  expect2(L, fn, "work", work, d[0], d[1] + d[2], "(B, L + A)");
  expect2(L, fn, "dzg", dzg, d[0], d[3], "(B, D)");
  expect2(L, fn, "z", z, d[0], d[3], "(B, D)");
  expect2(L, fn, "alpha", alpha, d[0], d[1], "(B, L)");
  if (dalpha) expect2(L, fn, "dalpha", dalpha, d[0], d[1], "(B, L)");
  int64_t wb[1] = {d[0]};
  lcb_expect_shape(L, fn, "beta", beta, 1, wb, "(B)");
  (ref ? additive_attention_backward_ref : additive_attention_backward)(
      dencp->data, dhp->data, dfeats->data, dw->data, DATA(dg), work->data, dzg->data,
      DATA(dalpha), z->data, alpha->data, beta->data, encp->data, hp->data, feats->data,
      w->data, (int)d[0], (int)d[1], (int)d[2], (int)d[3]);
  return 0;
}

static int l_att_backward(lua_State *L) {
  return att_backward_impl(L, "additive_attention_backward", 0);
}
static int l_att_backward_ref(lua_State *L) {
  return att_backward_impl(L, "additive_attention_backward_ref", 1);
}

/* Sizes of a cell call from gates (B, 4H). */
static void cell_dims(lua_State *L, const char *fn, const lc_tensor *gates, int64_t *B,
                      int64_t *H) {
  int64_t wg[2] = {-1, -1};
  lcb_expect_shape(L, fn, "gates", gates, 2, wg, "(B, 4H)");
  if (gates->shape[1] % 4 != 0 || gates->shape[1] == 0)
    luaL_error(L, "%s: gates has %d columns, expected a positive multiple of 4 (4H)", fn,
               (int)gates->shape[1]);
  *B = gates->shape[0];
  *H = gates->shape[1] / 4;
}

/* lstm_cell_forward(h, c, gates, c_prev) */
static int l_cell_forward(lua_State *L) {
  const char *fn = "lstm_cell_forward";
  lc_tensor *h = lcb_check(L, 1), *c = lcb_check(L, 2), *gates = lcb_check(L, 3);
  lc_tensor *c_prev = lcb_check(L, 4);
  int64_t B, H;
  cell_dims(L, fn, gates, &B, &H);
  expect2(L, fn, "h", h, B, H, "(B, H)");
  expect2(L, fn, "c", c, B, H, "(B, H)");
  expect2(L, fn, "c_prev", c_prev, B, H, "(B, H)");
  if (c->data == c_prev->data) return luaL_error(L, "%s: c must not alias c_prev", fn);
  lstm_cell_forward(h->data, c->data, gates->data, c_prev->data, (int)B, (int)H);
  return 0;
}

/* lstm_cell_backward(dz, dc, dh, gates, c, c_prev) */
static int l_cell_backward(lua_State *L) {
  const char *fn = "lstm_cell_backward";
  lc_tensor *dz = lcb_check(L, 1), *dc = lcb_check(L, 2), *dh = lcb_check(L, 3);
  lc_tensor *gates = lcb_check(L, 4), *c = lcb_check(L, 5), *c_prev = lcb_check(L, 6);
  int64_t B, H;
  cell_dims(L, fn, gates, &B, &H);
  lcb_expect_same(L, fn, "dz", dz, "gates", gates);
  expect2(L, fn, "dc", dc, B, H, "(B, H)");
  expect2(L, fn, "dh", dh, B, H, "(B, H)");
  expect2(L, fn, "c", c, B, H, "(B, H)");
  expect2(L, fn, "c_prev", c_prev, B, H, "(B, H)");
  lstm_cell_backward(dz->data, dc->data, dh->data, gates->data, c->data, c_prev->data,
                     (int)B, (int)H);
  return 0;
}

static const luaL_Reg functions[] = {
  {"additive_attention_forward", l_att_forward},
  {"additive_attention_forward_ref", l_att_forward_ref},
  {"additive_attention_backward", l_att_backward},
  {"additive_attention_backward_ref", l_att_backward_ref},
  {"lstm_cell_forward", l_cell_forward}, {"lstm_cell_backward", l_cell_backward},
  {NULL, NULL}
};

void lcb_open_attend(lua_State *L) { lcb_setfuncs(L, functions); }
