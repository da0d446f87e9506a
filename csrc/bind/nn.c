/* nn.c (binding): Lua functions of the nn kernel family: embedding, dropout, repeat,
 * concat, softmax cross-entropy and the Adam update. Each checks every argument, then
 * calls one kernel over the whole batch; outputs are tensors the caller allocated. */
#include "bind.h"

#include <stdio.h>
#include <string.h>

/* shape of t without its last dim, into want; returns that ndim */
static int leading(const lc_tensor *t, int64_t *want) {
  for (int d = 0; d + 1 < t->ndim; d++) want[d] = t->shape[d];
  return t->ndim - 1;
}

static int rows_of(const lc_tensor *t) {   /* product of all dims but the last */
  size_t n = 1;
  for (int d = 0; d + 1 < t->ndim; d++) n *= (size_t)t->shape[d];
  return (int)n;
}

/* ------------------------------------------------------------ embedding */

/* embedding_forward(out, ids, weight[, mask]): ids (B, T) (or (B), (B, T, U)) integer ids
 * in [0, V-1]; weight (V, D); out ids' shape + (D); mask ids' shape or nil. */
static int l_embedding_forward(lua_State *L) {
  lc_tensor *out = lcb_check(L, 1), *ids = lcb_check(L, 2), *w = lcb_check(L, 3);
  lc_tensor *mask = lcb_opt(L, 4);
  const char *fn = "embedding_forward";
  int64_t ww[2] = {-1, -1};
  lcb_expect_shape(L, fn, "weight", w, 2, ww, "(V, D)");
  if (ids->ndim < 1 || ids->ndim > LC_MAXDIM - 1)
    return luaL_error(L, "%s: ids has %d dims, expected 1 to %d", fn, ids->ndim, LC_MAXDIM - 1);
  int64_t want[LC_MAXDIM];
  for (int d = 0; d < ids->ndim; d++) want[d] = ids->shape[d];
  want[ids->ndim] = w->shape[1];
  lcb_expect_shape(L, fn, "out", out, ids->ndim + 1, want, "ids' shape + (D)");
  if (mask) lcb_expect_same(L, fn, "mask", mask, "ids", ids);
  lcb_expect_ids(L, fn, "ids", ids, 0, w->shape[0] - 1);
  embedding_forward(out->data, mask ? mask->data : NULL, ids->data, w->data,
                    (int)lc_numel(ids), (int)w->shape[1]);
  return 0;
}

/* embedding_backward(dweight, dout, ids): adds dout rows into dweight (V, D) at ids. */
static int l_embedding_backward(lua_State *L) {
  lc_tensor *dw = lcb_check(L, 1), *dout = lcb_check(L, 2), *ids = lcb_check(L, 3);
  const char *fn = "embedding_backward";
  int64_t ww[2] = {-1, -1};
  lcb_expect_shape(L, fn, "dweight", dw, 2, ww, "(V, D)");
  if (ids->ndim < 1 || ids->ndim > LC_MAXDIM - 1)
    return luaL_error(L, "%s: ids has %d dims, expected 1 to %d", fn, ids->ndim, LC_MAXDIM - 1);
  int64_t want[LC_MAXDIM];
  for (int d = 0; d < ids->ndim; d++) want[d] = ids->shape[d];
  want[ids->ndim] = dw->shape[1];
  lcb_expect_shape(L, fn, "dout", dout, ids->ndim + 1, want, "ids' shape + (D)");
  lcb_expect_ids(L, fn, "ids", ids, 0, dw->shape[0] - 1);
  embedding_backward(dw->data, dout->data, ids->data, (int)lc_numel(ids), (int)dw->shape[1]);
  return 0;
}

/* ------------------------------------------------------------ dropout */

/* dropout_forward(out, mask, x, p): out, mask shaped as x; 0 <= p < 1. */
static int l_dropout_forward(lua_State *L) {
  lc_tensor *out = lcb_check(L, 1), *mask = lcb_check(L, 2), *x = lcb_check(L, 3);
  lua_Number p = luaL_checknumber(L, 4);
  const char *fn = "dropout_forward";
  if (!(p >= 0 && p < 1)) return luaL_error(L, "%s: rate p is %g, expected 0 <= p < 1", fn, p);
  lcb_expect_same(L, fn, "out", out, "x", x);
  lcb_expect_same(L, fn, "mask", mask, "x", x);
  dropout_forward(out->data, mask->data, x->data, lc_numel(x), (float)p);
  return 0;
}

