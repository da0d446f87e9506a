/* h5.c: named float32 tensors and string attributes in HDF5 files, on libhdf5's C API.
 * Tier 1: never includes lua.h, never prints (HDF5's own error printing is switched off;
 * its innermost message goes into the caller's err buffer instead). Not a general HDF5
 * library: datasets are read as float32 and written as float32, attributes are strings.
 *
 * Keras' weight files (keras/saving/hdf5_format.py, later legacy_h5_format.py:
 * save_weights_to_hdf5_group, save_attributes_to_hdf5_group, load_weights_from_hdf5_group),
 * e.g. vgg16_weights_tf_dim_ordering_tf_kernels.h5, are laid out as:
 *   /                      attrs layer_names = 1-d array of fixed-length byte strings
 *                          ('S<max len>', NUL-padded: numpy's asarray of bytes),
 *                          backend, keras_version = scalar byte strings
 *   /block1_conv1          one group per layer; attr weight_names = 1-d 'S' array, e.g.
 *                          ['block1_conv1_W_1:0', 'block1_conv1_b_1:0']; a layer without
 *                          weights (input_1, block1_pool) has an empty array, which
 *                          numpy makes float64 (shape (0,)), not strings
 *   /block1_conv1/block1_conv1_W_1:0   float32 dataset (K, K, C, OC); a weight name with
 *                          '/' in it ('dense/kernel:0') becomes a nested group
 * An attribute too big for an object header (64 KiB) is split by Keras into name0,
 * name1, ...; the caller joins those. h5py writes Python str lists as variable-length
 * strings instead, so readers take both forms. */
#include "../luacap.h"

#include <hdf5.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Scratch memory for results handed to the caller (names, attributes): a chain of
 * blocks freed all at once by the next list/attrs call or by close. */
typedef struct scratch_block {
  struct scratch_block *next;
  double data[];       /* double-aligned, enough for pointers, sizes and doubles */
} scratch_block;

struct lc_h5 {
  hid_t file;          /* the open file */
  hid_t lcpl;          /* writer: link creation with intermediate groups; else -1 */
  int writable;
  char *path;          /* the target path */
  char *tmp;           /* writer: "<path>.tmp.<pid>", the file actually written */
  int64_t file_size;   /* reader: the file's size in bytes when opened */
  scratch_block *scratch;
};

static void set_err(char *err, size_t n, const char *fmt, ...);

/* ------------------------------------------------------------ integrity */

/* Every dataset luacap writes carries a scalar uint32 attribute CRC_ATTR: the CRC-32C
 * (Castagnoli, reflected, init and final xor 0xFFFFFFFF) of its raw float32 bytes as
 * stored (little-endian). Readers check it when present; files without it (older
 * luacap files, Keras' or h5py's) load unchecked. lc_h5_attrs does not list it. */
#define CRC_ATTR "luacap_crc32c"

static uint32_t crc_table[8][256];
static int crc_ready;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    crc_table[0][i] = c;
  }
  for (int t = 1; t < 8; t++)
    for (int i = 0; i < 256; i++)
      crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
  crc_ready = 1;
}

