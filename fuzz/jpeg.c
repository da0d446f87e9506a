/* fuzz/jpeg.c: libFuzzer target, the JPEG decoder path of image.load (baseline,
 * progressive, grey, CMYK / YCCK, the size limit), then resize and preprocessing of the
 * decoded image (fuzz/image.h). Seeds: fuzz/corpus/jpeg (the spec fixtures' JPEGs). */
#include "image.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc; (void)argv;
  fuzz_limits();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_image(data, size, lc_jpeg_decode);
  return 0;
}
