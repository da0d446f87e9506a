/* preprocess.c: Keras' VGG16 preprocess_input in 'caffe' mode (imagenet_utils.py):
 * RGB -> BGR, then subtract the ImageNet channel means, no scaling. Not the 'tf' or
 * 'torch' modes, which scale to [-1, 1] or standardize.
 *   shapes: img (H, W, 3) RGB 0..255; out (H, W, 3) BGR, mean-centred */
#include "../luacap.h"

/* The ImageNet means in BGR order, as Keras lists them. */
static const float VGG_MEAN_BGR[3] = {103.939f, 116.779f, 123.68f};

void vgg_preprocess_forward(float *out, const float *img, int H, int W) {
  size_t np = (size_t)H * W;
  for (size_t i = 0; i < np; i++) {
    const float *px = img + 3 * i;
    float *o = out + 3 * i;
    o[0] = px[2] - VGG_MEAN_BGR[0];
    o[1] = px[1] - VGG_MEAN_BGR[1];
    o[2] = px[0] - VGG_MEAN_BGR[2];
  }
}