/* dropout_forward_keyed(out, mask, x, p, salt, epoch, row_ids): x, out, mask (B, ...);
 * row_ids a Lua array of B non-negative integers (pair numbers). The key is the seed last
 * given to luacap.seed. */
static int l_dropout_forward_keyed(lua_State *L) {
  lc_tensor *out = lcb_check(L, 1), *mask = lcb_check(L, 2), *x = lcb_check(L, 3);
  lua_Number p = luaL_checknumber(L, 4);
  lua_Number salt = luaL_checknumber(L, 5), epoch = luaL_checknumber(L, 6);
  luaL_checktype(L, 7, LUA_TTABLE);
  const char *fn = "dropout_forward_keyed";
  if (!(p >= 0 && p < 1)) return luaL_error(L, "%s: rate p is %g, expected 0 <= p < 1", fn, p);
  if (salt < 0 || epoch < 0) return luaL_error(L, "%s: salt and epoch must be >= 0", fn);
  lcb_expect_same(L, fn, "out", out, "x", x);
  lcb_expect_same(L, fn, "mask", mask, "x", x);
  if (x->ndim < 1) return luaL_error(L, "%s: x needs a batch dimension", fn);
  size_t B = (size_t)x->shape[0], R = B ? lc_numel(x) / B : 0;
  if (lua_objlen(L, 7) != B)
    return luaL_error(L, "%s: %d row ids for a batch of %d", fn, (int)lua_objlen(L, 7), (int)B);
  uint64_t *ids = lua_newuserdata(L, (B ? B : 1) * sizeof *ids);
  for (size_t b = 0; b < B; b++) {
    lua_rawgeti(L, 7, (int)b + 1);
    lua_Number v = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || v < 0 || v != (lua_Number)(uint64_t)v)
      return luaL_error(L, "%s: row id %d is not a non-negative integer", fn, (int)b + 1);
    ids[b] = (uint64_t)v;
    lua_pop(L, 1);
  }
  dropout_forward_keyed(out->data, mask->data, x->data, B, R, (float)p, lc_rng_seed_value(),
                        (uint64_t)salt, (uint64_t)epoch, ids);
  return 0;
}

/* dropout_backward(dx, dout, mask): dx = dout * mask, all the same shape. */
static int l_dropout_backward(lua_State *L) {
  lc_tensor *dx = lcb_check(L, 1), *dout = lcb_check(L, 2), *mask = lcb_check(L, 3);
  const char *fn = "dropout_backward";
  lcb_expect_same(L, fn, "dout", dout, "mask", mask);
  lcb_expect_same(L, fn, "dx", dx, "mask", mask);
  dropout_backward(dx->data, dout->data, mask->data, lc_numel(mask));
  return 0;
}

/* ------------------------------------------------------------ repeat, concat */

/* repeat_forward(out, x): x (B, C), out (B, T, C). */
static int l_repeat_forward(lua_State *L) {
  lc_tensor *out = lcb_check(L, 1), *x = lcb_check(L, 2);
  const char *fn = "repeat_forward";
  int64_t wx[2] = {-1, -1};
  lcb_expect_shape(L, fn, "x", x, 2, wx, "(B, C)");
  int64_t wo[3] = {x->shape[0], -1, x->shape[1]};
  lcb_expect_shape(L, fn, "out", out, 3, wo, "(B, T, C)");
  repeat_forward(out->data, x->data, (int)x->shape[0], (int)out->shape[1], (int)x->shape[1]);
  return 0;
}

/* repeat_backward(dx, dout): dout (B, T, C), dx (B, C) = sum over T. */
static int l_repeat_backward(lua_State *L) {
  lc_tensor *dx = lcb_check(L, 1), *dout = lcb_check(L, 2);
  const char *fn = "repeat_backward";
  int64_t wd[3] = {-1, -1, -1};
  lcb_expect_shape(L, fn, "dout", dout, 3, wd, "(B, T, C)");
  int64_t wx[2] = {dout->shape[0], dout->shape[2]};
  lcb_expect_shape(L, fn, "dx", dx, 2, wx, "(B, C)");
  repeat_backward(dx->data, dout->data, (int)dout->shape[0], (int)dout->shape[1],
                  (int)dout->shape[2]);
  return 0;
}

