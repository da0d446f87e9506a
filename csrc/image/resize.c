/* resize.c: image resizing that reproduces Pillow's Image.resize, which Keras' load_img
 * uses (NEAREST for target_size). Not a general resampler: nearest and bilinear only,
 * whole image (no box), channels-last float images.
 *   shapes: img (IH, IW, C) input; out (OH, OW, C) output */
#include "../luacap.h"

#include <math.h>
#include <stdlib.h>

/* Pillow's nearest resize is an affine scale (Geometry.c, ImagingScaleAffine): with the
 * step a = IW / OW in double, the source column of output x is (int) of a running double
 * sum that starts at a * 0.5 and adds a once per column; rows alike. The running sum (not
 * (x + 0.5) * a) decides ties such as 640 -> 224, so we accumulate exactly as it does.
 * A position that lands outside the input (never for in-range steps) gives 0, as Pillow. */
void resize_nearest_forward(float *out, const float *img, int IH, int IW, int OH, int OW, int C) {
  double ay = (double)IH / OH, ax = (double)IW / OW;
  double yo = ay * 0.5;
  for (int y = 0; y < OH; y++, yo += ay) {
    int yi = yo < 0.0 ? -1 : (int)yo;
    float *out_y = out + (size_t)y * OW * C;
    double xo = ax * 0.5;
    for (int x = 0; x < OW; x++, xo += ax) {
      int xi = xo < 0.0 ? -1 : (int)xo;
      float *o = out_y + (size_t)x * C;
      if (yi < 0 || yi >= IH || xi < 0 || xi >= IW) {
        for (int c = 0; c < C; c++) o[c] = 0.0f;
        continue;
      }
      const float *in = img + ((size_t)yi * IW + xi) * C;
      for (int c = 0; c < C; c++) o[c] = in[c];
    }
  }
}

/* ------------------------------------------------------------ bilinear */

/* Per-output-index taps of Pillow's resampling (Resample.c, precompute_coeffs): the
 * triangle filter 1 - |t| is stretched by scale = in / out when shrinking, so every
 * input pixel under the output pixel contributes (antialiasing); when enlarging it is
 * plain bilinear interpolation with pixel centres at i + 0.5.
 *   first (out), count (out), weights (out, K) normalized to sum 1 */
typedef struct {
  int *first, *count;
  double *w;
  int K;
} taps;

static double triangle(double t) {
  t = fabs(t);
  return t < 1.0 ? 1.0 - t : 0.0;
}

static int taps_make(taps *tp, int in, int out) {
  double scale = (double)in / out;
  double fscale = scale < 1.0 ? 1.0 : scale;
  double support = 1.0 * fscale;               /* bilinear support is 1 input pixel */
  tp->K = (int)ceil(support) * 2 + 1;
  tp->first = malloc((size_t)out * sizeof *tp->first);
  tp->count = malloc((size_t)out * sizeof *tp->count);
  tp->w = malloc((size_t)out * tp->K * sizeof *tp->w);
  if (!tp->first || !tp->count || !tp->w) return LC_ENOMEM;
  for (int o = 0; o < out; o++) {
    double center = (o + 0.5) * scale;
    int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
    if (lo < 0) lo = 0;
    if (hi > in) hi = in;
    int n = hi - lo;
    if (n > tp->K) n = tp->K;
    double *w = tp->w + (size_t)o * tp->K, sum = 0.0;
    for (int k = 0; k < n; k++) {
      w[k] = triangle((k + lo - center + 0.5) / fscale);
      sum += w[k];
    }
    for (int k = 0; k < n; k++) w[k] = sum != 0.0 ? w[k] / sum : 0.0;
    tp->first[o] = lo;
    tp->count[o] = n;
  }
  return LC_OK;
}

static void taps_free(taps *tp) {
  free(tp->first);
  free(tp->count);
  free(tp->w);
}

/* Horizontal pass into tmp (IH, OW, C), then vertical into out, both in double sums.
 * Pillow rounds to 8 bits after each pass; we keep floats, so results differ from
 * Pillow's by at most about 1 on 0..255 images. */
int resize_bilinear_forward(float *out, const float *img, int IH, int IW, int OH, int OW, int C) {
  taps tx = {0}, ty = {0};
  float *tmp = malloc((size_t)IH * OW * C * sizeof *tmp);
  int rc = tmp ? taps_make(&tx, IW, OW) : LC_ENOMEM;
  if (rc == LC_OK) rc = taps_make(&ty, IH, OH);
  if (rc != LC_OK) {
    free(tmp);
    taps_free(&tx);
    taps_free(&ty);
    return rc;
  }
  for (int y = 0; y < IH; y++) {
    const float *img_y = img + (size_t)y * IW * C;
    for (int x = 0; x < OW; x++) {
      const double *w = tx.w + (size_t)x * tx.K;
      for (int c = 0; c < C; c++) {
        double s = 0.0;
        for (int k = 0; k < tx.count[x]; k++)
          s += w[k] * img_y[(size_t)(tx.first[x] + k) * C + c];
        tmp[((size_t)y * OW + x) * C + c] = (float)s;
      }
    }
  }
  for (int y = 0; y < OH; y++) {
    const double *w = ty.w + (size_t)y * ty.K;
    float *out_y = out + (size_t)y * OW * C;
    for (int i = 0; i < OW * C; i++) {
      double s = 0.0;
      for (int k = 0; k < ty.count[y]; k++)
        s += w[k] * tmp[(size_t)(ty.first[y] + k) * OW * C + i];
      out_y[i] = (float)s;
    }
  }
  free(tmp);
  taps_free(&tx);
  taps_free(&ty);
  return LC_OK;
}