/* CRC-32C of n bytes (slicing by 8); lc_crc32c("123456789") = 0xE3069283. */
uint32_t lc_crc32c(const void *data, size_t n) {
  if (!crc_ready) crc_init();
  const unsigned char *p = data;
  uint32_t c = 0xFFFFFFFFu;
  while (n >= 8) {
    c ^= (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    c = crc_table[7][c & 0xFF] ^ crc_table[6][(c >> 8) & 0xFF] ^
        crc_table[5][(c >> 16) & 0xFF] ^ crc_table[4][c >> 24] ^
        crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xFF];
  return c ^ 0xFFFFFFFFu;
}

static uint64_t le_uint(const unsigned char *p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* Before libhdf5 sees the file: the superblock at offset 0 (a file with a user block,
 * signature at 512, 1024, ..., is left to libhdf5) must name an end-of-file address the
 * file reaches. Catches truncation without letting libhdf5 read past the end. */
static int check_superblock(const char *path, int64_t size, char *err, size_t n) {
  unsigned char b[96];
  FILE *f = fopen(path, "rb");
  if (!f) { set_err(err, n, "%s", strerror(errno)); return LC_EIO; }
  size_t got = fread(b, 1, sizeof b, f);
  fclose(f);
  static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  if (got < 8 || memcmp(b, sig, 8) != 0) return LC_OK;
  if (got < 12) goto truncated;
  int version = b[8], osize, at;
  if (version == 0 || version == 1) {
    osize = b[13];
    at = 24 + (version == 1 ? 4 : 0) + 2 * osize;    /* base, free-space, then EOF */
  } else if (version == 2 || version == 3) {
    osize = b[9];
    at = 12 + 2 * osize;                             /* base, extension, then EOF */
  } else {
    set_err(err, n, "corrupt or truncated file (unknown superblock version %d)", version);
    return LC_EDATA;
  }
  if (osize != 2 && osize != 4 && osize != 8) {
    set_err(err, n, "corrupt or truncated file (superblock offset size %d)", osize);
    return LC_EDATA;
  }
  if ((size_t)(at + osize) > got) goto truncated;
  uint64_t base = le_uint(b + at - 2 * osize, osize);
  uint64_t eof = le_uint(b + at, osize);
  if (base > (uint64_t)size || eof > (uint64_t)size - base) {
    set_err(err, n, "corrupt or truncated file (%lld bytes, the superblock says %llu)",
            (long long)size, (unsigned long long)(base + eof));
    return LC_EDATA;
  }
  return LC_OK;
truncated:
  set_err(err, n, "corrupt or truncated file (%lld bytes, no whole superblock)",
          (long long)size);
  return LC_EDATA;
}

/* ------------------------------------------------------------ errors and scratch */

static void set_err(char *err, size_t n, const char *fmt, ...) {
  if (!err || n == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
}

/* The innermost message on HDF5's error stack: the most specific reason
 * ("truncated file: eof = 1024, ..."). Walked upward, the first entry is the innermost. */
static herr_t first_desc(unsigned nth, const H5E_error2_t *e, void *data) {
  char *buf = data;
  if (nth == 0 && e->desc) snprintf(buf, 256, "%s", e->desc);
  return 0;
}

static int h5_err(char *err, size_t n, int code, const char *what) {
  char desc[256] = "";
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, first_desc, desc);
  H5Eclear2(H5E_DEFAULT);
  if (desc[0]) set_err(err, n, "%s (%s)", what, desc);
  else set_err(err, n, "%s", what);
  return code;
}

static void scratch_reset(lc_h5 *h) {
  while (h->scratch) {
    scratch_block *next = h->scratch->next;
    free(h->scratch);
    h->scratch = next;
  }
}

static void *scratch_alloc(lc_h5 *h, size_t bytes) {
  scratch_block *b = malloc(sizeof *b + (bytes ? bytes : 1));
  if (!b) return NULL;
  b->next = h->scratch;
  h->scratch = b;
  return b->data;
}

static char *scratch_strdup(lc_h5 *h, const char *s, size_t len) {
  char *c = scratch_alloc(h, len + 1);
  if (!c) return NULL;
  memcpy(c, s, len);
  c[len] = '\0';
  return c;
}

/* "/a/b" for messages, whether or not the caller wrote the leading '/'. */
static const char *slash(const char *name) { return name[0] == '/' ? "" : "/"; }

/* ------------------------------------------------------------ open and close */

int lc_h5_open(lc_h5 **out, const char *path, int writable, char *err, size_t n) {
  *out = NULL;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);   /* our message, not HDF5's stderr dump */
  if (!writable) {
    struct stat st;
    if (stat(path, &st) != 0) {
      set_err(err, n, "%s", strerror(errno));
      return LC_EIO;
    }
    if (S_ISDIR(st.st_mode)) {
      set_err(err, n, "is a directory, not an HDF5 file");
      return LC_EIO;
    }
    int src = check_superblock(path, (int64_t)st.st_size, err, n);
    if (src != LC_OK) return src;
    htri_t ok = H5Fis_hdf5(path);
    if (ok == 0) {
      set_err(err, n, "not an HDF5 file (no HDF5 signature)");
      H5Eclear2(H5E_DEFAULT);
      return LC_EDATA;
    }
    if (ok < 0) return h5_err(err, n, LC_EDATA, "cannot read the file as HDF5");
  }
  lc_h5 *h = calloc(1, sizeof *h);
  if (!h) goto nomem;
  h->file = -1;
  h->lcpl = -1;
  h->writable = writable;
  if (!writable) {
    struct stat st;
    h->file_size = stat(path, &st) == 0 ? (int64_t)st.st_size : INT64_MAX;
  }
  h->path = malloc(strlen(path) + 1);
  if (!h->path) goto nomem;
  strcpy(h->path, path);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0) { lc_h5_close(h, 0, NULL, 0); return h5_err(err, n, LC_ENOMEM, "H5Pcreate failed"); }
  /* STRONG: H5Fclose closes every object still open, so nothing outlives close. */
  H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
  if (writable) {
    size_t len = strlen(path) + 32;
    h->tmp = malloc(len);
    if (!h->tmp) { H5Pclose(fapl); goto nomem; }
    snprintf(h->tmp, len, "%s.tmp.%ld", path, (long)getpid());
    /* The 1.8 format: dense attribute storage (attributes over 64 KiB, long JSON
     * configs) and still readable by every h5py and HDF5 since 2008. */
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18);
    /* The file system's own reason ("No such file or directory") beats HDF5's. */
    int fd = open(h->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) {
      set_err(err, n, "cannot create %s: %s", h->tmp, strerror(errno));
      H5Pclose(fapl);
      lc_h5_close(h, 0, NULL, 0);
      return LC_EIO;
    }
    close(fd);
    h->file = H5Fcreate(h->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (h->file >= 0) {
      h->lcpl = H5Pcreate(H5P_LINK_CREATE);
      if (h->lcpl >= 0) H5Pset_create_intermediate_group(h->lcpl, 1);
    }
  } else {
    h->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  }
  if (h->file < 0 || (writable && h->lcpl < 0)) {
    /* read HDF5's reason first: every API call (H5Pclose too) clears the error stack */
    int code = h5_err(err, n, writable ? LC_EIO : LC_EDATA,
                      writable ? "cannot create the temporary file" : "cannot open as HDF5");
    H5Pclose(fapl);
    lc_h5_close(h, 0, NULL, 0);
    return code;
  }
  H5Pclose(fapl);
  *out = h;
  return LC_OK;
nomem:
  if (h) lc_h5_close(h, 0, NULL, 0);
  set_err(err, n, "out of memory");
  return LC_ENOMEM;
}

