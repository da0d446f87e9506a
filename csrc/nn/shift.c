/* shift.c: shifted row gathers for prefix sharing (models/seed.lua's --share-image-branch)
 * and the time shifts of its incremental decoding.
 * Pre-padded prefixes of one caption hold the same tokens, right-aligned: the prefix of k
 * tokens of a caption whose longest prefix in the batch (its representative) has L tokens
 * sits L - k steps later than the representative's first k. So a value computed per step
 * of the representative (its embedded tokens, its forward-LSTM states) is the prefix's,
 * shifted by s = L - k steps. Not a general strided copy: time is dim 2 of (N, T, W).
 * Shapes: src (R, T, W) one sequence per representative; out (B, T, W) one per pair;
 * rep (B) 0-based representative of each pair, shift (B) >= 0 its steps of delay. */
#include "../luacap.h"

#include <string.h>

#define PAR_MIN_WORK 32768

/* out[b, t] = src[rep[b], t - shift[b]] when t >= shift[b], else 0. */
void shift_gather(float *out, const float *src, const int *rep, const int *shift,
                  int B, int T, int W) {
#pragma omp parallel for schedule(static) if ((size_t)B * T * W >= PAR_MIN_WORK)
  for (int b = 0; b < B; b++) {
    int s = shift[b];
    float *out_b = out + (size_t)b * T * W;
    const float *src_r = src + (size_t)rep[b] * T * W;
    int z = s < T ? s : T;
    memset(out_b, 0, (size_t)z * W * sizeof(float));
    if (s < T) memcpy(out_b + (size_t)s * W, src_r, (size_t)(T - s) * W * sizeof(float));
  }
}

/* Its gradient: dsrc[rep[b], t - shift[b]] += dout[b, t] for t >= shift[b] (ADDS into
 * dsrc (R, T, W)). Threads split the W columns, so pairs of one representative never
 * race and each element is summed in pair order whatever the thread count. */
void shift_scatter_add(float *dsrc, const float *dout, const int *rep, const int *shift,
                       int B, int T, int W) {
  int nb = (W + 31) / 32;
#pragma omp parallel for schedule(static) if ((size_t)B * T * W >= PAR_MIN_WORK)
  for (int jb = 0; jb < nb; jb++) {
    int j0 = jb * 32, j1 = j0 + 32 < W ? j0 + 32 : W;
    for (int b = 0; b < B; b++) {
      int s = shift[b];
      float *d_r = dsrc + (size_t)rep[b] * T * W;
      const float *g_b = dout + (size_t)b * T * W;
      for (int t = s; t < T; t++) {
        float *d = d_r + (size_t)(t - s) * W;
        const float *g = g_b + (size_t)t * W;
        for (int j = j0; j < j1; j++) d[j] += g[j];
      }
    }
  }
}

/* Decoding: a prefix one token longer than its parent's. out (B, T, W), src (R, Ts, W)
 * the parents' sequences with Ts = T - 1 (the sequence grows) or Ts = T (a full window:
 * the pre-padded sequence moves one step left), rep (B) 0-based parent rows, last (B, W)
 * the new step's values: out[b, t] = src[rep[b], t + Ts - T + 1] for t < T - 1,
 * out[b, T - 1] = last[b]. */
void shift_append(float *out, const float *src, const int *rep, const float *last,
                  int B, int T, int Ts, int W) {
  size_t skip = (size_t)(Ts - T + 1) * W;
#pragma omp parallel for schedule(static) if ((size_t)B * T * W >= PAR_MIN_WORK)
  for (int b = 0; b < B; b++) {
    float *out_b = out + (size_t)b * T * W;
    if (T > 1) memcpy(out_b, src + (size_t)rep[b] * Ts * W + skip, (size_t)(T - 1) * W * sizeof(float));
    memcpy(out_b + (size_t)(T - 1) * W, last + (size_t)b * W, (size_t)W * sizeof(float));
  }
}

/* Decoding: out[b, t] = a[b, t] + src[b, T - 1 - t] for out, a, src (B, T, W): a
 * go_backwards LSTM's output (processing order) added back in input order. */
void reverse_steps_add(float *out, const float *a, const float *src, int B, int T, int W) {
#pragma omp parallel for schedule(static) if ((size_t)B * T * W >= PAR_MIN_WORK)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      float *o = out + ((size_t)b * T + t) * W;
      const float *a_t = a + ((size_t)b * T + t) * W, *s = src + ((size_t)b * T + (T - 1 - t)) * W;
      for (int j = 0; j < W; j++) o[j] = a_t[j] + s[j];
    }
}
