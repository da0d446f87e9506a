/* lstm.c: a Keras (TF2) LSTM over a whole batch-major sequence: forward, backward, the
 * no-cache decoding step, Keras' orthogonal initialiser and the Bidirectional merge.
 * Not cuDNN's fused kernel: no peepholes, no recurrent dropout, no projection.
 * Equations, Keras gate order i, f, c, o along the 4H axis:
 *   z   = x_t @ kernel + h_{t-1} @ rkernel + bias                      (B, 4H)
 *   i = sigmoid(z_i)   f = sigmoid(z_f)   g = tanh(z_c)   o = sigmoid(z_o)
 *   c_t = f * c_{t-1} + i * g            h_t = o * tanh(c_t)
 *
 * Shapes used throughout:
 *   x (B, T, C), or (B, C) with repeat: the same input at every step (RepeatVector's
 *   output, whose input projection is then computed once per row, not once per step)
 *   mask (B, T) of 1/0 floats, or NULL (all real)
 *   kernel (C, 4H)   rkernel (H, 4H)   bias (4H)   h0, c0 (B, H), or NULL (zeros)
 *   kernel NULL: x is already the input projection x @ kernel, so C = 4H (decoding and
 *   the seed model's shared training build it from parts); backward's dx is then the
 *   projection's gradient and dkernel is not read
 * The processing step s reads time t = s, or t = T-1-s with go_backwards (Keras reverses
 * inputs and mask). Caches are time-major and indexed by s:
 *   gates (T, B, 4H) post-activation i, f, g, o   cs, hs (T, B, H) the state after step s
 * out is (B, T, H) in processing order when return_sequences (so reversed with
 * go_backwards, as a bare Keras LSTM returns it), else (B, H) = the last step's output.
 * At a masked step the state is carried over unchanged; the output is the previous
 * step's output (zero before the first step), or zero with zero_output_for_mask.
 *
 * Speed (lstm_forward / lstm_backward): a masked step's cell is never computed, since its
 * state is carried. Only the mask's real (step, row) pairs run, gathered into compact
 * blocks (see the step plan), so a pre-padded batch of short prefixes costs its real
 * tokens, not B * T; their gates cache is that compact block, not (T, B, 4H). */

/* The fast path's gate loops are written to be vectorised (SSE2 at the default -O2):
 * that needs the dynamic cost model, and no-trapping-math so the compiler may turn the
 * clamps and selects into blends (luacap never reads floating-point exception flags).
 * Neither option changes results: NaN, Inf and signed zeros keep IEEE semantics. Those
 * loops' functions are also built for AVX2 (target_clones: picked at load time, plain
 * SSE2 elsewhere). */
#pragma GCC optimize("no-trapping-math", "vect-cost-model=dynamic")

#include "../luacap.h"
#include "vecmath.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Every non-BLAS loop (gathers, bias, gates, carries) runs on all threads when the work
 * is large enough to pay for waking them; never around an sgemm. Rows are independent,
 * so the results do not depend on the thread count. */
#define PAR_MIN_WORK 16384
#include "parallel.h"

static inline float sigmoidf(float z) { return 1.0f / (1.0f + expf(-z)); }

/* tanh through one expf: glibc's tanhf goes through expm1f and was half of the forward's
 * elementwise time. tanh|z| = (1 - e)/(1 + e), e = exp(-2|z|); below |z| = 1/16 that
 * form cancels, so use the series z - z^3/3 + 2z^5/15 (error under 1e-9 relative). */
static inline float tanh_fast(float z) {
  float a = fabsf(z);
  if (a < 0.0625f) {
    float z2 = z * z;
    return z * (1.0f + z2 * (-1.0f / 3.0f + z2 * (2.0f / 15.0f)));
  }
  float e = expf(-2.0f * a);
  float t = (1.0f - e) / (1.0f + e);
  return z < 0 ? -t : t;
}

/* Forward of one real (step, row): g (4H) pre-activations -> post-activations in place;
 * c = f * c_prev + i * g, h = o * tanh(c). c_prev may be a row of zeros. */
LC_CLONES_AVX2
static void cell_forward_vec(float *restrict h, float *restrict c, float *restrict g,
                             const float *restrict c_prev, int H) {
  for (int u = 0; u < 2 * H; u++) g[u] = sigmoid_vec(g[u]);                /* i, f */
  for (int u = 2 * H; u < 3 * H; u++) g[u] = tanh_vec(g[u]);               /* g */
  for (int u = 3 * H; u < 4 * H; u++) g[u] = sigmoid_vec(g[u]);            /* o */
  for (int u = 0; u < H; u++) {
    float cn = g[H + u] * c_prev[u] + g[u] * g[2 * H + u];
    c[u] = cn;
    h[u] = g[3 * H + u] * tanh_vec(cn);
  }
}

#define STEP_T(s) (go_backwards ? T - 1 - (s) : (s))
#define IS_REAL(b, t) (!mask || mask[(size_t)(b) * T + (t)] != 0.0f)

/* The output of step s for batch row b, given that row's new h (H):
 * real: h; masked: zero, or the previous output (carry). */
static void write_output(float *out, const float *h, int real, int s, int b, int T, int H,
                         int return_sequences, int zero_output_for_mask) {
  float *o = return_sequences ? out + ((size_t)b * T + s) * H : out + (size_t)b * H;
  if (real) {
    memcpy(o, h, (size_t)H * sizeof(float));
  } else if (zero_output_for_mask) {
    memset(o, 0, (size_t)H * sizeof(float));
  } else if (return_sequences) {   /* carry the previous output; zero before step 0 */
    if (s > 0) memcpy(o, o - H, (size_t)H * sizeof(float));
    else memset(o, 0, (size_t)H * sizeof(float));
  }                                /* last-output mode: o already holds the carry */
}

/* Below this many rows, products with a weight matrix run as plain loops: sgemm packs
 * the whole (K, N) weight (megabytes) on every call, which costs more than the product
 * itself when it serves one or two rows (greedy decoding of one image, the first real
 * steps of a pre-padded batch). */
#define SMALL_ROWS 8

