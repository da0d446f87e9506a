/* tensor.c (binding): the luacap.Tensor userdata, its constructors and methods.
 * Float32, contiguous, row-major, up to 4 dims; views share refcounted storage.
 * Positions seen from Lua are 1-based; the C side is 0-based. Not a full tensor
 * library: the heavy work belongs to kernels that take whole batches. */
#include "bind.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ constructors */

static int t_empty(lua_State *L) {   /* empty(d1, d2, ...) or empty{d1, ...}: zero-filled */
  int64_t shape[LC_MAXDIM];
  int ndim = lcb_check_shape_args(L, 1, "zeros", shape);
  lcb_push(L, ndim, shape);
  return 1;
}

static int t_full(lua_State *L) {    /* full(value, shape...) */
  float v = (float)luaL_checknumber(L, 1);
  int64_t shape[LC_MAXDIM];
  int ndim = lcb_check_shape_args(L, 2, "full", shape);
  lc_tensor *t = lcb_push(L, ndim, shape);
  size_t n = lc_numel(t);
  for (size_t i = 0; i < n; i++) t->data[i] = v;
  return 1;
}

/* from_flat(values, shape): values is a flat Lua array of numbers in row-major order. */
static int t_from_flat(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  int64_t shape[LC_MAXDIM];
  int ndim = lcb_check_shape_args(L, 2, "tensor", shape);
  size_t n = lc_shape_numel(ndim, shape);
  if (lua_objlen(L, 1) != n)
    return luaL_error(L, "tensor: %d values given for %d elements", (int)lua_objlen(L, 1), (int)n);
  for (size_t i = 0; i < n; i++) {   /* validate before allocating */
    lua_rawgeti(L, 1, (int)i + 1);
    if (lua_type(L, -1) != LUA_TNUMBER)
      return luaL_error(L, "tensor: element %d is a %s, expected a number", (int)i + 1,
                        luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  lc_tensor *t = lcb_push(L, ndim, shape);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, 1, (int)i + 1);
    t->data[i] = (float)lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  return 1;
}

static int t_rand(lua_State *L) {    /* rand(lo, hi, shape...) uniform in [lo, hi) */
  float lo = (float)luaL_checknumber(L, 1), hi = (float)luaL_checknumber(L, 2);
  int64_t shape[LC_MAXDIM];
  int ndim = lcb_check_shape_args(L, 3, "rand", shape);
  lc_tensor *t = lcb_push(L, ndim, shape);
  lc_rng_fill_uniform(t->data, lc_numel(t), lo, hi);
  return 1;
}

static int t_randn(lua_State *L) {   /* randn(mean, std, shape...) */
  float mean = (float)luaL_checknumber(L, 1), std = (float)luaL_checknumber(L, 2);
  int64_t shape[LC_MAXDIM];
  int ndim = lcb_check_shape_args(L, 3, "randn", shape);
  lc_tensor *t = lcb_push(L, ndim, shape);
  lc_rng_fill_normal(t->data, lc_numel(t), mean, std);
  return 1;
}

static int t_arange(lua_State *L) {  /* arange(first, last_exclusive, step) */
  double a = luaL_checknumber(L, 1), b = luaL_checknumber(L, 2), step = luaL_optnumber(L, 3, 1);
  if (step == 0) return luaL_error(L, "arange: step must not be 0");
  double count = ceil((b - a) / step);
  if (count < 0) count = 0;
  int64_t shape[1] = {(int64_t)count};
  lc_tensor *t = lcb_push(L, 1, shape);
  for (int64_t i = 0; i < shape[0]; i++) t->data[i] = (float)(a + step * (double)i);
  return 1;
}

/* ------------------------------------------------------------ the generator */

static int l_seed(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  if (s < 0 || s != floor(s)) return luaL_error(L, "seed: expected a non-negative integer, got %g", s);
  lc_rng_seed((uint64_t)s);
  return 0;
}

static int l_random(lua_State *L) {  /* random() in [0,1); random(n) integer in [1, n] */
  if (lua_isnoneornil(L, 1)) {
    lua_pushnumber(L, lc_rng_uniform());
    return 1;
  }
  lua_Number n = luaL_checknumber(L, 1);
  if (n < 1 || n != floor(n)) return luaL_error(L, "random: expected an integer n >= 1, got %g", n);
  lua_pushnumber(L, (lua_Number)(lc_rng_below((uint64_t)n) + 1));
  return 1;
}

/* rng_state() -> string: the generator's state as 52 hex digits plus the spare normal;
 * set_rng_state(s) puts it back (resuming a run draws the same numbers). */
static int l_rng_state(lua_State *L) {
  uint64_t st[4];
  int has_spare;
  double sp;
  lc_rng_get_state(st, &has_spare, &sp);
  char buf[160];
  snprintf(buf, sizeof buf, "%016llx%016llx%016llx%016llx:%d:%a", (unsigned long long)st[0],
           (unsigned long long)st[1], (unsigned long long)st[2], (unsigned long long)st[3],
           has_spare, sp);
  lua_pushstring(L, buf);
  return 1;
}

static int l_set_rng_state(lua_State *L) {
  const char *s = luaL_checkstring(L, 1);
  uint64_t st[4];
  int has_spare = 0;
  double sp = 0;
  char hex[17];
  hex[16] = 0;
  if (strlen(s) < 64 + 4) return luaL_error(L, "set_rng_state: malformed state string");
  for (int i = 0; i < 4; i++) {
    memcpy(hex, s + 16 * i, 16);
    char *end;
    st[i] = strtoull(hex, &end, 16);
    if (*end) return luaL_error(L, "set_rng_state: malformed state string");
  }
  if (sscanf(s + 64, ":%d:%la", &has_spare, &sp) != 2)
    return luaL_error(L, "set_rng_state: malformed state string");
  lc_rng_set_state(st, has_spare, sp);
  return 0;
}

static int l_set_threads(lua_State *L) {
  lua_Number n = luaL_checknumber(L, 1);
  if (n < 1 || n != floor(n)) return luaL_error(L, "set_threads: expected an integer >= 1, got %g", n);
  lc_set_threads((int)n);
  return 0;
}

static int l_get_threads(lua_State *L) {
  lua_pushinteger(L, lc_get_threads());
  return 1;
}

/* blas_core() -> OpenBLAS' kernel family in use, e.g. "Haswell" (OPENBLAS_CORETYPE or
 * OpenBLAS' own pick for this CPU) */
static int l_blas_core(lua_State *L) {
  lua_pushstring(L, lc_blas_core());
  return 1;
}

/* sgemm(C, A, B, ta, tb, alpha, beta) on 2-d tensors: C = alpha op(A) op(B) + beta C */
static int l_sgemm(lua_State *L) {
  lc_tensor *c = lcb_check(L, 1), *a = lcb_check(L, 2), *b = lcb_check(L, 3);
  int ta = lua_toboolean(L, 4), tb = lua_toboolean(L, 5);
  float alpha = (float)luaL_optnumber(L, 6, 1.0), beta = (float)luaL_optnumber(L, 7, 0.0);
  if (a->ndim != 2 || b->ndim != 2 || c->ndim != 2)
    return luaL_error(L, "sgemm: A, B and C must be 2-d");
  int64_t M = ta ? a->shape[1] : a->shape[0], K = ta ? a->shape[0] : a->shape[1];
  int64_t N = tb ? b->shape[0] : b->shape[1];
  int64_t wb[2] = {tb ? N : K, tb ? K : N}, wc[2] = {M, N};
  lcb_expect_shape(L, "sgemm", "B", b, 2, wb, tb ? "(N, K)" : "(K, N)");
  lcb_expect_shape(L, "sgemm", "C", c, 2, wc, "(M, N)");
  lc_sgemm(ta, tb, (int)M, (int)N, (int)K, alpha, a->data, b->data, beta, c->data);
  return 0;
}

/* packed_gemm(C, A, B[, tb]) on 2-d tensors: C += A op(B) through nn/packed_gemm.c (B
 * packed, then the panel kernel), the recurrences' product; for specs and benchmarks. */
static int l_packed_gemm(lua_State *L) {
  lc_tensor *c = lcb_check(L, 1), *a = lcb_check(L, 2), *b = lcb_check(L, 3);
  int tb = lua_toboolean(L, 4);
  if (a->ndim != 2 || b->ndim != 2 || c->ndim != 2)
    return luaL_error(L, "packed_gemm: A, B and C must be 2-d");
  int64_t M = a->shape[0], K = a->shape[1], N = tb ? b->shape[0] : b->shape[1];
  int64_t wb[2] = {tb ? N : K, tb ? K : N}, wc[2] = {M, N};
  lcb_expect_shape(L, "packed_gemm", "B", b, 2, wb, tb ? "(N, K)" : "(K, N)");
  lcb_expect_shape(L, "packed_gemm", "C", c, 2, wc, "(M, N)");
  float *pk = malloc(packed_gemm_size((int)K, (int)N) * sizeof(float) + 1);
  if (!pk) return luaL_error(L, "packed_gemm: out of memory");
  packed_gemm_pack(pk, b->data, (int)K, (int)N, tb);
  packed_gemm_acc(c->data, a->data, pk, (int)M, (int)N, (int)K);
  free(pk);
  return 0;
}

/* pack_panels(B (K, N)) -> (ceil(N / NR), K, NR): B in nn/packed_gemm.c's column panels
 * of NR = packed_gemm_panel_width() columns, for a product many calls share
 * (dense_forward's packed argument); B (n, K, N) -> (n, ceil(N / NR), K, NR), each of the
 * n matrices packed (packed_gemm_batch). */
static int l_pack_panels(lua_State *L) {
  lc_tensor *b = lcb_check(L, 1);
  if (b->ndim != 2 && b->ndim != 3)
    return luaL_error(L, "pack_panels: B must be (K, N) or (n, K, N), got %d dims", b->ndim);
  int batched = b->ndim == 3;
  int64_t n = batched ? b->shape[0] : 1, K = b->shape[batched], N = b->shape[batched + 1];
  if (n == 0 || K == 0 || N == 0) return luaL_error(L, "pack_panels: B is empty");
  int64_t nr = packed_gemm_panel_width();
  int64_t shape[4] = {n, (N + nr - 1) / nr, K, nr};
  lc_tensor *pk = lcb_push(L, batched ? 4 : 3, batched ? shape : shape + 1);
  size_t size = packed_gemm_size((int)K, (int)N);
  for (int64_t i = 0; i < n; i++)
    packed_gemm_pack(pk->data + (size_t)i * size, b->data + (size_t)i * K * N, (int)K, (int)N, 0);
  return 1;
}

/* packed_gemm_batch(C (n, M, N), A (n, M, K), P): C_i += A_i @ B_i for P = pack_panels(B)
 * of B (n, K, N). */
static int l_packed_gemm_batch(lua_State *L) {
  const char *fn = "packed_gemm_batch";
  lc_tensor *c = lcb_check(L, 1), *a = lcb_check(L, 2), *pk = lcb_check(L, 3);
  int64_t wa[3] = {-1, -1, -1};
  lcb_expect_shape(L, fn, "A", a, 3, wa, "(n, M, K)");
  int64_t n = a->shape[0], M = a->shape[1], K = a->shape[2];
  int64_t wc[3] = {n, M, -1};
  lcb_expect_shape(L, fn, "C", c, 3, wc, "(n, M, N)");
  int64_t N = c->shape[2], nr = packed_gemm_panel_width();
  int64_t wp[4] = {n, (N + nr - 1) / nr, K, nr};
  lcb_expect_shape(L, fn, "P", pk, 4, wp, "pack_panels of (n, K, N)");
  packed_gemm_acc_batch(c->data, a->data, pk->data, (int)n, (int)M, (int)N, (int)K);
  return 0;
}

/* Reads rows (a Lua array at idx of 1-based numbers, each in 1..nrows) into 0-based ints
 * in a userdata pushed on the stack (the GC frees it, also when an error is raised);
 * *n is the array's length. */
static const int *read_rows(lua_State *L, int idx, const char *fn, int64_t nrows, int *n) {
  luaL_checktype(L, idx, LUA_TTABLE);
  *n = (int)lua_objlen(L, idx);
  int *rows = lua_newuserdata(L, (size_t)*n * sizeof(int) + 1);
  for (int i = 1; i <= *n; i++) {
    lua_rawgeti(L, idx, i);
    lua_Number r = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (r != floor(r) || r < 1 || r > (lua_Number)nrows)
      luaL_error(L, "%s: row %g at position %d out of range 1..%d", fn, r, i, (int)nrows);
    rows[i - 1] = (int)r - 1;
  }
  return rows;
}

/* Raises unless many has shape (n, rest of one's shape). */
static void expect_rows_shape(lua_State *L, const char *fn, const char *name, const lc_tensor *many,
                              const lc_tensor *one, int n) {
  int64_t want[LC_MAXDIM];
  for (int d = 0; d < one->ndim; d++) want[d] = one->shape[d];
  want[0] = n;
  lcb_expect_shape(L, fn, name, many, one->ndim, want, NULL);
}

/* Floats per row along dim 1 of t. */
static size_t row_size(const lc_tensor *t) {
  return t->shape[0] ? lc_numel(t) / (size_t)t->shape[0] : 0;
}

/* gather(dst, src, rows): dst[i] = src[rows[i]] for 1-based row numbers along dim 1.
 * src (N, ...), dst (#rows, ...): a batch assembled from a dataset matrix. */
static int l_gather(lua_State *L) {
  lc_tensor *dst = lcb_check(L, 1), *src = lcb_check(L, 2);
  if (src->ndim < 1) return luaL_error(L, "gather: src has no dims");
  int n;
  const int *rows = read_rows(L, 3, "gather", src->shape[0], &n);
  expect_rows_shape(L, "gather", "dst", dst, src, n);
  lc_gather_rows(dst->data, src->data, rows, (size_t)n, row_size(src));
  return 0;
}

/* scatter(dst, src, rows) and scatter_add: dst[rows[i]] = src[i] (a later i wins where
 * rows repeat: the inverse of gather on distinct rows), or += (the gradient of gather).
 * dst (N, ...), src (#rows, ...). */
static int scatter_impl(lua_State *L, const char *fn, int add) {
  lc_tensor *dst = lcb_check(L, 1), *src = lcb_check(L, 2);
  if (dst->ndim < 1) return luaL_error(L, "%s: dst has no dims", fn);
  int n;
  const int *rows = read_rows(L, 3, fn, dst->shape[0], &n);
  expect_rows_shape(L, fn, "src", src, dst, n);
  lc_scatter_rows(dst->data, src->data, rows, (size_t)n, row_size(dst), add);
  return 0;
}

static int l_scatter(lua_State *L) { return scatter_impl(L, "scatter", 0); }
static int l_scatter_add(lua_State *L) { return scatter_impl(L, "scatter_add", 1); }

/* ------------------------------------------------------------ methods */

static int m_gc(lua_State *L) {      /* safe to run twice, and after free() */
  lc_tensor *t = luaL_checkudata(L, 1, LCB_TENSOR_MT);
  if (t->storage) lc_storage_release(t->storage);
  t->storage = NULL;
  t->data = NULL;
  t->ndim = 0;
  return 0;
}

static int m_isfreed(lua_State *L) {
  lc_tensor *t = luaL_checkudata(L, 1, LCB_TENSOR_MT);
  lua_pushboolean(L, t->storage == NULL);
  return 1;
}

static int m_dim(lua_State *L) {
  lua_pushinteger(L, lcb_check(L, 1)->ndim);
  return 1;
}

static int m_shape(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  lua_createtable(L, t->ndim, 0);
  for (int d = 0; d < t->ndim; d++) {
    lua_pushinteger(L, (lua_Integer)t->shape[d]);
    lua_rawseti(L, -2, d + 1);
  }
  return 1;
}

static int m_size(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  if (lua_isnoneornil(L, 2)) return m_shape(L);
  int d = (int)luaL_checkinteger(L, 2);
  if (d < 1 || d > t->ndim)
    return luaL_error(L, "size: dim %d out of range for a %d-d tensor", d, t->ndim);
  lua_pushinteger(L, (lua_Integer)t->shape[d - 1]);
  return 1;
}

static int m_numel(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lc_numel(lcb_check(L, 1)));
  return 1;
}