int lc_h5_close(lc_h5 *h, int commit, char *err, size_t n) {
  if (!h) return LC_OK;
  int rc = LC_OK;
  scratch_reset(h);
  if (h->lcpl >= 0) H5Pclose(h->lcpl);
  if (h->file >= 0) {
    if (commit && H5Fflush(h->file, H5F_SCOPE_GLOBAL) < 0)
      rc = h5_err(err, n, LC_EIO, "cannot flush the temporary file");
    if (H5Fclose(h->file) < 0 && rc == LC_OK)
      rc = h5_err(err, n, LC_EIO, "cannot close the file");
    H5Eclear2(H5E_DEFAULT);
  }
  if (h->writable && h->tmp) {
    if (commit && rc == LC_OK) {
      /* fsync before rename: after a crash the target is the old file or the new one. */
      int fd = open(h->tmp, O_RDONLY);
      if (fd < 0 || fsync(fd) != 0) {
        set_err(err, n, "cannot sync %s: %s", h->tmp, strerror(errno));
        rc = LC_EIO;
      }
      if (fd >= 0) close(fd);
      if (rc == LC_OK && rename(h->tmp, h->path) != 0) {
        set_err(err, n, "cannot rename %s over it: %s", h->tmp, strerror(errno));
        rc = LC_EIO;
      }
    }
    if (!commit || rc != LC_OK) unlink(h->tmp);
  }
  free(h->tmp);
  free(h->path);
  free(h);
  return rc;
}

/* ------------------------------------------------------------ objects */

/* Walks name one component at a time, so a missing parent is "no such object" rather
 * than an HDF5 error. Returns an open object (caller closes with H5Oclose) or -1. */
static hid_t open_object(lc_h5 *h, const char *name) {
  while (*name == '/') name++;
  if (*name == '\0') return H5Oopen(h->file, "/", H5P_DEFAULT);
  size_t len = strlen(name);
  char *buf = malloc(len + 1);
  if (!buf) return -1;
  memcpy(buf, name, len + 1);
  for (size_t i = 0; i <= len; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char keep = buf[i];
    buf[i] = '\0';
    htri_t ex = i > 0 && buf[i - 1] != '/' ? H5Lexists(h->file, buf, H5P_DEFAULT) : 1;
    buf[i] = keep;
    if (ex <= 0) { free(buf); H5Eclear2(H5E_DEFAULT); return -1; }
  }
  hid_t obj = H5Oopen(h->file, buf, H5P_DEFAULT);
  free(buf);
  if (obj < 0) H5Eclear2(H5E_DEFAULT);
  return obj;
}

static int kind_of(hid_t obj) {
  switch (H5Iget_type(obj)) {
    case H5I_GROUP: return LC_H5_GROUP;
    case H5I_DATASET: return LC_H5_DATASET;
    default: return LC_H5_OTHER;
  }
}

int lc_h5_kind(lc_h5 *h, const char *name) {
  hid_t obj = open_object(h, name);
  if (obj < 0) return LC_H5_NONE;
  int k = kind_of(obj);
  H5Oclose(obj);
  return k;
}

