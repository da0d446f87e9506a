/* fuzz/image.h: the image.load path that fuzz/jpeg.c and fuzz/png.c drive, as
 * lua/luacap/image.lua and csrc/bind/image.c take a file's bytes: a header-only read,
 * the full decode to (H, W, 3) bytes, the bytes to floats, both resizes to a small odd
 * size taken from the input's last two bytes, and VGG16's preprocessing.
 * Beyond "no crash" it checks what the decoders promise: a header and a decode agree on
 * the size, the size is within lc_limits.image_pixels, C is 1..4, the bilinear resize
 * stays inside the input's range (its weights are >= 0 and sum to 1) and the nearest
 * resize only copies input values. A broken promise aborts, which libFuzzer records. */
#ifndef LUACAP_FUZZ_IMAGE_H
#define LUACAP_FUZZ_IMAGE_H
#include "luacap.h"

#include <stdint.h>
#include <stdlib.h>

typedef int (*fuzz_decoder)(unsigned char **pix, int *H, int *W, int *C,
                            const unsigned char *buf, size_t n, char *msg, size_t msgn);

/* Inputs may claim at most 2^22 pixels here (a 2048 x 2048 image): the default limit,
 * 2^28, lets one input cost a second of decoding, and the limit check itself is what
 * is under test (a claim above it must be refused before any allocation). */
static void fuzz_limits(void) { lc_limits.image_pixels = (int64_t)1 << 22; }

static void fuzz_image(const uint8_t *data, size_t size, fuzz_decoder decode) {
  char msg[256];
  int H = 0, W = 0, C = 0;
  if (decode(NULL, &H, &W, &C, data, size, msg, sizeof msg) != LC_OK) return;
  if (H < 1 || W < 1 || C < 1 || C > 4) abort();
  unsigned char *pix = NULL;
  int H2 = 0, W2 = 0, C2 = 0;
  if (decode(&pix, &H2, &W2, &C2, data, size, msg, sizeof msg) != LC_OK) {
    if (pix) abort();                     /* a failed decode owns nothing */
    return;
  }
  if (H2 != H || W2 != W || C2 != C) abort();
  if ((int64_t)H * W > lc_limits.image_pixels) abort();
  size_t np = (size_t)H * W;
  float *img = malloc(np * 3 * sizeof *img);
  if (!img) { free(pix); return; }
  float lo = 255.0f, hi = 0.0f;
  for (size_t i = 0; i < np * 3; i++) {
    img[i] = pix[i];
    if (img[i] < lo) lo = img[i];
    if (img[i] > hi) hi = img[i];
  }
  free(pix);
  int OH = 1 + (size > 1 ? data[size - 2] % 37 : 0), OW = 1 + (size ? data[size - 1] % 41 : 0);
  float *out = malloc((size_t)OH * OW * 3 * sizeof *out);
  float *pre = malloc((size_t)OH * OW * 3 * sizeof *pre);
  if (out && pre) {
    if (resize_bilinear_forward(out, img, H, W, OH, OW, 3) == LC_OK) {
      for (int i = 0; i < OH * OW * 3; i++)
        if (!(out[i] >= lo - 1e-3f && out[i] <= hi + 1e-3f)) abort();
      vgg_preprocess_forward(pre, out, OH, OW);
    }
    resize_nearest_forward(out, img, H, W, OH, OW, 3);
    for (int i = 0; i < OH * OW * 3; i++)
      if (!(out[i] >= lo && out[i] <= hi && out[i] == (float)(int)out[i])) abort();
  }
  free(out);
  free(pre);
  free(img);
}
#endif
