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

#include "parallel.h"

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

/* The end of the chunk of P pixels that starts at p0, within [.., end). */
static size_t chunk_end(size_t p0, size_t P, size_t end) { return p0 + P < end ? p0 + P : end; }

/* The per-image path: with at least as many images as threads, each thread takes whole
 * images and walks them in chunks of about IMAGE_CHUNK floats of columns (1 MB, in cache
 * beside the chunk's sgemm, which runs on that thread alone: OpenBLAS' OpenMP build is
 * single-threaded inside a parallel region). Images never share output pixels, nor input
 * pixels in col2im, so the threads write disjoint memory; the weight gradient is summed in
 * one private copy per thread, then over threads in a fixed order (deterministic). */
#define IMAGE_CHUNK ((size_t)1 << 18)

static int max_threads(void) {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/* Threads of the per-image path for g, or 0 when the whole-batch path is used (fewer
 * images than threads: there OpenBLAS' own threads split each product). */
static int image_threads(const lc_conv_geom *g) {
  int T = max_threads();
  return T > 1 && g->B >= T ? T : 0;
}

static size_t image_chunk_pixels(const lc_conv_geom *g) {
  size_t row = (size_t)g->KH * g->KW * g->C, OHW = (size_t)g->OH * g->OW;
  size_t P = IMAGE_CHUNK / row;
  if (P < 16) P = 16;
  return P < OHW ? P : OHW;
}

/* Floats of one thread's share of the per-image backward's work: col and (with dx) dcol
 * (P, row), the masked gradient (P, OC) with relu, the private dweight (row, OC), dbias. */
static size_t image_backward_share(const lc_conv_geom *g, int with_dx, int relu) {
  size_t row = (size_t)g->KH * g->KW * g->C, OC = (size_t)g->OC, P = image_chunk_pixels(g);
  return P * row * (with_dx ? 2 : 1) + (relu ? P * OC : 0) + row * OC + OC;
}

size_t conv2d_forward_workspace_size(const lc_conv_geom *g) {
  if (is_pointwise(g) || (size_t)g->B * g->OH * g->OW == 0) return 0;
  size_t row = (size_t)g->KH * g->KW * g->C;
  int T = image_threads(g);
  return T ? (size_t)T * image_chunk_pixels(g) * row : chunk_pixels(g) * row;
}

size_t conv2d_backward_workspace_size(const lc_conv_geom *g, int with_dx, int relu) {
  if (is_pointwise(g) || (size_t)g->B * g->OH * g->OW == 0) return 0;
  size_t row = (size_t)g->KH * g->KW * g->C;
  int T = image_threads(g);
  if (T) return (size_t)T * image_backward_share(g, with_dx, relu);
  return chunk_pixels(g) * (row * (with_dx ? 2 : 1) + (relu ? (size_t)g->OC : 0));
}

/* out[p0:p1] (P, OC) = col (P, row) @ weight (row, OC) + out (bias rows), relu after. */
static void forward_chunk(float *out, float *col, const float *x, const float *weight,
                          const lc_conv_geom *g, size_t p0, size_t p1, int relu) {
  const size_t OC = (size_t)g->OC, row = (size_t)g->KH * g->KW * g->C;
  im2col(col, x, g, p0, p1);
  lc_sgemm(0, 0, (int)(p1 - p0), (int)OC, (int)row, 1.0f, col, weight, 1.0f, out + p0 * OC);
  if (relu) relu_forward(out + p0 * OC, out + p0 * OC, (p1 - p0) * OC);
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
    if (relu) relu_forward(out, out, total * OC);
    return LC_OK;
  }
  float *col = work ? work : malloc(conv2d_forward_workspace_size(g) * sizeof(float));
  if (!col) return LC_ENOMEM;
  const int T = image_threads(g);
  if (T) {
    const size_t OHW = (size_t)g->OH * g->OW, P = image_chunk_pixels(g);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(T)
#endif
    for (long long b = 0; b < (long long)g->B; b++) {
#ifdef _OPENMP
      float *mine = col + (size_t)omp_get_thread_num() * P * row;
#else
      float *mine = col;
#endif
      for (size_t p0 = (size_t)b * OHW; p0 < (size_t)(b + 1) * OHW; p0 += P) {
        size_t p1 = chunk_end(p0, P, (size_t)(b + 1) * OHW);
        forward_chunk(out, mine, x, weight, g, p0, p1, relu);
      }
    }
  } else {
    size_t P = chunk_pixels(g);
    for (size_t p0 = 0; p0 < total; p0 += P) {
      size_t p1 = chunk_end(p0, P, total);
      im2col(col, x, g, p0, p1);
      /* out[p0:p1] (P,OC) = col (P, KH*KW*C) @ weight (KH*KW*C, OC) + out (bias rows) */
      lc_sgemm(0, 0, (int)(p1 - p0), (int)OC, (int)row, 1.0f, col, weight, 1.0f,
               out + p0 * OC);
    }
    if (relu) relu_forward(out, out, total * OC);
  }
  if (!work) free(col);
  return LC_OK;
}

