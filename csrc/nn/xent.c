/* xent.c: softmax cross-entropy on logits, fused (Keras categorical_crossentropy on one-hot
 * targets after a softmax output, which Keras evaluates from the logits). Not a separate
 * softmax layer plus log: that path loses precision and overflows on large logits.
 * Shapes: N rows (B or B*T), V classes. targets (N) ids in [0, V-1] riding as floats,
 * checked by the binding. mask (N) weights per row: 1 a real token, 0 padding; or any real
 * weights, negative ones included (self-critical training's r - b, normalised by the number
 * of samples the caller passes as count to backward instead of by the sum of the weights). */
#include "luacap.h"

#include <math.h>

/* Large loops run on all threads (OpenMP); below PAR_MIN_WORK elements one thread is
 * faster than waking the others. Each thread writes its own elements. */
#define PAR_MIN_WORK 32768
#include "parallel.h"

/* probs (N, V) = softmax(logits (N, V)) per row, with the max subtracted first.
 * targets NULL: only probs. Otherwise returns sum_i w_i * (-log softmax(logits_i)[t_i])
 * with w_i = mask[i] (1 without a mask), and *count = sum_i w_i. The loss of a row is
 * log-sum-exp minus the target logit, in double: finite even for logits of 1e4. */
double xent_forward(float *probs, double *count, const float *logits, const float *targets,
                    const float *mask, int N, int V) {
  double total = 0.0, cnt = 0.0;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(+ : total, cnt) if ((size_t)N * V >= PAR_MIN_WORK)
#endif
  for (int i = 0; i < N; i++) {
    const float *x_i = logits + (size_t)i * V;
    float *p_i = probs + (size_t)i * V;
    float maxv = -INFINITY;
    for (int j = 0; j < V; j++)
      if (x_i[j] > maxv) maxv = x_i[j];
    double sum = 0.0;   /* each term in (0, 1], so float holds it; the sum is in double */
    for (int j = 0; j < V; j++) {
      p_i[j] = expf(x_i[j] - maxv);
      sum += p_i[j];
    }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < V; j++) p_i[j] *= inv;
    if (!targets) continue;
    double w = mask ? (double)mask[i] : 1.0;
    if (w == 0.0) continue;   /* a padded row adds nothing, even if its logits are junk */
    double lse = (double)maxv + log(sum);
    total += w * (lse - (double)x_i[(size_t)targets[i]]);
    cnt += w;
  }
  if (count) *count = cnt;
  return total;
}

/* dlogits (N, V), written:
 *   forward:  loss = (1/count) sum_i w_i * (log sum_j exp(x_ij) - x_i,t_i)
 *   backward: dlogits_ij = w_i * (probs_ij - [j == t_i]) / count
 * count 0 (every row masked) gives zeros. */
void xent_backward(float *dlogits, const float *probs, const float *targets, const float *mask,
                   double count, int N, int V) {
  LC_OMP_FOR_IF((size_t)N * V)
  for (int i = 0; i < N; i++) {
    float *d_i = dlogits + (size_t)i * V;
    const float *p_i = probs + (size_t)i * V;
    double w = mask ? (double)mask[i] : 1.0;
    float scale = count > 0.0 ? (float)(w / count) : 0.0f;
    for (int j = 0; j < V; j++) d_i[j] = scale * p_i[j];
    if (scale != 0.0f) d_i[(size_t)targets[i]] -= scale;
  }
}
