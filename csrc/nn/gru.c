/* gru.c: a Keras (tf.keras 2.x) GRU with reset_after=True, the TF2 default, over a whole
 * batch-major sequence: forward, backward, plain-loop references and the no-cache
 * decoding step. Not the reset_after=False (v3) variant, no go_backwards, no dropout.
 * Equations (Keras GRUCell.call), gate order z, r, h along the 3H axis:
 *   xz = x_t @ kernel + bias[0]            rz = h_{t-1} @ rkernel + bias[1]   (B, 3H)
 *   z = sigmoid(xz_z + rz_z)   r = sigmoid(xz_r + rz_r)
 *   hh = tanh(xz_h + r * rz_h)             h_t = z * h_{t-1} + (1 - z) * hh
 *
 * Shapes used throughout:
 *   x (B, T, C)   mask (B, T) of 1/0 floats, or NULL (all real)
 *   kernel (C, 3H)   rkernel (H, 3H)   bias (2, 3H): input bias, recurrent bias
 *   h0 (B, H) or NULL (zeros)
 *   out (B, T, H) when return_sequences, else (B, H) = the last step's output
 * Caches, time-major, the same layout in the fast and the reference paths:
 *   gates (T, B, 3H) post-activation z, r, hh   rz (T, B, 3H) = h_{t-1} @ rkernel + bias[1]
 *   hs (T, B, H) the state after step t
 * At a masked step the state is carried over unchanged and the output is the previous
 * step's output (zero before the first step), as Keras' masked RNN loop does. */
#include "../luacap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline float sigmoidf(float a) { return 1.0f / (1.0f + expf(-a)); }

#define IS_REAL(b, t) (!mask || mask[(size_t)(b) * T + (t)] != 0.0f)

/* The gate arithmetic of one (step, row), shared by every path so that they agree to
 * the bit: xz_b, rz_b (3H) projections (biases included) -> g_b (3H) = z, r, hh (NULL:
 * not kept) and h_b (H) from h_prev_b (H, or NULL for zeros). */
static void cell_forward(float *g_b, float *h_b, const float *xz_b, const float *rz_b,
                         const float *h_prev_b, int H) {
  for (int k = 0; k < H; k++) {
    float z = sigmoidf(xz_b[k] + rz_b[k]);
    float r = sigmoidf(xz_b[H + k] + rz_b[H + k]);
    float hh = tanhf(xz_b[2 * H + k] + r * rz_b[2 * H + k]);
    float hp = h_prev_b ? h_prev_b[k] : 0.0f;
    if (g_b) { g_b[k] = z; g_b[H + k] = r; g_b[2 * H + k] = hh; }
    h_b[k] = z * hp + (1.0f - z) * hh;
  }
}

/* out row of step t for batch row b from its new state h_b: real -> h, masked -> the
 * previous output (zero before step 0); in last-output mode out already holds it. */
static void write_output(float *out, const float *h_b, int real, int t, int b, int T, int H,
                         int return_sequences) {
  float *o = return_sequences ? out + ((size_t)b * T + t) * H : out + (size_t)b * H;
  if (real) memcpy(o, h_b, (size_t)H * sizeof(float));
  else if (return_sequences) {
    if (t > 0) memcpy(o, o - H, (size_t)H * sizeof(float));
    else memset(o, 0, (size_t)H * sizeof(float));
  }
}

/* ------------------------------------------------------------------ forward */

/* Fast forward: one sgemm for every step's input projection, one per step for the
 * recurrence. zx (B, T, 3H) is scratch (x @ kernel + bias[0]). Writes out, gates, rz, hs. */
