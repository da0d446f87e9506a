/* png.c: PNG decode and encode with libpng, never exiting on bad data.
 * Not a general imaging library: every PNG colour type and bit depth in, (H, W, 3) RGB
 * bytes out, as Pillow's open(...).convert('RGB'): alpha and tRNS are dropped without
 * compositing, 16-bit samples keep their high byte, 1/2/4-bit grey is scaled to 0..255,
 * no gamma correction. Encoding writes 8-bit grey or RGB, non-interlaced.
 *
 * libpng reports errors through our error function, which copies the message and
 * png_longjmps back to setjmp(png_jmpbuf(...)). Everything the error path frees lives in
 * one heap context allocated before setjmp. Warnings are silenced.
 *   shapes: pix (H, W, 3) RGB; rows (H) pointers into the decoded image */
#include "../luacap.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

typedef struct {
  png_structp png;
  png_infop info;
  const unsigned char *src;    /* (n) the PNG bytes, when decoding */
  size_t n, pos;
  unsigned char *buf;          /* decoding: the image; encoding: the PNG bytes */
  size_t cap, len;             /* encoding: capacity and bytes written */
  png_bytep *rows;             /* (H) */
  int code;
  char msg[256];
} png_ctx;

static void on_error(png_structp p, png_const_charp m) {
  png_ctx *c = png_get_error_ptr(p);
  snprintf(c->msg, sizeof c->msg, "%s", m);
  png_longjmp(p, 1);
}

static void on_warning(png_structp p, png_const_charp m) { (void)p; (void)m; }

static void fail(png_ctx *c, int code, const char *m) {
  c->code = code;
  png_error(c->png, m);
}

/* ------------------------------------------------------------ decode */

static void read_mem(png_structp p, png_bytep out, png_size_t len) {
  png_ctx *c = png_get_io_ptr(p);
  if (len > c->n - c->pos) png_error(p, "truncated PNG (premature end of data)");
  memcpy(out, c->src + c->pos, len);
  c->pos += len;
}