/* Opens a dataset; on failure writes "no dataset '/x'" or "'/x' is a group". */
static hid_t open_dataset(lc_h5 *h, const char *name, char *err, size_t n) {
  hid_t obj = open_object(h, name);
  if (obj < 0) {
    set_err(err, n, "no dataset '%s%s'", slash(name), name);
    return -1;
  }
  if (kind_of(obj) != LC_H5_DATASET) {
    set_err(err, n, "'%s%s' is a %s, not a dataset", slash(name), name,
            kind_of(obj) == LC_H5_GROUP ? "group" : "named type");
    H5Oclose(obj);
    return -1;
  }
  return obj;
}

static const char *class_name(H5T_class_t c) {
  switch (c) {
    case H5T_INTEGER: return "integers";
    case H5T_FLOAT: return "floats";
    case H5T_STRING: return "strings";
    case H5T_BITFIELD: return "bitfields";
    case H5T_OPAQUE: return "opaque data";
    case H5T_COMPOUND: return "compound records";
    case H5T_REFERENCE: return "references";
    case H5T_ENUM: return "enums";
    case H5T_VLEN: return "variable-length sequences";
    case H5T_ARRAY: return "arrays";
    default: return "data of an unknown type";
  }
}

int lc_h5_dataset_shape(lc_h5 *h, const char *name, int *ndim, int64_t *shape,
                        char *err, size_t n) {
  hid_t ds = open_dataset(h, name, err, n);
  if (ds < 0) return LC_EDATA;
  int rc = LC_OK;
  hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
  if (type < 0 || space < 0) {
    rc = h5_err(err, n, LC_EDATA, "cannot read the dataset's header");
    goto done;
  }
  H5T_class_t cls = H5Tget_class(type);
  if (cls != H5T_FLOAT) {
    set_err(err, n, "dataset '%s%s' holds %d-byte %s, expected float32 or float64",
            slash(name), name, (int)H5Tget_size(type), class_name(cls));
    rc = LC_EDATA;
    goto done;
  }
  int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) {
    rc = h5_err(err, n, LC_EDATA, "cannot read the dataset's shape");
    goto done;
  }
  if (rank > LC_MAXDIM) {
    set_err(err, n, "dataset '%s%s' has %d dims, luacap tensors hold at most %d",
            slash(name), name, rank, LC_MAXDIM);
    rc = LC_EDATA;
    goto done;
  }
  hsize_t dims[LC_MAXDIM];
  H5Sget_simple_extent_dims(space, dims, NULL);
  if (H5Sget_simple_extent_type(space) == H5S_NULL) {   /* no data at all: (0) */
    rank = 1;
    dims[0] = 0;
  }
  /* What the dataset claims, before anyone allocates it: over the limit, or (stored
   * without filters, so uncompressed) more bytes than the whole file holds. */
  {
    double bytes = (double)H5Tget_size(type);
    for (int d = 0; d < rank; d++) bytes *= (double)dims[d];
    if (bytes > (double)lc_limits.dataset_bytes) {
      set_err(err, n, "dataset '%s%s' claims %.0f bytes, over the limit of %lld "
              "(luacap.set_limits{dataset_bytes = ...})", slash(name), name, bytes,
              (long long)lc_limits.dataset_bytes);
      rc = LC_EDATA;
      goto done;
    }
    if (!h->writable && bytes > (double)h->file_size) {
      hid_t dcpl = H5Dget_create_plist(ds);
      int nfilters = dcpl >= 0 ? H5Pget_nfilters(dcpl) : 0;
      if (dcpl >= 0) H5Pclose(dcpl);
      if (nfilters <= 0) {
        set_err(err, n, "corrupt or truncated file (dataset '%s%s' claims %.0f bytes, "
                "the file holds %lld)", slash(name), name, bytes, (long long)h->file_size);
        rc = LC_EDATA;
        goto done;
      }
    }
  }
  *ndim = rank;
  for (int d = 0; d < rank; d++) shape[d] = (int64_t)dims[d];
done:
  if (type >= 0) H5Tclose(type);
  if (space >= 0) H5Sclose(space);
  H5Dclose(ds);
  return rc;
}