/* dm (P, OC) = dout[p0:p1] masked by relu_out > 0 (the fused relu's gradient), or dout's
 * rows themselves without relu. */
static const float *masked(float *dm, const float *dout, const float *relu_out,
                           const lc_conv_geom *g, size_t p0, size_t p1) {
  const size_t OC = (size_t)g->OC;
  if (!relu_out) return dout + p0 * OC;
  const float *d = dout + p0 * OC, *o = relu_out + p0 * OC;
  const size_t n = (p1 - p0) * OC;
  LC_SIMD
  for (size_t i = 0; i < n; i++) {
    float v = d[i];   /* loaded unconditionally, so that the select vectorises */
    dm[i] = o[i] > 0.0f ? v : 0.0f;
  }
  return dm;
}

/* One chunk's gradients: dbias += column sums of dm, dweight (row, OC) += col^T @ dm, and
 * with dx, dx += col2im(dm @ weight^T). col and dcol: (P, row) buffers. */
static void backward_chunk(float *dx, float *dweight, float *dbias, const float *dm,
                           const float *x, const float *weight, const lc_conv_geom *g,
                           size_t p0, size_t p1, float *col, float *dcol) {
  const size_t OC = (size_t)g->OC, row = (size_t)g->KH * g->KW * g->C, P = p1 - p0;
  if (dbias)
    for (size_t p = 0; p < P; p++) {
      const float *dm_p = dm + p * OC;
      LC_SIMD
      for (size_t o = 0; o < OC; o++) dbias[o] += dm_p[o];
    }
  im2col(col, x, g, p0, p1);
  /* dweight (KH*KW*C, OC) += col^T (KH*KW*C, P) @ dm (P, OC) */
  lc_sgemm(1, 0, (int)row, (int)OC, (int)P, 1.0f, col, dm, 1.0f, dweight);
  if (dx) {
    /* dcol (P, KH*KW*C) = dm (P, OC) @ weight^T (OC, KH*KW*C); dx += col2im(dcol) */
    lc_sgemm(0, 1, (int)P, (int)row, (int)OC, 1.0f, dm, weight, 0.0f, dcol);
    col2im_add(dx, dcol, g, p0, p1);
  }
}

