/* luacap.h: the tensor struct and every kernel's prototype, grouped by family.
 * Tier 1 of luacap: plain C99, never includes lua.h, never prints or exits.
 * Kernels return 0 (LC_OK) or a negative code; messages go into a caller's buffer.
 *
 * Shape vocabulary, used in every comment below:
 *   B batch, T time steps, C in-features / channels, H hidden units, V vocabulary,
 *   D model width, OC out-channels, K kernel size, IH/IW input height/width,
 *   OH/OW output height/width, N rows of a matrix, M columns.
 */
#ifndef LUACAP_H
#define LUACAP_H

#include <stddef.h>
#include <stdint.h>

#define LC_MAXDIM 4
#define LC_OK 0
#define LC_ENOMEM (-1)
#define LC_EDATA (-2)   /* bad input data: corrupt file, malformed record */
#define LC_EIO (-3)     /* the file system said no */
#define LC_EARG (-4)    /* a value out of range that the binding could not see */

/* ---------------------------------------------------------------- tensor.c */
/* Refcounted, 64-byte-aligned float storage outside the Lua heap. */
typedef struct lc_storage {
  float *data;      /* (n) */
  size_t n;         /* number of floats */
  int refcount;
} lc_storage;

/* A contiguous row-major float32 view of up to 4 dims. data points into storage. */
typedef struct lc_tensor {
  float *data;
  int ndim;                    /* 0 only for a freed tensor */
  int64_t shape[LC_MAXDIM];
  lc_storage *storage;         /* NULL once freed */
} lc_tensor;

lc_storage *lc_storage_new(size_t n);          /* zero-filled; NULL when out of memory */
void lc_storage_retain(lc_storage *s);
void lc_storage_release(lc_storage *s);        /* frees at refcount 0 */
size_t lc_numel(const lc_tensor *t);
size_t lc_shape_numel(int ndim, const int64_t *shape);

/* ---------------------------------------------------------------- rng.c */
/* The one seedable generator (xoshiro256**, seeded by splitmix64). Same seed,
 * same stream on every machine. */
void lc_rng_seed(uint64_t seed);
uint64_t lc_rng_u64(void);
double lc_rng_uniform(void);                   /* [0, 1) with 53 random bits */
double lc_rng_normal(void);                    /* N(0, 1), Box-Muller */
uint64_t lc_rng_below(uint64_t n);             /* uniform integer in [0, n), unbiased */
void lc_rng_fill_uniform(float *out, size_t n, float lo, float hi);
void lc_rng_fill_normal(float *out, size_t n, float mean, float std);

/* ---------------------------------------------------------------- blas.c */
/* Row-major sgemm: C (M,N) = alpha * op(A) (M,K) @ op(B) (K,N) + beta * C.
 * ta / tb nonzero mean A / B are stored transposed, (K,M) / (N,K). */
void lc_sgemm(int ta, int tb, int M, int N, int K, float alpha,
              const float *A, const float *B, float beta, float *C);
void lc_set_threads(int n);                    /* OpenBLAS and OpenMP together */
int lc_get_threads(void);

/* ---------------------------------------------------------------- image/ */
/* (image codecs: jpeg.c, png.c, resize.c, preprocess.c) */

/* ---------------------------------------------------------------- io/ */
/* (hdf5 named tensors: h5.c) */

/* ---------------------------------------------------------------- nn/: dense, conv2d, pool */

/* ---------------------------------------------------------------- nn/: lstm, attention */

/* ---------------------------------------------------------------- nn/: embedding, dropout, xent, adam */

/* ---------------------------------------------------------------- text/ */
/* (bleu) */

/* ---------------------------------------------------------------- report/ (cairo drawing) */

#endif
