# luacap: build, install dependencies, test, demo, bench, memcheck.
# The one list of sources: every .c under csrc/ (the rockspec calls this Makefile).

# Knobs -------------------------------------------------------------------------
# LuaJIT headers (tier 2 only); from pkg-config when available.
LUAJIT_INC ?= $(shell pkg-config --cflags luajit 2>/dev/null || echo -I/usr/include/luajit-2.1)
# OpenBLAS by name: Debian's generic -lblas may be the 35x slower reference BLAS. Its
# OpenMP flavour (libopenblas0-openmp), linked by path with an rpath, so that OpenBLAS and
# luacap's own OpenMP loops share one thread pool whatever the system's alternative says.
# BLAS_FLAVOUR=pthread links the pthread build instead (then set OPENMP=0).
BLAS_FLAVOUR ?= openmp
BLAS_DIR ?= /usr/lib/x86_64-linux-gnu/openblas-$(BLAS_FLAVOUR)
BLAS_CFLAGS ?= -I/usr/include/x86_64-linux-gnu/openblas-pthread
BLAS_LIBS ?= -L$(BLAS_DIR) -l:libopenblas.so.0 -Wl,-rpath,$(BLAS_DIR)
# Image codecs.
JPEG_LIBS ?= -ljpeg
PNG_CFLAGS ?= $(shell pkg-config --cflags libpng 2>/dev/null)
PNG_LIBS ?= $(shell pkg-config --libs libpng 2>/dev/null || echo -lpng)
# HDF5 (Debian's serial build lives in its own folder).
HDF5_CFLAGS ?= $(shell pkg-config --cflags hdf5 2>/dev/null || echo -I/usr/include/hdf5/serial)
HDF5_LIBS ?= $(shell pkg-config --libs hdf5 2>/dev/null || echo -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5)
# cairo, for plots and captioned image grids.
CAIRO_CFLAGS ?= $(shell pkg-config --cflags cairo 2>/dev/null || echo -I/usr/include/cairo)
CAIRO_LIBS ?= $(shell pkg-config --libs cairo 2>/dev/null || echo -lcairo)
# 1: luacap's own loops in OpenMP, on the same pool as OpenBLAS' OpenMP flavour.
OPENMP ?= 1
# 1: -O0 -g.   SANITIZE=1: AddressSanitizer + UBSan (run with LD_PRELOAD, see memcheck).
DEBUG ?= 0
SANITIZE ?= 0
# Where `make install` (and luarocks) put the module and the Lua files.
LUA_LIBDIR ?= /usr/local/lib/lua/5.1
LUA_SHAREDIR ?= /usr/local/share/lua/5.1
# How busted runs the specs.
BUSTED ?= busted --lua=luajit
LUAJIT ?= luajit

CC ?= cc
# -fno-trapping-math: luacap never reads floating-point exception flags, and without it GCC
# will not turn a float compare-and-select (relu's mask, max-pool's winner) into vector code.
CFLAGS_BASE = -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -fPIC \
              -fvisibility=hidden -funwind-tables -fno-trapping-math
ifeq ($(DEBUG),1)
  OPT = -O0 -g
else
  OPT = -O2 -g
endif
ifeq ($(SANITIZE),1)
  OPT += -fsanitize=address,undefined -fno-omit-frame-pointer
  LDSAN = -fsanitize=address,undefined
endif
ifeq ($(OPENMP),1)
  OPT += -fopenmp
  LDOMP = -fopenmp
endif
ALL_CFLAGS = $(CFLAGS_BASE) -Icsrc $(OPT) $(BLAS_CFLAGS) $(PNG_CFLAGS) $(HDF5_CFLAGS) $(CAIRO_CFLAGS) $(CFLAGS)
LIBS = $(BLAS_LIBS) $(JPEG_LIBS) $(PNG_LIBS) $(HDF5_LIBS) $(CAIRO_LIBS) -lm

