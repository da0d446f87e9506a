/* vecmath.h: exp, sigmoid and tanh written for vectorised loops (no calls, no branches),
 * shared by the kernels whose elementwise work is dominated by them (lstm.c's gates,
 * additive_attention.c's scores). glibc's tanhf goes through expm1f and is not
 * vectorised: in sat training it was a third of the whole run's time. */
#ifndef LUACAP_NN_VECMATH_H
#define LUACAP_NN_VECMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp for the vectorised loops: e^x = 2^n e^r, n = round(x / ln2), |r| <= ln2 / 2,
 * e^r by its Taylor series to r^6 (truncation under 1.2e-7 relative), 2^n written into
 * the exponent bits. x is clamped to [-87, 88], where e^x is a normal float; NaN stays
 * NaN. Within 2 ulp of expf, with no branches and no calls. */
static inline float exp_vec(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float round_magic = 12582912.0f;   /* 1.5 * 2^23: adding it rounds to an integer */
  float t = x * 1.44269504f + round_magic;
  float n = t - round_magic;
  float r = x - n * 0.693145752f - n * 1.42860677e-6f;   /* ln2 split in two parts */
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120
            + r * (1.0f / 720))))));
  int32_t ti, bits;
  memcpy(&ti, &t, sizeof ti);
  bits = (int32_t)((uint32_t)(ti - 0x4B400000 + 127) << 23);   /* 2^n; 0x4B400000 = bits of round_magic */
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

static inline float sigmoid_vec(float z) { return 1.0f / (1.0f + exp_vec(-z)); }

/* tanh|z| = (1 - e)/(1 + e), e = exp(-2|z|); below |z| = 1/16 that form cancels and the
 * series z - z^3/3 + 2z^5/15 is used (a select, not a branch; lstm.c's tanh_fast is the
 * same formula through libm's expf). */
static inline float tanh_vec(float z) {
  float a = fabsf(z), z2 = z * z;
  float e = exp_vec(-2.0f * a);
  float big = copysignf((1.0f - e) / (1.0f + e), z);
  float small = z * (1.0f + z2 * (-1.0f / 3.0f + z2 * (2.0f / 15.0f)));
  return a < 0.0625f ? small : big;
}

#endif
