/* blas.c: the one door to OpenBLAS. Row-major sgemm and the thread count.
 * Link OpenBLAS by name (-lopenblas): Debian's generic -lblas may be the reference
 * BLAS, about 35x slower. */
#include "luacap.h"

#include <cblas.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int threads = 0;   /* 0: whatever OpenBLAS chose at load */

/* C (M,N) = alpha * op(A) @ op(B) + beta * C, all row-major.
 *   A is (M,K), or (K,M) when ta;  B is (K,N), or (N,K) when tb. */
void lc_sgemm(int ta, int tb, int M, int N, int K, float alpha,
              const float *A, const float *B, float beta, float *C) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  /* OpenBLAS accepts K=0 but some builds read A anyway */
    for (size_t i = 0; i < (size_t)M * N; i++) C[i] = beta == 0.0f ? 0.0f : beta * C[i];
    return;
  }
  int lda = ta ? M : K, ldb = tb ? K : N;
  if (M == 1 || N == 1) {
    /* A vector product: sgemv reads the matrix once, where OpenBLAS' sgemm (0.3.21) packs
     * it first (VGG16's fc1 at batch 1: 10 ms instead of 24). C is zeroed first when
     * beta is 0, so that NaN garbage in an output buffer cannot leak through a 0 * NaN. */
    if (beta == 0.0f) memset(C, 0, (size_t)M * N * sizeof(float));
    if (M == 1)   /* C (1,N) = op(B)^T-side: a (K) through B (K,N) or (N,K) */
      cblas_sgemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans, tb ? N : K, tb ? K : N, alpha,
                  B, ldb, A, 1, beta, C, 1);
    else          /* C (M,1) = op(A) (M,K) @ b (K) */
      cblas_sgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, ta ? K : M, ta ? M : K, alpha,
                  A, lda, B, 1, beta, C, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              M, N, K, alpha, A, lda, B, ldb, beta, C, N);
}

void lc_set_threads(int n) {
  if (n < 1) n = 1;
  threads = n;
  openblas_set_num_threads(n);
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
}

int lc_get_threads(void) {
  if (threads > 0) return threads;
  return openblas_get_num_threads();
}

/* OpenBLAS' kernel family in use (e.g. "Haswell", "SkylakeX"): Debian's OpenBLAS is built
 * for every x86-64 CPU and picks one family when it loads, or takes OPENBLAS_CORETYPE from
 * the environment. On an AVX-512 CPU the AVX2 family ("Haswell") runs sgemm at half the
 * rate of the AVX-512 ones (docs/performance.md). */
const char *lc_blas_core(void) { return openblas_get_corename(); }