/* Checks the parts (a table at idx) against whole (..., CT) on the last axis. */
static int check_parts(lua_State *L, const char *fn, int idx, const lc_tensor *whole,
                       const char *wname) {
  luaL_checktype(L, idx, LUA_TTABLE);
  int k = (int)lua_objlen(L, idx);
  if (k < 1) luaL_error(L, "%s: expected a non-empty list of tensors", fn);
  if (whole->ndim < 1) luaL_error(L, "%s: %s has no dims", fn, wname);
  int64_t want[LC_MAXDIM];
  int nd = leading(whole, want);
  int64_t total = 0;
  for (int i = 1; i <= k; i++) {
    lua_rawgeti(L, idx, i);
    if (!lcb_is_tensor(L, -1))
      luaL_error(L, "%s: part %d is a %s, expected a tensor", fn, i, luaL_typename(L, -1));
    lc_tensor *x = lcb_check(L, lua_gettop(L));
    char name[32];
    snprintf(name, sizeof name, "part %d", i);
    want[nd] = -1;
    lcb_expect_shape(L, fn, name, x, nd + 1, want, NULL);
    total += x->shape[nd];
    lua_pop(L, 1);
  }
  if (total != whole->shape[nd])
    luaL_error(L, "%s: parts have %d features in all, %s has %d", fn, (int)total, wname,
               (int)whole->shape[nd]);
  return k;
}

/* concat_forward(out, {x1, x2, ...}): every xi (..., Ci) with out's leading dims;
 * out (..., sum Ci). */
static int l_concat_forward(lua_State *L) {
  lc_tensor *out = lcb_check(L, 1);
  int k = check_parts(L, "concat_forward", 2, out, "out");
  int N = rows_of(out), CT = (int)out->shape[out->ndim - 1], off = 0;
  for (int i = 1; i <= k; i++) {
    lua_rawgeti(L, 2, i);
    lc_tensor *x = lua_touserdata(L, -1);
    int C = (int)x->shape[x->ndim - 1];
    concat_forward(out->data, x->data, N, C, CT, off);
    off += C;
    lua_pop(L, 1);
  }
  return 0;
}

/* concat_backward({dx1, dx2, ...}, dout): dxi written from dout's columns. */
static int l_concat_backward(lua_State *L) {
  lc_tensor *dout = lcb_check(L, 2);
  int k = check_parts(L, "concat_backward", 1, dout, "dout");
  int N = rows_of(dout), CT = (int)dout->shape[dout->ndim - 1], off = 0;
  for (int i = 1; i <= k; i++) {
    lua_rawgeti(L, 1, i);
    lc_tensor *dx = lua_touserdata(L, -1);
    int C = (int)dx->shape[dx->ndim - 1];
    concat_backward(dx->data, dout->data, N, C, CT, off);
    off += C;
    lua_pop(L, 1);
  }
  return 0;
}

/* ------------------------------------------------------------ softmax cross-entropy */

/* Checks targets and mask (either may be nil) against logits (..., V). */
static void check_targets(lua_State *L, const char *fn, const lc_tensor *logits,
                          const lc_tensor *targets, const lc_tensor *mask) {
  int64_t want[LC_MAXDIM];
  int nd = leading(logits, want);
  if (targets) {
    lcb_expect_shape(L, fn, "targets", targets, nd, want, "logits' shape without V");
    lcb_expect_ids(L, fn, "targets", targets, 0, logits->shape[logits->ndim - 1] - 1);
  }
  if (mask) lcb_expect_shape(L, fn, "mask", mask, nd, want, "logits' shape without V");
}

/* loss, count = xent_forward(probs, logits[, targets[, mask]]): logits (B, V) or
 * (B, T, V); probs the same shape gets the softmax; targets ids (B) / (B, T); mask the
 * targets' shape (weights, 0 for padding). loss is the mean over the weighted rows (0
 * when none); without targets only probs are computed and nothing is returned. */
static int l_xent_forward(lua_State *L) {
  lc_tensor *probs = lcb_check(L, 1), *logits = lcb_check(L, 2);
  lc_tensor *targets = lcb_opt(L, 3), *mask = lcb_opt(L, 4);
  const char *fn = "xent_forward";
  if (logits->ndim < 2)
    return luaL_error(L, "%s: logits has %d dims, expected (B, V) or (B, T, V)", fn, logits->ndim);
  lcb_expect_same(L, fn, "probs", probs, "logits", logits);
  if (mask && !targets) return luaL_error(L, "%s: a mask needs targets", fn);
  check_targets(L, fn, logits, targets, mask);
  int N = rows_of(logits), V = (int)logits->shape[logits->ndim - 1];
  double count = 0;
  double total = xent_forward(probs->data, &count, logits->data, targets ? targets->data : NULL,
                              mask ? mask->data : NULL, N, V);
  if (!targets) return 0;
  lua_pushnumber(L, count > 0 ? total / count : 0.0);
  lua_pushnumber(L, count);
  return 2;
}

