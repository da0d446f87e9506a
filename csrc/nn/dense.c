/* dense.c: the fully connected layer (Keras Dense), forward and backward on OpenBLAS.
 * Not a general matmul library: one layout only, Keras' kernel (C, OC) and bias (OC),
 * so weights from Keras HDF5 files load without a transpose.
 *
 * Shapes: x (N, C) where N = B or B*T rows; kernel (C, OC); bias (OC); out (N, OC).
 * With relu fused, out holds the post-activation values, which backward uses as the mask
 * (out > 0 exactly where the pre-activation was > 0). */
#include "../luacap.h"

#include <string.h>

/* Large loops run on all threads (OpenMP); below PAR_MIN_WORK elements one thread is
 * faster than waking the others. Each thread writes its own elements. */
#define PAR_MIN_WORK 32768
#include "parallel.h"

/* out (N, OC) = bias in every row, or zeros. */
static void bias_rows(float *out, const float *bias, int N, int OC) {
  LC_OMP_FOR_IF((size_t)N * OC)
  for (long long n = 0; n < (long long)N; n++) {
    float *out_n = out + n * (size_t)OC;
    if (bias) memcpy(out_n, bias, (size_t)OC * sizeof(float));
    else memset(out_n, 0, (size_t)OC * sizeof(float));
  }
}

/* out (N, OC) = act(x (N, C) @ kernel (C, OC) + bias (OC)); act is relu when relu != 0. */
void dense_forward(float *out, const float *x, const float *kernel, const float *bias,
                   int N, int C, int OC, int relu) {
  bias_rows(out, bias, N, OC);
  /* out (N,OC) = x (N,C) @ kernel (C,OC) + out (the bias rows) */
  lc_sgemm(0, 0, N, OC, C, 1.0f, x, kernel, 1.0f, out);
  if (relu) relu_forward(out, out, (size_t)N * (size_t)OC);
}

/* The same with the kernel packed by packed_gemm_pack(pk, kernel, C, OC, 0), for a kernel
 * that many calls share (decoding's output layer: OpenBLAS would pack its (512, 8485)
 * kernel again at each of the 35 steps). */
void dense_forward_packed(float *out, const float *x, const float *pk, const float *bias,
                          int N, int C, int OC, int relu) {
  bias_rows(out, bias, N, OC);
  packed_gemm_acc(out, x, pk, N, OC, C);
  if (relu) relu_forward(out, out, (size_t)N * (size_t)OC);
}

/* Adds into dx (N, C) (skipped when NULL), dkernel (C, OC) and dbias (OC) (skipped when
 * NULL). dpre (N, OC) is scratch for the pre-activation gradient when relu != 0; without
 * relu it may be NULL and dout is used directly. out (N, OC) is forward's output. */
void dense_backward(float *dx, float *dkernel, float *dbias, float *dpre,
                    const float *dout, const float *out, const float *x, const float *kernel,
                    int N, int C, int OC, int relu) {
  const float *g = dout;
  if (relu) {
    /* forward: out = max(pre, 0);  dpre = dout * (out > 0) */
    memset(dpre, 0, (size_t)N * (size_t)OC * sizeof(float));
    relu_backward(dpre, dout, out, (size_t)N * (size_t)OC);
    g = dpre;
  }
  /* forward: out = x @ kernel + bias */
  /* dkernel (C,OC) += x^T (C,N) @ g (N,OC) */
  lc_sgemm(1, 0, C, OC, N, 1.0f, x, g, 1.0f, dkernel);
  /* dbias (OC) += sum over rows of g */
  if (dbias) {
    int nb = (OC + 63) / 64;   /* threads split the columns */
    LC_OMP_FOR_IF((size_t)N * OC)
    for (int ob = 0; ob < nb; ob++) {
      int o0 = ob * 64, o1 = o0 + 64 < OC ? o0 + 64 : OC;
      for (size_t n = 0; n < (size_t)N; n++) {
        const float *g_n = g + n * (size_t)OC;
        for (int o = o0; o < o1; o++) dbias[o] += g_n[o];
      }
    }
  }
  /* dx (N,C) += g (N,OC) @ kernel^T (OC,C) */
  if (dx) lc_sgemm(0, 1, N, C, OC, 1.0f, g, kernel, 1.0f, dx);
}

/* Plain-loop reference of dense_forward for specs: same contract, no BLAS. */
void dense_forward_ref(float *out, const float *x, const float *kernel, const float *bias,
                       int N, int C, int OC, int relu) {
  for (size_t n = 0; n < (size_t)N; n++)
    for (size_t o = 0; o < (size_t)OC; o++) {
      double s = bias ? bias[o] : 0.0;
      for (size_t c = 0; c < (size_t)C; c++) s += (double)x[n * C + c] * kernel[c * OC + o];
      out[n * OC + o] = (relu && s < 0) ? 0.0f : (float)s;
    }
}
