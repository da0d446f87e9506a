/* bind.h: helpers shared by every binding file (tier 2, the only C that sees lua.h).
 * Every argument check lives here so that all messages read alike:
 *   "linear_forward: weight has shape (16, 31), expected (16, 32) = (OC, C)".
 * Programmer mistakes raise Lua errors; bad data returns nil, message (lcb_fail). */
#ifndef LUACAP_BIND_H
#define LUACAP_BIND_H

#include <lua.h>
#include <lauxlib.h>

#include "../luacap.h"

#define LCB_TENSOR_MT "luacap.Tensor"

/* The tensor at idx; raises "bad argument" for a non-tensor and "tensor was freed". */
lc_tensor *lcb_check(lua_State *L, int idx);
/* Like lcb_check, but nil or none give NULL. */
lc_tensor *lcb_opt(lua_State *L, int idx);
/* Is the value at idx a (possibly freed) tensor? */
int lcb_is_tensor(lua_State *L, int idx);
/* Pushes a new zero-filled tensor that owns fresh storage; raises when out of memory. */
lc_tensor *lcb_push(lua_State *L, int ndim, const int64_t *shape);
/* Pushes a view of src's storage: ndim/shape, starting offset floats into src->data. */
lc_tensor *lcb_push_view(lua_State *L, const lc_tensor *src, int ndim, const int64_t *shape,
                         size_t offset);
/* Reads a shape from the arguments starting at idx: either one table {d1, d2, ...} or
 * integers d1, d2, ... up to the first non-number. Raises on a negative or fractional
 * size or more than LC_MAXDIM dims. Returns ndim. */
int lcb_check_shape_args(lua_State *L, int idx, const char *fn, int64_t *shape);
/* Writes "(2, 3)" into buf. */
void lcb_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);
/* Raises "fn: arg has shape (..), expected (..) = (names)" unless t has exactly ndim dims
 * with the wanted sizes; a wanted size of -1 matches anything (shown as "*"). */
void lcb_expect_shape(lua_State *L, const char *fn, const char *arg, const lc_tensor *t,
                      int ndim, const int64_t *want, const char *names);
/* Raises unless a and b have the same shape. */
void lcb_expect_same(lua_State *L, const char *fn, const char *aname, const lc_tensor *a,
                     const char *bname, const lc_tensor *b);
/* Raises unless every value of t is an integer in [lo, hi]: token ids riding in floats. */
void lcb_expect_ids(lua_State *L, const char *fn, const char *arg, const lc_tensor *t,
                    int64_t lo, int64_t hi);
/* Recurrent layers: raises unless kernel is (C, G*H) with G*H a positive multiple of gates
 * (4 for the LSTM, 3 for the GRU) and recurrent_kernel is (H, G*H); returns H. */
int64_t lcb_expect_gate_kernels(lua_State *L, const char *fn, const lc_tensor *kernel,
                                const lc_tensor *rkernel, int64_t C, int gates);
/* Leaves on the stack the metatable mt of a userdata class, with __index = a table of
 * methods, __gc = gc and (unless NULL) __tostring. An opener may run more than once in one
 * state (busted reloads modules): an existing metatable is reused and refilled, so
 * userdata made earlier keep working. */
void lcb_new_class(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction gc,
                   lua_CFunction tostring);
/* Registers the functions of l into the table at the top of the stack (5.1 shim). */
void lcb_setfuncs(lua_State *L, const luaL_Reg *l);
/* Bad data: pushes nil, msg and returns 2, in the manner of io.open. */
int lcb_fail(lua_State *L, const char *msg);

/* One opener per kernel family; each adds its functions to the module table on top. */
void lcb_open_tensor(lua_State *L);
void lcb_open_image(lua_State *L);
void lcb_open_h5(lua_State *L);
void lcb_open_conv(lua_State *L);
void lcb_open_rnn(lua_State *L);
void lcb_open_gru(lua_State *L);
void lcb_open_text(lua_State *L);
void lcb_open_nn(lua_State *L);
void lcb_open_draw(lua_State *L);
void lcb_open_tf(lua_State *L);
void lcb_open_attend(lua_State *L);
void lcb_open_os(lua_State *L);

#endif
