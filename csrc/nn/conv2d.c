/* conv2d.c: 2-d convolution (Keras Conv2D), forward and backward, as im2col + sgemm.
 * Not a general N-d or grouped/dilated convolution; Winograd forward is winograd.c, and this
 * file's plain direct forward is its reference.
 *
 * Layout: channels-last, NHWC, as Keras and luacap.image use. x (B, IH, IW, C),
 * weight (KH, KW, C, OC) exactly as Keras stores it, bias (OC), out (B, OH, OW, OC).
 * Why this fits im2col: one output pixel's receptive field, read in (kh, kw, c) order,
 * is a row of KH*KW*C numbers whose order matches the rows of the weight seen as a
 * (KH*KW*C, OC) matrix. So out (P, OC) = col (P, KH*KW*C) @ weight (KH*KW*C, OC) for any
 * set of P output pixels, and Keras kernels need no conversion.
 *
 * Output pixels of the whole batch are numbered p = (b*OH + oh)*OW + ow and processed in
 * chunks whose column buffer stays under COL_BUDGET floats: early layers (many pixels,
 * short rows) get long chunks within one image, late layers (few pixels, long rows) get
 * chunks spanning several images, so every sgemm is large. */
#include "../luacap.h"

#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#define LC_OMP_FOR _Pragma("omp parallel for schedule(static)")
#else
#define LC_OMP_FOR
#endif

/* 4M floats (16 MiB) of columns per chunk: large sgemms, bounded memory at any batch. */
#define COL_BUDGET ((size_t)1 << 22)

int lc_conv_geom_init(lc_conv_geom *g, int B, int IH, int IW, int C, int OC, int KH, int KW,
                      int SH, int SW, int same) {
  memset(g, 0, sizeof *g);
  if (B < 0 || IH < 1 || IW < 1 || C < 1 || OC < 1 || KH < 1 || KW < 1 || SH < 1 || SW < 1)
    return LC_EARG;
  g->B = B; g->IH = IH; g->IW = IW; g->C = C; g->OC = OC;
  g->KH = KH; g->KW = KW; g->SH = SH; g->SW = SW;
  if (same) {
    /* TF: OH = ceil(IH / SH); pad_total = max((OH-1)*SH + KH - IH, 0); the extra odd
     * row goes to the bottom (pad_top = floor(pad_total / 2)). */
    g->OH = (IH + SH - 1) / SH;
    g->OW = (IW + SW - 1) / SW;
    int ph = (g->OH - 1) * SH + KH - IH, pw = (g->OW - 1) * SW + KW - IW;
    g->pad_top = ph > 0 ? ph / 2 : 0;
    g->pad_left = pw > 0 ? pw / 2 : 0;
  } else {
    if (IH < KH || IW < KW) return LC_EARG;
    g->OH = (IH - KH) / SH + 1;
    g->OW = (IW - KW) / SW + 1;
  }
  return LC_OK;
}

/* Is this convolution a plain matrix product over pixels (1x1, stride 1, no padding)? */
static int is_pointwise(const lc_conv_geom *g) {
  return g->KH == 1 && g->KW == 1 && g->SH == 1 && g->SW == 1 && g->pad_top == 0 &&
         g->pad_left == 0;
}

/* col (p1 - p0, KH*KW*C): the receptive fields of output pixels p0..p1-1, zeros where
 * the window hangs over the padding. */
static void im2col(float *col, const float *x, const lc_conv_geom *g, size_t p0, size_t p1) {
  const size_t C = (size_t)g->C, row = (size_t)g->KH * g->KW * C;
  const size_t OHW = (size_t)g->OH * g->OW;
  LC_OMP_FOR
  for (long long pl = (long long)p0; pl < (long long)p1; pl++) {
    size_t p = (size_t)pl;
    size_t b = p / OHW, oh = (p % OHW) / g->OW, ow = p % g->OW;
    float *col_p = col + (p - p0) * row;
    for (int kh = 0; kh < g->KH; kh++) {
      long ih = (long)oh * g->SH - g->pad_top + kh;
      for (int kw = 0; kw < g->KW; kw++) {
        long iw = (long)ow * g->SW - g->pad_left + kw;
        float *dst = col_p + ((size_t)kh * g->KW + kw) * C;
        if (ih < 0 || ih >= g->IH || iw < 0 || iw >= g->IW) {
          memset(dst, 0, C * sizeof(float));
        } else {
          const float *x_bhw = x + ((b * g->IH + (size_t)ih) * g->IW + (size_t)iw) * C;
          memcpy(dst, x_bhw, C * sizeof(float));
        }
      }
    }
  }
}