int lc_h5_read(lc_h5 *h, const char *name, float *out, size_t numel, char *err, size_t n) {
  int ndim;
  int64_t shape[LC_MAXDIM];
  int rc = lc_h5_dataset_shape(h, name, &ndim, shape, err, n);
  if (rc != LC_OK) return rc;
  if (lc_shape_numel(ndim, shape) != numel) {
    set_err(err, n, "dataset '%s%s' has %zu values, the buffer %zu", slash(name), name,
            lc_shape_numel(ndim, shape), numel);
    return LC_EARG;
  }
  if (numel == 0) return LC_OK;
  hid_t ds = open_dataset(h, name, err, n);
  if (ds < 0) return LC_EDATA;
  /* HDF5 converts float64 (or any float format) to native float32 on the way. */
  if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
    char what[300];
    snprintf(what, sizeof what, "cannot read dataset '%s%s'", slash(name), name);
    rc = h5_err(err, n, LC_EDATA, what);
  } else {
    /* luacap's own files: the CRC-32C of the float32 bytes as written (x86 and ARM
     * are little-endian, so the native floats read are those bytes). */
    htri_t has = H5Aexists(ds, CRC_ATTR);
    if (has > 0) {
      uint32_t want = 0;
      hid_t a = H5Aopen(ds, CRC_ATTR, H5P_DEFAULT);
      hid_t type = H5Dget_type(ds);
      /* luacap writes float32, or float16 whose checksum is of the values read back */
      int f32 = type >= 0 && H5Tget_class(type) == H5T_FLOAT &&
                (H5Tget_size(type) == 4 || H5Tget_size(type) == 2);
      if (a < 0 || H5Aread(a, H5T_NATIVE_UINT32, &want) < 0 || !f32 ||
          lc_crc32c(out, numel * sizeof *out) != want) {
        set_err(err, n, "corrupt or truncated file (dataset '%s%s': checksum mismatch)",
                slash(name), name);
        rc = LC_EDATA;
      }
      if (a >= 0) H5Aclose(a);
      if (type >= 0) H5Tclose(type);
    } else if (has < 0) {
      set_err(err, n, "corrupt or truncated file (dataset '%s%s': unreadable attributes)",
              slash(name), name);
      rc = LC_EDATA;
    }
    H5Eclear2(H5E_DEFAULT);
  }
  H5Dclose(ds);
  return rc;
}

/* float -> nearest float16 (ties to even) -> float, on the bits: exponent range 2^-24
 * (subnormals) to 65504; larger magnitudes become infinity, NaN stays NaN. */
float lc_round_half(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  uint32_t sign = u & 0x80000000u, a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) return x;                        /* inf, NaN */
  float r;
  if (a >= 0x477ff000u) {                                /* rounds past 65504 */
    uint32_t inf = sign | 0x7f800000u;
    memcpy(&r, &inf, 4);
    return r;
  }
  int e = (int)(a >> 23) - 127;
  /* spacing of float16 values at this magnitude: 2^(e-10) normal, 2^-24 subnormal */
  int q = e < -14 ? -24 : e - 10;
  float step = ldexpf(1.0f, q), m = fabsf(x) / step;
  float k = nearbyintf(m);                               /* ties to even (default mode) */
  r = k * step;
  return sign ? -r : r;
}

int lc_h5_write(lc_h5 *h, const char *name, const float *data, int ndim,
                const int64_t *shape, int half, char *err, size_t n) {
  if (!h->writable) {
    set_err(err, n, "the file is open for reading");
    return LC_EARG;
  }
  size_t numel = lc_shape_numel(ndim, shape);
  float *rounded = NULL;
  hid_t ftype = H5T_IEEE_F32LE, f16 = -1;
  if (half) {
    rounded = malloc((numel ? numel : 1) * sizeof *rounded);
    f16 = H5Tcopy(H5T_IEEE_F32LE);
    if (!rounded || f16 < 0 || H5Tset_fields(f16, 15, 10, 5, 0, 10) < 0 ||
        H5Tset_precision(f16, 16) < 0 || H5Tset_size(f16, 2) < 0 || H5Tset_ebias(f16, 15) < 0) {
      free(rounded);
      if (f16 >= 0) H5Tclose(f16);
      return h5_err(err, n, LC_ENOMEM, "cannot make the float16 type");
    }
    for (size_t i = 0; i < numel; i++) rounded[i] = lc_round_half(data[i]);
    data = rounded;
    ftype = f16;
  }
  int rc = LC_OK;
  hsize_t dims[LC_MAXDIM];
  for (int d = 0; d < ndim; d++) dims[d] = (hsize_t)shape[d];
  hid_t space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, dims, NULL);
  hid_t ds = -1;
  char what[300];
  if (space < 0) {
    rc = h5_err(err, n, LC_ENOMEM, "cannot make a dataspace");
    goto done;
  }
  ds = H5Dcreate2(h->file, name, ftype, space, h->lcpl, H5P_DEFAULT, H5P_DEFAULT);
  if (ds < 0) {
    snprintf(what, sizeof what, "cannot create dataset '%s%s'", slash(name), name);
    rc = h5_err(err, n, LC_EARG, what);
  } else if (lc_shape_numel(ndim, shape) > 0 &&
             H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    snprintf(what, sizeof what, "cannot write dataset '%s%s'", slash(name), name);
    rc = h5_err(err, n, LC_EIO, what);
  }
  if (rc == LC_OK) {   /* the checksum readers verify (CRC_ATTR) */
    uint32_t crc = lc_crc32c(data, lc_shape_numel(ndim, shape) * sizeof *data);
    hid_t as = H5Screate(H5S_SCALAR);
    hid_t a = as >= 0 ? H5Acreate2(ds, CRC_ATTR, H5T_STD_U32LE, as, H5P_DEFAULT, H5P_DEFAULT) : -1;
    if (a < 0 || H5Awrite(a, H5T_NATIVE_UINT32, &crc) < 0) {
      snprintf(what, sizeof what, "cannot write the checksum of dataset '%s%s'", slash(name), name);
      rc = h5_err(err, n, LC_EIO, what);
    }
    if (a >= 0) H5Aclose(a);
    if (as >= 0) H5Sclose(as);
  }
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(space);
done:
  free(rounded);
  if (f16 >= 0) H5Tclose(f16);
  return rc;
}

