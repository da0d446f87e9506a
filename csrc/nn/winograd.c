/* winograd.c: 3x3 stride-1 convolutions by Winograd's minimal filtering, F(m x m, 3 x 3)
 * with m = 4 (6x6 input tiles, 36 products) or m = 2 (4x4 tiles, 16 products), forward
 * only (backward stays im2col + sgemm in conv2d.c). Lavin & Gray, "Fast Algorithms for
 * Convolutional Neural Networks" (2016): Y = A^T [ (G g G^T) .* (B^T d B) ] A.
 *
 * Shape vocabulary (NHWC, as conv2d.c): x (B, IH, IW, C), weight (3, 3, C, OC) as Keras
 * stores it, bias (OC), out (B, OH, OW, OC); a = m + 2 is the input tile side, N = a*a the
 * number of transform positions xi = (i, j). The output is cut into TH x TW tiles of m x m,
 * TH = ceil(OH / m), TW = ceil(OW / m); tile (b, ty, tx) reads input rows ty*m - pad_top ..
 * + a - 1 (zeros outside the image) and writes the rows of its tile that exist.
 *   U (N, C, OC)    U[xi] = (G g G^T)[xi] for every (c, oc): the filter transform
 *   V (N, T, C)     V[xi] = (B^T d B)[xi] for every (tile, c) of a chunk of T tiles
 *   M (N, T, OC)    M[xi] (T, OC) = V[xi] (T, C) @ U[xi] (C, OC): N sgemms per chunk
 * so the element-wise products over channels become N large sgemm calls spanning the whole
 * batch (a chunk covers many images when the maps are small). The transforms run on all
 * threads (OpenMP over tiles), every sgemm outside any parallel region.
 *
 * Numerics: F(4,3) uses the points 0, +-1, +-2, inf; its transforms scale values by up to
 * ~100, so float32 rounding is about 10x F(2,3)'s; both are measured against the direct
 * convolution in spec/nn/conv2d_spec.lua and bench/encoders.lua. */
#include "../luacap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"

/* The tile transforms are built for AVX-512 and AVX2 too (LC_CLONES_AVX512): the build
 * itself targets plain x86-64 (SSE2), 4 lanes where this machine has 16. */

/* Channels per vector block in the tile transforms: the inner loops run over VB lanes. */
#define VB 16

/* V and M of one chunk together hold at most this many floats (32 MiB): bounded memory at
 * any batch size, and sgemms long enough (measured on VGG16's layers: 4 Mi floats was
 * up to 15% slower on 64-channel maps, 16 Mi no faster). */
#define WINO_BUDGET ((size_t)1 << 23)

/* Below this many tiles per chunk the sgemms get short; a chunk has at least this many
 * tiles (or all of them) even when the budget is exceeded. */
#define WINO_MIN_TILES 192

int winograd_supported(const lc_conv_geom *g) {
  return g->KH == 3 && g->KW == 3 && g->SH == 1 && g->SW == 1;
}

/* ---------------------------------------------------------------- filter transform */

/* G (a, 3) for m = 4 (Lavin & Gray's F(4x4, 3x3)) and m = 2 (F(2x2, 3x3)). */
static const double G4[6][3] = {
  {1.0 / 4, 0, 0},
  {-1.0 / 6, -1.0 / 6, -1.0 / 6},
  {-1.0 / 6, 1.0 / 6, -1.0 / 6},
  {1.0 / 24, 1.0 / 12, 1.0 / 6},
  {1.0 / 24, -1.0 / 12, 1.0 / 6},
  {0, 0, 1},
};
static const double G2[4][3] = {
  {1, 0, 0},
  {0.5, 0.5, 0.5},
  {0.5, -0.5, 0.5},
  {0, 0, 1},
};

/* U (a*a, C, OC) = G g G^T for every (c, oc), g (3, 3) = weight[:, :, c, oc], computed in
 * double and rounded once. weight (3, 3, C, OC). */
