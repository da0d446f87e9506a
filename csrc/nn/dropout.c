/* dropout.c: inverted dropout (Srivastava et al. 2014, as Keras/TF apply it): keep each
 * value with probability 1-p and scale it by 1/(1-p), so evaluation needs no rescaling.
 * Not the evaluation path: in evaluation mode the Lua layer passes its input through.
 * Shapes: n values of any tensor, flattened; the keyed variant (B, R): rows are pairs. */
#include "luacap.h"

#include <stdint.h>
#include <string.h>

/* out (n) = x * mask; mask (n) is drawn here from luacap's seeded generator:
 * mask[i] = 1/(1-p) where uniform >= p (kept), 0 otherwise. Requires 0 <= p < 1. */
void dropout_forward(float *out, float *mask, const float *x, size_t n, float p) {
  lc_rng_fill_keep(mask, n, (double)p, 1.0f / (1.0f - p));
  for (size_t i = 0; i < n; i++) out[i] = x[i] * mask[i];
}

/* Keyed masks, for training that must not depend on how a batch is split (data-parallel
 * runs, gradient accumulation): row b's mask is a pure function of (key, salt, epoch,
 * row_ids[b], position in the row), so the same pair in the same epoch gets the same mask
 * in any batch, on any rank. key: the run's seed; salt: which dropout application of the
 * forward pass. Each value: a splitmix64 hash of the row's key and its position (counter
 * based, so rows are independent and the loop parallelises); kept when its top 24 bits
 * are >= p * 2^24.
 * Shapes: x, out, mask (B, R) flattened; row_ids (B). */
static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void dropout_forward_keyed(float *out, float *mask, const float *x, size_t B, size_t R, float p,
                           uint64_t key, uint64_t salt, uint64_t epoch, const uint64_t *row_ids) {
  float scale = 1.0f / (1.0f - p);
  uint32_t threshold = (uint32_t)((double)p * 16777216.0);   /* p * 2^24, 0 .. 2^24-1 */
  uint64_t base = mix64(mix64(mix64(key + 0x9e3779b97f4a7c15ULL) ^ salt) ^ epoch);
  uint32_t sb;   /* scale's bits: the mask is scale or +0.0f without a branch (random) */
  memcpy(&sb, &scale, sizeof sb);
  long nb = (long)B;
#pragma omp parallel for schedule(static) if (B * R > 65536)
  for (long b = 0; b < nb; b++) {
    uint64_t rk = mix64(base ^ mix64(row_ids[b] + 0x632be59bd9b4e019ULL));
    float *mo = mask + (size_t)b * R, *oo = out + (size_t)b * R;
    const float *xo = x + (size_t)b * R;
    for (size_t j = 0; j < R; j++) {
      uint32_t u = (uint32_t)(mix64(rk + (j + 1) * 0x9e3779b97f4a7c15ULL) >> 40);
      uint32_t bits = sb & (0u - (uint32_t)(u >= threshold));
      memcpy(mo + j, &bits, sizeof bits);
    }
    for (size_t j = 0; j < R; j++) oo[j] = xo[j] * mo[j];
  }
}

/* dx (n), written (not added):
 *   forward:  out = x * mask
 *   backward: dx = dout * mask */
void dropout_backward(float *dx, const float *dout, const float *mask, size_t n) {
  for (size_t i = 0; i < n; i++) dx[i] = dout[i] * mask[i];
}