BUILD = build
# csrc/bind/mpi.c is the separate luacap.mpi module (below), never part of core.so.
SRC = $(filter-out csrc/bind/mpi.c,$(wildcard csrc/*.c csrc/*/*.c))
HDR = $(wildcard csrc/*.h csrc/*/*.h)
OBJ = $(SRC:csrc/%.c=$(BUILD)/%.o)
SO = lua/luacap/core.so
# luacap.mpi (data-parallel training, docs/distributed.md): OpenMPI's compiler wrapper
# builds lua/luacap/mpi_core.so when mpicc is on PATH; without it nothing MPI is built.
MPICC ?= mpicc
MPI_SO = lua/luacap/mpi_core.so
HAVE_MPI := $(shell command -v $(MPICC) >/dev/null 2>&1 && echo 1)
ifeq ($(HAVE_MPI),1)
  MPI_TARGET = $(MPI_SO)
endif

.PHONY: all deps test test-sanitize test-crash probe-h5 fuzz test-browser demo demo-seed bench bench-torch memcheck lint clean install links vgg16-weights

all: $(SO) $(MPI_TARGET) links

$(BUILD)/bind/%.o: csrc/bind/%.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LUAJIT_INC) -c $< -o $@

$(BUILD)/%.o: csrc/%.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# Adam's update loop vectorises once sqrtf need not set errno (v is never negative);
# no fast-math: the results stay IEEE-exact. About 2x on 15M parameters.
$(BUILD)/nn/adam.o: ALL_CFLAGS += -fno-math-errno -ftree-vectorize -fvect-cost-model=dynamic

# The multiversioned kernels' a * b + c as one fused multiply-add (csrc/nn/parallel.h's
# clones): -std=c99 turns GCC's contraction off, and a separate multiply and add halve the
# rate where the same two ports do both (Intel's AVX-512 cores: the recurrent kernel went
# from 70 to 110-134 GFLOP/s on one thread, docs/performance.md). Each sum still runs in one
# order on one thread: the same bits at any thread count.
FMA_OBJ = $(addprefix $(BUILD)/nn/,packed_gemm.o winograd.o lstm.o additive_attention.o attention.o)
$(FMA_OBJ): ALL_CFLAGS += -ffp-contract=fast

