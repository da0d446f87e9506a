/* tensor.c: refcounted float storage for lc_tensor.
 * Not a tensor library: shapes, views and checks live in the binding (bind/tensor.c).
 * Storage is 64-byte aligned so vector loads and OpenBLAS see aligned rows. */
#include "luacap.h"

#include <stdlib.h>
#include <string.h>

#define LC_ALIGN 64

lc_storage *lc_storage_new(size_t n) {
  lc_storage *s = malloc(sizeof *s);
  if (!s) return NULL;
  size_t bytes = n * sizeof(float);
  if (bytes == 0) bytes = LC_ALIGN;   /* a valid pointer even for an empty tensor */
  void *p = NULL;
  if (posix_memalign(&p, LC_ALIGN, bytes) != 0) { free(s); return NULL; }
  s->data = p;
  memset(s->data, 0, bytes);
  s->n = n;
  s->refcount = 1;
  return s;
}

/* One thread's memset stops short of the memory's bandwidth: from 256 K floats (1 MiB) on,
 * spans of 64 K floats go to the threads (the seed model's gradients: 2.9 -> 2.0 ms). */
#define ZERO_PAR_MIN ((size_t)1 << 18)
#define ZERO_SPAN ((size_t)1 << 16)

void lc_zero(float *x, size_t n) {
  if (n < ZERO_PAR_MIN) { memset(x, 0, n * sizeof(float)); return; }
  long long spans = (long long)((n + ZERO_SPAN - 1) / ZERO_SPAN);
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (long long s = 0; s < spans; s++) {
    size_t i = (size_t)s * ZERO_SPAN, len = n - i < ZERO_SPAN ? n - i : ZERO_SPAN;
    memset(x + i, 0, len * sizeof(float));
  }
}

/* y (n) += a * x (n), in spans on the threads as lc_zero's (each element on one thread:
 * the same bits at any thread count). Backward's sums of two gradients (the seed model's
 * attention query and concatenation, a BiLSTM's two directions). */
void lc_axpy(float *y, float a, const float *x, size_t n) {
  if (n < ZERO_PAR_MIN) {
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
    return;
  }
  long long spans = (long long)((n + ZERO_SPAN - 1) / ZERO_SPAN);
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (long long s = 0; s < spans; s++) {
    size_t i0 = (size_t)s * ZERO_SPAN, i1 = n - i0 < ZERO_SPAN ? n : i0 + ZERO_SPAN;
    for (size_t i = i0; i < i1; i++) y[i] += a * x[i];
  }
}

/* Rows by index (rows 0-based, in range: the binding checks them). Copies of whole rows
 * on the threads from ZERO_PAR_MIN floats; a scatter splits the columns instead, so that
 * a repeated row is written by one thread in order (the later wins, or the sums add in
 * order: the same bits at any thread count). Shared training moves its compact blocks of
 * real rows this way (models/seed_shared.lua). */
void lc_gather_rows(float *dst, const float *src, const int *rows, size_t n, size_t row) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n * row >= ZERO_PAR_MIN)
#endif
  for (long long i = 0; i < (long long)n; i++)
    memcpy(dst + (size_t)i * row, src + (size_t)rows[i] * row, row * sizeof(float));
}

/* Column blocks of a scatter: 64 floats, four cache lines. */
#define COL_BLOCK 64

static inline void add_span(float *restrict d, const float *restrict s, size_t n) {
  for (size_t j = 0; j < n; j++) d[j] += s[j];
}

void lc_scatter_rows(float *dst, const float *src, const int *rows, size_t n, size_t row,
                     int add) {
  long long nb = (long long)((row + COL_BLOCK - 1) / COL_BLOCK);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n * row >= ZERO_PAR_MIN)
#endif
  for (long long jb = 0; jb < nb; jb++) {
    size_t j0 = (size_t)jb * COL_BLOCK, j1 = j0 + COL_BLOCK < row ? j0 + COL_BLOCK : row;
    for (size_t i = 0; i < n; i++) {
      float *d = dst + (size_t)rows[i] * row;
      const float *s_i = src + i * row;
      if (add) add_span(d + j0, s_i + j0, j1 - j0);   /* src and dst never overlap */
      else memcpy(d + j0, s_i + j0, (j1 - j0) * sizeof(float));
    }
  }
}

/* The best value stays in a register and the branch is rarely taken: the former loop's
 * reload of x[best] made greedy decoding's argmax over (64, 8485) logits cost 2 ms. */
void lc_argmax(float *out, const float *x, size_t outer, size_t len, size_t inner) {
  long long rows = (long long)(outer * inner);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (outer * len * inner >= ZERO_PAR_MIN)
#endif
  for (long long r = 0; r < rows; r++) {
    size_t o = (size_t)r / inner, in = (size_t)r % inner;
    const float *x_r = x + o * len * inner + in;
    float bv = x_r[0];
    size_t best = 0;
    for (size_t k = 1; k < len; k++)
      if (x_r[k * inner] > bv) { bv = x_r[k * inner]; best = k; }
    out[r] = (float)(best + 1);
  }
}

void lc_storage_retain(lc_storage *s) { s->refcount++; }

void lc_storage_release(lc_storage *s) {
  if (!s) return;
  if (--s->refcount == 0) {
    free(s->data);
    free(s);
  }
}

size_t lc_shape_numel(int ndim, const int64_t *shape) {
  size_t n = 1;
  for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
  return n;
}

size_t lc_numel(const lc_tensor *t) { return lc_shape_numel(t->ndim, t->shape); }

/* The run-time allocation limits (luacap.h); luacap.set_limits changes them. */
lc_limits_t lc_limits = {(int64_t)1 << 28, (int64_t)1 << 34};
