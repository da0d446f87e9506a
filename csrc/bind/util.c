/* util.c: argument checks and tensor userdata plumbing shared by the binding files. */
#include "bind.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int lcb_is_tensor(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, LCB_TENSOR_MT);
  int same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same;
}

lc_tensor *lcb_check(lua_State *L, int idx) {
  lc_tensor *t = luaL_checkudata(L, idx, LCB_TENSOR_MT);
  if (!t->storage) luaL_error(L, "bad argument #%d: tensor was freed", idx);
  return t;
}

lc_tensor *lcb_opt(lua_State *L, int idx) {
  return lua_isnoneornil(L, idx) ? NULL : lcb_check(L, idx);
}

static lc_tensor *new_udata(lua_State *L) {
  lc_tensor *t = lua_newuserdata(L, sizeof *t);
  memset(t, 0, sizeof *t);
  luaL_getmetatable(L, LCB_TENSOR_MT);
  lua_setmetatable(L, -2);
  return t;
}

lc_tensor *lcb_push(lua_State *L, int ndim, const int64_t *shape) {
  size_t n = lc_shape_numel(ndim, shape);
  lc_tensor *t = new_udata(L);
  lc_storage *s = lc_storage_new(n);
  if (!s) {
    char buf[96];
    lcb_shape_str(ndim, shape, buf, sizeof buf);
    luaL_error(L, "out of memory allocating a tensor of shape %s (%.1f MiB)", buf,
               (double)n * 4.0 / 1048576.0);
  }
  t->storage = s;
  t->data = s->data;
  t->ndim = ndim;
  for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
  /* The collector cannot see malloc'd bytes: nudge it after large allocations. */
  if (n > (1u << 18)) lua_gc(L, LUA_GCSTEP, (int)(n * 4 / 1024));
  return t;
}

lc_tensor *lcb_push_view(lua_State *L, const lc_tensor *src, int ndim, const int64_t *shape,
                         size_t offset) {
  lc_tensor *t = new_udata(L);
  lc_storage_retain(src->storage);
  t->storage = src->storage;
  t->data = src->data + offset;
  t->ndim = ndim;
  for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
  return t;
}

static int64_t check_size(lua_State *L, const char *fn, int i, lua_Number v) {
  if (v < 0 || v != floor(v) || v > 2147483647.0)
    luaL_error(L, "%s: size %d must be a non-negative integer, got %g", fn, i, (double)v);
  return (int64_t)v;
}

int lcb_check_shape_args(lua_State *L, int idx, const char *fn, int64_t *shape) {
  int ndim = 0;
  if (lua_istable(L, idx)) {
    int n = (int)lua_objlen(L, idx);
    if (n > LC_MAXDIM) luaL_error(L, "%s: at most %d dims, got %d", fn, LC_MAXDIM, n);
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, idx, i);
      if (!lua_isnumber(L, -1))
        luaL_error(L, "%s: size %d must be a number, got %s", fn, i, luaL_typename(L, -1));
      shape[ndim++] = check_size(L, fn, i, lua_tonumber(L, -1));
      lua_pop(L, 1);
    }
    return ndim;
  }
  while (lua_type(L, idx + ndim) == LUA_TNUMBER) {
    if (ndim == LC_MAXDIM) luaL_error(L, "%s: at most %d dims", fn, LC_MAXDIM);
    shape[ndim] = check_size(L, fn, ndim + 1, lua_tonumber(L, idx + ndim));
    ndim++;
  }
  return ndim;
}

void lcb_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
  size_t off = 0;
  off += (size_t)snprintf(buf + off, n - off, "(");
  for (int d = 0; d < ndim && off < n; d++) {
    if (shape[d] < 0)
      off += (size_t)snprintf(buf + off, n - off, "%s*", d ? ", " : "");
    else
      off += (size_t)snprintf(buf + off, n - off, "%s%lld", d ? ", " : "", (long long)shape[d]);
  }
  if (off < n) snprintf(buf + off, n - off, ")");
}

void lcb_expect_shape(lua_State *L, const char *fn, const char *arg, const lc_tensor *t,
                      int ndim, const int64_t *want, const char *names) {
  int ok = t->ndim == ndim;
  for (int d = 0; ok && d < ndim; d++)
    if (want[d] >= 0 && want[d] != t->shape[d]) ok = 0;
  if (ok) return;
  char got[96], exp[96];
  lcb_shape_str(t->ndim, t->shape, got, sizeof got);
  lcb_shape_str(ndim, want, exp, sizeof exp);
  if (names)
    luaL_error(L, "%s: %s has shape %s, expected %s = %s", fn, arg, got, exp, names);
  luaL_error(L, "%s: %s has shape %s, expected %s", fn, arg, got, exp);
}

void lcb_expect_same(lua_State *L, const char *fn, const char *aname, const lc_tensor *a,
                     const char *bname, const lc_tensor *b) {
  int ok = a->ndim == b->ndim;
  for (int d = 0; ok && d < a->ndim; d++)
    if (a->shape[d] != b->shape[d]) ok = 0;
  if (ok) return;
  char sa[96], sb[96];
  lcb_shape_str(a->ndim, a->shape, sa, sizeof sa);
  lcb_shape_str(b->ndim, b->shape, sb, sizeof sb);
  luaL_error(L, "%s: %s has shape %s but %s has shape %s, expected them equal", fn, aname, sa,
             bname, sb);
}

void lcb_expect_ids(lua_State *L, const char *fn, const char *arg, const lc_tensor *t,
                    int64_t lo, int64_t hi) {
  size_t n = lc_numel(t);
  for (size_t i = 0; i < n; i++) {
    float v = t->data[i];
    if (v != floorf(v) || v < (float)lo || v > (float)hi)
      luaL_error(L, "%s: %s holds %g at flat position %d, expected an integer id in [%d, %d]",
                 fn, arg, (double)v, (int)i + 1, (int)lo, (int)hi);
  }
}

int64_t lcb_expect_gate_kernels(lua_State *L, const char *fn, const lc_tensor *kernel,
                                const lc_tensor *rkernel, int64_t C, int gates) {
  char kname[16], rname[16];
  snprintf(kname, sizeof kname, "(C, %dH)", gates);
  snprintf(rname, sizeof rname, "(H, %dH)", gates);
  int64_t wk[2] = {C, -1};
  lcb_expect_shape(L, fn, "kernel", kernel, 2, wk, kname);
  if (kernel->shape[1] % gates != 0 || kernel->shape[1] == 0)
    luaL_error(L, "%s: kernel has %d columns, expected a positive multiple of %d (%dH)", fn,
               (int)kernel->shape[1], gates, gates);
  int64_t H = kernel->shape[1] / gates;
  int64_t wr[2] = {H, gates * H};
  lcb_expect_shape(L, fn, "recurrent_kernel", rkernel, 2, wr, rname);
  return H;
}

void lcb_setfuncs(lua_State *L, const luaL_Reg *l) {
  for (; l->name; l++) {
    lua_pushcfunction(L, l->func);
    lua_setfield(L, -2, l->name);
  }
}

void lcb_new_class(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction gc,
                   lua_CFunction tostring) {
  luaL_newmetatable(L, mt);
  lua_newtable(L);
  lcb_setfuncs(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  if (tostring) {
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
  }
}

int lcb_fail(lua_State *L, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}
