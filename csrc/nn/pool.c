/* pool.c: 2-d max pooling (Keras MaxPooling2D), channels-last, forward and backward.
 * Not average or global pooling. Windows hanging over a padded edge ignore the padding.
 * x (B, IH, IW, C), out (B, OH, OW, C); the geometry comes from lc_conv_geom_init. */
#include "../luacap.h"

#include <math.h>
#include <stddef.h>

#ifdef _OPENMP
#define LC_OMP_FOR _Pragma("omp parallel for schedule(static)")
#else
#define LC_OMP_FOR
#endif

/* out_p (C) = max of out_p and x_p (C), as a select (vectorized; a branch on data
 * mispredicts). */
static inline void max_into(float *restrict out_p, const float *restrict x_p, size_t C) {
#ifdef _OPENMP
#pragma omp simd
#endif
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
void maxpool2d_backward(float *dx, const float *dout, const float *x, const lc_conv_geom *g) {
  const size_t C = (size_t)g->C;
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