/* dx += the rows of dcol (p1 - p0, KH*KW*C) scattered back to their input pixels: the
 * transpose of im2col. Windows of neighbouring pixels overlap in dx, those of different
 * images never do: one thread per image of the chunk. */
static void col2im_add(float *dx, const float *dcol, const lc_conv_geom *g, size_t p0,
                       size_t p1) {
  const size_t C = (size_t)g->C, row = (size_t)g->KH * g->KW * C;
  const size_t OHW = (size_t)g->OH * g->OW;
  const long long b0 = (long long)(p0 / OHW), b1 = (long long)((p1 - 1) / OHW);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (b1 > b0)
#endif
  for (long long bl = b0; bl <= b1; bl++) {
    size_t q0 = (size_t)bl * OHW, q1 = q0 + OHW;
    if (q0 < p0) q0 = p0;
    if (q1 > p1) q1 = p1;
    for (size_t p = q0; p < q1; p++) {
      size_t b = p / OHW, oh = (p % OHW) / g->OW, ow = p % g->OW;
      const float *dcol_p = dcol + (p - p0) * row;
      for (int kh = 0; kh < g->KH; kh++) {
        long ih = (long)oh * g->SH - g->pad_top + kh;
        if (ih < 0 || ih >= g->IH) continue;
        for (int kw = 0; kw < g->KW; kw++) {
          long iw = (long)ow * g->SW - g->pad_left + kw;
          if (iw < 0 || iw >= g->IW) continue;
          const float *src = dcol_p + ((size_t)kh * g->KW + kw) * C;
          float *dx_bhw = dx + ((b * g->IH + (size_t)ih) * g->IW + (size_t)iw) * C;
          for (size_t c = 0; c < C; c++) dx_bhw[c] += src[c];
        }
      }
    }
  }
}

/* Pixels per chunk so that the column buffer holds at most COL_BUDGET floats. */
static size_t chunk_pixels(const lc_conv_geom *g) {
  size_t row = (size_t)g->KH * g->KW * g->C, total = (size_t)g->B * g->OH * g->OW;
  size_t P = COL_BUDGET / row;
  if (P < 1) P = 1;
  return P < total ? P : total;
}

size_t conv2d_workspace_size(const lc_conv_geom *g, int with_dx) {
  if (is_pointwise(g) || (size_t)g->B * g->OH * g->OW == 0) return 0;
  size_t row = (size_t)g->KH * g->KW * g->C;
  return chunk_pixels(g) * row * (with_dx ? 2 : 1);
}

int conv2d_forward(float *out, const float *x, const float *weight, const float *bias,
                   const lc_conv_geom *g, int relu, float *work) {
  const size_t OC = (size_t)g->OC, row = (size_t)g->KH * g->KW * g->C;
  const size_t total = (size_t)g->B * g->OH * g->OW;
  if (total == 0) return LC_OK;
  LC_OMP_FOR
  for (long long pl = 0; pl < (long long)total; pl++) {
    float *out_p = out + (size_t)pl * OC;
    if (bias) memcpy(out_p, bias, OC * sizeof(float));
    else memset(out_p, 0, OC * sizeof(float));
  }
  if (is_pointwise(g)) {
    /* out (P,OC) = x (P,C) @ weight (C,OC) + out (bias rows) */
    lc_sgemm(0, 0, (int)total, (int)OC, (int)row, 1.0f, x, weight, 1.0f, out);
  } else {
    size_t P = chunk_pixels(g);
    float *col = work ? work : malloc(P * row * sizeof(float));
    if (!col) return LC_ENOMEM;
    for (size_t p0 = 0; p0 < total; p0 += P) {
      size_t p1 = p0 + P < total ? p0 + P : total;
      im2col(col, x, g, p0, p1);
      /* out[p0:p1] (P,OC) = col (P, KH*KW*C) @ weight (KH*KW*C, OC) + out (bias rows) */
      lc_sgemm(0, 0, (int)(p1 - p0), (int)OC, (int)row, 1.0f, col, weight, 1.0f,
               out + p0 * OC);
    }
    if (!work) free(col);
  }
  if (relu) relu_forward(out, out, total * OC);
  return LC_OK;
}

