/* fuzz/resize.c: libFuzzer target, resize_bilinear_forward and resize_nearest_forward
 * on images of any small size, shrinking and enlarging by odd factors, and the VGG16
 * preprocessing. Input: bytes 0..3 give IH, IW (1..64) and OH, OW (1..96), byte 4 the
 * channels (1..4); the rest are the pixel values (cycled when short, 0 when none).
 * Checks: bilinear output within the input's [min, max] (non-negative weights summing to
 * 1), nearest output only input values, preprocessing exact: out = BGR - means. */
#include "luacap.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 5) return 0;
  int IH = 1 + data[0] % 64, IW = 1 + data[1] % 64;
  int OH = 1 + data[2] % 96, OW = 1 + data[3] % 96, C = 1 + data[4] % 4;
  const uint8_t *px = data + 5;
  size_t npx = size - 5, nin = (size_t)IH * IW * C, nout = (size_t)OH * OW * C;
  float *img = malloc(nin * sizeof *img), *out = malloc(nout * sizeof *out);
  if (!img || !out) abort();
  float lo = 255.0f, hi = 0.0f;
  for (size_t i = 0; i < nin; i++) {
    img[i] = npx ? (float)px[i % npx] : 0.0f;
    if (img[i] < lo) lo = img[i];
    if (img[i] > hi) hi = img[i];
  }
  if (resize_bilinear_forward(out, img, IH, IW, OH, OW, C) != LC_OK) abort();
  for (size_t i = 0; i < nout; i++)
    if (!(out[i] >= lo - 1e-3f && out[i] <= hi + 1e-3f)) abort();
  if (C == 3) {
    float *pre = malloc(nout * sizeof *pre);
    if (!pre) abort();
    vgg_preprocess_forward(pre, out, OH, OW);
    for (size_t i = 0; i < nout; i += 3)
      if (pre[i] != out[i + 2] - 103.939f || pre[i + 2] != out[i] - 123.68f) abort();
    free(pre);
  }
  resize_nearest_forward(out, img, IH, IW, OH, OW, C);
  for (size_t i = 0; i < nout; i++)
    if (!(out[i] >= lo && out[i] <= hi && out[i] == (float)(int)out[i])) abort();
  free(out);
  free(img);
  return 0;
}