/* ------------------------------------------------------------ listing */

typedef struct {
  lc_h5 *h;
  const char **names;
  int *kinds;
  size_t count, cap;
  int failed;
} list_state;

static herr_t list_one(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  list_state *s = data;
  (void)info;
  if (s->count == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 16;
    const char **names = scratch_alloc(s->h, cap * sizeof *names);
    int *kinds = scratch_alloc(s->h, cap * sizeof *kinds);
    if (!names || !kinds) { s->failed = 1; return -1; }
    if (s->count) {
      memcpy(names, s->names, s->count * sizeof *names);
      memcpy(kinds, s->kinds, s->count * sizeof *kinds);
    }
    s->names = names;
    s->kinds = kinds;
    s->cap = cap;
  }
  char *copy = scratch_strdup(s->h, name, strlen(name));
  if (!copy) { s->failed = 1; return -1; }
  hid_t obj = H5Oopen(g, name, H5P_DEFAULT);   /* a dangling soft link fails: "other" */
  s->kinds[s->count] = obj >= 0 ? kind_of(obj) : LC_H5_OTHER;
  if (obj >= 0) H5Oclose(obj);
  H5Eclear2(H5E_DEFAULT);
  s->names[s->count++] = copy;
  return 0;
}

int lc_h5_list(lc_h5 *h, const char *group, const char ***names, const int **kinds,
               size_t *count, char *err, size_t n) {
  scratch_reset(h);
  *count = 0;
  hid_t g = open_object(h, group);
  if (g < 0 || kind_of(g) != LC_H5_GROUP) {
    set_err(err, n, "no group '%s%s'", slash(group), group);
    if (g >= 0) H5Oclose(g);
    return LC_EDATA;
  }
  H5_index_t order = H5_INDEX_NAME;
  hid_t gcpl = H5Gget_create_plist(g);
  unsigned flags = 0;
  if (gcpl >= 0 && H5Pget_link_creation_order(gcpl, &flags) >= 0 &&
      (flags & H5P_CRT_ORDER_INDEXED))
    order = H5_INDEX_CRT_ORDER;
  if (gcpl >= 0) H5Pclose(gcpl);
  list_state s = {h, NULL, NULL, 0, 0, 0};
  hsize_t idx = 0;
  herr_t st = H5Literate(g, order, H5_ITER_INC, &idx, list_one, &s);
  H5Oclose(g);
  if (s.failed) {
    scratch_reset(h);
    set_err(err, n, "out of memory");
    return LC_ENOMEM;
  }
  if (st < 0) {
    char what[300];
    snprintf(what, sizeof what, "cannot list group '%s%s'", slash(group), group);
    return h5_err(err, n, LC_EDATA, what);
  }
  *names = s.names;
  *kinds = s.kinds;
  *count = s.count;
  return LC_OK;
}

/* ------------------------------------------------------------ attributes */

typedef struct {
  lc_h5 *h;
  lc_h5_attr *attrs;
  size_t count, cap;
  int rc;
  char *err;
  size_t n;
} attr_state;

