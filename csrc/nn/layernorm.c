/* layernorm.c: layer normalization over the last axis (Ba, Kiros, Hinton 2016), as the
 * Transformer's post-norm residual blocks use it:
 *   mean, var over the D features of one row (biased var, as Keras and PyTorch)
 *   out = gamma * (x - mean) / sqrt(var + eps) + beta
 * Not batch normalization, no running statistics: every row stands alone.
 * Shapes: x, out (N, D) with N rows (B*T), gamma, beta (D), caches mean, rstd (N). */
#include "../luacap.h"

#include <math.h>

/* ------------------------------------------------------------------ forward */

/* writes out (N, D), mean (N) and rstd (N) = 1 / sqrt(var + eps), kept for backward. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *x,
                       const float *gamma, const float *beta, int N, int D, float eps) {
  for (int n = 0; n < N; n++) {
    const float *x_n = x + (size_t)n * D;
    float *out_n = out + (size_t)n * D;
    /* two passes in double: a row of 256 large, nearly equal values keeps its variance */
    double m = 0;
    for (int d = 0; d < D; d++) m += x_n[d];
    m /= D;
    double v = 0;
    for (int d = 0; d < D; d++) {
      double c = x_n[d] - m;
      v += c * c;
    }
    v /= D;
    float s = (float)(1.0 / sqrt(v + (double)eps));
    float mf = (float)m;
    for (int d = 0; d < D; d++) out_n[d] = gamma[d] * ((x_n[d] - mf) * s) + beta[d];
    mean[n] = mf;
    rstd[n] = s;
  }
}

/* ------------------------------------------------------------------ backward */

/* writes dx (N, D); ADDS into dgamma, dbeta (D). From dout (N, D), x and forward's caches.
 *   xhat = (x - mean) * rstd;  out = gamma * xhat + beta
 *   => dbeta += dout;  dgamma += dout * xhat;  dxhat = dout * gamma
 *   => dx = rstd * (dxhat - mean_d(dxhat) - xhat * mean_d(dxhat * xhat)) */
void layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                        const float *x, const float *mean, const float *rstd,
                        const float *gamma, int N, int D) {
  for (int n = 0; n < N; n++) {
    const float *x_n = x + (size_t)n * D, *dout_n = dout + (size_t)n * D;
    float *dx_n = dx + (size_t)n * D;
    float m = mean[n], s = rstd[n];
    double sum_dxhat = 0, sum_dxhat_xhat = 0;
    for (int d = 0; d < D; d++) {
      float xhat = (x_n[d] - m) * s;
      float dxhat = dout_n[d] * gamma[d];
      sum_dxhat += dxhat;
      sum_dxhat_xhat += (double)dxhat * xhat;
      dgamma[d] += dout_n[d] * xhat;
      dbeta[d] += dout_n[d];
    }
    float a = (float)(sum_dxhat / D), c = (float)(sum_dxhat_xhat / D);
    for (int d = 0; d < D; d++) {
      float xhat = (x_n[d] - m) * s;
      dx_n[d] = s * (dout_n[d] * gamma[d] - a - xhat * c);
    }
  }
}