void winograd_filter_transform(float *U, const float *weight, int m, int C, int OC) {
  const int a = m + 2;
  const double (*G)[3] = m == 4 ? G4 : G2;
  const size_t CO = (size_t)C * OC;
  LC_OMP_FOR
  for (long long cl = 0; cl < (long long)C; cl++) {
    size_t c = (size_t)cl;
    for (size_t o = 0; o < (size_t)OC; o++) {
      double g[3][3], t[6][3];
      for (int kh = 0; kh < 3; kh++)
        for (int kw = 0; kw < 3; kw++) g[kh][kw] = weight[((size_t)kh * 3 + kw) * CO + c * OC + o];
      /* t (a, 3) = G g */
      for (int i = 0; i < a; i++)
        for (int k = 0; k < 3; k++) t[i][k] = G[i][0] * g[0][k] + G[i][1] * g[1][k] + G[i][2] * g[2][k];
      /* U[i, j] = (t G^T)[i, j] */
      for (int i = 0; i < a; i++)
        for (int j = 0; j < a; j++)
          U[((size_t)i * a + j) * CO + c * OC + o] =
              (float)(t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2]);
    }
  }
}

/* ---------------------------------------------------------------- 1-d transforms */
/* Each maps `a` VB-lane vectors in (stride is floats) to out (stride os). */

/* out = B^T d for F(4,3):
 *   [4  0 -5  0 1 0; 0 -4 -4  1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
 *    0  4  0 -5 0 1] */
static inline void bt4(float *out, size_t os, const float *in, size_t is) {
  LC_SIMD
  for (int v = 0; v < VB; v++) {
    float d0 = in[v], d1 = in[is + v], d2 = in[2 * is + v], d3 = in[3 * is + v];
    float d4 = in[4 * is + v], d5 = in[5 * is + v];
    float p = d4 - 4.0f * d2, q = d3 - 4.0f * d1;   /* rows 1, 2: p +- q */
    float r = d4 - d2, s = 2.0f * (d3 - d1);        /* rows 3, 4: r +- s */
    out[v] = 4.0f * d0 - 5.0f * d2 + d4;
    out[os + v] = p + q;
    out[2 * os + v] = p - q;
    out[3 * os + v] = r + s;
    out[4 * os + v] = r - s;
    out[5 * os + v] = 4.0f * d1 - 5.0f * d3 + d5;
  }
}

/* out = A^T m for F(4,3): [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1] */
static inline void at4(float *out, size_t os, const float *in, size_t is) {
  LC_SIMD
  for (int v = 0; v < VB; v++) {
    float m0 = in[v], m1 = in[is + v], m2 = in[2 * is + v], m3 = in[3 * is + v];
    float m4 = in[4 * is + v], m5 = in[5 * is + v];
    float s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
    out[v] = m0 + s12 + s34;
    out[os + v] = d12 + 2.0f * d34;
    out[2 * os + v] = s12 + 4.0f * s34;
    out[3 * os + v] = d12 + 8.0f * d34 + m5;
  }
}

/* out = B^T d for F(2,3): [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] */
static inline void bt2(float *out, size_t os, const float *in, size_t is) {
  LC_SIMD
  for (int v = 0; v < VB; v++) {
    float d0 = in[v], d1 = in[is + v], d2 = in[2 * is + v], d3 = in[3 * is + v];
    out[v] = d0 - d2;
    out[os + v] = d1 + d2;
    out[2 * os + v] = d2 - d1;
    out[3 * os + v] = d1 - d3;
  }
}

/* out = A^T m for F(2,3): [1 1 1 0; 0 1 -1 -1] */
static inline void at2(float *out, size_t os, const float *in, size_t is) {
  LC_SIMD
  for (int v = 0; v < VB; v++) {
    float m0 = in[v], m1 = in[is + v], m2 = in[2 * is + v], m3 = in[3 * is + v];
    out[v] = m0 + m1 + m2;
    out[os + v] = m1 - m2 - m3;
  }
}

/* ---------------------------------------------------------------- tile transforms */

/* dst (VB) = src (n), zeros past n: a whole block inline (no libc call per 64 bytes). */
static inline void load_block(float *restrict dst, const float *restrict src, size_t n) {
  if (n == VB) {
    LC_SIMD
    for (int v = 0; v < VB; v++) dst[v] = src[v];
  } else {
    for (size_t v = 0; v < VB; v++) dst[v] = v < n ? src[v] : 0.0f;
  }
}

/* dst (n) = src (VB)[:n]. */
static inline void store_block(float *restrict dst, const float *restrict src, size_t n) {
  if (n == VB) {
    LC_SIMD
    for (int v = 0; v < VB; v++) dst[v] = src[v];
  } else {
    for (size_t v = 0; v < n; v++) dst[v] = src[v];
  }
}

/* Tile t of a chunk of T (its patch starts at input row ih0, column iw0 of image b) into
 * V (N, T, C). A function of its own so that its clones get the wide vectors (OpenMP's
 * outlined loop bodies would not). */
