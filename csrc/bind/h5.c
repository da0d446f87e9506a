/* h5.c (binding): HDF5 file handles for lua/luacap/h5.lua, on the kernels of io/h5.c.
 * A handle is a userdata that owns one open lc_h5; __gc closes it (and removes an
 * uncommitted writer's temporary file), so a Lua error anywhere leaks no HDF5 handle.
 * Bad files and missing objects give nil, "<path>: reason"; argument mistakes raise.
 * Not the public API: luacap.h5 (save, load, read, attrs, list) is built on this. */
#include "bind.h"

#include <string.h>

#define H5_MT "luacap.H5File"
#define ERRN 512

typedef struct {
  lc_h5 *h;
  int writable;
} h5_handle;

static h5_handle *check_handle(lua_State *L, const char *fn) {
  h5_handle *u = luaL_checkudata(L, 1, H5_MT);
  if (!u->h) luaL_error(L, "%s: the HDF5 file was closed", fn);
  return u;
}

/* nil, "<path>: reason": bad data or a file system failure. */
static int fail(lua_State *L, const char *path, const char *err) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", path, err);
  return 2;
}

static int open_handle(lua_State *L, int writable) {
  const char *path = luaL_checkstring(L, 1);
  h5_handle *u = lua_newuserdata(L, sizeof *u);   /* before opening: the GC owns it */
  u->h = NULL;
  u->writable = writable;
  luaL_getmetatable(L, H5_MT);
  lua_setmetatable(L, -2);
  char err[ERRN];
  if (lc_h5_open(&u->h, path, writable, err, sizeof err) != LC_OK) return fail(L, path, err);
  return 1;
}

/* h5_open(path) -> reader | nil, "<path>: reason" */
static int l_h5_open(lua_State *L) { return open_handle(L, 0); }
/* h5_create(path) -> writer on "<path>.tmp.<pid>" | nil, msg; commit() renames it. */
static int l_h5_create(lua_State *L) { return open_handle(L, 1); }

/* Methods take the file's path as their last argument, only to name it in messages. */

static int m_close(lua_State *L) {   /* close(): a writer not committed is removed */
  h5_handle *u = luaL_checkudata(L, 1, H5_MT);
  if (u->h) lc_h5_close(u->h, 0, NULL, 0);
  u->h = NULL;
  return 0;
}

/* commit(path): closes a writer and renames its temporary file over path. */
static int m_commit(lua_State *L) {
  h5_handle *u = check_handle(L, "commit");
  const char *path = luaL_checkstring(L, 2);
  if (!u->writable) return luaL_error(L, "commit: the HDF5 file was opened for reading");
  char err[ERRN];
  lc_h5 *h = u->h;
  u->h = NULL;
  if (lc_h5_close(h, 1, err, sizeof err) != LC_OK) return fail(L, path, err);
  lua_pushboolean(L, 1);
  return 1;
}

static const char *kind_name(int k) {
  switch (k) {
    case LC_H5_GROUP: return "group";
    case LC_H5_DATASET: return "dataset";
    case LC_H5_OTHER: return "other";
    default: return NULL;
  }
}

/* kind(name) -> 'group' | 'dataset' | 'other' | nil when there is no such object */
static int m_kind(lua_State *L) {
  h5_handle *u = check_handle(L, "kind");
  const char *k = kind_name(lc_h5_kind(u->h, luaL_checkstring(L, 2)));
  if (k) lua_pushstring(L, k);
  else lua_pushnil(L);
  return 1;
}

/* read(name, path) -> tensor with the dataset's shape | nil, "<path>: no dataset '/x'" */
static int m_read(lua_State *L) {
  h5_handle *u = check_handle(L, "read");
  const char *name = luaL_checkstring(L, 2), *path = luaL_checkstring(L, 3);
  char err[ERRN];
  int ndim;
  int64_t shape[LC_MAXDIM];
  if (lc_h5_dataset_shape(u->h, name, &ndim, shape, err, sizeof err) != LC_OK)
    return fail(L, path, err);
  lc_tensor *t = lcb_push(L, ndim, shape);
  if (lc_h5_read(u->h, name, t->data, lc_numel(t), err, sizeof err) != LC_OK)
    return fail(L, path, err);
  return 1;
}

