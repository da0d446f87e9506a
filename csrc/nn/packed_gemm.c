/* packed_gemm.c: C (M, N) += A (M, K) @ B (K, N) for a B that many products share, packed
 * once into column panels: an LSTM's recurrent kernel, used at every one of its T steps.
 *
 * Why not sgemm: OpenBLAS packs B again on every call, and at the few rows of a recurrence
 * (a batch of 32: (32, 256) @ (256, 1024)) that copy and its small-M kernel leave it at
 * 0.55-0.7 of its 1024^3 rate (docs/performance.md). Packed once, the panels stay in L2
 * over the steps and the kernel below runs near the machine's FMA peak.
 *
 * Layout: panel p holds columns p*NR .. p*NR+NR-1 of B as K rows of NR floats
 * (pk[(p * K + k) * NR + j] = B[k][p * NR + j]), the last panel padded with zeros.
 * The kernel keeps an MR x NR block of C in registers (8 rows x 2 vectors of 16) and, for
 * each k, adds A[m][k] * panel row k. Each C element's sum runs over k in order, on one
 * thread, whatever the thread count: the same bits at any --threads.
 * Shapes: A (M, K) row-major, lda = K; C (M, N) row-major, ldc = N. */
#include "luacap.h"

#include <string.h>

#include "parallel.h"

#define NR 32
#define MR 8
#define PAR_MIN_WORK 65536

typedef float v16 __attribute__((vector_size(64), aligned(4)));

int packed_gemm_panel_width(void) { return NR; }

size_t packed_gemm_size(int K, int N) {
  return (size_t)((N + NR - 1) / NR) * NR * (size_t)K;
}

/* pk (packed_gemm_size(K, N)) = B (K, N), or with trans B^T for a b stored (N, K). */
void packed_gemm_pack(float *pk, const float *b, int K, int N, int trans) {
  int np = (N + NR - 1) / NR;
  LC_OMP_FOR_IF((size_t)K * N)
  for (int p = 0; p < np; p++) {
    float *pp = pk + (size_t)p * K * NR;
    int nc = N - p * NR < NR ? N - p * NR : NR;
    if (!trans) {
      for (int k = 0; k < K; k++) {
        float *o = pp + (size_t)k * NR;
        memcpy(o, b + (size_t)k * N + (size_t)p * NR, (size_t)nc * sizeof(float));
        for (int j = nc; j < NR; j++) o[j] = 0.0f;
      }
    } else {
      for (int j = 0; j < NR; j++) {
        const float *row = j < nc ? b + (size_t)(p * NR + j) * K : NULL;
        for (int k = 0; k < K; k++) pp[(size_t)k * NR + j] = row ? row[k] : 0.0f;
      }
    }
  }
}

/* c (mr <= MR rows, nc <= NR columns, ldc) += a (mr rows, lda) @ panel (K, NR). With
 * mr < MR the missing rows repeat a's last row and their sums are dropped: kernel_1 waits
 * on its two FMA chains' latency, so a remainder of three or more rows is cheaper here
 * (Intel AVX-512 core, 1 thread, (13, 1024, 256): 57-75 -> 83-101 GFLOP/s; two rows
 * measured slower). Each kept row's sums are the same as kernel_1's. */