/* out[:, j0:j1] (M, N) += a (M, K) @ w[:, j0:j1] (K, N), w row-major, for M < SMALL_ROWS:
 * four rows of w at a time into each out row (the out block stays in L1; w's block is read
 * once per out row). */
LC_CLONES_AVX2
static void small_rows_block_acc(float *restrict out, const float *restrict a,
                                 const float *restrict w, int M, int N, int K, int j0, int j1) {
  for (int m = 0; m < M; m++) {
    float *restrict o = out + (size_t)m * N;
    const float *a_m = a + (size_t)m * K;
    int k = 0;
    for (; k + 4 <= K; k += 4) {
      const float *w0 = w + (size_t)k * N, *w1 = w0 + N, *w2 = w1 + N, *w3 = w2 + N;
      float a0 = a_m[k], a1 = a_m[k + 1], a2 = a_m[k + 2], a3 = a_m[k + 3];
      for (int j = j0; j < j1; j++) o[j] += a0 * w0[j] + a1 * w1[j] + a2 * w2[j] + a3 * w3[j];
    }
    for (; k < K; k++) {
      const float *w_k = w + (size_t)k * N;
      float a_k = a_m[k];
      for (int j = j0; j < j1; j++) o[j] += a_k * w_k[j];
    }
  }
}

/* Columns per block of small_rows_matmul_acc's threads. */
#define SMALL_ROWS_COLS 128

/* out (M, N) += a (M, K) @ w (K, N) for M < SMALL_ROWS, blocks of columns on the threads
 * (each element's sum runs in the same order whatever the split: the same bits). At one
 * image's greedy decoding this was a fifth of the time on one thread while the other spun. */
static void small_rows_matmul_acc(float *out, const float *a, const float *w, int M, int N,
                                  int K) {
  const int nb = (N + SMALL_ROWS_COLS - 1) / SMALL_ROWS_COLS;
  LC_OMP_FOR_IF((size_t)M * N * K)
  for (int b = 0; b < nb; b++) {
    int j0 = b * SMALL_ROWS_COLS, j1 = j0 + SMALL_ROWS_COLS < N ? j0 + SMALL_ROWS_COLS : N;
    small_rows_block_acc(out, a, w, M, N, K, j0, j1);
  }
}

/* out (M, N) = a (M, K) @ w^T, w (N, K) row-major, for M < SMALL_ROWS: each out element a
 * dot product of two K-rows (w read once per out row, no packing). */
LC_CLONES_AVX2
static void small_rows_matmul_nt(float *restrict out, const float *restrict a,
                                 const float *restrict w, int M, int N, int K) {
  for (int m = 0; m < M; m++) {
    const float *a_m = a + (size_t)m * K;
    for (int n = 0; n < N; n++) {
      const float *w_n = w + (size_t)n * K;
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
      for (int k = 0; k < K; k++) acc += a_m[k] * w_n[k];
      out[(size_t)m * N + n] = acc;
    }
  }
}

/* out (M, N) += a (M, K) @ w (K, N): sgemm, or plain loops for a few rows. */
static void matmul_acc(float *out, const float *a, const float *w, int M, int N, int K) {
  if (M < SMALL_ROWS) small_rows_matmul_acc(out, a, w, M, N, K);
  else lc_sgemm(0, 0, M, N, K, 1.0f, a, w, 1.0f, out);
}

/* The recurrent products of up to PACKED_MAX_ROWS rows run on the recurrent kernel packed
 * once per call (packed_gemm.c), where OpenBLAS' small-M sgemm is slowest; more rows go
 * to sgemm, which is then near its peak, and so are rows whose a (M, K) outgrows L2. */
#define PACKED_MAX_ROWS 64
#define PACKED_MAX_A 131072   /* floats of a: 512 KiB */

static int use_packed(int M, int K) {
  return M >= SMALL_ROWS && M <= PACKED_MAX_ROWS && (size_t)M * K <= PACKED_MAX_A;
}

/* ------------------------------------------------------------------ step plan */

/* Which rows each step computes. Only real (b, t) pairs do any work: a masked step
 * carries h and c over, so its gates are never read. For step s the real rows are
 * rows[off[s] .. off[s+1]), listed with the rows whose h_prev may be non-zero first
 * (nrec[s] of them: h0 given, or a real step before s), then the rows whose h_prev is
 * still the zero initial state (their h_prev @ rkernel is zero and is skipped). The
 * compact caches gates and dz use this order: row k of the (n, 4H) block is the pair
 * (s, rows[k]). Exact for any mask; pre-padding just makes n small. */
typedef struct {
  int *rows, *off, *nrec;
  int n;
} lstm_plan;

/* The rows of step s whose h_prev @ rkernel is computed: those with a non-zero h_prev, or
 * with all (backward with dh0 wanted) every real row. */
static int step_rec_rows(const lstm_plan *p, int s, int all) {
  return all ? p->off[s + 1] - p->off[s] : p->nrec[s];
}

/* Whether any step's recurrent product of K columns runs on the packed kernel (then the
 * call packs rkernel once). */
static int plan_uses_packed(const lstm_plan *p, int T, int K, int all) {
  for (int s = 0; s < T; s++)
    if (use_packed(step_rec_rows(p, s, all), K)) return 1;
  return 0;
}

static void plan_free(lstm_plan *p) {
  free(p->rows); free(p->off); free(p->nrec);
}

static int plan_build(lstm_plan *p, const float *mask, int h0_given, int B, int T,
                      int go_backwards) {
  p->rows = malloc((size_t)B * T * sizeof(int) + 1);
  p->off = malloc(((size_t)T + 1) * sizeof(int));
  p->nrec = malloc(((size_t)T + 1) * sizeof(int));
  unsigned char *live = malloc((size_t)B + 1);   /* h_prev may be non-zero */
  if (!p->rows || !p->off || !p->nrec || !live) { plan_free(p); free(live); return LC_ENOMEM; }
  memset(live, h0_given ? 1 : 0, (size_t)B);
  int n = 0;
  for (int s = 0; s < T; s++) {
    int t = STEP_T(s);
    p->off[s] = n;
    for (int b = 0; b < B; b++)
      if (IS_REAL(b, t) && live[b]) p->rows[n++] = b;
    p->nrec[s] = n - p->off[s];
    for (int b = 0; b < B; b++)
      if (IS_REAL(b, t) && !live[b]) { p->rows[n++] = b; live[b] = 1; }
  }
  p->off[T] = n;
  p->n = n;
  free(live);
  return LC_OK;
}

