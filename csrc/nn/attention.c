/* attention.c: the notebook's dot-product attention, forward and backward:
 *   scores = Dot(axes=[2, 2])(q, v)      (B, Tq, Tv)
 *   weights = softmax(scores) over Tv    context = weights @ v   (B, Tq, D)
 * Not scaled by 1/sqrt(D), no mask (Keras' Dot drops masks), no learned projections.
 * Shapes: q (B, Tq, D) the caption sequence, v (B, Tv, D) the image sequence.
 * qmask (B, Tq) of 1/0 or NULL: the query rows whose context anyone reads. A row with
 * mask 0 gets ctx 0 and weights 0 and passes no gradient (the seed model's decoder never
 * reads a padded step, so its logits do not change; with pre-padded prefixes that skips
 * about 29 of 35 rows). Without a mask every row is computed.
 *
 * The fast pair runs the batch rows on all threads, each row's small products (a few
 * real query rows by Tv by D) as vectorised loops: an sgemm per batch row spent more
 * time packing than multiplying, and no sgemm may run inside an OpenMP region. */
#include "../luacap.h"
#include "parallel.h"

#include <math.h>
#include <string.h>

#define PAR_MIN_WORK 32768   /* B * Tq * Tv * D below this: one thread */

#define QREAL(b, i) (!qmask || qmask[(size_t)(b) * Tq + (i)] != 0.0f)

/* In-place softmax of each of the N rows of w (N, M); subtracts the row max first. */
static void softmax_rows(float *w, int N, int M) {
  for (int r = 0; r < N; r++) {
    float *w_r = w + (size_t)r * M;
    float mx = -INFINITY;
    for (int j = 0; j < M; j++) if (w_r[j] > mx) mx = w_r[j];
    double sum = 0;
    for (int j = 0; j < M; j++) { w_r[j] = expf(w_r[j] - mx); sum += w_r[j]; }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < M; j++) w_r[j] *= inv;
  }
}

/* w = softmax(s) row-wise  =>  ds = w * (dw - sum_j dw_j w_j), in place over dw (N, M). */
static void softmax_rows_backward(float *dw, const float *w, int N, int M) {
  for (int r = 0; r < N; r++) {
    float *d_r = dw + (size_t)r * M;
    const float *w_r = w + (size_t)r * M;
    double dot = 0;
    for (int j = 0; j < M; j++) dot += (double)d_r[j] * w_r[j];
    for (int j = 0; j < M; j++) d_r[j] = w_r[j] * (d_r[j] - (float)dot);
  }
}

/* ------------------------------------------------------------------ forward */

/* dot product of two D-vectors, vectorised (float partial sums) */
static inline float dot_d(const float *restrict a, const float *restrict b, int D) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int d = 0; d < D; d++) s += a[d] * b[d];
  return s;
}

/* y (D) += alpha x (D) */
static inline void axpy_d(float *restrict y, float alpha, const float *restrict x, int D) {
#pragma omp simd
  for (int d = 0; d < D; d++) y[d] += alpha * x[d];
}

/* Batch row b of attention_forward. The per-row functions of the fast pair are built for
 * AVX2+FMA and AVX-512 too (LC_CLONES_AVX512): each row's sums run in one order on one
 * thread, so the results do not depend on the thread count. */
LC_CLONES_AVX512
static void forward_row(float *ctx, float *weights, const float *q, const float *v,
                        const float *qmask, int b, int Tq, int Tv, int D) {
  const float *v_b = v + (size_t)b * Tv * D;
  for (int i = 0; i < Tq; i++) {
    const float *q_bi = q + ((size_t)b * Tq + i) * D;
    float *w_bi = weights + ((size_t)b * Tq + i) * Tv, *ctx_bi = ctx + ((size_t)b * Tq + i) * D;
    memset(ctx_bi, 0, (size_t)D * sizeof(float));
    if (!QREAL(b, i)) { memset(w_bi, 0, (size_t)Tv * sizeof(float)); continue; }
    /* scores_i (Tv) = v_b (Tv, D) @ q_i (D) */
    for (int j = 0; j < Tv; j++) w_bi[j] = dot_d(q_bi, v_b + (size_t)j * D, D);
    softmax_rows(w_bi, 1, Tv);
    /* ctx_i (D) = sum_j w_ij v_j */
    for (int j = 0; j < Tv; j++) axpy_d(ctx_bi, w_bi[j], v_b + (size_t)j * D, D);
  }
}

