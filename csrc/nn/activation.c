/* activation.c: elementwise relu, forward and backward, over flat arrays of n floats.
 * Not the gate nonlinearities of the recurrent layers (those live beside their kernels). */
#include "../luacap.h"

#include "parallel.h"

/* elementwise loops: vectorised, on all threads from PAR_MIN elements */
#define LC_ELEMENTWISE_FOR LC_PRAGMA(omp parallel for simd schedule(static) if (n >= PAR_MIN))

/* Below this many elements one thread is faster than waking the others. The loops are
 * written as selects, not ifs, and vectorized: a branch on the sign of random-looking
 * values mispredicts half the time (it was 10x slower than the select on a VGG16 map). */
#define PAR_MIN 65536

/* out (n) = max(x (n), 0); out may alias x. */
void relu_forward(float *out, const float *x, size_t n) {
  LC_ELEMENTWISE_FOR
  for (long long i = 0; i < (long long)n; i++) {
    float v = x[i];
    out[i] = v > 0.0f ? v : 0.0f;
  }
}

/* forward: out = max(x, 0);  dx (n) += dout (n) * (out > 0). out is forward's output
 * (out > 0 exactly where x > 0; the kink at 0 gets gradient 0, as in Keras). */
void relu_backward(float *dx, const float *dout, const float *out, size_t n) {
  LC_ELEMENTWISE_FOR
  for (long long i = 0; i < (long long)n; i++) {
    float v = dout[i];   /* loaded unconditionally, so that the select vectorises */
    dx[i] += out[i] > 0.0f ? v : 0.0f;
  }
}