/* xr (n, C): the plan's real pairs' input rows, xr[k] = x[rows[k], t(s)] for k in step s. */
static void gather_steps(float *xr, const float *x, const lstm_plan *p, int B, int T, int C,
                         int go_backwards) {
  (void)B;
  LC_OMP_FOR_IF((size_t)p->n * C)
  for (int s = 0; s < T; s++) {
    int t = STEP_T(s);
    for (int k = p->off[s]; k < p->off[s + 1]; k++)
      memcpy(xr + (size_t)k * C, x + ((size_t)p->rows[k] * T + t) * C, (size_t)C * sizeof(float));
  }
}

/* The inverse: x[rows[k], t(s)] (C) = xr[k] for the plan's real pairs; x's other rows are
 * left as they are. */
static void scatter_steps(float *x, const float *xr, const lstm_plan *p, int T, int C,
                          int go_backwards) {
  LC_OMP_FOR_IF((size_t)p->n * C)
  for (int s = 0; s < T; s++) {
    int t = STEP_T(s);
    for (int k = p->off[s]; k < p->off[s + 1]; k++)
      memcpy(x + ((size_t)p->rows[k] * T + t) * C, xr + (size_t)k * C, (size_t)C * sizeof(float));
  }
}

/* d (G) += s (G); the two never overlap. */
static inline void add_row(float *restrict d, const float *restrict s, size_t G) {
  for (size_t j = 0; j < G; j++) d[j] += s[j];
}

/* acc (G) += column sums of a (n, G); threads split the columns (no two write one). */
static void column_sums_acc(float *acc, const float *a, size_t n, size_t G) {
  int nb = (int)((G + 63) / 64);
  LC_OMP_FOR_IF(n * G)
  for (int jb = 0; jb < nb; jb++) {
    size_t j0 = (size_t)jb * 64, j1 = j0 + 64 < G ? j0 + 64 : G;
    for (size_t k = 0; k < n; k++) {
      const float *a_k = a + k * G;
      for (size_t j = j0; j < j1; j++) acc[j] += a_k[j];
    }
  }
}

/* ------------------------------------------------------------------ forward */

/* Fast forward: work only on the plan's real (step, row) pairs.
 * x is (B, T, C), or (B, C) with repeat (the same input at every step: RepeatVector).
 * zx is scratch: (B, T, 4H), or (B, 4H) with repeat.
 * writes: out, cs, hs (see the top of the file) and gates: here a compact (n, 4H) block
 * at the start of the (T, B, 4H) buffer, in the plan's order (only backward reads it). */
int lstm_forward(float *out, float *gates, float *cs, float *hs, float *zx,
                 const float *x, const float *mask, const float *kernel, const float *rkernel,
                 const float *bias, const float *h0, const float *c0,
                 int B, int T, int C, int H, int go_backwards, int return_sequences,
                 int zero_output_for_mask, int repeat) {
  size_t G = 4 * (size_t)H, BH = (size_t)B * H;
  if (!return_sequences) memset(out, 0, BH * sizeof(float));
  if (T == 0 || B == 0) return LC_OK;
  lstm_plan p;
  if (plan_build(&p, mask, h0 != NULL, B, T, go_backwards) != LC_OK) return LC_ENOMEM;
  size_t n = (size_t)p.n;
  int xr_own = !repeat && kernel && (size_t)C > G;   /* zx holds the gathered x when C <= 4H */
  float *hc = calloc(BH + H, sizeof(float));                 /* (B, H), then H zeros */
  float *xr = xr_own ? malloc(n * C * sizeof(float) + 1) : zx;          /* (n, C) */
  int packed = plan_uses_packed(&p, T, H, 0);
  float *pk = packed ? malloc(packed_gemm_size(H, (int)G) * sizeof(float)) : NULL;
  if (!hc || !xr || (packed && !pk)) {
    free(hc); free(pk); if (xr_own) free(xr); plan_free(&p);
    return LC_ENOMEM;
  }
  if (packed) packed_gemm_pack(pk, rkernel, H, (int)G, 0);
  const float *zeros = hc + BH;
  if (n > 0) {
    if (repeat) {
      /* zx (B, 4H) = x (B, C) @ kernel (C, 4H): one projection serves every step */
      const float *z = x;
      if (kernel) { lc_sgemm(0, 0, B, (int)G, C, 1.0f, x, kernel, 0.0f, zx); z = zx; }
      LC_OMP_FOR_IF(n * G)
      for (long long k = 0; k < (long long)n; k++)
        memcpy(gates + k * G, z + (size_t)p.rows[k] * G, G * sizeof(float));
    } else if (!kernel) {   /* x is the projection: gathered with the bias added, one pass */
      LC_OMP_FOR_IF(n * G)
      for (int s = 0; s < T; s++) {
        int t = STEP_T(s);
        for (int k = p.off[s]; k < p.off[s + 1]; k++) {
          float *g_k = gates + (size_t)k * G;
          const float *x_k = x + ((size_t)p.rows[k] * T + t) * G;
          for (size_t j = 0; j < G; j++) g_k[j] = x_k[j] + bias[j];
        }
      }
    } else {
      gather_steps(xr, x, &p, B, T, C, go_backwards);
      /* gates (n, 4H) = xr (n, C) @ kernel (C, 4H): the real pairs' input projections */
      if (n < SMALL_ROWS) {
        memset(gates, 0, n * G * sizeof(float));
        matmul_acc(gates, xr, kernel, (int)n, (int)G, C);
      } else {
        lc_sgemm(0, 0, (int)n, (int)G, C, 1.0f, xr, kernel, 0.0f, gates);
      }
    }
    if (kernel || repeat) {
      LC_OMP_FOR_IF(n * G)
      for (long long k = 0; k < (long long)n; k++) {
        float *g_k = gates + k * G;
        for (size_t j = 0; j < G; j++) g_k[j] += bias[j];
      }
    }
  }
  for (int s = 0; s < T; s++) {
    int t = STEP_T(s), o = p.off[s], na = p.off[s + 1] - o, nr = p.nrec[s];
    const int *rows = p.rows + o;
    float *gates_s = gates + (size_t)o * G, *c_s = cs + (size_t)s * BH, *h_s = hs + (size_t)s * BH;
    const float *h_prev = s ? hs + (size_t)(s - 1) * BH : h0;
    const float *c_prev = s ? cs + (size_t)(s - 1) * BH : c0;
    if (nr > 0) {   /* nr > 0 implies h_prev != NULL */
      LC_OMP_FOR_IF((size_t)nr * H)
      for (int k = 0; k < nr; k++)
        memcpy(hc + (size_t)k * H, h_prev + (size_t)rows[k] * H, (size_t)H * sizeof(float));
      /* gates_s (nr, 4H) += hc (nr, H) @ rkernel (H, 4H) */
      if (use_packed(nr, H)) packed_gemm_acc(gates_s, hc, pk, nr, (int)G, H);
      else matmul_acc(gates_s, hc, rkernel, nr, (int)G, H);
    }
    LC_OMP_FOR_IF((size_t)na * G)
    for (int k = 0; k < na; k++) {
      int b = rows[k];
      cell_forward_vec(h_s + (size_t)b * H, c_s + (size_t)b * H, gates_s + (size_t)k * G,
                       c_prev ? c_prev + (size_t)b * H : zeros, H);
    }
    LC_OMP_FOR_IF(BH)
    for (int b = 0; b < B; b++) {
      int real = IS_REAL(b, t);
      float *c_b = c_s + (size_t)b * H, *h_b = h_s + (size_t)b * H;
      if (!real) {   /* carried state */
        if (c_prev) memcpy(c_b, c_prev + (size_t)b * H, (size_t)H * sizeof(float));
        else memset(c_b, 0, (size_t)H * sizeof(float));
        if (h_prev) memcpy(h_b, h_prev + (size_t)b * H, (size_t)H * sizeof(float));
        else memset(h_b, 0, (size_t)H * sizeof(float));
      }
      write_output(out, h_b, real, s, b, T, H, return_sequences, zero_output_for_mask);
    }
  }
  free(hc); free(pk);
  if (xr_own) free(xr);
  plan_free(&p);
  return LC_OK;
}