int lc_png_decode(unsigned char **pix, int *H, int *W, int *C,
                  const unsigned char *buf, size_t n, char *msg, size_t msgn) {
  if (pix) *pix = NULL;
  png_ctx *c = calloc(1, sizeof *c);
  if (!c) {
    snprintf(msg, msgn, "out of memory");
    return LC_ENOMEM;
  }
  c->src = buf;
  c->n = n;
  c->code = LC_EDATA;
  c->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, on_error, on_warning);
  if (c->png) c->info = png_create_info_struct(c->png);
  if (!c->png || !c->info) {
    png_destroy_read_struct(c->png ? &c->png : NULL, NULL, NULL);
    free(c);
    snprintf(msg, msgn, "out of memory");
    return LC_ENOMEM;
  }
  if (setjmp(png_jmpbuf(c->png))) {
    int code = c->code;
    snprintf(msg, msgn, "%s", c->msg);
    png_destroy_read_struct(&c->png, &c->info, NULL);
    free(c->buf);
    free(c->rows);
    free(c);
    return code;
  }
  png_set_read_fn(c->png, c, read_mem);
  png_read_info(c->png, c->info);
  png_uint_32 w = png_get_image_width(c->png, c->info);
  png_uint_32 h = png_get_image_height(c->png, c->info);
  int depth = png_get_bit_depth(c->png, c->info);
  int ctype = png_get_color_type(c->png, c->info);
  *H = (int)h;
  *W = (int)w;
  *C = png_get_channels(c->png, c->info);
  if (ctype == PNG_COLOR_TYPE_PALETTE) *C = 3;
  if (!pix) {                                  /* header only */
    png_destroy_read_struct(&c->png, &c->info, NULL);
    free(c);
    return LC_OK;
  }
  if ((int64_t)h * w > LC_IMAGE_MAX_PIXELS) fail(c, LC_EDATA, "image too large");

  if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(c->png);
  if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(c->png);
  if (depth == 16) png_set_strip_16(c->png);  /* the high byte, as Pillow's ";16B" modes */
  if (!(ctype & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(c->png);
  png_set_interlace_handling(c->png);
  png_read_update_info(c->png, c->info);
  /* After these transforms: 8-bit RGB, or RGBA when alpha or tRNS was expanded. */
  int ch = png_get_channels(c->png, c->info);
  if (png_get_bit_depth(c->png, c->info) != 8 || (ch != 3 && ch != 4))
    fail(c, LC_EDATA, "unsupported PNG layout");
  size_t rowbytes = png_get_rowbytes(c->png, c->info);
  c->buf = malloc((size_t)h * rowbytes);
  c->rows = malloc((size_t)h * sizeof *c->rows);
  if (!c->buf || !c->rows) fail(c, LC_ENOMEM, "out of memory");
  for (size_t y = 0; y < h; y++) c->rows[y] = c->buf + y * rowbytes;
  png_read_image(c->png, c->rows);
  /* Drop alpha in place: destination offsets never pass source offsets. */
  if (ch == 4) {
    size_t np = (size_t)h * w;
    for (size_t i = 0; i < np; i++) memmove(c->buf + 3 * i, c->buf + 4 * i, 3);
  }
  png_destroy_read_struct(&c->png, &c->info, NULL);
  *pix = c->buf;
  free(c->rows);
  free(c);
  return LC_OK;
}

/* ------------------------------------------------------------ encode */

static void write_mem(png_structp p, png_bytep data, png_size_t len) {
  png_ctx *c = png_get_io_ptr(p);
  if (len > c->cap - c->len) {
    size_t cap = c->cap ? c->cap : 1 << 16;
    while (cap - c->len < len) cap *= 2;
    unsigned char *nb = realloc(c->buf, cap);
    if (!nb) fail(c, LC_ENOMEM, "out of memory");
    c->buf = nb;
    c->cap = cap;
  }
  memcpy(c->buf + c->len, data, len);
  c->len += len;
}

static void flush_mem(png_structp p) { (void)p; }

int lc_png_encode(unsigned char **out, size_t *outn, const unsigned char *pix,
                  int H, int W, int C, char *msg, size_t msgn) {
  *out = NULL;
  *outn = 0;
  if (H < 1 || W < 1 || (C != 1 && C != 3)) {
    snprintf(msg, msgn, "cannot encode a %dx%dx%d image as PNG (1 or 3 channels)", H, W, C);
    return LC_EARG;
  }
  png_ctx *c = calloc(1, sizeof *c);
  if (c) c->rows = malloc((size_t)H * sizeof *c->rows);
  if (c && c->rows) c->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, c, on_error,
                                                     on_warning);
  if (c && c->png) c->info = png_create_info_struct(c->png);
  if (!c || !c->info) {
    if (c) {
      png_destroy_write_struct(c->png ? &c->png : NULL, NULL);
      free(c->rows);
    }
    free(c);
    snprintf(msg, msgn, "out of memory");
    return LC_ENOMEM;
  }
  c->code = LC_EDATA;
  for (int y = 0; y < H; y++) c->rows[y] = (png_bytep)(pix + (size_t)y * (size_t)W * (size_t)C);
  if (setjmp(png_jmpbuf(c->png))) {
    int code = c->code;
    snprintf(msg, msgn, "%s", c->msg);
    png_destroy_write_struct(&c->png, &c->info);
    free(c->buf);
    free(c->rows);
    free(c);
    return code;
  }
  png_set_write_fn(c->png, c, write_mem, flush_mem);
  png_set_IHDR(c->png, c->info, (png_uint_32)W, (png_uint_32)H, 8,
               C == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(c->png, c->info);
  png_write_image(c->png, c->rows);
  png_write_end(c->png, NULL);
  png_destroy_write_struct(&c->png, &c->info);
  *out = c->buf;
  *outn = c->len;
  free(c->rows);
  free(c);
  return LC_OK;
}