/* reshape(d1, ...) or reshape{...}; one size may be -1 and is inferred. A view. */
static int m_reshape(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  int64_t shape[LC_MAXDIM];
  int ndim = 0, infer = -1;
  int is_table = lua_istable(L, 2);
  int n = is_table ? (int)lua_objlen(L, 2) : lua_gettop(L) - 1;
  if (n > LC_MAXDIM) return luaL_error(L, "reshape: at most %d dims, got %d", LC_MAXDIM, n);
  if (n < 1) return luaL_error(L, "reshape: expected a shape");
  for (int i = 1; i <= n; i++) {
    lua_Number v;
    if (is_table) {
      lua_rawgeti(L, 2, i);
      v = lua_tonumber(L, -1);
      lua_pop(L, 1);
    } else {
      v = luaL_checknumber(L, i + 1);
    }
    if (v == -1 && infer < 0) {
      infer = ndim;
      shape[ndim++] = 1;
    } else if (v < 0 || v != floor(v)) {
      return luaL_error(L, "reshape: size %d must be a non-negative integer or one -1, got %g", i, v);
    } else {
      shape[ndim++] = (int64_t)v;
    }
  }
  size_t have = lc_numel(t), want = lc_shape_numel(ndim, shape);
  if (infer >= 0 && want > 0 && have % want == 0) shape[infer] = (int64_t)(have / want);
  if (lc_shape_numel(ndim, shape) != have) {
    char a[96], b[96];
    lcb_shape_str(t->ndim, t->shape, a, sizeof a);
    lcb_shape_str(ndim, shape, b, sizeof b);
    return luaL_error(L, "reshape: cannot view %s (%d elements) as %s", a, (int)have, b);
  }
  lcb_push_view(L, t, ndim, shape, 0);
  return 1;
}