static int forward_args_call(const void *args) {
  const lstm_forward_args *a = args;
  return lstm_forward(a->out, a->gates, a->cs, a->hs, a->zx, a->x, a->mask, a->kernel,
                      a->rkernel, a->bias, a->h0, a->c0, a->B, a->T, a->C, a->H,
                      a->go_backwards, a->return_sequences, a->zero_output_for_mask, a->repeat);
}

/* Inside the two-thread region every LC_OMP_FOR_IF is a nested region, which runs on its
 * one thread (nested parallelism is off), and OpenBLAS' OpenMP build runs single-threaded
 * inside a parallel region. Forward steps are small products between four barriers; with
 * a direction on each thread there are none. */
#ifdef _OPENMP
/* Two calls, one per thread: a team of exactly two, not already inside a region, and
 * nested regions off (so the calls' own loops stay on their thread). */
static int two_thread_team(void) {
  return omp_get_max_threads() == 2 && !omp_in_parallel() && omp_get_max_active_levels() <= 1;
}
#endif

/* call(a), and call(b) unless b is NULL: at once on a two-thread team, else in turn;
 * the first error. */
static int run_pair(int (*call)(const void *), const void *a, const void *b) {
  if (!b) return call(a);
  int rc[2] = {LC_OK, LC_OK};
#ifdef _OPENMP
  if (two_thread_team()) {
    const void *v[2] = {a, b};
#pragma omp parallel for num_threads(2) schedule(static, 1)
    for (int k = 0; k < 2; k++) rc[k] = call(v[k]);
    return rc[0] != LC_OK ? rc[0] : rc[1];
  }
#endif
  rc[0] = call(a);
  rc[1] = rc[0] == LC_OK ? call(b) : LC_OK;
  return rc[0] != LC_OK ? rc[0] : rc[1];
}

int lstm_forward_pair(const lstm_forward_args *a, const lstm_forward_args *b) {
  return run_pair(forward_args_call, a, b);
}

/* Plain-loop forward, the reference for specs. Same arguments; zx unused;
 * gates is the full (T, B, 4H) cache here, every (step, row). */
int lstm_forward_ref(float *out, float *gates, float *cs, float *hs, float *zx,
                     const float *x, const float *mask, const float *kernel,
                     const float *rkernel, const float *bias, const float *h0, const float *c0,
                     int B, int T, int C, int H, int go_backwards, int return_sequences,
                     int zero_output_for_mask, int repeat) {
  (void)zx;
  size_t G = 4 * (size_t)H, BH = (size_t)B * H;
  if (!return_sequences) memset(out, 0, BH * sizeof(float));
  for (int s = 0; s < T; s++) {
    int t = STEP_T(s);
    for (int b = 0; b < B; b++) {
      const float *x_bt = x + (repeat ? (size_t)b : (size_t)b * T + t) * C;
      const float *h_prev = s ? hs + (size_t)(s - 1) * BH + (size_t)b * H : (h0 ? h0 + (size_t)b * H : NULL);
      const float *c_prev = s ? cs + (size_t)(s - 1) * BH + (size_t)b * H : (c0 ? c0 + (size_t)b * H : NULL);
      float *gates_bs = gates + ((size_t)s * B + b) * G;
      float *c_bs = cs + (size_t)s * BH + (size_t)b * H, *h_bs = hs + (size_t)s * BH + (size_t)b * H;
      int real = IS_REAL(b, t);
      for (size_t j = 0; j < G; j++) {
        /* z_j = sum_c x_c kernel[c, j] + sum_k h_k rkernel[k, j] + bias_j */
        double z = bias[j];
        if (kernel)
          for (int c = 0; c < C; c++) z += (double)x_bt[c] * kernel[(size_t)c * G + j];
        else
          z += x_bt[j];   /* x is the projection */
        if (h_prev)
          for (int k = 0; k < H; k++) z += (double)h_prev[k] * rkernel[(size_t)k * G + j];
        gates_bs[j] = (float)z;
      }
      for (int k = 0; k < H; k++) {
        float i = sigmoidf(gates_bs[k]), f = sigmoidf(gates_bs[H + k]);
        float g = tanh_fast(gates_bs[2 * H + k]), o = sigmoidf(gates_bs[3 * H + k]);
        gates_bs[k] = i; gates_bs[H + k] = f; gates_bs[2 * H + k] = g; gates_bs[3 * H + k] = o;
        float cp = c_prev ? c_prev[k] : 0.0f, hp = h_prev ? h_prev[k] : 0.0f;
        c_bs[k] = real ? f * cp + i * g : cp;
        h_bs[k] = real ? o * tanh_fast(c_bs[k]) : hp;
      }
      write_output(out, h_bs, real, s, b, T, H, return_sequences, zero_output_for_mask);
    }
  }
  return LC_OK;
}

