/* mpi.c: luaopen_luacap_mpi_core, the one exported symbol of luacap/mpi_core.so, the
 * binding of OpenMPI for data-parallel training (lua/luacap/mpi.lua wraps it). Built by
 * the Makefile with mpicc into its own module, only when mpicc is present, so that
 * luacap/core.so never links MPI and single-machine users never load it.
 * Tensors are luacap's float32 userdata (metatable luacap.Tensor, made by core.so); a
 * range (first, count) of a tensor's flat values is a "flat buffer" (a slice of a packed
 * gradient). Errors: MPI_ERRORS_RETURN on MPI_COMM_WORLD, so every failing call returns
 * its code and becomes a Lua error "mpi.<fn>: <MPI's message>".
 * Functions: init() -> rank, size; finalize(); initialized(); rank(); size(); barrier();
 * broadcast(t, root[, first, count]); allreduce(t[, first, count]) (sum, in place);
 * iallreduce(t[, first, count]) -> request; wait(request); test(request) -> done; allgather(bytes) -> {bytes per rank};
 * abort(code); wtime(). */
#define _GNU_SOURCE
#include "bind.h"

#include <dlfcn.h>
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define LC_EXPORT __attribute__((visibility("default")))
#else
#define LC_EXPORT
#endif

#define REQ_MT "luacap.mpi.Request"

/* Raises "mpi.fn: MPI's message" unless rc is MPI_SUCCESS. */
static void check_rc(lua_State *L, const char *fn, int rc) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING + 1];
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
  msg[len] = '\0';
  luaL_error(L, "mpi.%s: %s (MPI error %d)", fn, len ? msg : "unknown error", rc);
}

static void need_init(lua_State *L, const char *fn) {
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  if (!inited || finalized)
    luaL_error(L, "mpi.%s: MPI is not initialised (call mpi.init() first)%s", fn,
               finalized ? "; it was finalised" : "");
}

/* A tensor's value count (core.so's lc_numel is not exported to this module). */
static size_t numel(const lc_tensor *t) {
  size_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
  return n;
}

static lc_tensor *check_tensor(lua_State *L, int idx, const char *fn) {
  lc_tensor *t = luaL_checkudata(L, idx, LCB_TENSOR_MT);
  if (!t->storage) luaL_error(L, "mpi.%s: bad argument #%d: tensor was freed", fn, idx);
  return t;
}

/* The flat range [first, first + count) of t's values from arguments idx, idx+1 (1-based
 * first; both optional: the whole tensor). Raises when out of range or over INT_MAX. */
static float *check_range(lua_State *L, int idx, const char *fn, lc_tensor *t, int *count) {
  size_t n = numel(t);
  lua_Integer first = luaL_optinteger(L, idx, 1);
  lua_Integer cnt = luaL_optinteger(L, idx + 1, (lua_Integer)n - first + 1);
  if (first < 1 || cnt < 0 || (size_t)(first - 1 + cnt) > n)
    luaL_error(L, "mpi.%s: range first %d count %d is outside the tensor's %d values", fn,
               (int)first, (int)cnt, (int)n);
  if (cnt > INT_MAX) luaL_error(L, "mpi.%s: %d values are more than one MPI call takes", fn, (int)cnt);
  *count = (int)cnt;
  return t->data + (first - 1);
}

/* libmpi was loaded by dlopen with RTLD_LOCAL (Lua's require); OpenMPI's plugins then do
 * not see its symbols. Reopening it RTLD_GLOBAL (found by the address of MPI_Init) fixes it. */
static void promote_libmpi(void) {
  Dl_info info;
  if (dladdr((void *)MPI_Init, &info) && info.dli_fname)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
}

static int l_init(lua_State *L) {
  int inited = 0, finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return luaL_error(L, "mpi.init: MPI was finalised and cannot start again");
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    /* FUNNELED: OpenMP/OpenBLAS threads compute, only the main thread calls MPI */
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return luaL_error(L, "mpi.init: MPI_Init_thread failed (error %d)", rc);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  lua_pushinteger(L, rank);
  lua_pushinteger(L, size);
  return 2;
}

static int l_initialized(lua_State *L) {
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  lua_pushboolean(L, inited && !finalized);
  return 1;
}

static int l_finalize(lua_State *L) {
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  if (inited && !finalized) check_rc(L, "finalize", MPI_Finalize());
  return 0;
}

static int l_rank(lua_State *L) {
  need_init(L, "rank");
  int r;
  check_rc(L, "rank", MPI_Comm_rank(MPI_COMM_WORLD, &r));
  lua_pushinteger(L, r);
  return 1;
}

static int l_size(lua_State *L) {
  need_init(L, "size");
  int s;
  check_rc(L, "size", MPI_Comm_size(MPI_COMM_WORLD, &s));
  lua_pushinteger(L, s);
  return 1;
}

static int l_barrier(lua_State *L) {
  need_init(L, "barrier");
  check_rc(L, "barrier", MPI_Barrier(MPI_COMM_WORLD));
  return 0;
}

static int l_wtime(lua_State *L) {
  lua_pushnumber(L, MPI_Wtime());
  return 1;
}

/* broadcast(t, root[, first, count]): root's values (0-based rank) into every rank's t. */
static int l_broadcast(lua_State *L) {
  need_init(L, "broadcast");
  lc_tensor *t = check_tensor(L, 1, "broadcast");
  int root = (int)luaL_checkinteger(L, 2), count;
  float *p = check_range(L, 3, "broadcast", t, &count);
  if (count > 0) check_rc(L, "broadcast", MPI_Bcast(p, count, MPI_FLOAT, root, MPI_COMM_WORLD));
  return 0;
}