/* recast(d1, ...) or recast{...} -> a view of t's storage from its first float with this
 * shape, or nil when t does not start its storage or the storage is too small. The
 * contents are whatever the storage holds. For buffers whose batch size changes from call
 * to call (tensor.ensure_capacity): no fresh pages when a smaller batch follows a larger. */
static int m_recast(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  int64_t shape[LC_MAXDIM];
  int ndim = lcb_check_shape_args(L, 2, "recast", shape);
  if (ndim < 1) return luaL_error(L, "recast: expected a shape");
  if (t->data != t->storage->data || lc_shape_numel(ndim, shape) > t->storage->n) {
    lua_pushnil(L);
    return 1;
  }
  lcb_push_view(L, t, ndim, shape, 0);
  return 1;
}

/* narrow(first, count): rows first..first+count-1 of dim 1, a view sharing storage. */
static int m_narrow(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  lua_Integer first = luaL_checkinteger(L, 2), count = luaL_checkinteger(L, 3);
  if (t->ndim < 1) return luaL_error(L, "narrow: tensor has no dims");
  if (first < 1 || count < 0 || first - 1 + count > t->shape[0])
    return luaL_error(L, "narrow: rows %d..%d out of range 1..%d", (int)first,
                      (int)(first + count - 1), (int)t->shape[0]);
  int64_t shape[LC_MAXDIM];
  memcpy(shape, t->shape, sizeof shape);
  shape[0] = count;
  size_t row = lc_numel(t) / (t->shape[0] ? (size_t)t->shape[0] : 1);
  lcb_push_view(L, t, t->ndim, shape, (size_t)(first - 1) * row);
  return 1;
}