/* ------------------------------------------------------------------ backward */

/* Gradient of the output at step s for row b, plus the carry from later masked steps that
 * copied this output; routes it into dh (real step) or on to the previous output.
 *   gout = dout_s + dcarry;  real: dh += gout, dcarry = 0;  masked: dcarry = gout (carry)
 *   or 0 (zero output). */
static void route_dout(float *dh_b, float *dcarry_b, const float *dout, int real, int s, int b,
                       int T, int H, int return_sequences, int zero_output_for_mask) {
  const float *dout_bs = return_sequences ? dout + ((size_t)b * T + s) * H : NULL;
  for (int k = 0; k < H; k++) {
    float gout = dcarry_b[k] + (dout_bs ? dout_bs[k] : 0.0f);
    if (real) { dh_b[k] += gout; dcarry_b[k] = 0.0f; }
    else dcarry_b[k] = zero_output_for_mask ? 0.0f : gout;
  }
}

/* Gate pre-activation gradients of one real (step, row) from dh, dc of its new state.
 * dc_b is replaced by the gradient of c_prev. dz_b (4H) is written. */
static void cell_backward(float *dz_b, float *dc_b, const float *dh_b, const float *gates_b,
                          const float *c_b, const float *c_prev_b, int H) {
  for (int k = 0; k < H; k++) {
    float i = gates_b[k], f = gates_b[H + k], g = gates_b[2 * H + k], o = gates_b[3 * H + k];
    float tc = tanh_fast(c_b[k]), cp = c_prev_b ? c_prev_b[k] : 0.0f;
    /* h = o * tanh(c) */
    float d_o = dh_b[k] * tc;
    float dc = dc_b[k] + dh_b[k] * o * (1.0f - tc * tc);
    /* c = f * c_prev + i * g */
    float di = dc * g, df = dc * cp, dg = dc * i;
    dc_b[k] = dc * f;
    /* i = sigmoid(z_i), f = sigmoid(z_f), g = tanh(z_c), o = sigmoid(z_o) */
    dz_b[k] = di * i * (1.0f - i);
    dz_b[H + k] = df * f * (1.0f - f);
    dz_b[2 * H + k] = dg * (1.0f - g * g);
    dz_b[3 * H + k] = d_o * o * (1.0f - o);
  }
}

/* cell_backward for the fast path: the same lines, vectorisable; c_prev may be zeros. */
LC_CLONES_AVX2
static void cell_backward_vec(float *restrict dz_b, float *restrict dc_b,
                              const float *restrict dh_b, const float *restrict gates_b,
                              const float *restrict c_b, const float *restrict c_prev_b, int H) {
  for (int k = 0; k < H; k++) {
    float i = gates_b[k], f = gates_b[H + k], g = gates_b[2 * H + k], o = gates_b[3 * H + k];
    float tc = tanh_vec(c_b[k]), cp = c_prev_b[k];
    /* h = o * tanh(c) */
    float d_o = dh_b[k] * tc;
    float dc = dc_b[k] + dh_b[k] * o * (1.0f - tc * tc);
    /* c = f * c_prev + i * g */
    float di = dc * g, df = dc * cp, dg = dc * i;
    dc_b[k] = dc * f;
    /* i = sigmoid(z_i), f = sigmoid(z_f), g = tanh(z_c), o = sigmoid(z_o) */
    dz_b[k] = di * i * (1.0f - i);
    dz_b[H + k] = df * f * (1.0f - f);
    dz_b[2 * H + k] = dg * (1.0f - g * g);
    dz_b[3 * H + k] = d_o * o * (1.0f - o);
  }
}

/* Fast backward, over the plan of the forward (rebuilt from the mask). dout is shaped
 * like out. Reads forward's compact gates. Scratch: dz (T, B, 4H) (a compact (n, 4H)
 * block is used), dzx (B, T, 4H), or (B, 4H) with repeat. writes dx (B, T, C), or (B, C)
 * with repeat (summed over the steps), and dh0, dc0 (B, H) when not NULL; ADDS into
 * dkernel (C, 4H), drkernel (H, 4H), dbias (4H). kernel NULL (after a forward given the
 * projection): dx is the projection's gradient, C = 4H, 0 at masked steps, and dkernel
 * is not read. Returns LC_ENOMEM when a buffer fails. */
