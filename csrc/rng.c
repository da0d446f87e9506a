/* rng.c: the one seedable random generator of luacap.
 * xoshiro256** (Blackman & Vigna, 2018) seeded through splitmix64, so any 64-bit seed
 * gives a well-mixed state. Integer arithmetic only: the same seed gives the same stream
 * on every x86-64 machine. Normals use Box-Muller in double precision. */
#include "luacap.h"

#include <math.h>
#include <string.h>

static uint64_t state[4];
static int have_spare;          /* Box-Muller makes normals in pairs */
static double spare;
static uint64_t seed_value;     /* the last seed: the key of keyed dropout masks */

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void lc_rng_seed(uint64_t seed) {
  uint64_t x = seed;
  seed_value = seed;
  for (int i = 0; i < 4; i++) state[i] = splitmix64(&x);
  have_spare = 0;
}

uint64_t lc_rng_u64(void) {
  if ((state[0] | state[1] | state[2] | state[3]) == 0) lc_rng_seed(0);  /* never seeded */
  uint64_t result = rotl(state[1] * 5, 7) * 9;
  uint64_t t = state[1] << 17;
  state[2] ^= state[0];
  state[3] ^= state[1];
  state[1] ^= state[2];
  state[0] ^= state[3];
  state[2] ^= t;
  state[3] = rotl(state[3], 45);
  return result;
}

uint64_t lc_rng_seed_value(void) { return seed_value; }

double lc_rng_uniform(void) { return (double)(lc_rng_u64() >> 11) * 0x1.0p-53; }

uint64_t lc_rng_below(uint64_t n) {
  if (n == 0) return 0;
  /* rejection sampling: drop the top sliver that would bias small values */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r;
  do r = lc_rng_u64(); while (r >= limit);
  return r % n;
}

double lc_rng_normal(void) {
  if (have_spare) { have_spare = 0; return spare; }
  double u1, u2;
  do u1 = lc_rng_uniform(); while (u1 <= 0.0);  /* log(0) would be -inf */
  u2 = lc_rng_uniform();
  double r = sqrt(-2.0 * log(u1));
  spare = r * sin(2.0 * M_PI * u2);
  have_spare = 1;
  return r * cos(2.0 * M_PI * u2);
}

/* mask (n): mask[i] = lc_rng_uniform() >= p ? keep : 0, the same draws as that loop (the
 * same stream, the same outcome) with the state in registers and no branch: dropout's masks
 * without a call, four loads and stores, and (at p = 0.5) a mispredicted jump half the
 * time per value. The test: u = (r >> 11) * 2^-53 >= p, both sides exact in double, is
 * (r >> 11) >= ceil(p * 2^53). */
void lc_rng_fill_keep(float *mask, size_t n, double p, float keep) {
  if ((state[0] | state[1] | state[2] | state[3]) == 0) lc_rng_seed(0);  /* never seeded */
  uint64_t s0 = state[0], s1 = state[1], s2 = state[2], s3 = state[3];
  uint64_t thr = p <= 0.0 ? 0 : (uint64_t)ceil(p * 0x1.0p53);
  uint32_t kb;
  memcpy(&kb, &keep, sizeof kb);
  for (size_t i = 0; i < n; i++) {
    uint64_t r = rotl(s1 * 5, 7) * 9, t = s1 << 17;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 45);
    uint32_t bits = kb & (0u - (uint32_t)((r >> 11) >= thr));   /* keep or +0.0f */
    memcpy(mask + i, &bits, sizeof bits);
  }
  state[0] = s0, state[1] = s1, state[2] = s2, state[3] = s3;
}

void lc_rng_fill_uniform(float *out, size_t n, float lo, float hi) {
  for (size_t i = 0; i < n; i++) out[i] = (float)(lo + (hi - lo) * lc_rng_uniform());
}

void lc_rng_fill_normal(float *out, size_t n, float mean, float std) {
  for (size_t i = 0; i < n; i++) out[i] = (float)(mean + std * lc_rng_normal());
}

/* The whole generator state as 4 words and the Box-Muller spare, for checkpoints that
 * resume a run exactly. */
void lc_rng_get_state(uint64_t out[4], int *has_spare, double *spare_out) {
  for (int i = 0; i < 4; i++) out[i] = state[i];
  *has_spare = have_spare;
  *spare_out = spare;
}

void lc_rng_set_state(const uint64_t in[4], int has_spare, double spare_in) {
  for (int i = 0; i < 4; i++) state[i] = in[i];
  have_spare = has_spare;
  spare = spare_in;
}