# -z nodelete: LuaJIT unloads C modules when its state closes; OpenMP's idle worker threads
# would then run unmapped code (a segfault at exit), so the module stays mapped.
$(SO): $(OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-z,nodelete -o $@ $(OBJ) $(LDSAN) $(LDOMP) $(LDFLAGS) $(LIBS)

# No -z nodelete here: the module starts no threads. Only the main thread calls MPI.
$(MPI_SO): csrc/bind/mpi.c $(HDR)
	$(MPICC) $(CFLAGS_BASE) -Icsrc $(OPT) $(LUAJIT_INC) $(CFLAGS) -shared -o $@ $< -ldl $(LDSAN) $(LDFLAGS)

# `require 'luacap'` from the repository root: LuaJIT's default path has ./?.lua and
# ./?.so but not lua/, so two links (ignored by git) point into lua/.
links:
	@test -e luacap || ln -s lua/luacap luacap
	@test -e luacap.lua || ln -s lua/luacap/init.lua luacap.lua

# Debian packages luacap needs; apt-get installs the missing ones (root only).
DEB_PKGS = build-essential pkg-config luajit libluajit-5.1-dev libopenblas-dev libjpeg-dev \
           libpng-dev libhdf5-dev libcairo2-dev fonts-dejavu-core lua-busted lua-cjson \
           lua-argparse luarocks valgrind lua-check libopenblas0-openmp \
           libopenmpi-dev openmpi-bin
deps:
	@sh tools/deps.sh $(DEB_PKGS)

test: deps
	@$(MAKE) --no-print-directory all
	$(BUSTED) spec

# The spec suite on core.so built with ASan + UBSan (-fsanitize=address,undefined) into
# build/asan/ (the normal build stays as it is), LuaJIT unsanitised with the ASan runtime
# preloaded; fails on a spec failure or any sanitizer report, leaks included
# (tools/test-sanitize.sh, tools/lsan.supp; docs/robustness.md). CI runs it after make test.
SAN_BUILD = build/asan
test-sanitize: deps
	@$(MAKE) --no-print-directory SANITIZE=1 BUILD=$(SAN_BUILD)/obj SO=$(SAN_BUILD)/lua/luacap/core.so \
	  $(SAN_BUILD)/lua/luacap/core.so links
	sh tools/test-sanitize.sh

# The demo: Show-Attend-Tell (--model sat) with the small CNN trained end to end on the
# built-in shapes (3000 images of 64x64 with one or two shapes) for 20 epochs, then two epochs of
# self-critical training (mean-of-samples baseline), greedy and beam captions of both models,
# attention maps and the results page;
# about 5 minutes on 2 cores (docs/commands.md, "The demo's sizes").
# make demo-seed: the notebook's own model at the earlier demo's sizes.
DEMO_ARGS ?= --model sat --threads 2 --n-images 3000 --max-shapes 2 --shapes-size 64 \
             --image-size 64 --cnn-channels 32,48,64 --epochs 20 --embed-dim 64 --units 128 \
             --att-dim 64 --dropout 0.1 --group-images 6 --lr 0.002 --lr-patience 1 \
             --scst-epochs 2 --scst-baseline mean --scst-lr 2e-4
demo: deps
	@$(MAKE) --no-print-directory all
	$(LUAJIT) examples/train.lua $(DEMO_ARGS)

# The notebook's model and callbacks on 1000 images of 64x64 read at 32x32, about 4 minutes.
SEED_DEMO_ARGS ?= --model seed --threads 1 --n-images 1000 --max-shapes 2 --shapes-size 64 \
             --image-size 32 --epochs 20 --embed-dim 64 --units 64 --img-dense 128 \
             --dec-dense 128 --feat-dim 128 --dropout 0.1 --group-images 8
demo-seed: deps
	@$(MAKE) --no-print-directory all
	$(LUAJIT) examples/train.lua $(SEED_DEMO_ARGS)

# Crash safety (docs/robustness.md): kill -9 a small training run at KILLS moments, resume
# it each time, and compare with an uninterrupted run bit for bit; .ci/run runs 5 kills.
KILLS ?= 20
test-crash: all
	sh tools/kill-test.sh $(KILLS)

# Randomly damaged model files and feature caches through luacap's loaders (docs/robustness.md).
PROBE_N ?= 1002
probe-h5: all
	nice -n 19 luajit tools/corrupt-probe.lua $(PROBE_N)

# libFuzzer targets (fuzz/*.c: JPEG, PNG, resize, HDF5) under ASan + UBSan with clang-14,
# then the Lua parsers' in-process mutation loop (fuzz/lua.lua), FUZZ_SECONDS each;
# a table of executions, crashes, hangs and OOMs (fuzz/run.sh; docs/robustness.md).
FUZZ_SECONDS ?= 60
fuzz: all
	@sh tools/deps.sh clang-14 libclang-rt-14-dev
	FUZZ_SECONDS=$(FUZZ_SECONDS) sh fuzz/run.sh

# The results page in headless Chromium (installs Debian's chromium when missing).
test-browser: all
	sh tools/test-browser.sh

# Keras' VGG16 weights into data/weights/ (needs the network; fails clearly without it).
vgg16-weights:
	sh tools/get-vgg16-weights.sh

bench: all
	$(LUAJIT) bench/run.lua

# luacap against its PyTorch replica (bench/torch/), interleaved at 1 and 2 threads; not in
# CI. Installs Debian's python3-torch and python3-torchvision when missing (root only).
BENCH_TORCH_ARGS ?= --rounds 3 --threads 1,2
bench-torch: all
	@sh tools/deps.sh python3-torch python3-torchvision libopenblas0-openmp
	$(LUAJIT) bench/torch/compare.lua $(BENCH_TORCH_ARGS)

# Every C-facing spec under valgrind's memcheck; fails on an invalid access or a leak
# in luacap's own code (suppressions cover LuaJIT, OpenBLAS and HDF5 internals).
memcheck: all
	sh tools/memcheck.sh

# luacheck over every Lua file (.luacheckrc: LuaJIT's globals, 120 columns); CI runs it.
lint:
	luacheck --no-color -q lua spec examples bench bin fuzz

install: all
	mkdir -p $(LUA_LIBDIR)/luacap $(LUA_SHAREDIR)
	cp $(SO) $(LUA_LIBDIR)/luacap/core.so
	if [ -f $(MPI_SO) ]; then cp $(MPI_SO) $(LUA_LIBDIR)/luacap/mpi_core.so; fi
	cd lua && find luacap -name '*.lua' -exec install -D -m 644 {} $(LUA_SHAREDIR)/{} \;

clean:
	rm -rf $(BUILD) $(SO) $(MPI_SO) luacap luacap.lua