int lstm_backward(float *dx, float *dkernel, float *drkernel, float *dbias, float *dh0,
                  float *dc0, float *dz, float *dzx, const float *dout, const float *x,
                  const float *mask, const float *kernel, const float *rkernel,
                  const float *gates, const float *cs, const float *hs, const float *h0,
                  const float *c0, int B, int T, int C, int H, int go_backwards,
                  int return_sequences, int zero_output_for_mask, int repeat) {
  size_t G = 4 * (size_t)H, BH = (size_t)B * H;
  if (T == 0 || B == 0) {
    memset(dx, 0, (size_t)B * (repeat ? 1 : T) * C * sizeof(float));
    if (dh0) memset(dh0, 0, BH * sizeof(float));
    if (dc0) memset(dc0, 0, BH * sizeof(float));
    return LC_OK;
  }
  lstm_plan p;
  if (plan_build(&p, mask, h0 != NULL, B, T, go_backwards) != LC_OK) return LC_ENOMEM;
  size_t n = (size_t)p.n;
  int xr_own = !repeat && (size_t)C > G;
  float *work = calloc(4 * BH + H, sizeof(float));   /* dh, dc, dcarry, dhc; H zeros */
  float *hp = malloc(n * H * sizeof(float) + 1);                        /* (n, H) */
  float *xr = xr_own ? malloc(n * C * sizeof(float) + 1) : dzx;         /* (n, C) */
  int packed = plan_uses_packed(&p, T, (int)G, dh0 != NULL);
  float *pk = packed ? malloc(packed_gemm_size((int)G, H) * sizeof(float)) : NULL;  /* rkernel^T */
  if (!work || !hp || !xr || (packed && !pk)) {
    free(work); free(hp); free(pk); if (xr_own) free(xr); plan_free(&p);
    return LC_ENOMEM;
  }
  if (packed) packed_gemm_pack(pk, rkernel, (int)G, H, 1);
  float *dh = work, *dc = work + BH, *dcarry = work + 2 * BH, *dhc = work + 3 * BH;
  const float *zeros = work + 4 * BH;
  if (!return_sequences) memcpy(dcarry, dout, BH * sizeof(float));
  /* with repeat, each row's dz summed over the steps (B, 4H), added while the step's dz is
   * hot: the gradient of the one projection (dzx, or dx itself without a kernel) */
  float *rsum = repeat ? (kernel ? dzx : dx) : NULL;
  if (rsum) memset(rsum, 0, (size_t)B * G * sizeof(float));
  for (int s = T - 1; s >= 0; s--) {
    int t = STEP_T(s), o = p.off[s], na = p.off[s + 1] - o;
    const int *rows = p.rows + o;
    const float *c_s = cs + (size_t)s * BH, *c_prev = s ? cs + (size_t)(s - 1) * BH : c0;
    float *dz_s = dz + (size_t)o * G;
    LC_OMP_FOR_IF(BH)
    for (int b = 0; b < B; b++)
      route_dout(dh + (size_t)b * H, dcarry + (size_t)b * H, dout, IS_REAL(b, t), s, b, T, H,
                 return_sequences, zero_output_for_mask);
    LC_OMP_FOR_IF((size_t)na * G)
    for (int k = 0; k < na; k++) {   /* a step's rows are distinct: no two k write one row */
      int b = rows[k];
      cell_backward_vec(dz_s + (size_t)k * G, dc + (size_t)b * H, dh + (size_t)b * H,
                        gates + ((size_t)o + k) * G, c_s + (size_t)b * H,
                        c_prev ? c_prev + (size_t)b * H : zeros, H);
      if (rsum) add_row(rsum + (size_t)b * G, dz_s + (size_t)k * G, G);
    }
    /* real rows: dh is consumed and replaced by the gradient of h_prev; masked rows keep
     * their pass-through dh. Rows whose h_prev is the zero initial state need it only
     * for dh0. */
    int nd = step_rec_rows(&p, s, dh0 != NULL);
    for (int k = nd; k < na; k++) memset(dh + (size_t)rows[k] * H, 0, (size_t)H * sizeof(float));
    if (nd > 0) {
      /* z = h_prev @ rkernel + ...  =>  dhc (nd, H) = dz_s (nd, 4H) @ rkernel^T (4H, H) */
      if (nd < SMALL_ROWS) {
        small_rows_matmul_nt(dhc, dz_s, rkernel, nd, H, (int)G);
      } else if (use_packed(nd, (int)G)) {
        memset(dhc, 0, (size_t)nd * H * sizeof(float));
        packed_gemm_acc(dhc, dz_s, pk, nd, H, (int)G);
      } else {
        lc_sgemm(0, 1, nd, H, (int)G, 1.0f, dz_s, rkernel, 0.0f, dhc);
      }
      LC_OMP_FOR_IF((size_t)nd * H)
      for (int k = 0; k < nd; k++)
        memcpy(dh + (size_t)rows[k] * H, dhc + (size_t)k * H, (size_t)H * sizeof(float));
    }
  }
  if (dh0) memcpy(dh0, dh, BH * sizeof(float));
  if (dc0) memcpy(dc0, dc, BH * sizeof(float));
  if (n > 0) {
    /* z = ... + bias  =>  dbias (4H) += column sums of dz (n, 4H), or of its per-row sums
     * (B, 4H) with repeat */
    if (rsum) column_sums_acc(dbias, rsum, (size_t)B, G);
    else column_sums_acc(dbias, dz, n, G);
    /* z = h_prev @ rkernel  =>  drkernel (H, 4H) += hp^T (H, n) @ dz (n, 4H), hp (n, H)
     * each pair's h_prev (rows past nrec: zero) */
    LC_OMP_FOR_IF(n * H)
    for (int s = 0; s < T; s++) {
      const float *h_prev = s ? hs + (size_t)(s - 1) * BH : h0;
      for (int k = p.off[s]; k < p.off[s + 1]; k++) {
        float *hp_k = hp + (size_t)k * H;
        if (k - p.off[s] < p.nrec[s])
          memcpy(hp_k, h_prev + (size_t)p.rows[k] * H, (size_t)H * sizeof(float));
        else memset(hp_k, 0, (size_t)H * sizeof(float));
      }
    }
    lc_sgemm(1, 0, H, (int)G, (int)n, 1.0f, hp, dz, 1.0f, drkernel);
  }
  if (!kernel) {
    /* x is the projection (C = 4H): its gradient is dz, summed over the steps with repeat
     * (dx (B, 4H)), else at each real (step, row) and 0 at masked ones (dx (B, T, 4H)) */
    if (!repeat) {   /* with repeat dx is rsum, summed in the step loop */
      memset(dx, 0, (size_t)B * T * G * sizeof(float));
      scatter_steps(dx, dz, &p, T, (int)G, go_backwards);
    }
  } else if (repeat) {
    /* x_t = x for every t  =>  dzx (B, 4H) = sum over the steps of each row's dz (rsum,
     * summed in the step loop) */
    /* zx = x @ kernel  =>  dx (B, C) = dzx (B, 4H) @ kernel^T (4H, C) */
    lc_sgemm(0, 1, B, C, (int)G, 1.0f, dzx, kernel, 0.0f, dx);
    /* dkernel (C, 4H) += x^T (C, B) @ dzx (B, 4H) */
    lc_sgemm(1, 0, C, (int)G, B, 1.0f, x, dzx, 1.0f, dkernel);
  } else {
    memset(dx, 0, (size_t)B * T * C * sizeof(float));
    if (n > 0) {
      gather_steps(xr, x, &p, B, T, C, go_backwards);
      /* gates = xr @ kernel  =>  dkernel (C, 4H) += xr^T (C, n) @ dz (n, 4H) */
      lc_sgemm(1, 0, C, (int)G, (int)n, 1.0f, xr, dz, 1.0f, dkernel);
      /* dxr (n, C) = dz (n, 4H) @ kernel^T (4H, C), into xr, then scattered to dx */
      lc_sgemm(0, 1, (int)n, C, (int)G, 1.0f, dz, kernel, 0.0f, xr);
      scatter_steps(dx, xr, &p, T, C, go_backwards);
    }
  }
  free(work); free(hp); free(pk);
  if (xr_own) free(xr);
  plan_free(&p);
  return LC_OK;
}