static int m_clone(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  lc_tensor *c = lcb_push(L, t->ndim, t->shape);
  memcpy(c->data, t->data, lc_numel(t) * sizeof(float));
  return 1;
}

static int m_fill(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  float v = (float)luaL_checknumber(L, 2);
  size_t n = lc_numel(t);
  for (size_t i = 0; i < n; i++) t->data[i] = v;
  lua_settop(L, 1);
  return 1;
}

static int m_zero(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  lc_zero(t->data, lc_numel(t));
  lua_settop(L, 1);
  return 1;
}

static void expect_numel(lua_State *L, const char *fn, const lc_tensor *t, const lc_tensor *s) {
  if (lc_numel(t) == lc_numel(s)) return;
  char a[96], b[96];
  lcb_shape_str(t->ndim, t->shape, a, sizeof a);
  lcb_shape_str(s->ndim, s->shape, b, sizeof b);
  luaL_error(L, "%s: source has shape %s (%d elements), destination %s (%d elements)", fn, b,
             (int)lc_numel(s), a, (int)lc_numel(t));
}

static int m_copy(lua_State *L) {    /* copy(src): same number of elements */
  lc_tensor *t = lcb_check(L, 1), *s = lcb_check(L, 2);
  expect_numel(L, "copy", t, s);
  memmove(t->data, s->data, lc_numel(t) * sizeof(float));
  lua_settop(L, 1);
  return 1;
}