LC_CLONES_AVX512
static void kernel_8(float *c, int ldc, const float *a, int lda, const float *panel, int K, int nc,
                     int mr) {
  v16 r[MR][2];
  memset(r, 0, sizeof r);
  const float *ar[MR];
  for (int m = 0; m < MR; m++) ar[m] = a + (size_t)(m < mr ? m : mr - 1) * lda;
  const float *a0 = ar[0], *a1 = ar[1], *a2 = ar[2], *a3 = ar[3];
  const float *a4 = ar[4], *a5 = ar[5], *a6 = ar[6], *a7 = ar[7];
  for (int k = 0; k < K; k++) {
    v16 b0 = *(const v16 *)(panel + (size_t)k * NR), b1 = *(const v16 *)(panel + (size_t)k * NR + 16);
    r[0][0] += a0[k] * b0; r[0][1] += a0[k] * b1;
    r[1][0] += a1[k] * b0; r[1][1] += a1[k] * b1;
    r[2][0] += a2[k] * b0; r[2][1] += a2[k] * b1;
    r[3][0] += a3[k] * b0; r[3][1] += a3[k] * b1;
    r[4][0] += a4[k] * b0; r[4][1] += a4[k] * b1;
    r[5][0] += a5[k] * b0; r[5][1] += a5[k] * b1;
    r[6][0] += a6[k] * b0; r[6][1] += a6[k] * b1;
    r[7][0] += a7[k] * b0; r[7][1] += a7[k] * b1;
  }
  for (int m = 0; m < mr; m++) {
    float *o = c + (size_t)m * ldc;
    if (nc == NR) {
      *(v16 *)o += r[m][0];
      *(v16 *)(o + 16) += r[m][1];
    } else {
      float t[NR];
      memcpy(t, r[m], sizeof t);
      for (int j = 0; j < nc; j++) o[j] += t[j];
    }
  }
}

/* the same for one row (a single row past the last multiple of MR) */
LC_CLONES_AVX512
static void kernel_1(float *c, const float *a, const float *panel, int K, int nc) {
  v16 r0 = {0}, r1 = {0};
  for (int k = 0; k < K; k++) {
    r0 += a[k] * *(const v16 *)(panel + (size_t)k * NR);
    r1 += a[k] * *(const v16 *)(panel + (size_t)k * NR + 16);
  }
  float t[NR];
  memcpy(t, &r0, sizeof r0);
  memcpy(t + 16, &r1, sizeof r1);
  for (int j = 0; j < nc; j++) c[j] += t[j];
}

/* c (M, N) += a (M, K) @ the panel's columns p*NR .. (nc of them) */
static void panel_acc(float *c, const float *a, const float *pk, int M, int N, int K, int p) {
  const float *panel = pk + (size_t)p * K * NR;
  int nc = N - p * NR < NR ? N - p * NR : NR;
  float *cp = c + (size_t)p * NR;
  int m = 0;
  for (; m + MR <= M; m += MR)
    kernel_8(cp + (size_t)m * N, N, a + (size_t)m * K, K, panel, K, nc, MR);
  if (M - m >= 3) kernel_8(cp + (size_t)m * N, N, a + (size_t)m * K, K, panel, K, nc, M - m);
  else
    for (; m < M; m++) kernel_1(cp + (size_t)m * N, a + (size_t)m * K, panel, K, nc);
}

/* c (M, N) += a (M, K) @ B, B packed by packed_gemm_pack; the panels on the threads. */
void packed_gemm_acc(float *c, const float *a, const float *pk, int M, int N, int K) {
  if (M <= 0 || N <= 0 || K <= 0) return;
  int np = (N + NR - 1) / NR;
  LC_OMP_FOR_IF((size_t)M * N * K)
  for (int p = 0; p < np; p++) panel_acc(c, a, pk, M, N, K, p);
}

/* c_i (M, N) += a_i (M, K) @ B_i for i < batch: c (batch, M, N), a (batch, M, K), and pk
 * the batch's B_i each packed by packed_gemm_pack, packed_gemm_size(K, N) floats apart.
 * (batch, panel) pairs on the threads: decoding's attention context through each image's
 * own projected values, A_i (L, 35) @ P_i (35, 4D). */
void packed_gemm_acc_batch(float *c, const float *a, const float *pk, int batch, int M, int N,
                           int K) {
  if (batch <= 0 || M <= 0 || N <= 0 || K <= 0) return;
  int np = (N + NR - 1) / NR;
  long long pairs = (long long)batch * np;
  size_t size = packed_gemm_size(K, N);
  LC_OMP_FOR_IF((size_t)batch * M * N * K)
  for (long long q = 0; q < pairs; q++) {
    int i = (int)(q / np), p = (int)(q % np);
    panel_acc(c + (size_t)i * M * N, a + (size_t)i * M * K, pk + (size_t)i * size, M, N, K, p);
  }
}