static int backward_args_call(const void *args) {
  const lstm_backward_args *a = args;
  return lstm_backward(a->dx, a->dkernel, a->drkernel, a->dbias, a->dh0, a->dc0, a->dz, a->dzx,
                       a->dout, a->x, a->mask, a->kernel, a->rkernel, a->gates, a->cs, a->hs,
                       a->h0, a->c0, a->B, a->T, a->C, a->H, a->go_backwards,
                       a->return_sequences, a->zero_output_for_mask, a->repeat);
}

int lstm_backward_pair(const lstm_backward_args *a, const lstm_backward_args *b) {
  return run_pair(backward_args_call, a, b);
}

/* Plain-loop backward, the reference for specs: same arguments (gates full (T, B, 4H),
 * as lstm_forward_ref writes it); dz, dzx unused. */
int lstm_backward_ref(float *dx, float *dkernel, float *drkernel, float *dbias, float *dh0,
                      float *dc0, float *dz, float *dzx, const float *dout, const float *x,
                      const float *mask, const float *kernel, const float *rkernel,
                      const float *gates, const float *cs, const float *hs, const float *h0,
                      const float *c0, int B, int T, int C, int H, int go_backwards,
                      int return_sequences, int zero_output_for_mask, int repeat) {
  (void)dz; (void)dzx;
  size_t G = 4 * (size_t)H, BH = (size_t)B * H;
  float *work = calloc(4 * BH + G + 1, sizeof(float));
  if (!work) return LC_ENOMEM;
  float *dh = work, *dc = work + BH, *dcarry = work + 2 * BH, *dhp = work + 3 * BH;
  float *dz_b = work + 4 * BH;   /* (4H) */
  if (!return_sequences) memcpy(dcarry, dout, BH * sizeof(float));
  memset(dx, 0, (size_t)B * (repeat ? 1 : T) * C * sizeof(float));
  for (int s = T - 1; s >= 0; s--) {
    int t = STEP_T(s);
    for (int b = 0; b < B; b++) {
      int real = IS_REAL(b, t);
      float *dh_b = dh + (size_t)b * H, *dc_b = dc + (size_t)b * H;
      route_dout(dh_b, dcarry + (size_t)b * H, dout, real, s, b, T, H, return_sequences,
                 zero_output_for_mask);
      if (!real) continue;   /* state carried: dh, dc pass through */
      const float *c_prev_b = s ? cs + (size_t)(s - 1) * BH + (size_t)b * H : (c0 ? c0 + (size_t)b * H : NULL);
      const float *h_prev_b = s ? hs + (size_t)(s - 1) * BH + (size_t)b * H : (h0 ? h0 + (size_t)b * H : NULL);
      cell_backward(dz_b, dc_b, dh_b, gates + ((size_t)s * B + b) * G, cs + (size_t)s * BH + (size_t)b * H,
                    c_prev_b, H);
      size_t xoff = (repeat ? (size_t)b : (size_t)b * T + t) * C;
      const float *x_bt = x + xoff;
      float *dx_bt = dx + xoff;
      for (size_t j = 0; j < G; j++) {
        /* z_j = sum_c x_c kernel[c, j] + sum_k h_prev_k rkernel[k, j] + bias_j */
        dbias[j] += dz_b[j];
        if (!kernel) dx_bt[j] += dz_b[j];   /* x is the projection */
        else
          for (int c = 0; c < C; c++) {
            dkernel[(size_t)c * G + j] += x_bt[c] * dz_b[j];
            dx_bt[c] += kernel[(size_t)c * G + j] * dz_b[j];
          }
        if (h_prev_b)
          for (int k = 0; k < H; k++) drkernel[(size_t)k * G + j] += h_prev_b[k] * dz_b[j];
      }
      for (int k = 0; k < H; k++) {
        double acc = 0;
        for (size_t j = 0; j < G; j++) acc += (double)rkernel[(size_t)k * G + j] * dz_b[j];
        dhp[(size_t)b * H + k] = (float)acc;
      }
      memcpy(dh_b, dhp + (size_t)b * H, (size_t)H * sizeof(float));
    }
  }
  if (dh0) memcpy(dh0, dh, BH * sizeof(float));
  if (dc0) memcpy(dc0, dc, BH * sizeof(float));
  free(work);
  return LC_OK;
}

/* ------------------------------------------------------------------ decoding step */

/* One step without a cache, for decoding. x (B, C); h_prev, c_prev (B, H) or NULL (zeros).
 * writes h, c (B, H) (not aliasing h_prev, c_prev); gates (B, 4H) is scratch. */