int conv2d_backward(float *dx, float *dweight, float *dbias, const float *dout,
                    const float *x, const float *weight, const lc_conv_geom *g, float *work) {
  const size_t OC = (size_t)g->OC, row = (size_t)g->KH * g->KW * g->C;
  const size_t total = (size_t)g->B * g->OH * g->OW;
  if (total == 0) return LC_OK;
  /* forward: out[p, o] = bias[o] + sum_r col[p, r] weight[r, o] */
  /* dbias (OC) += sum over pixels of dout */
  if (dbias)
    for (size_t p = 0; p < total; p++) {
      const float *dout_p = dout + p * OC;
      for (size_t o = 0; o < OC; o++) dbias[o] += dout_p[o];
    }
  if (is_pointwise(g)) {
    /* dweight (C,OC) += x^T (C,P) @ dout (P,OC) */
    lc_sgemm(1, 0, (int)row, (int)OC, (int)total, 1.0f, x, dout, 1.0f, dweight);
    /* dx (P,C) += dout (P,OC) @ weight^T (OC,C) */
    if (dx) lc_sgemm(0, 1, (int)total, (int)row, (int)OC, 1.0f, dout, weight, 1.0f, dx);
    return LC_OK;
  }
  size_t P = chunk_pixels(g);
  float *col = work ? work : malloc(P * row * sizeof(float));
  float *dcol = dx ? (work ? work + P * row : malloc(P * row * sizeof(float))) : NULL;
  if (!col || (dx && !dcol)) {
    if (!work) { free(col); free(dcol); }
    return LC_ENOMEM;
  }
  for (size_t p0 = 0; p0 < total; p0 += P) {
    size_t p1 = p0 + P < total ? p0 + P : total;
    const float *dout_c = dout + p0 * OC;
    im2col(col, x, g, p0, p1);
    /* dweight (KH*KW*C, OC) += col^T (KH*KW*C, P) @ dout[p0:p1] (P, OC) */
    lc_sgemm(1, 0, (int)row, (int)OC, (int)(p1 - p0), 1.0f, col, dout_c, 1.0f, dweight);
    if (dx) {
      /* dcol (P, KH*KW*C) = dout[p0:p1] (P, OC) @ weight^T (OC, KH*KW*C); dx += col2im(dcol) */
      lc_sgemm(0, 1, (int)(p1 - p0), (int)row, (int)OC, 1.0f, dout_c, weight, 0.0f, dcol);
      col2im_add(dx, dcol, g, p0, p1);
    }
  }
  if (!work) { free(col); free(dcol); }
  return LC_OK;
}

/* The direct convolution: for every output element, the sum over the window, in double. */
void conv2d_forward_ref(float *out, const float *x, const float *weight, const float *bias,
                        const lc_conv_geom *g, int relu) {
  const size_t C = (size_t)g->C, OC = (size_t)g->OC;
  for (size_t b = 0; b < (size_t)g->B; b++)
    for (int oh = 0; oh < g->OH; oh++)
      for (int ow = 0; ow < g->OW; ow++)
        for (size_t o = 0; o < OC; o++) {
          double s = bias ? bias[o] : 0.0;
          for (int kh = 0; kh < g->KH; kh++)
            for (int kw = 0; kw < g->KW; kw++) {
              long ih = (long)oh * g->SH - g->pad_top + kh;
              long iw = (long)ow * g->SW - g->pad_left + kw;
              if (ih < 0 || ih >= g->IH || iw < 0 || iw >= g->IW) continue;
              for (size_t c = 0; c < C; c++)
                s += (double)x[((b * g->IH + (size_t)ih) * g->IW + (size_t)iw) * C + c] *
                     weight[(((size_t)kh * g->KW + kw) * C + c) * OC + o];
            }
          if (relu && s < 0) s = 0;
          out[((b * g->OH + (size_t)oh) * g->OW + (size_t)ow) * OC + o] = (float)s;
        }
}