LC_CLONES_AVX512
static void input_tile(float *V, const float *x, const lc_conv_geom *g, int m, size_t T,
                       size_t t, size_t b, long ih0, long iw0) {
  const int a = m + 2, N = a * a;
  const size_t C = (size_t)g->C;
  float d[36 * VB], tmp[36 * VB], res[36 * VB];
  for (size_t c0 = 0; c0 < C; c0 += VB) {
    size_t cn = C - c0 < VB ? C - c0 : VB;
    /* d (a, a, VB): the input patch, zeros outside the image and past the last channel */
    for (int i = 0; i < a; i++) {
      long ih = ih0 + i;
      for (int j = 0; j < a; j++) {
        long iw = iw0 + j;
        float *dst = d + ((size_t)i * a + j) * VB;
        if (ih < 0 || ih >= g->IH || iw < 0 || iw >= g->IW) {
          for (int v = 0; v < VB; v++) dst[v] = 0.0f;
        } else {
          load_block(dst, x + ((b * g->IH + (size_t)ih) * g->IW + (size_t)iw) * C + c0, cn);
        }
      }
    }
    /* tmp = B^T d (down each column j), res = tmp B (along each row i) */
    for (int j = 0; j < a; j++) {
      if (m == 4) bt4(tmp + j * VB, (size_t)a * VB, d + j * VB, (size_t)a * VB);
      else bt2(tmp + j * VB, (size_t)a * VB, d + j * VB, (size_t)a * VB);
    }
    for (int i = 0; i < a; i++) {
      if (m == 4) bt4(res + i * a * VB, VB, tmp + i * a * VB, VB);
      else bt2(res + i * a * VB, VB, tmp + i * a * VB, VB);
    }
    for (int xi = 0; xi < N; xi++)
      store_block(V + ((size_t)xi * T + t) * C + c0, res + (size_t)xi * VB, cn);
  }
}

/* Tiles t0 .. t0+T-1 of the whole batch (numbered (b*TH + ty)*TW + tx) into V (N, T, C). */
static void input_transform(float *V, const float *x, const lc_conv_geom *g, int m, int TH,
                            int TW, size_t t0, size_t T) {
  LC_OMP_FOR
  for (long long tl = 0; tl < (long long)T; tl++) {
    size_t t = (size_t)tl, tg = t0 + t;
    input_tile(V, x, g, m, T, t, tg / ((size_t)TH * TW),
               (long)((tg / TW) % TH) * m - g->pad_top, (long)(tg % TW) * m - g->pad_left);
  }
}

/* Tile t of a chunk of T (output rows from oh0, columns from ow0 of image b) from
 * M (N, T, OC) into out: A^T M A + bias, then relu; rows and columns past the map dropped. */
LC_CLONES_AVX512
static void output_tile(float *out, const float *M, const float *bias, const lc_conv_geom *g,
                        int m, size_t T, size_t t, size_t b, int oh0, int ow0, int relu) {
  const int a = m + 2, N = a * a;
  const size_t OC = (size_t)g->OC;
  float mm[36 * VB], tmp[24 * VB], res[16 * VB], bv[VB];
  for (size_t o0 = 0; o0 < OC; o0 += VB) {
    size_t on = OC - o0 < VB ? OC - o0 : VB;
    for (int xi = 0; xi < N; xi++)
      load_block(mm + (size_t)xi * VB, M + ((size_t)xi * T + t) * OC + o0, on);
    for (size_t v = 0; v < VB; v++) bv[v] = bias && v < on ? bias[o0 + v] : 0.0f;
    /* tmp (m, a) = A^T mm (down each column j), res (m, m) = tmp A (along each row i) */
    for (int j = 0; j < a; j++) {
      if (m == 4) at4(tmp + j * VB, (size_t)a * VB, mm + j * VB, (size_t)a * VB);
      else at2(tmp + j * VB, (size_t)a * VB, mm + j * VB, (size_t)a * VB);
    }
    for (int i = 0; i < m; i++) {
      if (m == 4) at4(res + i * m * VB, VB, tmp + i * a * VB, VB);
      else at2(res + i * m * VB, VB, tmp + i * a * VB, VB);
    }
    for (int i = 0; i < m * m; i++) {
      float *r = res + (size_t)i * VB;
      LC_SIMD
      for (int v = 0; v < VB; v++) {
        float y = r[v] + bv[v];
        r[v] = relu && y < 0.0f ? 0.0f : y;
      }
    }
    for (int i = 0; i < m && oh0 + i < g->OH; i++)
      for (int j = 0; j < m && ow0 + j < g->OW; j++)
        store_block(out + ((b * g->OH + (size_t)(oh0 + i)) * g->OW + (size_t)(ow0 + j)) * OC + o0,
                    res + ((size_t)i * m + j) * VB, on);
  }
}