void lstm_step(float *h, float *c, float *gates, const float *x, const float *h_prev,
               const float *c_prev, const float *kernel, const float *rkernel,
               const float *bias, int B, int C, int H) {
  size_t G = 4 * (size_t)H;
  /* gates (B, 4H) = x (B, C) @ kernel (C, 4H) + h_prev (B, H) @ rkernel (H, 4H) */
  lc_sgemm(0, 0, B, (int)G, C, 1.0f, x, kernel, 0.0f, gates);
  if (h_prev) lc_sgemm(0, 0, B, (int)G, H, 1.0f, h_prev, rkernel, 1.0f, gates);
  for (int b = 0; b < B; b++) {
    const float *z = gates + (size_t)b * G;
    for (int k = 0; k < H; k++) {
      float i = sigmoidf(z[k] + bias[k]), f = sigmoidf(z[H + k] + bias[H + k]);
      float g = tanh_fast(z[2 * H + k] + bias[2 * H + k]), o = sigmoidf(z[3 * H + k] + bias[3 * H + k]);
      float cp = c_prev ? c_prev[(size_t)b * H + k] : 0.0f;
      float cn = f * cp + i * g;
      c[(size_t)b * H + k] = cn;
      h[(size_t)b * H + k] = o * tanh_fast(cn);
    }
  }
}

/* ------------------------------------------------------------------ helpers */

/* out (N, M) as Keras' Orthogonal(gain=1): draw a normal (max(N,M), min(N,M)) matrix A
 * (row-major, luacap's generator), A = QR, Q *= sign(diag(R)), transpose when N < M.
 * Modified Gram-Schmidt (run twice for float-level orthogonality) yields R with a
 * positive diagonal, which is the same unique Q as Householder QR times sign(diag(R)).
 * Returns LC_ENOMEM, or LC_EARG when the draw is rank deficient (never in practice). */
int orthogonal_init(float *out, int N, int M) {
  int big = N > M ? N : M, small = N > M ? M : N;
  double *q = malloc((size_t)big * small * sizeof(double) + 1);   /* (small, big): columns of A */
  if (!q) return LC_ENOMEM;
  for (int r = 0; r < big; r++)
    for (int c = 0; c < small; c++) q[(size_t)c * big + r] = lc_rng_normal();
  for (int j = 0; j < small; j++) {
    double *qj = q + (size_t)j * big;
    for (int k = 0; k < j; k++) {
      const double *qk = q + (size_t)k * big;
      double r = 0;
      for (int i = 0; i < big; i++) r += qk[i] * qj[i];
      for (int i = 0; i < big; i++) qj[i] -= r * qk[i];
    }
    double norm = 0;
    for (int i = 0; i < big; i++) norm += qj[i] * qj[i];
    norm = sqrt(norm);
    if (!(norm > 1e-12)) { free(q); return LC_EARG; }   /* a dependent column */
    for (int i = 0; i < big; i++) qj[i] /= norm;
  }
  for (int i = 0; i < N; i++)
    for (int j = 0; j < M; j++)   /* N < M: out = Q^T = q;  N >= M: out = Q */
      out[(size_t)i * M + j] = (float)(N < M ? q[(size_t)i * big + j] : q[(size_t)j * big + i]);
  free(q);
  return LC_OK;
}

/* Bidirectional merge by concatenation: out (B, T, 2H) = [fwd (B, T, H), bwd (B, T, H)],
 * bwd read at T-1-t when reverse (a go_backwards output back in input order). Batch rows
 * on the threads (copies only: the same bits). */
void bidir_concat_forward(float *out, const float *fwd, const float *bwd, int B, int T, int H,
                          int reverse) {
  LC_OMP_FOR_IF((size_t)B * T * H)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      int tb = reverse ? T - 1 - t : t;
      float *out_bt = out + ((size_t)b * T + t) * 2 * H;
      memcpy(out_bt, fwd + ((size_t)b * T + t) * H, (size_t)H * sizeof(float));
      memcpy(out_bt + H, bwd + ((size_t)b * T + tb) * H, (size_t)H * sizeof(float));
    }
}

/* writes dfwd, dbwd (B, T, H) from dout (B, T, 2H): the split, re-reversed for bwd. */
void bidir_concat_backward(float *dfwd, float *dbwd, const float *dout, int B, int T, int H,
                           int reverse) {
  LC_OMP_FOR_IF((size_t)B * T * H)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      int tb = reverse ? T - 1 - t : t;
      const float *dout_bt = dout + ((size_t)b * T + t) * 2 * H;
      memcpy(dfwd + ((size_t)b * T + t) * H, dout_bt, (size_t)H * sizeof(float));
      memcpy(dbwd + ((size_t)b * T + tb) * H, dout_bt + H, (size_t)H * sizeof(float));
    }
}

/* ------------------------------------------------------------------ one cell, cached */

/* One LSTM cell on pre-activations the caller made, keeping what backward needs: for a
 * decoder whose input at step t depends on h_{t-1} (models/sat.lua's attention), which
 * lstm_forward's whole-sequence loop cannot run. The gate kernels are the fast path's.
 *   gates (B, 4H): in, z = x_t @ kernel + h_prev @ rkernel + bias; out, i, f, g, o
 *   c_prev (B, H)   writes h, c (B, H) */
void lstm_cell_forward(float *h, float *c, float *gates, const float *c_prev, int B, int H) {
  size_t G = 4 * (size_t)H;
  LC_OMP_FOR_IF((size_t)B * G)
  for (int b = 0; b < B; b++)
    cell_forward_vec(h + (size_t)b * H, c + (size_t)b * H, gates + (size_t)b * G,
                     c_prev + (size_t)b * H, H);
}

/* Its backward: dz (B, 4H) written from dh (B, H) (the gradient of h) and dc (B, H): in,
 * the gradient of c; out, the gradient of c_prev. gates, c, c_prev as forward left them. */
void lstm_cell_backward(float *dz, float *dc, const float *dh, const float *gates,
                        const float *c, const float *c_prev, int B, int H) {
  size_t G = 4 * (size_t)H;
  LC_OMP_FOR_IF((size_t)B * G)
  for (int b = 0; b < B; b++)
    cell_backward_vec(dz + (size_t)b * G, dc + (size_t)b * H, dh + (size_t)b * H,
                      gates + (size_t)b * G, c + (size_t)b * H, c_prev + (size_t)b * H, H);
}