/* Flat 0-based offset from the 1-based indices at stack positions idx.. */
static size_t offset_of(lua_State *L, const lc_tensor *t, int idx, const char *fn) {
  size_t off = 0;
  for (int d = 0; d < t->ndim; d++) {
    lua_Number v = luaL_checknumber(L, idx + d);
    if (v != floor(v) || v < 1 || v > (lua_Number)t->shape[d]) {
      char s[96];
      lcb_shape_str(t->ndim, t->shape, s, sizeof s);
      luaL_error(L, "%s: index %g out of range 1..%d in dim %d of a tensor of shape %s", fn, v,
                 (int)t->shape[d], d + 1, s);
    }
    off = off * (size_t)t->shape[d] + (size_t)(v - 1);
  }
  return off;
}

static int m_get(lua_State *L) {     /* get(i, j, ...): one index per dim */
  lc_tensor *t = lcb_check(L, 1);
  if (lua_gettop(L) - 1 != t->ndim)
    return luaL_error(L, "get: a %d-d tensor needs %d indices, got %d", t->ndim, t->ndim,
                      lua_gettop(L) - 1);
  lua_pushnumber(L, t->data[offset_of(L, t, 2, "get")]);
  return 1;
}

static int m_set(lua_State *L) {     /* set(i, j, ..., value) */
  lc_tensor *t = lcb_check(L, 1);
  if (lua_gettop(L) - 2 != t->ndim)
    return luaL_error(L, "set: a %d-d tensor needs %d indices and a value, got %d arguments",
                      t->ndim, t->ndim, lua_gettop(L) - 1);
  float v = (float)luaL_checknumber(L, lua_gettop(L));
  t->data[offset_of(L, t, 2, "set")] = v;
  lua_settop(L, 1);
  return 1;
}