/* allreduce(t[, first, count]): t = sum over ranks of t, in place. */
static int l_allreduce(lua_State *L) {
  need_init(L, "allreduce");
  lc_tensor *t = check_tensor(L, 1, "allreduce");
  int count;
  float *p = check_range(L, 2, "allreduce", t, &count);
  if (count > 0)
    check_rc(L, "allreduce", MPI_Allreduce(MPI_IN_PLACE, p, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
  return 0;
}

/* A pending non-blocking allreduce. Its uservalue (fenv) holds the tensor, so the buffer
 * outlives the request; __gc waits for a request nobody waited on. */
typedef struct { MPI_Request req; int pending; } lreq;

static int req_wait(lua_State *L, lreq *r, const char *fn) {
  if (!r->pending) return 0;
  r->pending = 0;
  int rc = MPI_Wait(&r->req, MPI_STATUS_IGNORE);
  if (L) check_rc(L, fn, rc);
  return rc;
}

static int l_iallreduce(lua_State *L) {
  need_init(L, "iallreduce");
  lc_tensor *t = check_tensor(L, 1, "iallreduce");
  int count;
  float *p = check_range(L, 2, "iallreduce", t, &count);
  lreq *r = lua_newuserdata(L, sizeof *r);
  r->pending = 0;
  r->req = MPI_REQUEST_NULL;
  luaL_getmetatable(L, REQ_MT);
  lua_setmetatable(L, -2);
  lua_newtable(L);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  lua_setfenv(L, -2);
  if (count > 0) {
    check_rc(L, "iallreduce",
             MPI_Iallreduce(MPI_IN_PLACE, p, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r->req));
    r->pending = 1;
  }
  return 1;
}

static int l_wait(lua_State *L) {
  lreq *r = luaL_checkudata(L, 1, REQ_MT);
  req_wait(L, r, "wait");
  return 0;
}

/* test(request) -> true when the allreduce has completed (then as after wait), false while
 * it runs; each call lets MPI progress it (OpenMPI advances non-blocking collectives only
 * inside MPI calls). */
static int l_test(lua_State *L) {
  lreq *r = luaL_checkudata(L, 1, REQ_MT);
  if (!r->pending) {
    lua_pushboolean(L, 1);
    return 1;
  }
  int done = 0;
  check_rc(L, "test", MPI_Test(&r->req, &done, MPI_STATUS_IGNORE));
  if (done) r->pending = 0;
  lua_pushboolean(L, done);
  return 1;
}

static int req_gc(lua_State *L) {
  lreq *r = luaL_checkudata(L, 1, REQ_MT);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) req_wait(NULL, r, "wait");
  return 0;
}

/* allgather(bytes) -> {bytes of rank 0, bytes of rank 1, ...}: lengths first, then the
 * bytes with Allgatherv. For small values (counts, JSON), not for tensors. */
static int l_allgather(lua_State *L) {
  need_init(L, "allgather");
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  if (len > INT_MAX) return luaL_error(L, "mpi.allgather: %d bytes are too many", (int)len);
  int size;
  check_rc(L, "allgather", MPI_Comm_size(MPI_COMM_WORLD, &size));
  int *lens = calloc((size_t)size * 2, sizeof(int));
  if (!lens) return luaL_error(L, "mpi.allgather: out of memory");
  int mine = (int)len;
  int rc = MPI_Allgather(&mine, 1, MPI_INT, lens, 1, MPI_INT, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) { free(lens); check_rc(L, "allgather", rc); }
  int *displs = lens + size;
  long total = 0;
  for (int i = 0; i < size; i++) { displs[i] = (int)total; total += lens[i]; }
  if (total > INT_MAX) { free(lens); return luaL_error(L, "mpi.allgather: %ld bytes in all are too many", total); }
  char *buf = malloc(total > 0 ? (size_t)total : 1);
  if (!buf) { free(lens); return luaL_error(L, "mpi.allgather: out of memory"); }
  rc = MPI_Allgatherv((void *)s, mine, MPI_BYTE, buf, lens, displs, MPI_BYTE, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) { free(lens); free(buf); check_rc(L, "allgather", rc); }
  lua_createtable(L, size, 0);
  for (int i = 0; i < size; i++) {
    lua_pushlstring(L, buf + displs[i], (size_t)lens[i]);
    lua_rawseti(L, -2, i + 1);
  }
  free(lens);
  free(buf);
  return 1;
}

/* abort(code): ends every rank of the job (mpirun exits non-zero). */
static int l_abort(lua_State *L) {
  int code = (int)luaL_optinteger(L, 1, 1);
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  if (inited && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
  exit(code);
}

static const luaL_Reg funcs[] = {
  {"init", l_init}, {"initialized", l_initialized}, {"finalize", l_finalize},
  {"rank", l_rank}, {"size", l_size}, {"barrier", l_barrier}, {"wtime", l_wtime},
  {"broadcast", l_broadcast}, {"allreduce", l_allreduce}, {"iallreduce", l_iallreduce},
  {"wait", l_wait}, {"test", l_test}, {"allgather", l_allgather}, {"abort", l_abort},
  {NULL, NULL}};

static const luaL_Reg req_methods[] = {{"wait", l_wait}, {"test", l_test}, {NULL, NULL}};

LC_EXPORT int luaopen_luacap_mpi_core(lua_State *L) {
  promote_libmpi();
  if (luaL_newmetatable(L, REQ_MT)) {
    lua_newtable(L);
    for (const luaL_Reg *r = req_methods; r->name; r++) {
      lua_pushcfunction(L, r->func);
      lua_setfield(L, -2, r->name);
    }
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, req_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  for (const luaL_Reg *r = funcs; r->name; r++) {
    lua_pushcfunction(L, r->func);
    lua_setfield(L, -2, r->name);
  }
  return 1;
}
