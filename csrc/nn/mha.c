/* mha.c: the core of multi-head scaled dot-product attention ("Attention Is All You Need",
 * section 3.2), after the query/key/value projections and before the output projection
 * (those are Dense layers on the Lua side, nn/MultiHeadAttention.lua):
 *   per head h (columns h*DH .. h*DH+DH-1 of D, DH = D / NH):
 *     scores = q_h k_h^T / sqrt(DH)                           (Tq, Tk)
 *     masked scores = -inf (key padding: key_mask 0; causal: key j > query i)
 *     probs = softmax over Tk (max subtracted); a row with every key masked is all zeros
 *     ctx_h = probs @ v_h                                     (Tq, DH)
 * Not the projections, not dropout on the weights.
 * Shapes: q (B, Tq, D), k, v (B, Tk, D), key_mask (B, Tk) 1/0 or NULL, ctx (B, Tq, D),
 * probs (B, NH, Tq, Tk) kept for backward. NH heads, DH = D / NH columns each.
 * Heads are copied to contiguous (T, DH) blocks so that lc_sgemm sees plain matrices. */
#include "../luacap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* dst (T, DH) = columns off .. off+DH-1 of src (T, D). */
static void head_gather(float *dst, const float *src, int T, int D, int off, int DH) {
  for (int t = 0; t < T; t++)
    memcpy(dst + (size_t)t * DH, src + (size_t)t * D + off, (size_t)DH * sizeof(float));
}

/* columns off .. off+DH-1 of dst (T, D) = src (T, DH). */
static void head_scatter(float *dst, const float *src, int T, int D, int off, int DH) {
  for (int t = 0; t < T; t++)
    memcpy(dst + (size_t)t * D + off, src + (size_t)t * DH, (size_t)DH * sizeof(float));
}

/* May query i look at key j? key_mask_b (Tk) or NULL; causal: only j <= i. */
static int visible(const float *key_mask_b, int causal, int i, int j) {
  if (key_mask_b && key_mask_b[j] == 0.0f) return 0;
  return !causal || j <= i;
}

/* In place over s (Tq, Tk): masked entries -> -inf, then a softmax per row with the max
 * subtracted. A row with nothing visible has max -inf, and exp(-inf - -inf) would be NaN:
 * such a row is defined as all zeros (its query reads nothing, its context is 0). */
static void masked_softmax(float *s, const float *key_mask_b, int causal, int Tq, int Tk) {
  for (int i = 0; i < Tq; i++) {
    float *s_i = s + (size_t)i * Tk;
    float mx = -INFINITY;
    for (int j = 0; j < Tk; j++) {
      if (!visible(key_mask_b, causal, i, j)) s_i[j] = -INFINITY;
      if (s_i[j] > mx) mx = s_i[j];
    }
    if (mx == -INFINITY) {
      for (int j = 0; j < Tk; j++) s_i[j] = 0.0f;
      continue;
    }
    double sum = 0;
    for (int j = 0; j < Tk; j++) {
      s_i[j] = s_i[j] == -INFINITY ? 0.0f : expf(s_i[j] - mx);
      sum += s_i[j];
    }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < Tk; j++) s_i[j] *= inv;
  }
}

/* ------------------------------------------------------------------ forward */

/* writes ctx (B, Tq, D) and probs (B, NH, Tq, Tk). causal needs Tq == Tk (the binding
 * checks). Returns LC_OK, or LC_ENOMEM when the per-head workspace cannot be allocated. */
int mha_forward(float *ctx, float *probs, const float *q, const float *k, const float *v,
                const float *key_mask, int B, int Tq, int Tk, int D, int NH, int causal) {
  int DH = D / NH;
  size_t nq = (size_t)Tq * DH, nk = (size_t)Tk * DH;
  float *work = malloc((2 * nq + 2 * nk + 1) * sizeof(float));
  if (!work) return LC_ENOMEM;
  float *qh = work, *kh = qh + nq, *vh = kh + nk, *ch = vh + nk;   /* (Tq|Tk, DH) */
  float scale = (float)(1.0 / sqrt((double)DH));
  for (int b = 0; b < B; b++) {
    const float *q_b = q + (size_t)b * Tq * D;
    const float *k_b = k + (size_t)b * Tk * D, *v_b = v + (size_t)b * Tk * D;
    const float *km_b = key_mask ? key_mask + (size_t)b * Tk : NULL;
    float *ctx_b = ctx + (size_t)b * Tq * D;
    for (int h = 0; h < NH; h++) {
      float *p_bh = probs + ((size_t)b * NH + h) * Tq * Tk;
      head_gather(qh, q_b, Tq, D, h * DH, DH);
      head_gather(kh, k_b, Tk, D, h * DH, DH);
      head_gather(vh, v_b, Tk, D, h * DH, DH);
      /* scores (Tq, Tk) = qh (Tq, DH) @ kh^T (DH, Tk) / sqrt(DH) */
      lc_sgemm(0, 1, Tq, Tk, DH, scale, qh, kh, 0.0f, p_bh);
      masked_softmax(p_bh, km_b, causal, Tq, Tk);
      /* ch (Tq, DH) = probs (Tq, Tk) @ vh (Tk, DH) */
      lc_sgemm(0, 0, Tq, DH, Tk, 1.0f, p_bh, vh, 0.0f, ch);
      head_scatter(ctx_b, ch, Tq, D, h * DH, DH);
    }
  }
  free(work);
  return LC_OK;
}