int gru_forward(float *out, float *gates, float *rz, float *hs, float *zx,
                const float *x, const float *mask, const float *kernel, const float *rkernel,
                const float *bias, const float *h0, int B, int T, int C, int H,
                int return_sequences) {
  size_t G = 3 * (size_t)H, BH = (size_t)B * H, BG = (size_t)B * G;
  if (!return_sequences) memset(out, 0, BH * sizeof(float));
  if (T == 0 || B == 0) return LC_OK;
  /* zx (B*T, 3H) = x (B*T, C) @ kernel (C, 3H), then + bias[0] */
  lc_sgemm(0, 0, B * T, (int)G, C, 1.0f, x, kernel, 0.0f, zx);
  for (size_t n = 0; n < (size_t)B * T; n++) {
    float *zx_n = zx + n * G;
    for (size_t j = 0; j < G; j++) zx_n[j] += bias[j];
  }
  const float *rbias = bias + G;
  for (int t = 0; t < T; t++) {
    const float *h_prev = t ? hs + (size_t)(t - 1) * BH : h0;
    float *rz_t = rz + (size_t)t * BG, *g_t = gates + (size_t)t * BG, *h_t = hs + (size_t)t * BH;
    /* rz_t (B, 3H) = h_prev (B, H) @ rkernel (H, 3H) + bias[1]; h_prev NULL: just the bias */
    if (h_prev) lc_sgemm(0, 0, B, (int)G, H, 1.0f, h_prev, rkernel, 0.0f, rz_t);
    else memset(rz_t, 0, BG * sizeof(float));
    for (int b = 0; b < B; b++) {
      float *rz_b = rz_t + (size_t)b * G;
      for (size_t j = 0; j < G; j++) rz_b[j] += rbias[j];
      const float *hp_b = h_prev ? h_prev + (size_t)b * H : NULL;
      float *h_b = h_t + (size_t)b * H;
      int real = IS_REAL(b, t);
      if (real) {
        cell_forward(g_t + (size_t)b * G, h_b, zx + ((size_t)b * T + t) * G, rz_b, hp_b, H);
      } else {   /* carried state; its gates are never read */
        memset(g_t + (size_t)b * G, 0, G * sizeof(float));
        if (hp_b) memcpy(h_b, hp_b, (size_t)H * sizeof(float));
        else memset(h_b, 0, (size_t)H * sizeof(float));
      }
      write_output(out, h_b, real, t, b, T, H, return_sequences);
    }
  }
  return LC_OK;
}

/* Plain-loop forward, the reference for specs. Same arguments and outputs; zx unused. */
int gru_forward_ref(float *out, float *gates, float *rz, float *hs, float *zx,
                    const float *x, const float *mask, const float *kernel,
                    const float *rkernel, const float *bias, const float *h0,
                    int B, int T, int C, int H, int return_sequences) {
  (void)zx;
  size_t G = 3 * (size_t)H, BH = (size_t)B * H, BG = (size_t)B * G;
  float *xz_b = malloc(G * sizeof(float));
  if (!xz_b) return LC_ENOMEM;
  if (!return_sequences) memset(out, 0, BH * sizeof(float));
  for (int t = 0; t < T; t++) {
    const float *h_prev = t ? hs + (size_t)(t - 1) * BH : h0;
    for (int b = 0; b < B; b++) {
      const float *x_bt = x + ((size_t)b * T + t) * C;
      const float *hp_b = h_prev ? h_prev + (size_t)b * H : NULL;
      float *rz_b = rz + (size_t)t * BG + (size_t)b * G, *g_b = gates + (size_t)t * BG + (size_t)b * G;
      float *h_b = hs + (size_t)t * BH + (size_t)b * H;
      for (size_t j = 0; j < G; j++) {
        double ax = bias[j], ar = bias[G + j];
        for (int c = 0; c < C; c++) ax += (double)x_bt[c] * kernel[(size_t)c * G + j];
        if (hp_b)
          for (int k = 0; k < H; k++) ar += (double)hp_b[k] * rkernel[(size_t)k * G + j];
        xz_b[j] = (float)ax;
        rz_b[j] = (float)ar;
      }
      int real = IS_REAL(b, t);
      if (real) cell_forward(g_b, h_b, xz_b, rz_b, hp_b, H);
      else {
        memset(g_b, 0, G * sizeof(float));
        for (int k = 0; k < H; k++) h_b[k] = hp_b ? hp_b[k] : 0.0f;
      }
      write_output(out, h_b, real, t, b, T, H, return_sequences);
    }
  }
  free(xz_b);
  return LC_OK;
}

/* ------------------------------------------------------------------ backward */

/* dout routed into dh_b (the gradient of row b's state after step t) and dcarry_b (the
 * gradient of its "previous output", which a masked step passes on). */
static void route_dout(float *dh_b, float *dcarry_b, const float *dout, int real, int t, int b,
                       int T, int H, int return_sequences) {
  const float *dout_bt = return_sequences ? dout + ((size_t)b * T + t) * H : NULL;
  for (int k = 0; k < H; k++) {
    float g = dcarry_b[k] + (dout_bt ? dout_bt[k] : 0.0f);
    if (real) { dh_b[k] += g; dcarry_b[k] = 0.0f; }
    else dcarry_b[k] = g;
  }
}

/* One real (step, row): from dh_b (H), the gradient of its new state, writes
 * dxz_b (3H) (the gradient of xz = x @ kernel + bias[0]), drz_b (3H) (of rz) and
 * dhz_b (H) = dh_b * z, the direct part of the gradient of h_prev. */
