/* os.c: the few operating-system calls LuaJIT's io and os libraries lack, for crash-safe
 * outputs (docs/robustness.md, "Crash safety"): fsync of a written file or folder, a
 * SIGINT flag the fit loop polls between steps, and a signal sent to this process (the
 * kill test's crash points). Not a general POSIX binding. */
#include "bind.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* fsync(path) -> true | nil, "path: reason", errno name ('ENOSPC', 'EIO', ...)
 * Opens path read-only (a folder too: after a rename, syncing the folder makes the new
 * name durable) and flushes it to the disk. */
static const char *errno_name(int e) {
  switch (e) {
  case ENOSPC: return "ENOSPC";
  case EDQUOT: return "EDQUOT";
  case EIO: return "EIO";
  case ENOENT: return "ENOENT";
  case EACCES: return "EACCES";
  case EROFS: return "EROFS";
  default: return "E?";
  }
}

static int l_fsync(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open(path, O_RDONLY);
  int e = 0;
  if (fd < 0) e = errno;
  else if (fsync(fd) != 0 && errno != EINVAL) e = errno;   /* EINVAL: cannot be synced (a pipe) */
  if (fd >= 0) close(fd);
  if (e) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(e));
    lua_pushstring(L, errno_name(e));
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* SIGINT: the first one sets a flag (the loop finishes its step, saves nothing half-done
 * and exits 130); a second one, before the flag is handled, restores the default action
 * and re-raises, which ends the process at once. sig_atomic_t, async-signal-safe calls only. */
static volatile sig_atomic_t sigint_count = 0;
static struct sigaction old_action;
static int installed = 0;

static void on_sigint(int sig) {
  sigint_count = sigint_count + 1;
  if (sigint_count >= 2) {
    signal(sig, SIG_DFL);
    raise(sig);
  }
}

/* sigint_catch(true|false): installs (clears the flag) or removes the handler. */
static int l_sigint_catch(lua_State *L) {
  int on = lua_toboolean(L, 1);
  if (on && !installed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigint_count = 0;
    if (sigaction(SIGINT, &sa, &old_action) != 0) return luaL_error(L, "sigint_catch: %s", strerror(errno));
    installed = 1;
  } else if (!on && installed) {
    sigaction(SIGINT, &old_action, NULL);
    installed = 0;
  }
  return 0;
}

/* sigint_pending() -> number of SIGINTs received since sigint_catch(true) (0: none) */
static int l_sigint_pending(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)sigint_count);
  return 1;
}

/* signal_self(signo): sends signo to this process (9: SIGKILL, for the kill test). */
static int l_signal_self(lua_State *L) {
  int sig = (int)luaL_checkinteger(L, 1);
  if (sig <= 0 || sig >= 64) return luaL_error(L, "signal_self: bad signal number %d", sig);
  kill(getpid(), sig);
  return 0;
}

/* getpid() -> this process' id */
static int l_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

/* free_bytes(folder) -> bytes an unprivileged write may still use there | nil, msg */
static int l_free_bytes(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct statvfs st;
  if (statvfs(path, &st) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_pushnumber(L, (lua_Number)st.f_bavail * (lua_Number)st.f_frsize);
  return 1;
}

static const luaL_Reg functions[] = {
  {"fsync", l_fsync},
  {"free_bytes", l_free_bytes},
  {"sigint_catch", l_sigint_catch},
  {"sigint_pending", l_sigint_pending},
  {"signal_self", l_signal_self},
  {"getpid", l_getpid},
  {NULL, NULL}
};

void lcb_open_os(lua_State *L) { lcb_setfuncs(L, functions); }
