/* additive_attention.c: one step of Show, Attend and Tell's soft attention (Xu et al. 2015,
 * eq. 4-6 and 4.2.1's gate), the additive ("Bahdanau") form, forward and backward:
 *   s_l     = w . tanh(encp_l + hp)       encp = a W_e + b_e (per region), hp = h_{t-1} W_h
 *   alpha   = softmax_l(s)                 z = sum_l alpha_l a_l
 *   beta    = sigmoid(g)                   g = h_{t-1} . w_beta + b_beta (one scalar per row)
 *   zg      = beta * z                     the context the LSTM reads
 * Not the projections: encp (once per caption) and hp, g (once per step) are products the
 * caller makes with lc_sgemm; this file is the per-row work between them. No bias inside
 * tanh's argument beyond encp's (a bias on s would cancel in the softmax).
 *
 * Shapes: B rows, L regions, A attention width, D region features.
 *   encp (B, L, A)   hp (B, A)   w (A)   feats a (B, L, D)   g (B) or NULL (beta = 1)
 *   writes alpha (B, L), z (B, D) (kept for backward), beta (B), zg (B, D)
 * backward recomputes tanh(encp + hp) instead of caching (T, B, L, A) of it: on VGG16's
 * 14x14x512 map that cache would be 450 MB for a batch of 32 captions of 35 words. */
/* The score and gradient loops over A are vectorised: tanh through vecmath.h, the score's
 * sum over A as an OpenMP simd reduction (its order differs from a serial sum by rounding
 * only), no-trapping-math so the selects become blends; built for AVX2 as well. */
#pragma GCC optimize("no-trapping-math", "vect-cost-model=dynamic")

#include "luacap.h"
#include "nn/vecmath.h"

#include <math.h>
#include <string.h>

#include "parallel.h"

/* Rows of work below which the OpenMP loop stays serial (thread start-up costs more). */
#define PAR_MIN_WORK 32768

static inline float sigmoid1(float x) { return 1.0f / (1.0f + expf(-x)); }

/* ------------------------------------------------------------------ forward */

/* One row b: scores, softmax, context, gate. */
LC_CLONES_AVX2
static void row_forward(float *zg_b, float *z_b, float *alpha_b, float *beta_b,
                        const float *encp_b, const float *hp_b, const float *a_b,
                        const float *w, const float *g_b, int L, int A, int D) {
  /* s_l = sum_a w_a tanh(encp_la + hp_a); the max is subtracted before the softmax */
  float mx = -INFINITY;
  for (int l = 0; l < L; l++) {
    const float *e_l = encp_b + (size_t)l * A;
    float s = 0.0f;
    LC_SIMD_SUM(s)
    for (int k = 0; k < A; k++) s += w[k] * tanh_vec(e_l[k] + hp_b[k]);
    alpha_b[l] = s;
    if (s > mx) mx = s;
  }
  double sum = 0.0;
  for (int l = 0; l < L; l++) { alpha_b[l] = expf(alpha_b[l] - mx); sum += alpha_b[l]; }
  float inv = (float)(1.0 / sum);
  for (int l = 0; l < L; l++) alpha_b[l] *= inv;
  /* z (D) = alpha (L) @ a (L, D) */
  memset(z_b, 0, (size_t)D * sizeof(float));
  for (int l = 0; l < L; l++) {
    const float *a_l = a_b + (size_t)l * D;
    float al = alpha_b[l];
    for (int d = 0; d < D; d++) z_b[d] += al * a_l[d];
  }
  float beta = g_b ? sigmoid1(*g_b) : 1.0f;
  *beta_b = beta;
  for (int d = 0; d < D; d++) zg_b[d] = beta * z_b[d];
}

void additive_attention_forward(float *zg, float *z, float *alpha, float *beta,
                                const float *encp, const float *hp, const float *feats,
                                const float *w, const float *g, int B, int L, int A, int D) {
#pragma omp parallel for schedule(static) if ((size_t)B * L * A >= PAR_MIN_WORK)
  for (int b = 0; b < B; b++)
    row_forward(zg + (size_t)b * D, z + (size_t)b * D, alpha + (size_t)b * L, beta + b,
                encp + (size_t)b * L * A, hp + (size_t)b * A, feats + (size_t)b * L * D, w,
                g ? g + b : NULL, L, A, D);
}

