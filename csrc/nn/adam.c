/* adam.c: the per-tensor Adam update in the form Keras (TF2 optimizer_v2) and TF's
 * ResourceApplyAdam use: the bias corrections are folded into the step size lr_t, and
 * epsilon is added to sqrt(v) uncorrected ("epsilon hat", the formula just before §2.1
 * of Kingma & Ba 2014, not Algorithm 1's epsilon). Sources: the tf.keras.optimizers.Adam
 * docs (tensorflow.org/versions/r2.8/api_docs/python/tf/keras/optimizers/Adam, "epsilon")
 * and the discussion in tensorflow/tensorflow#9047. Not AMSGrad, not weight decay. */
#include "luacap.h"

#include <math.h>

/* Large loops run on all threads (OpenMP); below PAR_MIN_WORK elements one thread is
 * faster than waking the others. Each thread writes its own elements. */
#define PAR_MIN_WORK 32768
#include "parallel.h"

/* The update of n values, built for AVX-512 and AVX2 too (LC_CLONES_AVX512): a square root
 * and a division per value make it compute-bound on SSE's four lanes. */
LC_CLONES_AVX512
static void adam_span(float *restrict param, float *restrict m, float *restrict v,
                      const float *restrict grad, size_t n, float lr_t, float beta1,
                      float beta2, float eps) {
  /* restrict: the four arrays never overlap, which lets the compiler vectorise */
  for (size_t i = 0; i < n; i++) {
    float g = grad[i];
    m[i] = beta1 * m[i] + (1.0f - beta1) * g;
    v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
    param[i] -= lr_t * m[i] / (sqrtf(v[i]) + eps);
  }
}

/* Spans of SPAN values on the threads (each value is updated once, by one thread). */
#define SPAN 16384

/* param, m, v, grad: n floats each. The caller computes, in double, once per step t:
 *   lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
 * and this applies
 *   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
 *   param -= lr_t * m / (sqrt(v) + eps) */
void adam_update(float *restrict param, float *restrict m, float *restrict v,
                 const float *restrict grad, size_t n, float lr_t, float beta1, float beta2,
                 float eps) {
  long long spans = (long long)((n + SPAN - 1) / SPAN);
  LC_OMP_FOR_IF(n)
  for (long long s = 0; s < spans; s++) {
    size_t i = (size_t)s * SPAN, len = n - i < SPAN ? n - i : SPAN;
    adam_span(param + i, m + i, v + i, grad + i, len, lr_t, beta1, beta2, eps);
  }
}
