/* fuzz/png.c: libFuzzer target, the PNG decoder path of image.load (every colour type
 * and bit depth, interlaced, palette with tRNS, the size limit), then resize and
 * preprocessing of the decoded image (fuzz/image.h). Seeds: fuzz/corpus/png (the spec
 * fixtures' PNGs).
 * A mutated byte inside a chunk almost always breaks that chunk's CRC, and libpng stops
 * there: the decoder's deeper paths (IHDR's fields, PLTE/tRNS lengths, the inflated
 * rows, interlacing) would go untried. So the input is decoded twice: as it came (the
 * CRC check itself is part of what is fuzzed), and as a copy whose chunk CRCs are
 * recomputed wherever a chunk's length fits the input. */
#include "image.h"

#include <string.h>
#include <zlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc; (void)argv;
  fuzz_limits();
  return 0;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Chunks after the 8-byte signature: length (4, big-endian), type (4), data, CRC (4)
 * over type and data. Rewrites each CRC in buf[0 .. n) and stops at the first chunk
 * that does not fit. */
static void fix_crcs(uint8_t *buf, size_t n) {
  size_t at = 8;
  while (at + 12 <= n) {
    uint32_t len = be32(buf + at);
    if (len > n - at - 12) break;
    uint32_t crc = (uint32_t)crc32(0L, buf + at + 4, len + 4);
    uint8_t *c = buf + at + 8 + len;
    c[0] = crc >> 24; c[1] = crc >> 16; c[2] = crc >> 8; c[3] = crc;
    at += 12 + (size_t)len;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_image(data, size, lc_png_decode);
  if (size > 8) {
    uint8_t *copy = malloc(size);
    if (!copy) return 0;
    memcpy(copy, data, size);
    fix_crcs(copy, size);
    if (memcmp(copy, data, size)) fuzz_image(copy, size, lc_png_decode);
    free(copy);
  }
  return 0;
}