static int m_sum(lua_State *L) {     /* accumulated in double */
  lc_tensor *t = lcb_check(L, 1);
  double s = 0;
  size_t n = lc_numel(t);
  for (size_t i = 0; i < n; i++) s += t->data[i];
  lua_pushnumber(L, s);
  return 1;
}

static int m_mean(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  size_t n = lc_numel(t);
  if (n == 0) return luaL_error(L, "mean: tensor is empty");
  double s = 0;
  for (size_t i = 0; i < n; i++) s += t->data[i];
  lua_pushnumber(L, s / (double)n);
  return 1;
}

static int m_norm(lua_State *L) {    /* L2 norm of all elements */
  lc_tensor *t = lcb_check(L, 1);
  double s = 0;
  size_t n = lc_numel(t);
  for (size_t i = 0; i < n; i++) s += (double)t->data[i] * t->data[i];
  lua_pushnumber(L, sqrt(s));
  return 1;
}

static int extreme(lua_State *L, int want_max) {  /* value and 1-based flat position */
  lc_tensor *t = lcb_check(L, 1);
  size_t n = lc_numel(t);
  if (n == 0) return luaL_error(L, "%s: tensor is empty", want_max ? "max" : "min");
  size_t best = 0;
  for (size_t i = 1; i < n; i++)
    if (want_max ? t->data[i] > t->data[best] : t->data[i] < t->data[best]) best = i;
  lua_pushnumber(L, t->data[best]);
  lua_pushinteger(L, (lua_Integer)best + 1);
  return 2;
}
static int m_max(lua_State *L) { return extreme(L, 1); }
static int m_min(lua_State *L) { return extreme(L, 0); }

/* argmax(dim): 1-based positions of the maxima along dim (first one on ties); the result
 * has dim removed, like numpy's argmax. Without dim: the flat position. */
static int m_argmax(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  if (lua_isnoneornil(L, 2)) {
    extreme(L, 1);
    return 1;
  }
  int d = (int)luaL_checkinteger(L, 2);
  if (d < 1 || d > t->ndim)
    return luaL_error(L, "argmax: dim %d out of range for a %d-d tensor", d, t->ndim);
  d--;
  size_t outer = 1, inner = 1, len = (size_t)t->shape[d];
  for (int i = 0; i < d; i++) outer *= (size_t)t->shape[i];
  for (int i = d + 1; i < t->ndim; i++) inner *= (size_t)t->shape[i];
  if (len == 0) return luaL_error(L, "argmax: dim %d is empty", d + 1);
  int64_t shape[LC_MAXDIM];
  int nd = 0;
  for (int i = 0; i < t->ndim; i++)
    if (i != d) shape[nd++] = t->shape[i];
  lc_tensor *r = lcb_push(L, nd, shape);
  lc_argmax(r->data, t->data, outer, len, inner);
  return 1;
}

