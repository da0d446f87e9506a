-- luacap's rockspec: `luarocks make` builds lua/luacap/core.so with the Makefile, installs
-- it with the Lua files (make install), and puts luacap-train and luacap-caption on PATH.
-- Not a way to get the C libraries: they come from the system (Debian: `make deps`).
-- On Debian 12 (its luarocks targets Lua 5.2 unless told; luacap is LuaJIT, i.e. 5.1),
-- the command is in docs/install.md ("Install with LuaRocks") and tools/rock-check.sh:
--   luarocks --lua-version=5.1 make --deps-mode=none LUA_INCDIR=/usr/include/luajit-2.1 \
--     OPENBLAS_INCDIR=/usr/include/x86_64-linux-gnu/openblas-pthread \
--     HDF5_INCDIR=/usr/include/hdf5/serial HDF5_LIBDIR=/usr/lib/x86_64-linux-gnu/hdf5/serial
-- (--deps-mode=none: Debian's lua-cjson and lua-argparse packages provide the two Lua
-- dependencies, and luarocks does not see apt packages).
rockspec_format = "3.0"
package = "luacap"
version = "scm-1"
source = {
  url = "git+file:///work/main",
}
description = {
  summary = "Image captioning with C kernels and a LuaJIT workflow",
  detailed = [[
luacap reimplements a Keras image-captioning notebook (VGG16 or a small CNN encoder,
BiLSTM branches joined by attention, an LSTM decoder, BLEU) with float32 C kernels
registered as one LuaJIT module, luacap.core, and the workflow in Lua.]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.2",
  "lua-cjson",
  "argparse",
}
-- Each library is looked up under /usr/local, /usr and / (include/, lib/, lib/<multiarch>);
-- NAME_DIR, NAME_INCDIR or NAME_LIBDIR on the command line override that. Debian keeps
-- OpenBLAS' cblas.h and the serial HDF5 in subfolders, hence the three settings above.
external_dependencies = {
  OPENBLAS = {header = "cblas.h", library = "openblas"},
  JPEG = {header = "jpeglib.h", library = "jpeg"},
  PNG = {header = "png.h", library = "png"},
  HDF5 = {header = "hdf5.h", library = "hdf5"},
  CAIRO = {header = "cairo/cairo.h", library = "cairo"},
}
build = {
  type = "make",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LUAJIT_INC = "-I$(LUA_INCDIR)",
    BLAS_CFLAGS = "-I$(OPENBLAS_INCDIR)",
    BLAS_LIBS = "-L$(OPENBLAS_LIBDIR) -lopenblas",
    JPEG_LIBS = "-L$(JPEG_LIBDIR) -ljpeg",
    PNG_CFLAGS = "-I$(PNG_INCDIR)",
    PNG_LIBS = "-L$(PNG_LIBDIR) -lpng",
    HDF5_CFLAGS = "-I$(HDF5_INCDIR)",
    HDF5_LIBS = "-L$(HDF5_LIBDIR) -lhdf5",
    CAIRO_CFLAGS = "-I$(CAIRO_INCDIR)/cairo",
    CAIRO_LIBS = "-L$(CAIRO_LIBDIR) -lcairo",
  },
  install_variables = {
    LUA_LIBDIR = "$(LIBDIR)",
    LUA_SHAREDIR = "$(LUADIR)",
    -- the same flags, in case `make install` finds something to rebuild
    CFLAGS = "$(CFLAGS)",
    LUAJIT_INC = "-I$(LUA_INCDIR)",
    BLAS_CFLAGS = "-I$(OPENBLAS_INCDIR)",
    BLAS_LIBS = "-L$(OPENBLAS_LIBDIR) -lopenblas",
    JPEG_LIBS = "-L$(JPEG_LIBDIR) -ljpeg",
    PNG_CFLAGS = "-I$(PNG_INCDIR)",
    PNG_LIBS = "-L$(PNG_LIBDIR) -lpng",
    HDF5_CFLAGS = "-I$(HDF5_INCDIR)",
    HDF5_LIBS = "-L$(HDF5_LIBDIR) -lhdf5",
    CAIRO_CFLAGS = "-I$(CAIRO_INCDIR)/cairo",
    CAIRO_LIBS = "-L$(CAIRO_LIBDIR) -lcairo",
  },
  install = {
    bin = {
      ["luacap-train"] = "bin/luacap-train",
      ["luacap-caption"] = "bin/luacap-caption",
    },
  },
  copy_directories = {},
}
