/* attention.c: the notebook's dot-product attention, forward and backward:
 *   scores = Dot(axes=[2, 2])(q, v)      (B, Tq, Tv)
 *   weights = softmax(scores) over Tv    context = weights @ v   (B, Tq, D)
 * Not scaled by 1/sqrt(D), no mask (Keras' Dot drops masks), no learned projections.
 * Shapes: q (B, Tq, D) the caption sequence, v (B, Tv, D) the image sequence. */
#include "../luacap.h"

#include <math.h>
#include <string.h>

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

/* writes ctx (B, Tq, D) and weights (B, Tq, Tv), kept for backward. */
void attention_forward(float *ctx, float *weights, const float *q, const float *v,
                       int B, int Tq, int Tv, int D) {
  for (int b = 0; b < B; b++) {
    const float *q_b = q + (size_t)b * Tq * D, *v_b = v + (size_t)b * Tv * D;
    float *w_b = weights + (size_t)b * Tq * Tv, *ctx_b = ctx + (size_t)b * Tq * D;
    /* scores_b (Tq, Tv) = q_b (Tq, D) @ v_b^T (D, Tv) */
    lc_sgemm(0, 1, Tq, Tv, D, 1.0f, q_b, v_b, 0.0f, w_b);
    softmax_rows(w_b, Tq, Tv);
    /* ctx_b (Tq, D) = w_b (Tq, Tv) @ v_b (Tv, D) */
    lc_sgemm(0, 0, Tq, D, Tv, 1.0f, w_b, v_b, 0.0f, ctx_b);
  }
}

/* Plain-loop reference of attention_forward. */
void attention_forward_ref(float *ctx, float *weights, const float *q, const float *v,
                           int B, int Tq, int Tv, int D) {
  for (int b = 0; b < B; b++)
    for (int i = 0; i < Tq; i++) {
      const float *q_bi = q + ((size_t)b * Tq + i) * D;
      float *w_bi = weights + ((size_t)b * Tq + i) * Tv;
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

/* writes dq (B, Tq, D), dv (B, Tv, D) from dctx (B, Tq, D), the inputs and the forward's
 * weights (B, Tq, Tv); dscores (B, Tq, Tv) is scratch. */
void attention_backward(float *dq, float *dv, float *dscores, const float *dctx,
                        const float *q, const float *v, const float *weights,
                        int B, int Tq, int Tv, int D) {
  for (int b = 0; b < B; b++) {
    const float *q_b = q + (size_t)b * Tq * D, *v_b = v + (size_t)b * Tv * D;
    const float *w_b = weights + (size_t)b * Tq * Tv, *dctx_b = dctx + (size_t)b * Tq * D;
    float *ds_b = dscores + (size_t)b * Tq * Tv;
    float *dq_b = dq + (size_t)b * Tq * D, *dv_b = dv + (size_t)b * Tv * D;
    /* ctx = w @ v  =>  dw (Tq, Tv) = dctx (Tq, D) @ v^T (D, Tv) */
    lc_sgemm(0, 1, Tq, Tv, D, 1.0f, dctx_b, v_b, 0.0f, ds_b);
    /*              dv (Tv, D) = w^T (Tv, Tq) @ dctx (Tq, D) */
    lc_sgemm(1, 0, Tv, D, Tq, 1.0f, w_b, dctx_b, 0.0f, dv_b);
    /* w = softmax(s)  =>  ds = w * (dw - rowsum(dw * w)) */
    softmax_rows_backward(ds_b, w_b, Tq, Tv);
    /* s = q @ v^T  =>  dq (Tq, D) = ds (Tq, Tv) @ v (Tv, D) */
    lc_sgemm(0, 0, Tq, D, Tv, 1.0f, ds_b, v_b, 0.0f, dq_b);
    /*                dv (Tv, D) += ds^T (Tv, Tq) @ q (Tq, D) */
    lc_sgemm(1, 0, Tv, D, Tq, 1.0f, ds_b, q_b, 1.0f, dv_b);
  }
}

/* Plain-loop reference of attention_backward (same arguments). */
void attention_backward_ref(float *dq, float *dv, float *dscores, const float *dctx,
                            const float *q, const float *v, const float *weights,
                            int B, int Tq, int Tv, int D) {
  memset(dq, 0, (size_t)B * Tq * D * sizeof(float));
  memset(dv, 0, (size_t)B * Tv * D * sizeof(float));
  for (int b = 0; b < B; b++)
    for (int i = 0; i < Tq; i++) {
      const float *w_bi = weights + ((size_t)b * Tq + i) * Tv;
      const float *dctx_bi = dctx + ((size_t)b * Tq + i) * D;
      const float *q_bi = q + ((size_t)b * Tq + i) * D;
      float *ds_bi = dscores + ((size_t)b * Tq + i) * Tv;
      float *dq_bi = dq + ((size_t)b * Tq + i) * D;
      for (int j = 0; j < Tv; j++) {
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
