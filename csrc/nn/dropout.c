/* dropout.c: inverted dropout (Srivastava et al. 2014, as Keras/TF apply it): keep each
 * value with probability 1-p and scale it by 1/(1-p), so evaluation needs no rescaling.
 * Not the evaluation path: in evaluation mode the Lua layer passes its input through.
 * Shapes: n values of any tensor, flattened. */
#include "luacap.h"

/* out (n) = x * mask; mask (n) is drawn here from luacap's seeded generator:
 * mask[i] = 1/(1-p) where uniform >= p (kept), 0 otherwise. Requires 0 <= p < 1. */
void dropout_forward(float *out, float *mask, const float *x, size_t n, float p) {
  float scale = 1.0f / (1.0f - p);
  for (size_t i = 0; i < n; i++) {
    mask[i] = lc_rng_uniform() >= (double)p ? scale : 0.0f;
    out[i] = x[i] * mask[i];
  }
}

/* dx (n), written (not added):
 *   forward:  out = x * mask
 *   backward: dx = dout * mask */
void dropout_backward(float *dx, const float *dout, const float *mask, size_t n) {
  for (size_t i = 0; i < n; i++) dx[i] = dout[i] * mask[i];
}
