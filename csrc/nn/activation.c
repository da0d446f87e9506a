/* activation.c: elementwise relu, forward and backward, over flat arrays of n floats.
 * Not the gate nonlinearities of the recurrent layers (those live beside their kernels). */
#include "../luacap.h"

/* out (n) = max(x (n), 0); out may alias x. */
void relu_forward(float *out, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* forward: out = max(x, 0);  dx (n) += dout (n) * (out > 0). out is forward's output
 * (out > 0 exactly where x > 0; the kink at 0 gets gradient 0, as in Keras). */
void relu_backward(float *dx, const float *dout, const float *out, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (out[i] > 0.0f) dx[i] += dout[i];
}