/* add(x, alpha=1): self += alpha * x for a tensor of the same shape, or self += x for a number */
static int m_add(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  size_t n = lc_numel(t);
  if (lua_type(L, 2) == LUA_TNUMBER) {
    float v = (float)lua_tonumber(L, 2);
    for (size_t i = 0; i < n; i++) t->data[i] += v;
  } else {
    lc_tensor *s = lcb_check(L, 2);
    lcb_expect_same(L, "add", "self", t, "other", s);
    lc_axpy(t->data, (float)luaL_optnumber(L, 3, 1.0), s->data, n);
  }
  lua_settop(L, 1);
  return 1;
}

/* mul(x): self *= x elementwise for a tensor of the same shape, or by a number */
static int m_mul(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  size_t n = lc_numel(t);
  if (lua_type(L, 2) == LUA_TNUMBER) {
    float v = (float)lua_tonumber(L, 2);
    for (size_t i = 0; i < n; i++) t->data[i] *= v;
  } else {
    lc_tensor *s = lcb_check(L, 2);
    lcb_expect_same(L, "mul", "self", t, "other", s);
    for (size_t i = 0; i < n; i++) t->data[i] *= s->data[i];
  }
  lua_settop(L, 1);
  return 1;
}

static int m_scale(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  float v = (float)luaL_checknumber(L, 2);
  size_t n = lc_numel(t);
  for (size_t i = 0; i < n; i++) t->data[i] *= v;
  lua_settop(L, 1);
  return 1;
}

static void push_nested(lua_State *L, const lc_tensor *t, int d, size_t *pos) {
  lua_createtable(L, (int)t->shape[d], 0);
  for (int64_t i = 0; i < t->shape[d]; i++) {
    if (d == t->ndim - 1) lua_pushnumber(L, t->data[(*pos)++]);
    else push_nested(L, t, d + 1, pos);
    lua_rawseti(L, -2, (int)i + 1);
  }
}

static int m_totable(lua_State *L) { /* nested Lua tables; a 0-d tensor gives its number */
  lc_tensor *t = lcb_check(L, 1);
  size_t pos = 0;
  if (t->ndim == 0) { lua_pushnumber(L, t->data[0]); return 1; }
  push_nested(L, t, 0, &pos);
  return 1;
}