/* The per-image backward (image_threads(g) = T > 0), in work of T shares. */
static void backward_by_image(float *dx, float *dweight, float *dbias, const float *dout,
                              const float *relu_out, const float *x, const float *weight,
                              const lc_conv_geom *g, float *work, int T) {
  const size_t OC = (size_t)g->OC, row = (size_t)g->KH * g->KW * g->C;
  const size_t OHW = (size_t)g->OH * g->OW, P = image_chunk_pixels(g);
  const size_t share = image_backward_share(g, dx != NULL, relu_out != NULL);
#ifdef _OPENMP
#pragma omp parallel num_threads(T)
#endif
  {
#ifdef _OPENMP
    const int t = omp_get_thread_num();
#else
    const int t = 0;
#endif
    float *col = work + (size_t)t * share, *dcol = dx ? col + P * row : NULL;
    float *dm = col + P * row * (dx ? 2 : 1);
    float *dw = dm + (relu_out ? P * OC : 0), *db = dw + row * OC;
    memset(dw, 0, (row * OC + OC) * sizeof(float));
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (long long b = 0; b < (long long)g->B; b++)
      for (size_t p0 = (size_t)b * OHW; p0 < (size_t)(b + 1) * OHW; p0 += P) {
        size_t p1 = chunk_end(p0, P, (size_t)(b + 1) * OHW);
        const float *d = masked(dm, dout, relu_out, g, p0, p1);
        backward_chunk(dx, dw, dbias ? db : NULL, d, x, weight, g, p0, p1, col, dcol);
      }
    /* the implicit barrier above: every private sum is complete */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (long long il = 0; il < (long long)(row * OC + OC); il++) {
      size_t i = (size_t)il;
      float s = 0.0f;
      for (int u = 0; u < T; u++) s += work[(size_t)u * share + (share - row * OC - OC) + i];
      if (i < row * OC) dweight[i] += s;
      else if (dbias) dbias[i - row * OC] += s;
    }
  }
}

int conv2d_backward(float *dx, float *dweight, float *dbias, const float *dout,
                    const float *relu_out, const float *x, const float *weight,
                    const lc_conv_geom *g, float *work) {
  const size_t OC = (size_t)g->OC, row = (size_t)g->KH * g->KW * g->C;
  const size_t total = (size_t)g->B * g->OH * g->OW;
  if (total == 0) return LC_OK;
  float *own = NULL;
  size_t need = conv2d_backward_workspace_size(g, dx != NULL, relu_out != NULL);
  if (!work && need) {
    own = malloc(need * sizeof(float));
    if (!own) return LC_ENOMEM;
    work = own;
  }
  if (is_pointwise(g)) {
    /* forward: out (P,OC) = x (P,C) @ weight (C,OC) + bias; dm = the masked dout */
    float *m = relu_out ? malloc(total * OC * sizeof(float)) : NULL;
    if (relu_out && !m) return LC_ENOMEM;
    const float *dm = masked(m, dout, relu_out, g, 0, total);
    if (dbias)
      for (size_t p = 0; p < total; p++)
        for (size_t o = 0; o < OC; o++) dbias[o] += dm[p * OC + o];
    /* dweight (C,OC) += x^T (C,P) @ dm (P,OC) */
    lc_sgemm(1, 0, (int)row, (int)OC, (int)total, 1.0f, x, dm, 1.0f, dweight);
    /* dx (P,C) += dm (P,OC) @ weight^T (OC,C) */
    if (dx) lc_sgemm(0, 1, (int)total, (int)row, (int)OC, 1.0f, dm, weight, 1.0f, dx);
    free(m);
    return LC_OK;
  }
  const int T = image_threads(g);
  if (T) {
    backward_by_image(dx, dweight, dbias, dout, relu_out, x, weight, g, work, T);
  } else {
    /* whole-batch chunks: col, dcol (P, row), dm (P, OC) */
    size_t P = chunk_pixels(g);
    float *col = work, *dcol = dx ? col + P * row : NULL;
    float *dm = col + P * row * (dx ? 2 : 1);
    for (size_t p0 = 0; p0 < total; p0 += P) {
      size_t p1 = chunk_end(p0, P, total);
      const float *d = masked(dm, dout, relu_out, g, p0, p1);
      backward_chunk(dx, dweight, dbias, d, x, weight, g, p0, p1, col, dcol);
    }
  }
  free(own);
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