static void cell_backward(float *dxz_b, float *drz_b, float *dhz_b, const float *dh_b,
                          const float *g_b, const float *rz_b, const float *h_prev_b, int H) {
  for (int k = 0; k < H; k++) {
    float z = g_b[k], r = g_b[H + k], hh = g_b[2 * H + k];
    float hp = h_prev_b ? h_prev_b[k] : 0.0f, dh = dh_b[k];
    /* h = z * h_prev + (1 - z) * hh */
    float dz = dh * (hp - hh), dhh = dh * (1.0f - z);
    dhz_b[k] = dh * z;
    /* hh = tanh(a_h), a_h = xz_h + r * rz_h */
    float da_h = dhh * (1.0f - hh * hh);
    float dr = da_h * rz_b[2 * H + k];
    /* z = sigmoid(xz_z + rz_z), r = sigmoid(xz_r + rz_r) */
    float da_z = dz * z * (1.0f - z), da_r = dr * r * (1.0f - r);
    dxz_b[k] = da_z; dxz_b[H + k] = da_r; dxz_b[2 * H + k] = da_h;
    drz_b[k] = da_z; drz_b[H + k] = da_r; drz_b[2 * H + k] = da_h * r;
  }
}

/* Fast backward. Writes dx (B, T, C) and dh0 (B, H) unless NULL; ADDS into dkernel,
 * drkernel, dbias. Scratch: dz (T, B, 3H) the gradients of rz, dzx (B, T, 3H) of zx.
 * Reads the caches of gru_forward (or gru_forward_ref: same layout). */
int gru_backward(float *dx, float *dkernel, float *drkernel, float *dbias, float *dh0,
                 float *dz, float *dzx, const float *dout, const float *x, const float *mask,
                 const float *kernel, const float *rkernel, const float *gates,
                 const float *rz, const float *hs, const float *h0, int B, int T, int C, int H,
                 int return_sequences) {
  size_t G = 3 * (size_t)H, BH = (size_t)B * H, BG = (size_t)B * G;
  float *work = calloc(3 * BH + 1, sizeof(float));
  if (!work) return LC_ENOMEM;
  float *dh = work, *dcarry = work + BH, *dhp = work + 2 * BH;
  if (!return_sequences) memcpy(dcarry, dout, BH * sizeof(float));
  for (int t = T - 1; t >= 0; t--) {
    const float *h_prev = t ? hs + (size_t)(t - 1) * BH : h0;
    float *dz_t = dz + (size_t)t * BG;
    for (int b = 0; b < B; b++) {
      int real = IS_REAL(b, t);
      float *dh_b = dh + (size_t)b * H, *dzx_bt = dzx + ((size_t)b * T + t) * G;
      route_dout(dh_b, dcarry + (size_t)b * H, dout, real, t, b, T, H, return_sequences);
      if (real) {
        cell_backward(dzx_bt, dz_t + (size_t)b * G, dhp + (size_t)b * H, dh_b,
                      gates + (size_t)t * BG + (size_t)b * G, rz + (size_t)t * BG + (size_t)b * G,
                      h_prev ? h_prev + (size_t)b * H : NULL, H);
      } else {   /* carried: h_t = h_prev, so dh passes through */
        memset(dzx_bt, 0, G * sizeof(float));
        memset(dz_t + (size_t)b * G, 0, G * sizeof(float));
        memcpy(dhp + (size_t)b * H, dh_b, (size_t)H * sizeof(float));
      }
    }
    /* rz = h_prev @ rkernel + ...  =>  dh_prev (B, H) = dhp + dz_t (B, 3H) @ rkernel^T
     * (masked rows have dz_t = 0: they keep their pass-through gradient) */
    if (h_prev || dh0) lc_sgemm(0, 1, B, H, (int)G, 1.0f, dz_t, rkernel, 1.0f, dhp);
    memcpy(dh, dhp, BH * sizeof(float));
  }
  if (dh0) memcpy(dh0, dh, BH * sizeof(float));
  if (T > 0 && B > 0) {
    /* rz_t = h_{t-1} @ rkernel  =>  drkernel (H, 3H) += sum_t h_{t-1}^T @ dz_t:
     * hs[0 .. T-2] (the (T-1)B previous states) against dz[1 .. T-1] in one sgemm */
    if (T > 1)
      lc_sgemm(1, 0, H, (int)G, (T - 1) * B, 1.0f, hs, dz + BG, 1.0f, drkernel);
    if (h0) lc_sgemm(1, 0, H, (int)G, B, 1.0f, h0, dz, 1.0f, drkernel);
    /* dbias[0] (3H) += column sums of dzx; dbias[1] (3H) += column sums of dz */
    for (size_t n = 0; n < (size_t)B * T; n++) {
      const float *dzx_n = dzx + n * G, *dz_n = dz + n * G;
      for (size_t j = 0; j < G; j++) { dbias[j] += dzx_n[j]; dbias[G + j] += dz_n[j]; }
    }
    /* zx = x @ kernel  =>  dkernel (C, 3H) += x^T (C, BT) @ dzx (BT, 3H) */
    lc_sgemm(1, 0, C, (int)G, B * T, 1.0f, x, dzx, 1.0f, dkernel);
    /* dx (BT, C) = dzx (BT, 3H) @ kernel^T (3H, C) */
    lc_sgemm(0, 1, B * T, C, (int)G, 1.0f, dzx, kernel, 0.0f, dx);
  } else {
    memset(dx, 0, (size_t)B * T * C * sizeof(float));
  }
  free(work);
  return LC_OK;
}