/* Strings of one attribute, fixed-length or variable-length, into the arena. */
static int read_strings(lc_h5 *h, hid_t a, hid_t ftype, size_t count, lc_h5_attr *out) {
  const char **strs = scratch_alloc(h, count * sizeof *strs);
  size_t *lens = scratch_alloc(h, count * sizeof *lens);
  if (!strs || !lens) return LC_ENOMEM;
  out->strs = strs;
  out->lens = lens;
  if (count == 0) return LC_OK;
  int rc = LC_OK;
  hid_t mtype = H5Tcopy(H5T_C_S1);
  if (mtype < 0) return LC_ENOMEM;
  if (H5Tis_variable_str(ftype) > 0) {
    H5Tset_size(mtype, H5T_VARIABLE);
    H5Tset_cset(mtype, H5Tget_cset(ftype));
    char **buf = calloc(count, sizeof *buf);
    if (!buf) { H5Tclose(mtype); return LC_ENOMEM; }
    if (H5Aread(a, mtype, buf) < 0) {
      rc = LC_EDATA;
    } else {
      for (size_t i = 0; i < count && rc == LC_OK; i++) {
        size_t len = buf[i] ? strlen(buf[i]) : 0;
        strs[i] = scratch_strdup(h, buf[i] ? buf[i] : "", len);
        lens[i] = len;
        if (!strs[i]) rc = LC_ENOMEM;
      }
      hid_t space = H5Aget_space(a);   /* give HDF5's strings back */
      H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, buf);
      H5Sclose(space);
    }
    free(buf);
  } else {
    size_t size = H5Tget_size(ftype);
    H5T_str_t pad = H5Tget_strpad(ftype);
    H5Tset_size(mtype, size);
    H5Tset_strpad(mtype, pad);
    H5Tset_cset(mtype, H5Tget_cset(ftype));
    char *buf = malloc(count * size);
    if (!buf) { H5Tclose(mtype); return LC_ENOMEM; }
    if (H5Aread(a, mtype, buf) < 0) {
      rc = LC_EDATA;
    } else {
      for (size_t i = 0; i < count && rc == LC_OK; i++) {
        const char *s = buf + i * size;
        size_t len = 0;
        while (len < size && s[len] != '\0') len++;
        if (pad == H5T_STR_SPACEPAD)
          while (len > 0 && s[len - 1] == ' ') len--;
        strs[i] = scratch_strdup(h, s, len);
        lens[i] = len;
        if (!strs[i]) rc = LC_ENOMEM;
      }
    }
    free(buf);
  }
  H5Tclose(mtype);
  return rc;
}

static herr_t attr_one(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
  attr_state *s = data;
  (void)info;
  if (strcmp(name, CRC_ATTR) == 0) return 0;   /* ours, checked by lc_h5_read */
  if (s->count == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 8;
    lc_h5_attr *attrs = scratch_alloc(s->h, cap * sizeof *attrs);
    if (!attrs) { s->rc = LC_ENOMEM; return -1; }
    if (s->count) memcpy(attrs, s->attrs, s->count * sizeof *attrs);
    s->attrs = attrs;
    s->cap = cap;
  }
  lc_h5_attr *out = &s->attrs[s->count];
  memset(out, 0, sizeof *out);
  out->name = scratch_strdup(s->h, name, strlen(name));
  if (!out->name) { s->rc = LC_ENOMEM; return -1; }
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  hid_t type = a >= 0 ? H5Aget_type(a) : -1, space = a >= 0 ? H5Aget_space(a) : -1;
  if (a < 0 || type < 0 || space < 0) {
    char what[300];
    snprintf(what, sizeof what, "cannot open attribute '%s'", name);
    s->rc = h5_err(s->err, s->n, LC_EDATA, what);
    goto done;
  }
  H5S_class_t sc = H5Sget_simple_extent_type(space);
  hssize_t npoints = sc == H5S_NULL ? 0 : H5Sget_simple_extent_npoints(space);
  out->count = npoints > 0 ? (size_t)npoints : 0;
  out->is_array = sc != H5S_SCALAR;
  H5T_class_t cls = H5Tget_class(type);
  if (cls == H5T_STRING) {
    out->type = LC_H5_STRING;
    s->rc = read_strings(s->h, a, type, out->count, out);
  } else if (cls == H5T_INTEGER || cls == H5T_FLOAT) {
    out->type = LC_H5_NUMBER;
    double *nums = scratch_alloc(s->h, out->count * sizeof *nums);
    out->nums = nums;
    if (!nums) s->rc = LC_ENOMEM;
    else if (out->count && H5Aread(a, H5T_NATIVE_DOUBLE, nums) < 0) s->rc = LC_EDATA;
  } else {
    set_err(s->err, s->n, "attribute '%s' holds %s, expected strings or numbers", name,
            class_name(cls));
    s->rc = LC_EDATA;
    goto done;
  }
  if (s->rc == LC_ENOMEM) set_err(s->err, s->n, "out of memory");
  else if (s->rc != LC_OK) {
    char what[300];
    snprintf(what, sizeof what, "cannot read attribute '%s'", name);
    h5_err(s->err, s->n, s->rc, what);
  }
done:
  if (type >= 0) H5Tclose(type);
  if (space >= 0) H5Sclose(space);
  if (a >= 0) H5Aclose(a);
  if (s->rc != LC_OK) return -1;
  s->count++;
  return 0;
}

