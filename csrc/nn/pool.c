/* pool.c: 2-d max pooling (Keras MaxPooling2D), channels-last, forward and backward.
 * Not average or global pooling. Windows hanging over a padded edge ignore the padding.
 * x (B, IH, IW, C), out (B, OH, OW, C); the geometry comes from lc_conv_geom_init. */
#include "../luacap.h"

#include <math.h>
#include <stddef.h>

#include "parallel.h"

/* out_p (C) = max of out_p and x_p (C), as a select (vectorized; a branch on data
 * mispredicts). */
static inline void max_into(float *restrict out_p, const float *restrict x_p, size_t C) {
  LC_SIMD
  for (size_t c = 0; c < C; c++) out_p[c] = x_p[c] > out_p[c] ? x_p[c] : out_p[c];
}

void maxpool2d_forward(float *out, const float *x, const lc_conv_geom *g) {
  const size_t C = (size_t)g->C;
  LC_OMP_FOR
  for (long long bo = 0; bo < (long long)g->B * g->OH; bo++) {
    size_t b = (size_t)bo / (size_t)g->OH;
    int oh = (int)((size_t)bo % (size_t)g->OH);
    for (int ow = 0; ow < g->OW; ow++) {
      float *out_p = out + (((size_t)bo) * g->OW + (size_t)ow) * C;
      for (size_t c = 0; c < C; c++) out_p[c] = -INFINITY;
      for (int kh = 0; kh < g->KH; kh++) {
        long ih = (long)oh * g->SH - g->pad_top + kh;
        if (ih < 0 || ih >= g->IH) continue;
        for (int kw = 0; kw < g->KW; kw++) {
          long iw = (long)ow * g->SW - g->pad_left + kw;
          if (iw < 0 || iw >= g->IW) continue;
          max_into(out_p, x + ((b * g->IH + (size_t)ih) * g->IW + (size_t)iw) * C, C);
        }
      }
    }
  }
}

/* forward: out[p, c] = max over the window of x;  dx[argmax, c] += dout[p, c], where the
 * argmax is found again from x (the first maximum in window order), so no index cache is
 * kept. Windows may overlap when the stride is below the window, but never across
 * channels: the threads split the channels. */
/* The common 2x2 stride-2 unpadded window (every pooling layer of VGG16 and the small CNN):
 * windows do not overlap, so each of the four inputs of a window gets dout where it is the
 * argmax (the same first maximum, in the same order, as the general loop) and nothing
 * otherwise; a select over contiguous channels, vectorised. */
static void maxpool2x2_backward(float *dx, const float *dout, const float *x,
                                const lc_conv_geom *g) {
  const size_t C = (size_t)g->C, IW = (size_t)g->IW;
  LC_OMP_FOR
  for (long long bo = 0; bo < (long long)g->B * g->OH; bo++) {
    size_t b = (size_t)bo / (size_t)g->OH, oh = (size_t)bo % (size_t)g->OH;
    for (size_t ow = 0; ow < (size_t)g->OW; ow++) {
      const float *d = dout + ((size_t)bo * g->OW + ow) * C;
      size_t i00 = ((b * g->IH + 2 * oh) * IW + 2 * ow) * C, i10 = i00 + IW * C;
      const float *x00 = x + i00, *x01 = x00 + C, *x10 = x + i10, *x11 = x10 + C;
      float *d00 = dx + i00, *d01 = d00 + C, *d10 = dx + i10, *d11 = d10 + C;
      LC_SIMD
      for (size_t c = 0; c < C; c++) {
        /* branch-free, so that the loop vectorises: every value loaded unconditionally,
         * the gradient handed down the window by float selects (dv - dv is exactly 0) from
         * the last candidate to the first, so the first maximum wins ties, as in the
         * general path */
        float v00 = x00[c], v01 = x01[c], v10 = x10[c], v11 = x11[c], dv = d[c];
        float b1 = v01 > v00 ? v01 : v00, b2 = v10 > b1 ? v10 : b1;
        float g3 = v11 > b2 ? dv : 0.0f, r3 = dv - g3;
        float g2 = v10 > b1 ? r3 : 0.0f, r2 = r3 - g2;
        float g1 = v01 > v00 ? r2 : 0.0f;
        d11[c] += g3;
        d10[c] += g2;
        d01[c] += g1;
        d00[c] += r2 - g1;
      }
    }
  }
}

void maxpool2d_backward(float *dx, const float *dout, const float *x, const lc_conv_geom *g) {
  const size_t C = (size_t)g->C;
  if (g->KH == 2 && g->KW == 2 && g->SH == 2 && g->SW == 2 && g->pad_top == 0 &&
      g->pad_left == 0 && 2 * g->OH <= g->IH && 2 * g->OW <= g->IW) {
    maxpool2x2_backward(dx, dout, x, g);
    return;
  }
  const long long CB = ((long long)C + 15) / 16;   /* blocks of 16 channels */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) collapse(2)
#endif
  for (long long bl = 0; bl < (long long)g->B; bl++)
    for (long long cb = 0; cb < CB; cb++) {
      size_t b = (size_t)bl, c0 = (size_t)cb * 16, c1 = c0 + 16 < C ? c0 + 16 : C;
      for (int oh = 0; oh < g->OH; oh++)
        for (int ow = 0; ow < g->OW; ow++) {
          const float *dout_p = dout + ((b * g->OH + (size_t)oh) * g->OW + (size_t)ow) * C;
          for (size_t c = c0; c < c1; c++) {
            float best = -INFINITY;
            size_t at = (size_t)-1;
            for (int kh = 0; kh < g->KH; kh++) {
              long ih = (long)oh * g->SH - g->pad_top + kh;
              if (ih < 0 || ih >= g->IH) continue;
              for (int kw = 0; kw < g->KW; kw++) {
                long iw = (long)ow * g->SW - g->pad_left + kw;
                if (iw < 0 || iw >= g->IW) continue;
                size_t i = ((b * g->IH + (size_t)ih) * g->IW + (size_t)iw) * C + c;
                if (at == (size_t)-1 || x[i] > best) { best = x[i]; at = i; }
              }
            }
            if (at != (size_t)-1) dx[at] += dout_p[c];
          }
        }
    }
}