/* writes ctx (B, Tq, D) and weights (B, Tq, Tv), kept for backward. */
void attention_forward(float *ctx, float *weights, const float *q, const float *v,
                       const float *qmask, int B, int Tq, int Tv, int D) {
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)B * Tq * Tv * D >= PAR_MIN_WORK)
  for (int b = 0; b < B; b++) forward_row(ctx, weights, q, v, qmask, b, Tq, Tv, D);
}

/* ------------------------------------------------------------------ decoding */

/* Decoding's weights run in blocks of four query rows: each v_j read serves four rows.
 * The block's function is built for AVX2+FMA and AVX-512 too; decoding is its only user,
 * so training's results do not depend on the machine's vector width. */
#define ROW_BLOCK 4

/* w_r (Tv) = softmax_j(q_r . v_j) for the n <= ROW_BLOCK rows r. */
LC_CLONES_AVX512
static void weights_block(float *const *w, const float *const *q, int n, const float *v,
                          int Tv, int D) {
  for (int j = 0; j < Tv; j++) {
    const float *v_j = v + (size_t)j * D;
    for (int r = 0; r < n; r++) {
      const float *q_r = q[r];
      float s = 0.0f;
      LC_SIMD_SUM(s)
      for (int d = 0; d < D; d++) s += q_r[d] * v_j[d];
      w[r][j] = s;
    }
  }
  for (int r = 0; r < n; r++) softmax_rows(w[r], 1, Tv);
}

/* weights (B, Tq, Tv) = softmax(q v^T) as attention_forward's, without the context:
 * decoding, whose decoder reads the context only as weights @ (v @ W) (seed_decode.lua). */
void attention_weights(float *weights, const float *q, const float *v, const float *qmask,
                       int B, int Tq, int Tv, int D) {
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)B * Tq * Tv * D >= PAR_MIN_WORK)
  for (int b = 0; b < B; b++) {
    float *w[ROW_BLOCK];
    const float *qr[ROW_BLOCK];
    int n = 0;
    for (int i = 0; i < Tq; i++) {   /* the real rows, ROW_BLOCK at a time */
      float *w_bi = weights + ((size_t)b * Tq + i) * Tv;
      if (!QREAL(b, i)) { memset(w_bi, 0, (size_t)Tv * sizeof(float)); continue; }
      w[n] = w_bi;
      qr[n++] = q + ((size_t)b * Tq + i) * D;
      if (n == ROW_BLOCK) { weights_block(w, qr, n, v + (size_t)b * Tv * D, Tv, D); n = 0; }
    }
    if (n > 0) weights_block(w, qr, n, v + (size_t)b * Tv * D, Tv, D);
  }
}

/* Plain-loop reference of attention_forward. */
void attention_forward_ref(float *ctx, float *weights, const float *q, const float *v,
                           const float *qmask, int B, int Tq, int Tv, int D) {
  for (int b = 0; b < B; b++)
    for (int i = 0; i < Tq; i++) {
      const float *q_bi = q + ((size_t)b * Tq + i) * D;
      float *w_bi = weights + ((size_t)b * Tq + i) * Tv;
      if (!QREAL(b, i)) {
        memset(w_bi, 0, (size_t)Tv * sizeof(float));
        memset(ctx + ((size_t)b * Tq + i) * D, 0, (size_t)D * sizeof(float));
        continue;
      }
      for (int j = 0; j < Tv; j++) {
        const float *v_bj = v + ((size_t)b * Tv + j) * D;
        double s = 0;
        for (int d = 0; d < D; d++) s += (double)q_bi[d] * v_bj[d];
        w_bi[j] = (float)s;
      }
      softmax_rows(w_bi, 1, Tv);
      float *ctx_bi = ctx + ((size_t)b * Tq + i) * D;
      for (int d = 0; d < D; d++) {
        double c = 0;
        for (int j = 0; j < Tv; j++) c += (double)w_bi[j] * v[((size_t)b * Tv + j) * D + d];
        ctx_bi[d] = (float)c;
      }
    }
}

/* ------------------------------------------------------------------ backward */

