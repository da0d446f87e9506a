/* elementwise.c: data movement layers with no arithmetic to speak of: Keras RepeatVector
 * and concatenate on the last axis. Not general broadcasting or gather/scatter.
 * Shapes: B batch, T steps, C features; N rows (all leading dims flattened), CT the
 * total width of a concatenation, off the first column of one part. */
#include "luacap.h"

#include <string.h>

/* The concatenation's row copies run on all threads from PAR_MIN_WORK floats (copies
 * only: the same bits at any thread count). */
#define PAR_MIN_WORK 65536
#include "parallel.h"

/* out (B, T, C) = x (B, C) copied into every one of T steps. */
void repeat_forward(float *out, const float *x, int B, int T, int C) {
  for (int b = 0; b < B; b++) {
    const float *x_b = x + (size_t)b * C;
    for (int t = 0; t < T; t++)
      memcpy(out + ((size_t)b * T + t) * C, x_b, (size_t)C * sizeof(float));
  }
}

/* dx (B, C), written:
 *   forward:  out[b, t, :] = x[b, :]
 *   backward: dx[b, :] = sum_t dout[b, t, :] */
void repeat_backward(float *dx, const float *dout, int B, int T, int C) {
  for (int b = 0; b < B; b++) {
    float *dx_b = dx + (size_t)b * C;
    for (int c = 0; c < C; c++) dx_b[c] = 0.0f;
    for (int t = 0; t < T; t++) {
      const float *dout_bt = dout + ((size_t)b * T + t) * C;
      for (int c = 0; c < C; c++) dx_b[c] += dout_bt[c];
    }
  }
}

/* out (N, CT), columns [off, off+C) = x (N, C): one part of a last-axis concatenation. */
void concat_forward(float *out, const float *x, int N, int C, int CT, int off) {
  LC_OMP_FOR_IF((size_t)N * C)
  for (int i = 0; i < N; i++)
    memcpy(out + (size_t)i * CT + off, x + (size_t)i * C, (size_t)C * sizeof(float));
}

/* dx (N, C), written:
 *   forward:  out[i, off + c] = x[i, c]
 *   backward: dx[i, c] = dout[i, off + c] */
void concat_backward(float *dx, const float *dout, int N, int C, int CT, int off) {
  LC_OMP_FOR_IF((size_t)N * C)
  for (int i = 0; i < N; i++)
    memcpy(dx + (size_t)i * C, dout + (size_t)i * CT + off, (size_t)C * sizeof(float));
}