/* out (B, OH, OW, OC) for tiles t0 .. t0+T-1 from M (N, T, OC). */
static void output_transform(float *out, const float *M, const float *bias,
                             const lc_conv_geom *g, int m, int TH, int TW, size_t t0, size_t T,
                             int relu) {
  LC_OMP_FOR
  for (long long tl = 0; tl < (long long)T; tl++) {
    size_t t = (size_t)tl, tg = t0 + t;
    output_tile(out, M, bias, g, m, T, t, tg / ((size_t)TH * TW), (int)((tg / TW) % TH) * m,
                (int)(tg % TW) * m, relu);
  }
}

/* ---------------------------------------------------------------- forward */

/* Tiles per chunk: V and M within WINO_BUDGET floats, at least WINO_MIN_TILES. */
static size_t chunk_tiles(const lc_conv_geom *g, int m) {
  const size_t N = (size_t)(m + 2) * (m + 2);
  const size_t tiles = (size_t)g->B * ((g->OH + m - 1) / m) * ((g->OW + m - 1) / m);
  size_t T = WINO_BUDGET / (N * ((size_t)g->C + (size_t)g->OC));
  if (T < WINO_MIN_TILES) T = WINO_MIN_TILES;
  return T < tiles ? T : tiles;
}

size_t winograd_workspace_size(const lc_conv_geom *g, int m) {
  return (size_t)(m + 2) * (m + 2) * chunk_tiles(g, m) * ((size_t)g->C + (size_t)g->OC);
}

/* out (B, OH, OW, OC) = conv(x, weight) + bias, then relu; U (a*a, C, OC) from
 * winograd_filter_transform(U, weight, m, C, OC). g: 3x3, stride 1, any padding.
 * work: winograd_workspace_size(g, m) floats (V then M of one chunk), or NULL to have
 * them allocated here (a caller that keeps one across calls saves the page faults). */
int winograd_conv2d_forward(float *out, const float *x, const float *U, const float *bias,
                            const lc_conv_geom *g, int m, int relu, float *work) {
  if (!winograd_supported(g) || (m != 2 && m != 4)) return LC_EARG;
  const int a = m + 2, N = a * a;
  const int TH = (g->OH + m - 1) / m, TW = (g->OW + m - 1) / m;
  const size_t C = (size_t)g->C, OC = (size_t)g->OC;
  const size_t tiles = (size_t)g->B * TH * TW;
  if (tiles == 0) return LC_OK;
  const size_t T = chunk_tiles(g, m);
  float *own = NULL;
  if (!work) {
    work = own = malloc(winograd_workspace_size(g, m) * sizeof(float));
    if (!own) return LC_ENOMEM;
  }
  float *V = work, *M = work + (size_t)N * T * C;   /* V (N, T, C), M (N, T, OC) */
  for (size_t t0 = 0; t0 < tiles; t0 += T) {
    size_t Tc = t0 + T < tiles ? T : tiles - t0;
    input_transform(V, x, g, m, TH, TW, t0, Tc);
    for (int xi = 0; xi < N; xi++)
      /* M[xi] (Tc, OC) = V[xi] (Tc, C) @ U[xi] (C, OC) */
      lc_sgemm(0, 0, (int)Tc, (int)OC, (int)C, 1.0f, V + (size_t)xi * Tc * C,
               U + (size_t)xi * C * OC, 0.0f, M + (size_t)xi * Tc * OC);
    output_transform(out, M, bias, g, m, TH, TW, t0, Tc, relu);
  }
  free(own);
  return LC_OK;
}

/* A 64-bit fingerprint of n floats' bits, position-weighted (sum of bits_i * (2i + 1)),
 * so that a changed, swapped or shifted weight changes it: the filter cache's key. */
uint64_t winograd_fingerprint(const float *x, size_t n) {
  uint64_t h = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(+ : h)
#endif
  for (long long il = 0; il < (long long)n; il++) {
    uint32_t bits;
    memcpy(&bits, x + il, sizeof bits);
    h += (uint64_t)bits * (2 * (uint64_t)il + 1);
  }
  return h ^ (uint64_t)n;
}