/* list(group, path) -> names, kinds (two arrays) | nil, msg */
static int m_list(lua_State *L) {
  h5_handle *u = check_handle(L, "list");
  const char *group = luaL_checkstring(L, 2), *path = luaL_checkstring(L, 3);
  char err[ERRN];
  const char **names;
  const int *kinds;
  size_t count;
  if (lc_h5_list(u->h, group, &names, &kinds, &count, err, sizeof err) != LC_OK)
    return fail(L, path, err);
  /* names live in the handle's scratch until its next call: a raise here leaks nothing */
  lua_createtable(L, (int)count, 0);
  lua_createtable(L, (int)count, 0);
  for (size_t i = 0; i < count; i++) {
    lua_pushstring(L, names[i]);
    lua_rawseti(L, -3, (int)i + 1);
    lua_pushstring(L, kind_name(kinds[i]));
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 2;
}

/* attrs(obj, path) -> {name = string | number | {strings...} | {numbers...}} | nil, msg.
 * A scalar attribute gives a value; an array attribute (any rank, flattened) a Lua array. */
static int m_attrs(lua_State *L) {
  h5_handle *u = check_handle(L, "attrs");
  const char *obj = luaL_checkstring(L, 2), *path = luaL_checkstring(L, 3);
  char err[ERRN];
  const lc_h5_attr *attrs;
  size_t count;
  if (lc_h5_attrs(u->h, obj, &attrs, &count, err, sizeof err) != LC_OK)
    return fail(L, path, err);
  lua_createtable(L, 0, (int)count);
  for (size_t i = 0; i < count; i++) {
    const lc_h5_attr *a = &attrs[i];
    if (a->is_array) lua_createtable(L, (int)a->count, 0);
    for (size_t j = 0; j < a->count; j++) {
      if (a->type == LC_H5_STRING) lua_pushlstring(L, a->strs[j], a->lens[j]);
      else lua_pushnumber(L, a->nums[j]);
      if (a->is_array) lua_rawseti(L, -2, (int)j + 1);
    }
    lua_setfield(L, -2, a->name);
  }
  return 1;
}

/* write(name, tensor, path[, half]) -> true | nil, msg: a float32 dataset with the
 * tensor's shape (float16 when half is true) */
static int m_write(lua_State *L) {
  h5_handle *u = check_handle(L, "write");
  const char *name = luaL_checkstring(L, 2);
  lc_tensor *t = lcb_check(L, 3);
  const char *path = luaL_checkstring(L, 4);
  if (!u->writable) return luaL_error(L, "write: the HDF5 file was opened for reading");
  if (name[strspn(name, "/")] == '\0')
    return luaL_error(L, "write: dataset name '%s' is empty", name);
  char err[ERRN];
  int rc = lc_h5_write(u->h, name, t->data, t->ndim, t->shape, lua_toboolean(L, 5), err, sizeof err);
  if (rc == LC_EARG) return luaL_error(L, "write: %s", err);   /* e.g. the name is taken */
  if (rc != LC_OK) return fail(L, path, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* write_attr(obj, name, value, path): value a string (a scalar string attribute) or a Lua
 * array of strings (a 1-d fixed-length string array, {} gives an empty one). */
static int m_write_attr(lua_State *L) {
  h5_handle *u = check_handle(L, "write_attr");
  const char *obj = luaL_checkstring(L, 2), *name = luaL_checkstring(L, 3);
  const char *path = luaL_checkstring(L, 5);
  if (!u->writable) return luaL_error(L, "write_attr: the HDF5 file was opened for reading");
  int is_array = lua_istable(L, 4);
  if (!is_array && lua_type(L, 4) != LUA_TSTRING)
    return luaL_error(L, "write_attr: attribute '%s' is a %s, expected a string or an array "
                      "of strings", name, luaL_typename(L, 4));
  size_t count = is_array ? lua_objlen(L, 4) : 1;
  /* GC-owned arrays of pointers and lengths: nothing to free if a check below raises.
   * The strings stay alive in the table at index 4 (or are the value itself). */
  const char **strs = lua_newuserdata(L, (count ? count : 1) * sizeof *strs);
  size_t *lens = lua_newuserdata(L, (count ? count : 1) * sizeof *lens);
  for (size_t i = 0; i < count; i++) {
    if (is_array) lua_rawgeti(L, 4, (int)i + 1);
    else lua_pushvalue(L, 4);
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "write_attr: attribute '%s' element %d is a %s, expected a string",
                        name, (int)i + 1, luaL_typename(L, -1));
    strs[i] = lua_tolstring(L, -1, &lens[i]);
    if (memchr(strs[i], '\0', lens[i]))
      return luaL_error(L, "write_attr: attribute '%s' holds a NUL byte, which HDF5 "
                        "fixed-length strings cannot keep", name);
    lua_pop(L, 1);
  }
  char err[ERRN];
  int rc = lc_h5_write_attr(u->h, obj, name, strs, lens, count, is_array, err, sizeof err);
  if (rc == LC_EARG) return luaL_error(L, "write_attr: %s", err);
  if (rc != LC_OK) return fail(L, path, err);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg methods[] = {
  {"close", m_close}, {"commit", m_commit}, {"kind", m_kind}, {"read", m_read},
  {"list", m_list}, {"attrs", m_attrs}, {"write", m_write}, {"write_attr", m_write_attr},
  {NULL, NULL}
};

/* limits([image_pixels, dataset_bytes]) -> image_pixels, dataset_bytes: the run-time
 * allocation limits of luacap.h (each argument nil keeps it), the values now in force.
 * luacap.set_limits / luacap.limits are the public form. */
static int l_limits(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) {
    lua_Number v = luaL_checknumber(L, 1);
    if (!(v >= 1 && v <= 9.0e15)) return luaL_error(L, "limits: image_pixels must be >= 1");
    lc_limits.image_pixels = (int64_t)v;
  }
  if (!lua_isnoneornil(L, 2)) {
    lua_Number v = luaL_checknumber(L, 2);
    if (!(v >= 0 && v <= 9.0e18)) return luaL_error(L, "limits: dataset_bytes must be >= 0");
    lc_limits.dataset_bytes = (int64_t)v;
  }
  lua_pushnumber(L, (lua_Number)lc_limits.image_pixels);
  lua_pushnumber(L, (lua_Number)lc_limits.dataset_bytes);
  return 2;
}

/* crc32c(string) -> the CRC-32C of its bytes, the datasets' checksum (for specs). */
static int l_crc32c(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_pushnumber(L, (lua_Number)lc_crc32c(s, len));
  return 1;
}

/* round_half(t) -> t: every value rounded to the nearest float16 (ties to even), in place:
 * what a float16 dataset gives back. */
static int l_round_half(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  size_t n = lc_numel(t);
  for (size_t i = 0; i < n; i++) t->data[i] = lc_round_half(t->data[i]);
  lua_settop(L, 1);
  return 1;
}

static const luaL_Reg functions[] = {
  {"h5_open", l_h5_open}, {"h5_create", l_h5_create}, {"limits", l_limits},
  {"crc32c", l_crc32c}, {"round_half", l_round_half},
  {NULL, NULL}
};

void lcb_open_h5(lua_State *L) {
  lcb_new_class(L, H5_MT, methods, m_close, NULL);
  lua_pop(L, 1);
  lcb_setfuncs(L, functions);
}
