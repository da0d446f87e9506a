#!/bin/sh
# test-sanitize.sh: the spec suite on core.so built with -fsanitize=address,undefined
# (`make test-sanitize` builds build/asan/lua/luacap/core.so, then runs this). LuaJIT
# itself stays unsanitised; the ASan runtime is preloaded into every luajit process.
# Fails (non-zero) when a spec fails or when any luajit process wrote a sanitizer report:
# an invalid access, undefined behaviour (UBSan halts on the first), or a leak.
#
#   sh tools/test-sanitize.sh                              every spec but the slow ones (SAN_SKIP_TAGS)
#   SAN_SPECS="spec/h5_spec.lua" sh tools/test-sanitize.sh  only these
#   SAN_SKIP_TAGS= sh tools/test-sanitize.sh                 everything, the slow ones too
#
# How the sanitized module reaches every luajit: build/asan/bin/luajit, a wrapper put first
# on PATH, starts /usr/bin/luajit with LD_PRELOAD=libasan.so and an -e chunk that (1)
# unsets LD_PRELOAD again, so the shell tools the specs run (mktemp, rm, sh) are not
# sanitized and do not report their own leaks, and (2) installs the sanitized core.so as
# package.preload['luacap.core'], which require() looks at before any cpath, so the
# example scripts the specs start in child processes (`luajit examples/train.lua`, which
# put ./lua/?.so first on their cpath) load the sanitized module too; and (3) makes
# os.exit(code) close the Lua state (os.exit(code, true)) as a normal end of script does,
# so tensors still referenced at exit are collected and only memory nobody can free any
# more counts as a leak (the example scripts end with os.exit(status)).
# loadlib loads OpenBLAS at once, so luacap.blas_env chooses its kernel family first, as
# luacap's init does in a normal run (the same kernels, the same rounding as make test).
set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
SAN=build/asan
SO=$ROOT/$SAN/lua/luacap/core.so
LOGDIR=$ROOT/$SAN/log
REAL_LUAJIT=${REAL_LUAJIT:-$(command -v luajit)}
BUSTED_BIN=${BUSTED_BIN:-$(command -v busted)}
CC=${CC:-cc}
ASAN_LIB=$($CC -print-file-name=libasan.so)
# Tags of specs too slow under the sanitizers for CI's budget (see docs/robustness.md).
SAN_SKIP_TAGS=${SAN_SKIP_TAGS-nosan}

[ -f "$SO" ] || { echo "test-sanitize: $SO missing (make test-sanitize builds it)" >&2; exit 2; }
[ -f "$ASAN_LIB" ] || { echo "test-sanitize: $CC has no libasan.so ($ASAN_LIB)" >&2; exit 2; }
[ -n "$BUSTED_BIN" ] || { echo "test-sanitize: busted not found (apt-get install lua-busted)" >&2; exit 2; }

mkdir -p "$SAN/bin"
rm -rf "$LOGDIR" && mkdir -p "$LOGDIR"
INIT="local ffi = require 'ffi'; ffi.cdef 'int unsetenv(const char *)'; ffi.C.unsetenv('LD_PRELOAD');\
 local exit = os.exit; os.exit = function(code) return exit(code, true) end;\
 dofile('$ROOT/lua/luacap/blas_env.lua').apply_here();\
 package.preload['luacap.core'] = assert(package.loadlib('$SO', 'luaopen_luacap_core'))"
cat > "$SAN/bin/luajit" <<EOF
#!/bin/sh
# Written by tools/test-sanitize.sh: luajit with the ASan runtime and the sanitized core.so.
# An MPI rank (mpirun sets OMPI_COMM_WORLD_RANK) checks no leaks: OpenMPI's own
# components (dlopened, so unnamed in the stacks) keep allocations to the end by design.
[ -n "\${OMPI_COMM_WORLD_RANK:-}" ] && ASAN_OPTIONS="\$ASAN_OPTIONS:detect_leaks=0" && export ASAN_OPTIONS
LD_PRELOAD=$ASAN_LIB exec $REAL_LUAJIT -e "$INIT" "\$@"
EOF
chmod +x "$SAN/bin/luajit"
PATH=$ROOT/$SAN/bin:$PATH
export PATH

# Every report goes to its own file build/asan/log/{asan,ubsan}.<exe>.<pid>. Leaks are
# reported (detect_leaks) with tools/lsan.supp's scoped suppressions; a too-large malloc
# returns NULL as glibc's would (luacap's limits and NULL checks are what the specs test).
ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:allocator_may_return_null=1:log_exe_name=1:log_path=$LOGDIR/asan:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1${ASAN_EXTRA:+:$ASAN_EXTRA}"
LSAN_OPTIONS="suppressions=$ROOT/tools/lsan.supp:print_suppressions=0"
UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_exe_name=1:log_path=$LOGDIR/ubsan"
export ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS

# The wrapper really loads the sanitized module (and a sanitized module really reports).
maps=$(luajit -e "require 'luacap.core'; io.write(io.open('/proc/self/maps'):read('*a'))")
case $maps in *"$SAN/lua/luacap/core.so"*) ;; *)
  echo "test-sanitize: the wrapper did not load $SO" >&2; exit 2 ;; esac
case $maps in *libasan*) ;; *) echo "test-sanitize: libasan.so not preloaded" >&2; exit 2 ;; esac
# A 16-byte memset into an 8-byte malloc (through the FFI, so ASan's interceptor sees it)
# must end the process with a report.
if luajit -e "local ffi = require 'ffi'; ffi.cdef 'void *malloc(size_t); void *memset(void *, int, size_t);';
  ffi.C.memset(ffi.C.malloc(8), 0, 16)" 2>/dev/null || [ -z "$(find "$LOGDIR" -type f)" ]; then
  echo "test-sanitize: a heap overflow went unreported; the ASan runtime is not active" >&2; exit 2
fi
rm -rf "$LOGDIR" && mkdir -p "$LOGDIR"

SPECS=${SAN_SPECS:-spec}
echo "test-sanitize: busted on $SPECS under ASan+UBSan (skipped tags: ${SAN_SKIP_TAGS:-none}); reports in $LOGDIR"
start=$(date +%s)
# shellcheck disable=SC2086  # SPECS is a list of paths without spaces
luajit "$BUSTED_BIN" --ignore-lua ${SAN_SKIP_TAGS:+--exclude-tags=$SAN_SKIP_TAGS} $SPECS
rc=$?
secs=$(( $(date +%s) - start ))

reports=$(find "$LOGDIR" -type f | sort)
if [ -n "$reports" ]; then
  for f in $reports; do echo "== $f" >&2; head -n 60 "$f" >&2; done
  echo "test-sanitize: FAILED, $(echo "$reports" | wc -l) sanitizer report(s) in $LOGDIR (${secs}s)" >&2
  exit 1
fi
if [ "$rc" -ne 0 ]; then
  echo "test-sanitize: FAILED, busted exited $rc under the sanitizers (${secs}s)" >&2
  exit 1
fi
echo "test-sanitize: OK, no sanitizer reports (${secs}s)"
