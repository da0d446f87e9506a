/* blas.c: the one door to OpenBLAS. Row-major sgemm and the thread count.
 * Link OpenBLAS by name (-lopenblas): Debian's generic -lblas may be the reference
 * BLAS, about 35x slower. */
#include "luacap.h"

#include <cblas.h>
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