/* Plain-loop reference of mha_forward (same arguments, no workspace), sums in double. */
void mha_forward_ref(float *ctx, float *probs, const float *q, const float *k, const float *v,
                     const float *key_mask, int B, int Tq, int Tk, int D, int NH, int causal) {
  int DH = D / NH;
  double scale = 1.0 / sqrt((double)DH);
  for (int b = 0; b < B; b++) {
    const float *km_b = key_mask ? key_mask + (size_t)b * Tk : NULL;
    for (int h = 0; h < NH; h++)
      for (int i = 0; i < Tq; i++) {
        const float *q_bi = q + ((size_t)b * Tq + i) * D + (size_t)h * DH;
        float *p_bhi = probs + (((size_t)b * NH + h) * Tq + i) * Tk;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < Tk; j++) {
          const float *k_bj = k + ((size_t)b * Tk + j) * D + (size_t)h * DH;
          double s = 0;
          for (int d = 0; d < DH; d++) s += (double)q_bi[d] * k_bj[d];
          p_bhi[j] = visible(km_b, causal, i, j) ? (float)(s * scale) : -INFINITY;
          if (p_bhi[j] > mx) mx = p_bhi[j];
        }
        for (int j = 0; j < Tk; j++) {
          p_bhi[j] = p_bhi[j] == -INFINITY ? 0.0f : (float)exp(p_bhi[j] - mx);
          sum += p_bhi[j];
        }
        /* nothing visible: sum 0, the row stays zeros */
        for (int j = 0; j < Tk; j++) p_bhi[j] = sum > 0 ? (float)(p_bhi[j] / sum) : 0.0f;
        float *ctx_bi = ctx + ((size_t)b * Tq + i) * D + (size_t)h * DH;
        for (int d = 0; d < DH; d++) {
          double c = 0;
          for (int j = 0; j < Tk; j++)
            c += (double)p_bhi[j] * v[((size_t)b * Tk + j) * D + (size_t)h * DH + d];
          ctx_bi[d] = (float)c;
        }
      }
  }
}

/* ------------------------------------------------------------------ backward */

/* writes dq (B, Tq, D), dk, dv (B, Tk, D) from dctx (B, Tq, D), the inputs and forward's
 * probs (B, NH, Tq, Tk). Masked keys have probs 0, so they get no gradient, and a fully
 * masked row (all zeros) passes none back. LC_OK or LC_ENOMEM. */
int mha_backward(float *dq, float *dk, float *dv, const float *dctx, const float *probs,
                 const float *q, const float *k, const float *v,
                 int B, int Tq, int Tk, int D, int NH) {
  int DH = D / NH;
  size_t nq = (size_t)Tq * DH, nk = (size_t)Tk * DH, ns = (size_t)Tq * Tk;
  float *work = malloc((3 * nq + 4 * nk + ns + 1) * sizeof(float));
  if (!work) return LC_ENOMEM;
  float *qh = work, *kh = qh + nq, *vh = kh + nk, *dch = vh + nk;
  float *dqh = dch + nq, *dkh = dqh + nq, *dvh = dkh + nk, *ds = dvh + nk;
  float scale = (float)(1.0 / sqrt((double)DH));
  for (int b = 0; b < B; b++) {
    const float *q_b = q + (size_t)b * Tq * D, *dctx_b = dctx + (size_t)b * Tq * D;
    const float *k_b = k + (size_t)b * Tk * D, *v_b = v + (size_t)b * Tk * D;
    float *dq_b = dq + (size_t)b * Tq * D;
    float *dk_b = dk + (size_t)b * Tk * D, *dv_b = dv + (size_t)b * Tk * D;
    for (int h = 0; h < NH; h++) {
      const float *p_bh = probs + ((size_t)b * NH + h) * Tq * Tk;
      head_gather(qh, q_b, Tq, D, h * DH, DH);
      head_gather(kh, k_b, Tk, D, h * DH, DH);
      head_gather(vh, v_b, Tk, D, h * DH, DH);
      head_gather(dch, dctx_b, Tq, D, h * DH, DH);
      /* ch = p @ vh  =>  dp (Tq, Tk) = dch (Tq, DH) @ vh^T (DH, Tk) */
      lc_sgemm(0, 1, Tq, Tk, DH, 1.0f, dch, vh, 0.0f, ds);
      /*                  dvh (Tk, DH) = p^T (Tk, Tq) @ dch (Tq, DH) */
      lc_sgemm(1, 0, Tk, DH, Tq, 1.0f, p_bh, dch, 0.0f, dvh);
      /* p = softmax(s)  =>  ds = p * (dp - sum_j dp_j p_j), row by row */
      for (int i = 0; i < Tq; i++) {
        float *ds_i = ds + (size_t)i * Tk;
        const float *p_i = p_bh + (size_t)i * Tk;
        double dot = 0;
        for (int j = 0; j < Tk; j++) dot += (double)ds_i[j] * p_i[j];
        for (int j = 0; j < Tk; j++) ds_i[j] = p_i[j] * (ds_i[j] - (float)dot);
      }
      /* s = qh kh^T / sqrt(DH)  =>  dqh (Tq, DH) = ds (Tq, Tk) @ kh (Tk, DH) / sqrt(DH) */
      lc_sgemm(0, 0, Tq, DH, Tk, scale, ds, kh, 0.0f, dqh);
      /*                             dkh (Tk, DH) = ds^T (Tk, Tq) @ qh (Tq, DH) / sqrt(DH) */
      lc_sgemm(1, 0, Tk, DH, Tq, scale, ds, qh, 0.0f, dkh);
      head_scatter(dq_b, dqh, Tq, D, h * DH, DH);
      head_scatter(dk_b, dkh, Tk, D, h * DH, DH);
      head_scatter(dv_b, dvh, Tk, D, h * DH, DH);
    }
  }
  free(work);
  return LC_OK;
}