/* Batch row b of attention_backward (clones as forward_row's). */
LC_CLONES_AVX512
static void backward_row(float *dq, float *dv, float *dscores, const float *dctx,
                         const float *q, const float *v, const float *weights,
                         const float *qmask, int b, int Tq, int Tv, int D) {
  const float *v_b = v + (size_t)b * Tv * D;
  float *dv_b = dv + (size_t)b * Tv * D;
  memset(dv_b, 0, (size_t)Tv * D * sizeof(float));
  for (int i = 0; i < Tq; i++) {
    const float *w_bi = weights + ((size_t)b * Tq + i) * Tv;
    const float *dctx_bi = dctx ? dctx + ((size_t)b * Tq + i) * D : NULL;
    const float *q_bi = q + ((size_t)b * Tq + i) * D;
    float *ds_bi = dscores + ((size_t)b * Tq + i) * Tv, *dq_bi = dq + ((size_t)b * Tq + i) * D;
    memset(dq_bi, 0, (size_t)D * sizeof(float));
    if (!QREAL(b, i)) { memset(ds_bi, 0, (size_t)Tv * sizeof(float)); continue; }
    for (int j = 0; j < Tv && dctx_bi; j++) {
      const float *v_bj = v_b + (size_t)j * D;
      /* ctx_i = sum_j w_ij v_j  =>  dw_ij = dctx_i . v_j;  dv_j += w_ij dctx_i */
      ds_bi[j] = dot_d(dctx_bi, v_bj, D);
      axpy_d(dv_b + (size_t)j * D, w_bi[j], dctx_bi, D);
    }
    /* w = softmax(s)  =>  ds = w * (dw - rowsum(dw * w)) */
    softmax_rows_backward(ds_bi, w_bi, 1, Tv);
    for (int j = 0; j < Tv; j++) {
      /* s_ij = q_i . v_j  =>  dq_i += ds_ij v_j;  dv_j += ds_ij q_i */
      axpy_d(dq_bi, ds_bi[j], v_b + (size_t)j * D, D);
      axpy_d(dv_b + (size_t)j * D, ds_bi[j], q_bi, D);
    }
  }
}

/* writes dq (B, Tq, D), dv (B, Tv, D) from dctx (B, Tq, D), the inputs and the forward's
 * weights (B, Tq, Tv) (and its qmask: masked rows have zero weights, so they add nothing
 * and their dq is 0); dscores (B, Tq, Tv) is scratch. dctx NULL: dscores holds the
 * gradient of the weights on entry (the seed model's shared training multiplies the
 * weights by projected values, not by v: models/seed_shared.lua). */
void attention_backward(float *dq, float *dv, float *dscores, const float *dctx,
                        const float *q, const float *v, const float *weights,
                        const float *qmask, int B, int Tq, int Tv, int D) {
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)B * Tq * Tv * D >= PAR_MIN_WORK)
  for (int b = 0; b < B; b++)
    backward_row(dq, dv, dscores, dctx, q, v, weights, qmask, b, Tq, Tv, D);
}

/* Plain-loop reference of attention_backward (same arguments). */
void attention_backward_ref(float *dq, float *dv, float *dscores, const float *dctx,
                            const float *q, const float *v, const float *weights,
                            const float *qmask, int B, int Tq, int Tv, int D) {
  memset(dq, 0, (size_t)B * Tq * D * sizeof(float));
  memset(dv, 0, (size_t)B * Tv * D * sizeof(float));
  for (int b = 0; b < B; b++)
    for (int i = 0; i < Tq; i++) {
      const float *w_bi = weights + ((size_t)b * Tq + i) * Tv;
      const float *dctx_bi = dctx ? dctx + ((size_t)b * Tq + i) * D : NULL;
      const float *q_bi = q + ((size_t)b * Tq + i) * D;
      float *ds_bi = dscores + ((size_t)b * Tq + i) * Tv;
      float *dq_bi = dq + ((size_t)b * Tq + i) * D;
      if (!QREAL(b, i)) { memset(ds_bi, 0, (size_t)Tv * sizeof(float)); continue; }
      for (int j = 0; j < Tv && dctx_bi; j++) {
        const float *v_bj = v + ((size_t)b * Tv + j) * D;
        float *dv_bj = dv + ((size_t)b * Tv + j) * D;
        /* ctx_i = sum_j w_ij v_j  =>  dw_ij = dctx_i . v_j;  dv_j += w_ij dctx_i */
        double dw = 0;
        for (int d = 0; d < D; d++) {
          dw += (double)dctx_bi[d] * v_bj[d];
          dv_bj[d] += w_bi[j] * dctx_bi[d];
        }
        ds_bi[j] = (float)dw;
      }
      softmax_rows_backward(ds_bi, w_bi, 1, Tv);
      for (int j = 0; j < Tv; j++) {
        const float *v_bj = v + ((size_t)b * Tv + j) * D;
        float *dv_bj = dv + ((size_t)b * Tv + j) * D;
        /* s_ij = q_i . v_j  =>  dq_i += ds_ij v_j;  dv_j += ds_ij q_i */
        for (int d = 0; d < D; d++) {
          dq_bi[d] += ds_bi[j] * v_bj[d];
          dv_bj[d] += ds_bi[j] * q_bi[d];
        }
      }
    }
}