/* Plain reference: the same equations, sums in double, no threads. */
void additive_attention_forward_ref(float *zg, float *z, float *alpha, float *beta,
                                    const float *encp, const float *hp, const float *feats,
                                    const float *w, const float *g, int B, int L, int A, int D) {
  for (int b = 0; b < B; b++) {
    float *alpha_b = alpha + (size_t)b * L;
    double s[L > 0 ? L : 1], mx = -INFINITY, sum = 0.0;
    for (int l = 0; l < L; l++) {
      double acc = 0.0;
      for (int k = 0; k < A; k++)
        acc += (double)w[k] * tanh((double)encp[((size_t)b * L + l) * A + k] + hp[(size_t)b * A + k]);
      s[l] = acc;
      if (acc > mx) mx = acc;
    }
    for (int l = 0; l < L; l++) { s[l] = exp(s[l] - mx); sum += s[l]; }
    for (int l = 0; l < L; l++) alpha_b[l] = (float)(s[l] / sum);
    double beta_b = g ? 1.0 / (1.0 + exp(-(double)g[b])) : 1.0;
    beta[b] = (float)beta_b;
    for (int d = 0; d < D; d++) {
      double acc = 0.0;
      for (int l = 0; l < L; l++) acc += (double)alpha_b[l] * feats[((size_t)b * L + l) * D + d];
      z[(size_t)b * D + d] = (float)acc;
      zg[(size_t)b * D + d] = (float)(beta_b * acc);
    }
  }
}

/* ------------------------------------------------------------------ backward */

/* One row b. ds_b (L) and dw_b (A) are this row's scratch; dw_b is written. */
LC_CLONES_AVX2
static void row_backward(float *dencp_b, float *dhp_b, float *da_b, float *dw_b, float *dg_b,
                         float *ds_b, const float *dzg_b, const float *dalpha_b,
                         const float *z_b, const float *alpha_b, float beta,
                         const float *encp_b, const float *hp_b, const float *a_b,
                         const float *w, int L, int A, int D) {
  /* zg = beta * z  =>  dbeta = dzg . z,  dz = beta * dzg;  beta = sigmoid(g)  =>
   * dg = dbeta * beta * (1 - beta) */
  if (dg_b) {
    float dbeta = 0.0f;
    for (int d = 0; d < D; d++) dbeta += dzg_b[d] * z_b[d];
    *dg_b = dbeta * beta * (1.0f - beta);
  }
  /* z = sum_l alpha_l a_l  =>  dalpha_l = dz . a_l (+ the caller's own dalpha),
   * da_l += alpha_l dz */
  double dot = 0.0;
  for (int l = 0; l < L; l++) {
    const float *a_l = a_b + (size_t)l * D;
    float *da_l = da_b + (size_t)l * D;
    float al = alpha_b[l], dal = 0.0f;
    LC_SIMD_SUM(dal)
    for (int d = 0; d < D; d++) {
      float dz_d = beta * dzg_b[d];
      dal += dz_d * a_l[d];
      da_l[d] += al * dz_d;
    }
    if (dalpha_b) dal += dalpha_b[l];
    ds_b[l] = dal;
    dot += (double)dal * al;
  }
  /* alpha = softmax(s)  =>  ds_l = alpha_l (dalpha_l - sum_k alpha_k dalpha_k) */
  for (int l = 0; l < L; l++) ds_b[l] = alpha_b[l] * (ds_b[l] - (float)dot);
  /* s_l = sum_k w_k u_lk, u = tanh(encp_l + hp)  =>  dw_k += ds_l u_lk,
   * dpre_lk = ds_l w_k (1 - u_lk^2) into dencp_lk and dhp_k */
  memset(dhp_b, 0, (size_t)A * sizeof(float));
  memset(dw_b, 0, (size_t)A * sizeof(float));
  for (int l = 0; l < L; l++) {
    const float *e_l = encp_b + (size_t)l * A;
    float *de_l = dencp_b + (size_t)l * A;
    float dsl = ds_b[l];
    for (int k = 0; k < A; k++) {
      float u = tanh_vec(e_l[k] + hp_b[k]);
      float dpre = dsl * w[k] * (1.0f - u * u);
      de_l[k] += dpre;
      dhp_b[k] += dpre;
      dw_b[k] += dsl * u;
    }
  }
}