/* loss = xent_weighted_forward(probs, logits, targets, weights, norm): per-row weights of
 * any sign (a policy gradient's r - b) and a fixed normaliser norm > 0, not the sum of the
 * weights (which can be 0 or negative): loss = sum_i w_i * -log softmax(logits_i)[t_i] / norm.
 * xent_backward(dlogits, probs, targets, weights, norm) is its gradient. */
static int l_xent_weighted_forward(lua_State *L) {
  lc_tensor *probs = lcb_check(L, 1), *logits = lcb_check(L, 2);
  lc_tensor *targets = lcb_check(L, 3), *weights = lcb_check(L, 4);
  lua_Number norm = luaL_checknumber(L, 5);
  const char *fn = "xent_weighted_forward";
  if (logits->ndim < 2)
    return luaL_error(L, "%s: logits has %d dims, expected (B, V) or (B, T, V)", fn, logits->ndim);
  lcb_expect_same(L, fn, "probs", probs, "logits", logits);
  check_targets(L, fn, logits, targets, weights);
  if (!(norm > 0)) return luaL_error(L, "%s: norm is %g, expected > 0", fn, norm);
  int N = rows_of(logits), V = (int)logits->shape[logits->ndim - 1];
  double count = 0;
  double total = xent_forward(probs->data, &count, logits->data, targets->data, weights->data, N, V);
  lua_pushnumber(L, total / norm);
  return 1;
}

/* xent_backward(dlogits, probs, targets, mask|nil, count): dlogits shaped as probs. */
static int l_xent_backward(lua_State *L) {
  lc_tensor *dl = lcb_check(L, 1), *probs = lcb_check(L, 2), *targets = lcb_check(L, 3);
  lc_tensor *mask = lcb_opt(L, 4);
  lua_Number count = luaL_checknumber(L, 5);
  const char *fn = "xent_backward";
  if (probs->ndim < 2)
    return luaL_error(L, "%s: probs has %d dims, expected (B, V) or (B, T, V)", fn, probs->ndim);
  lcb_expect_same(L, fn, "dlogits", dl, "probs", probs);
  check_targets(L, fn, probs, targets, mask);
  if (count < 0) return luaL_error(L, "%s: count is %g, expected >= 0", fn, count);
  xent_backward(dl->data, probs->data, targets->data, mask ? mask->data : NULL, count,
                rows_of(probs), (int)probs->shape[probs->ndim - 1]);
  return 0;
}

/* ------------------------------------------------------------ Adam */

/* adam_update(param, m, v, grad, lr_t, beta1, beta2, eps): all four tensors one shape. */
static int l_adam_update(lua_State *L) {
  lc_tensor *p = lcb_check(L, 1), *m = lcb_check(L, 2), *v = lcb_check(L, 3);
  lc_tensor *g = lcb_check(L, 4);
  lua_Number lr_t = luaL_checknumber(L, 5), b1 = luaL_checknumber(L, 6);
  lua_Number b2 = luaL_checknumber(L, 7), eps = luaL_checknumber(L, 8);
  const char *fn = "adam_update";
  lcb_expect_same(L, fn, "grad", g, "param", p);
  lcb_expect_same(L, fn, "m", m, "param", p);
  lcb_expect_same(L, fn, "v", v, "param", p);
  if (!(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1))
    return luaL_error(L, "%s: beta1 %g, beta2 %g, expected each in [0, 1)", fn, b1, b2);
  adam_update(p->data, m->data, v->data, g->data, lc_numel(p), (float)lr_t, (float)b1,
              (float)b2, (float)eps);
  return 0;
}

static const luaL_Reg functions[] = {
  {"embedding_forward", l_embedding_forward}, {"embedding_backward", l_embedding_backward},
  {"dropout_forward", l_dropout_forward},
  {"dropout_forward_keyed", l_dropout_forward_keyed}, {"dropout_backward", l_dropout_backward},
  {"repeat_forward", l_repeat_forward}, {"repeat_backward", l_repeat_backward},
  {"concat_forward", l_concat_forward}, {"concat_backward", l_concat_backward},
  {"xent_forward", l_xent_forward}, {"xent_backward", l_xent_backward},
  {"xent_weighted_forward", l_xent_weighted_forward},
  {"adam_update", l_adam_update},
  {NULL, NULL}
};

void lcb_open_nn(lua_State *L) { lcb_setfuncs(L, functions); }