static int m_flat(lua_State *L) {    /* all values in one flat Lua array */
  lc_tensor *t = lcb_check(L, 1);
  size_t n = lc_numel(t);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushnumber(L, t->data[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

static int m_free(lua_State *L) { return m_gc(L); }

static int m_equal(lua_State *L) {   /* __eq: same object only, as userdata compare */
  lua_pushboolean(L, lua_touserdata(L, 1) == lua_touserdata(L, 2));
  return 1;
}

/* __tostring in Torch's manner: the values, then "[luacap.Tensor of size 2x3]". 3-d and
 * 4-d tensors print as 2-d slices headed "(i,.,.) =". Large tensors print only the size. */
static void fmt_choose(const lc_tensor *t, char *fmt, size_t n) {
  size_t cnt = lc_numel(t);
  float amax = 0;
  int integral = 1;
  for (size_t i = 0; i < cnt; i++) {
    float v = fabsf(t->data[i]);
    if (v > amax) amax = v;
    if (t->data[i] != floorf(t->data[i]) || isinf(v)) integral = 0;
  }
  if (integral && amax < 1e9f) {
    int w = 1;
    for (float m = amax; m >= 10; m /= 10) w++;
    snprintf(fmt, n, " %%%d.0f", w + 1);
  } else if (amax >= 1e5f || (amax < 1e-3f && amax > 0)) {
    snprintf(fmt, n, " %%12.4e");
  } else {
    int w = 1;
    for (float m = amax; m >= 10; m /= 10) w++;
    snprintf(fmt, n, " %%%d.4f", w + 6);
  }
}

static void add_matrix(luaL_Buffer *b, const float *x, int64_t rows, int64_t cols, const char *fmt) {
  char num[64];
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t c = 0; c < cols; c++) {
      snprintf(num, sizeof num, fmt, (double)x[r * cols + c]);
      luaL_addstring(b, num);
    }
    luaL_addchar(b, '\n');
  }
}

static int m_tostring(lua_State *L) {
  lc_tensor *t = luaL_checkudata(L, 1, LCB_TENSOR_MT);
  if (!t->storage) { lua_pushstring(L, "[luacap.Tensor (freed)]"); return 1; }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  char fmt[32], num[64];
  size_t n = lc_numel(t);
  fmt_choose(t, fmt, sizeof fmt);
  if (n > 0 && n <= 2000) {
    if (t->ndim == 0) {
      snprintf(num, sizeof num, fmt, (double)t->data[0]);
      luaL_addstring(&b, num);
      luaL_addchar(&b, '\n');
    } else if (t->ndim == 1) {
      add_matrix(&b, t->data, t->shape[0], 1, fmt);
    } else if (t->ndim == 2) {
      add_matrix(&b, t->data, t->shape[0], t->shape[1], fmt);
    } else {
      int64_t rows = t->shape[t->ndim - 2], cols = t->shape[t->ndim - 1];
      int64_t outer0 = t->shape[0], outer1 = t->ndim == 4 ? t->shape[1] : 1;
      for (int64_t i = 0; i < outer0; i++)
        for (int64_t j = 0; j < outer1; j++) {
          if (t->ndim == 4) snprintf(num, sizeof num, "(%d,%d,.,.) = \n", (int)i + 1, (int)j + 1);
          else snprintf(num, sizeof num, "(%d,.,.) = \n", (int)i + 1);
          luaL_addstring(&b, num);
          add_matrix(&b, t->data + (size_t)(i * outer1 + j) * (size_t)(rows * cols), rows, cols, fmt);
          luaL_addchar(&b, '\n');
        }
    }
  } else if (n > 2000) {
    luaL_addstring(&b, "...\n");
  }
  luaL_addstring(&b, "[luacap.Tensor of size ");
  for (int d = 0; d < t->ndim; d++) {
    snprintf(num, sizeof num, "%s%lld", d ? "x" : "", (long long)t->shape[d]);
    luaL_addstring(&b, num);
  }
  if (t->ndim == 0) luaL_addstring(&b, "[]");
  luaL_addstring(&b, "]");
  luaL_pushresult(&b);
  return 1;
}

static const luaL_Reg methods[] = {
  {"dim", m_dim}, {"shape", m_shape}, {"size", m_size}, {"numel", m_numel},
  {"reshape", m_reshape}, {"view", m_reshape}, {"narrow", m_narrow}, {"recast", m_recast}, {"clone", m_clone},
  {"fill", m_fill}, {"zero", m_zero}, {"copy", m_copy}, {"get", m_get}, {"set", m_set},
  {"sum", m_sum}, {"mean", m_mean}, {"norm", m_norm}, {"max", m_max}, {"min", m_min},
  {"argmax", m_argmax}, {"add", m_add}, {"mul", m_mul}, {"scale", m_scale},
  {"totable", m_totable}, {"flat", m_flat}, {"free", m_free}, {"isfreed", m_isfreed},
  {NULL, NULL}
};

static const luaL_Reg functions[] = {
  {"zeros", t_empty}, {"full", t_full}, {"from_flat", t_from_flat}, {"rand", t_rand},
  {"randn", t_randn}, {"arange", t_arange}, {"seed", l_seed}, {"random", l_random},
  {"gather", l_gather}, {"scatter", l_scatter}, {"scatter_add", l_scatter_add}, {"rng_state", l_rng_state}, {"set_rng_state", l_set_rng_state}, {"set_threads", l_set_threads}, {"get_threads", l_get_threads}, {"blas_core", l_blas_core}, {"sgemm", l_sgemm}, {"packed_gemm", l_packed_gemm}, {"pack_panels", l_pack_panels}, {"packed_gemm_batch", l_packed_gemm_batch},
  {NULL, NULL}
};

void lcb_open_tensor(lua_State *L) {
  lcb_new_class(L, LCB_TENSOR_MT, methods, m_gc, m_tostring);
  lua_pushcfunction(L, m_equal);
  lua_setfield(L, -2, "__eq");
  lua_pushstring(L, "luacap.Tensor");
  lua_setfield(L, -2, "__name");
  lua_setfield(L, -2, "Tensor");   /* module.Tensor = the metatable, for Lua-side methods */
  lcb_setfuncs(L, functions);
}