/* Gradients of one step, from dzg (B, D) and an optional dalpha (B, L) of the caller's
 * own use of alpha (the doubly stochastic penalty), or NULL.
 * ADDS into dencp (B, L, A), dfeats (B, L, D), dw (A); WRITES dhp (B, A) and dg (B)
 * (unless g was NULL: pass dg NULL then). work (B, L + A) is scratch. */
void additive_attention_backward(float *dencp, float *dhp, float *dfeats, float *dw, float *dg,
                                 float *work, const float *dzg, const float *dalpha,
                                 const float *z, const float *alpha, const float *beta,
                                 const float *encp, const float *hp, const float *feats,
                                 const float *w, int B, int L, int A, int D) {
  size_t WS = (size_t)L + A;
#pragma omp parallel for schedule(static) if ((size_t)B * L * A >= PAR_MIN_WORK)
  for (int b = 0; b < B; b++) {
    float *ws_b = work + (size_t)b * WS;
    row_backward(dencp + (size_t)b * L * A, dhp + (size_t)b * A, dfeats + (size_t)b * L * D,
                 ws_b + L, dg ? dg + b : NULL, ws_b, dzg + (size_t)b * D,
                 dalpha ? dalpha + (size_t)b * L : NULL, z + (size_t)b * D, alpha + (size_t)b * L,
                 beta[b], encp + (size_t)b * L * A, hp + (size_t)b * A, feats + (size_t)b * L * D,
                 w, L, A, D);
  }
  /* dw (A) += the rows' parts, summed outside the parallel loop (no shared writes) */
  for (int b = 0; b < B; b++) {
    const float *dw_b = work + (size_t)b * WS + L;
    for (int k = 0; k < A; k++) dw[k] += dw_b[k];
  }
}

/* Plain reference of additive_attention_backward (same arguments; work unused), sums in
 * double, every line a direct transcription of the forward's chain rule. */
void additive_attention_backward_ref(float *dencp, float *dhp, float *dfeats, float *dw,
                                     float *dg, float *work, const float *dzg,
                                     const float *dalpha, const float *z, const float *alpha,
                                     const float *beta, const float *encp, const float *hp,
                                     const float *feats, const float *w, int B, int L, int A,
                                     int D) {
  (void)work;
  for (int b = 0; b < B; b++) {
    const float *alpha_b = alpha + (size_t)b * L;
    double bb = beta[b], dbeta = 0.0, dal[L > 0 ? L : 1], dot = 0.0;
    for (int d = 0; d < D; d++) dbeta += (double)dzg[(size_t)b * D + d] * z[(size_t)b * D + d];
    if (dg) dg[b] = (float)(dbeta * bb * (1.0 - bb));
    for (int l = 0; l < L; l++) {
      double acc = dalpha ? dalpha[(size_t)b * L + l] : 0.0;
      for (int d = 0; d < D; d++) {
        double dz_d = bb * dzg[(size_t)b * D + d];
        acc += dz_d * feats[((size_t)b * L + l) * D + d];
        dfeats[((size_t)b * L + l) * D + d] += (float)(alpha_b[l] * dz_d);
      }
      dal[l] = acc;
      dot += acc * alpha_b[l];
    }
    for (int k = 0; k < A; k++) {
      double dh = 0.0;
      for (int l = 0; l < L; l++) {
        double ds = alpha_b[l] * (dal[l] - dot);
        double u = tanh((double)encp[((size_t)b * L + l) * A + k] + hp[(size_t)b * A + k]);
        double dpre = ds * w[k] * (1.0 - u * u);
        dencp[((size_t)b * L + l) * A + k] += (float)dpre;
        dh += dpre;
        dw[k] += (float)(ds * u);
      }
      dhp[(size_t)b * A + k] = (float)dh;
    }
  }
}