int lc_h5_attrs(lc_h5 *h, const char *obj, const lc_h5_attr **attrs, size_t *count,
                char *err, size_t n) {
  scratch_reset(h);
  *count = 0;
  hid_t o = open_object(h, obj);
  if (o < 0) {
    set_err(err, n, "no object '%s%s'", slash(obj), obj);
    return LC_EDATA;
  }
  /* libhdf5 (1.10) crashes in H5Aiterate2 when an attribute message fails to decode: it
   * builds a table of all the object's attributes and, on the failure, frees entries it
   * never filled (found by fuzz/h5.c; spec/fixtures/fuzz/h5-attr-crash.h5). H5Aexists on
   * a name no attribute has decodes the same messages one at a time and fails cleanly,
   * leaving them decoded in the object header's cache: it goes first. Objects with v2
   * headers (luacap's own files) fail earlier still, at the header's checksum. */
  if (H5Aexists(o, " luacap: no attribute has this name ") < 0) {
    H5Oclose(o);
    char what[300];
    snprintf(what, sizeof what, "corrupt or truncated file: the attributes of '%s%s' cannot "
             "be decoded", slash(obj), obj);
    return h5_err(err, n, LC_EDATA, what);
  }
  attr_state s = {h, NULL, 0, 0, LC_OK, err, n};
  hsize_t idx = 0;
  herr_t st = H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_one, &s);
  H5Oclose(o);
  if (s.rc != LC_OK) {
    scratch_reset(h);
    return s.rc;
  }
  if (st < 0) {
    char what[300];
    snprintf(what, sizeof what, "cannot read the attributes of '%s%s'", slash(obj), obj);
    return h5_err(err, n, LC_EDATA, what);
  }
  *attrs = s.attrs;
  *count = s.count;
  return LC_OK;
}

int lc_h5_write_attr(lc_h5 *h, const char *obj, const char *name, const char *const *strs,
                     const size_t *lens, size_t count, int is_array, char *err, size_t n) {
  if (!h->writable) {
    set_err(err, n, "the file is open for reading");
    return LC_EARG;
  }
  if (!is_array && count != 1) {
    set_err(err, n, "a scalar attribute takes one string, got %zu", count);
    return LC_EARG;
  }
  hid_t o = open_object(h, obj);
  if (o < 0) {   /* attributes for a group that holds no datasets (Keras' input_1) */
    const char *p = obj;
    while (*p == '/') p++;
    o = H5Gcreate2(h->file, p, h->lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (o < 0) {
      char what[300];
      snprintf(what, sizeof what, "cannot create group '%s%s'", slash(obj), obj);
      return h5_err(err, n, LC_EARG, what);
    }
  }
  size_t size = 1;   /* HDF5 fixed-length strings need at least one byte */
  for (size_t i = 0; i < count; i++)
    if (lens[i] > size) size = lens[i];
  char *buf = calloc(count ? count : 1, size);
  hid_t type = H5Tcopy(H5T_C_S1);
  hsize_t dims[1] = {count};
  hid_t space = is_array ? H5Screate_simple(1, dims, NULL) : H5Screate(H5S_SCALAR);
  hid_t a = -1;
  int rc = LC_OK;
  char what[300];
  if (!buf || type < 0 || space < 0) {
    set_err(err, n, "out of memory");
    rc = LC_ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < count; i++) memcpy(buf + i * size, strs[i], lens[i]);
  H5Tset_size(type, size);
  H5Tset_strpad(type, H5T_STR_NULLPAD);   /* numpy 'S' strings: padded, no terminator */
  if (H5Aexists(o, name) > 0) H5Adelete(o, name);
  a = H5Acreate2(o, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0) {
    snprintf(what, sizeof what, "cannot create attribute '%s' on '%s%s'", name, slash(obj), obj);
    rc = h5_err(err, n, LC_EIO, what);
  } else if (H5Awrite(a, type, buf) < 0) {
    snprintf(what, sizeof what, "cannot write attribute '%s' on '%s%s'", name, slash(obj), obj);
    rc = h5_err(err, n, LC_EIO, what);
  }
done:
  if (a >= 0) H5Aclose(a);
  if (space >= 0) H5Sclose(space);
  if (type >= 0) H5Tclose(type);
  free(buf);
  H5Oclose(o);
  return rc;
}