/* Plain-loop backward, the reference for specs: same arguments; dz, dzx unused. */
int gru_backward_ref(float *dx, float *dkernel, float *drkernel, float *dbias, float *dh0,
                     float *dz, float *dzx, const float *dout, const float *x,
                     const float *mask, const float *kernel, const float *rkernel,
                     const float *gates, const float *rz, const float *hs, const float *h0,
                     int B, int T, int C, int H, int return_sequences) {
  (void)dz; (void)dzx;
  size_t G = 3 * (size_t)H, BH = (size_t)B * H, BG = (size_t)B * G;
  float *work = calloc(2 * BH + 3 * G + H + 1, sizeof(float));
  if (!work) return LC_ENOMEM;
  float *dh = work, *dcarry = work + BH;
  float *dxz_b = work + 2 * BH, *drz_b = dxz_b + G, *dhz_b = drz_b + G;
  if (!return_sequences) memcpy(dcarry, dout, BH * sizeof(float));
  memset(dx, 0, (size_t)B * T * C * sizeof(float));
  for (int t = T - 1; t >= 0; t--) {
    for (int b = 0; b < B; b++) {
      int real = IS_REAL(b, t);
      float *dh_b = dh + (size_t)b * H;
      route_dout(dh_b, dcarry + (size_t)b * H, dout, real, t, b, T, H, return_sequences);
      if (!real) continue;   /* state carried: dh passes through */
      const float *hp_b = t ? hs + (size_t)(t - 1) * BH + (size_t)b * H
                            : (h0 ? h0 + (size_t)b * H : NULL);
      cell_backward(dxz_b, drz_b, dhz_b, dh_b, gates + (size_t)t * BG + (size_t)b * G,
                    rz + (size_t)t * BG + (size_t)b * G, hp_b, H);
      const float *x_bt = x + ((size_t)b * T + t) * C;
      float *dx_bt = dx + ((size_t)b * T + t) * C;
      for (size_t j = 0; j < G; j++) {
        /* xz_j = sum_c x_c kernel[c, j] + bias[0, j];  rz_j = sum_k hp_k rkernel[k, j] + bias[1, j] */
        dbias[j] += dxz_b[j];
        dbias[G + j] += drz_b[j];
        for (int c = 0; c < C; c++) {
          dkernel[(size_t)c * G + j] += x_bt[c] * dxz_b[j];
          dx_bt[c] += kernel[(size_t)c * G + j] * dxz_b[j];
        }
        if (hp_b)
          for (int k = 0; k < H; k++) drkernel[(size_t)k * G + j] += hp_b[k] * drz_b[j];
      }
      for (int k = 0; k < H; k++) {
        double acc = dhz_b[k];
        for (size_t j = 0; j < G; j++) acc += (double)rkernel[(size_t)k * G + j] * drz_b[j];
        dh_b[k] = (float)acc;
      }
    }
  }
  if (dh0) memcpy(dh0, dh, BH * sizeof(float));
  free(work);
  return LC_OK;
}

/* ------------------------------------------------------------------ decoding step */

/* One step without a cache, for decoding. x (B, C); h_prev (B, H) or NULL (zeros).
 * writes h (B, H) (not aliasing h_prev); work (2, B, 3H) is scratch. */
void gru_step(float *h, float *work, const float *x, const float *h_prev, const float *kernel,
              const float *rkernel, const float *bias, int B, int C, int H) {
  size_t G = 3 * (size_t)H, BG = (size_t)B * G;
  float *xz = work, *rzs = work + BG;
  /* xz (B, 3H) = x (B, C) @ kernel (C, 3H);  rzs (B, 3H) = h_prev (B, H) @ rkernel (H, 3H) */
  lc_sgemm(0, 0, B, (int)G, C, 1.0f, x, kernel, 0.0f, xz);
  if (h_prev) lc_sgemm(0, 0, B, (int)G, H, 1.0f, h_prev, rkernel, 0.0f, rzs);
  else memset(rzs, 0, BG * sizeof(float));
  for (int b = 0; b < B; b++) {
    float *xz_b = xz + (size_t)b * G, *rz_b = rzs + (size_t)b * G;
    for (size_t j = 0; j < G; j++) { xz_b[j] += bias[j]; rz_b[j] += bias[G + j]; }
    cell_forward(NULL, h + (size_t)b * H, xz_b, rz_b, h_prev ? h_prev + (size_t)b * H : NULL, H);
  }
}
