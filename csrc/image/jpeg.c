/* jpeg.c: JPEG decode and encode with libjpeg(-turbo), plus format sniffing.
 * Not a general imaging library: any JPEG in, (H, W, 3) RGB bytes out; 8-bit grey or
 * RGB in for encoding. Decoding keeps libjpeg's defaults (JDCT_ISLOW, fancy upsampling)
 * and converts CMYK as Pillow's convert('RGB') does, so values match Keras' load_img.
 *
 * libjpeg's default error handler calls exit(). Ours formats the message into the
 * context and longjmps back; every mutable thing lives in one heap context whose
 * pointer is fixed before setjmp, so the error path can free it (no volatile games).
 * A truncated stream only makes libjpeg warn (JWRN_JPEG_EOF, it inserts a fake EOI);
 * we turn that warning into an error so a cut-off file is reported, not padded grey.
 *   shapes: pix (H, W, 3) RGB; row (W, comps) one scanline as libjpeg returns it */
#include "../luacap.h"

#include <setjmp.h>
#include <stdio.h>   /* jpeglib.h uses FILE */
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

int lc_image_sniff(const unsigned char *buf, size_t n) {
  static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF) return LC_IMG_JPEG;
  if (n >= 8 && memcmp(buf, png_sig, 8) == 0) return LC_IMG_PNG;
  return LC_IMG_UNKNOWN;
}

/* ------------------------------------------------------------ error manager */

typedef struct {
  struct jpeg_error_mgr pub;
  jmp_buf jb;
  int code;                    /* LC_EDATA or LC_ENOMEM, returned after the longjmp */
  char msg[JMSG_LENGTH_MAX];
} err_mgr;

static void on_error(j_common_ptr c) {
  err_mgr *e = (err_mgr *)c->err;
  c->err->format_message(c, e->msg);
  e->code = c->err->msg_code == JERR_OUT_OF_MEMORY ? LC_ENOMEM : LC_EDATA;
  longjmp(e->jb, 1);
}

/* Trace and warning messages are silenced; a premature end of data becomes an error. */
static void on_message(j_common_ptr c, int level) {
  err_mgr *e = (err_mgr *)c->err;
  if (level >= 0) return;
  c->err->num_warnings++;
  if (c->err->msg_code == JWRN_JPEG_EOF) {
    snprintf(e->msg, sizeof e->msg, "truncated JPEG (premature end of data)");
    e->code = LC_EDATA;
    longjmp(e->jb, 1);
  }
}

static void fail(err_mgr *e, int code, const char *msg) {
  snprintf(e->msg, sizeof e->msg, "%s", msg);
  e->code = code;
  longjmp(e->jb, 1);
}

static void init_err(err_mgr *e) {
  jpeg_std_error(&e->pub);
  e->pub.error_exit = on_error;
  e->pub.emit_message = on_message;
  e->code = LC_EDATA;
  e->msg[0] = '\0';
}

/* ------------------------------------------------------------ decode */

typedef struct {
  struct jpeg_decompress_struct cinfo;
  err_mgr err;
  unsigned char *pix;          /* (H, W, 3) the result */
  unsigned char *row;          /* (W, comps) one scanline */
} dec_ctx;

/* Pillow's MULDIV255: a * b / 255 rounded, in integers. */
static int muldiv255(int a, int b) {
  int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

/* One scanline of libjpeg output (comps 1, 3 or 4) into RGB. For CMYK, Pillow reads
 * Adobe files as inverted CMYK ("CMYK;I") and then converts with
 * r = nk - c * nk / 255 where nk = 255 - k, clipped to 0..255. */
static void row_to_rgb(unsigned char *dst, const unsigned char *src, int W, int comps,
                       int adobe_inverted) {
  for (int x = 0; x < W; x++) {
    unsigned char *d = dst + 3 * (size_t)x;
    if (comps == 1) {
      d[0] = d[1] = d[2] = src[x];
    } else if (comps == 3) {
      memcpy(d, src + 3 * (size_t)x, 3);
    } else {
      const unsigned char *s = src + 4 * (size_t)x;
      int c[4];
      for (int i = 0; i < 4; i++) c[i] = adobe_inverted ? 255 - s[i] : s[i];
      int nk = 255 - c[3];
      for (int i = 0; i < 3; i++) {
        int v = nk - muldiv255(c[i], nk);
        d[i] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
      }
    }
  }
}

int lc_jpeg_decode(unsigned char **pix, int *H, int *W, int *C,
                   const unsigned char *buf, size_t n, char *msg, size_t msgn) {
  if (pix) *pix = NULL;
  dec_ctx *d = calloc(1, sizeof *d);
  if (!d) {
    snprintf(msg, msgn, "out of memory");
    return LC_ENOMEM;
  }
  init_err(&d->err);
  d->cinfo.err = &d->err.pub;
  if (setjmp(d->err.jb)) {
    int code = d->err.code;
    snprintf(msg, msgn, "%s", d->err.msg);
    jpeg_destroy_decompress(&d->cinfo);
    free(d->pix);
    free(d->row);
    free(d);
    return code;
  }
  jpeg_create_decompress(&d->cinfo);
  if (n == 0) fail(&d->err, LC_EDATA, "empty JPEG data");
  jpeg_mem_src(&d->cinfo, buf, (unsigned long)n);
  jpeg_read_header(&d->cinfo, TRUE);

  J_COLOR_SPACE cs = d->cinfo.jpeg_color_space;
  int cmyk = cs == JCS_CMYK || cs == JCS_YCCK;
  int adobe_inverted = cmyk && d->cinfo.saw_Adobe_marker;
  *H = (int)d->cinfo.image_height;
  *W = (int)d->cinfo.image_width;
  *C = d->cinfo.num_components;
  if (!pix) {                                  /* header only */
    jpeg_destroy_decompress(&d->cinfo);
    free(d);
    return LC_OK;
  }
  if ((int64_t)*H * *W > LC_IMAGE_MAX_PIXELS) fail(&d->err, LC_EDATA, "image too large");
  d->cinfo.out_color_space = cs == JCS_GRAYSCALE ? JCS_GRAYSCALE : cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(&d->cinfo);

  int w = (int)d->cinfo.output_width, h = (int)d->cinfo.output_height;
  int comps = d->cinfo.output_components;
  d->pix = malloc((size_t)h * (size_t)w * 3);
  d->row = malloc((size_t)w * (size_t)comps);
  if (!d->pix || !d->row) fail(&d->err, LC_ENOMEM, "out of memory");
  while (d->cinfo.output_scanline < d->cinfo.output_height) {
    size_t y = d->cinfo.output_scanline;
    JSAMPROW r = d->row;
    jpeg_read_scanlines(&d->cinfo, &r, 1);
    row_to_rgb(d->pix + y * (size_t)w * 3, d->row, w, comps, adobe_inverted);
  }
  jpeg_finish_decompress(&d->cinfo);
  jpeg_destroy_decompress(&d->cinfo);
  *pix = d->pix;
  *H = h;
  *W = w;
  free(d->row);
  free(d);
  return LC_OK;
}

/* ------------------------------------------------------------ encode */

/* A destination manager writing into a growing malloc'd buffer that we own
 * (libjpeg's jpeg_mem_dest would own its buffer across our longjmp). */
typedef struct {
  struct jpeg_destination_mgr pub;
  unsigned char *buf;
  size_t cap;
} mem_dest;

typedef struct {
  struct jpeg_compress_struct cinfo;
  err_mgr err;
  mem_dest dest;
} enc_ctx;

static void dest_init(j_compress_ptr c) {
  mem_dest *m = (mem_dest *)c->dest;
  m->cap = 1 << 16;
  m->buf = malloc(m->cap);
  if (!m->buf) ERREXIT1(c, JERR_OUT_OF_MEMORY, 0);
  m->pub.next_output_byte = m->buf;
  m->pub.free_in_buffer = m->cap;
}

/* libjpeg calls this with the whole buffer full. */
static boolean dest_grow(j_compress_ptr c) {
  mem_dest *m = (mem_dest *)c->dest;
  unsigned char *nb = realloc(m->buf, m->cap * 2);
  if (!nb) ERREXIT1(c, JERR_OUT_OF_MEMORY, 1);
  m->buf = nb;
  m->pub.next_output_byte = nb + m->cap;
  m->pub.free_in_buffer = m->cap;
  m->cap *= 2;
  return TRUE;
}

static void dest_term(j_compress_ptr c) { (void)c; }

int lc_jpeg_encode(unsigned char **out, size_t *outn, const unsigned char *pix,
                   int H, int W, int C, int quality, char *msg, size_t msgn) {
  *out = NULL;
  *outn = 0;
  if (H < 1 || W < 1 || H > 65500 || W > 65500 || (C != 1 && C != 3)) {
    snprintf(msg, msgn, "cannot encode a %dx%dx%d image as JPEG (1..65500 pixels a side, "
             "1 or 3 channels)", H, W, C);
    return LC_EARG;
  }
  enc_ctx *e = calloc(1, sizeof *e);
  if (!e) {
    snprintf(msg, msgn, "out of memory");
    return LC_ENOMEM;
  }
  init_err(&e->err);
  e->cinfo.err = &e->err.pub;
  if (setjmp(e->err.jb)) {
    int code = e->err.code;
    snprintf(msg, msgn, "%s", e->err.msg);
    jpeg_destroy_compress(&e->cinfo);
    free(e->dest.buf);
    free(e);
    return code;
  }
  jpeg_create_compress(&e->cinfo);
  e->dest.pub.init_destination = dest_init;
  e->dest.pub.empty_output_buffer = dest_grow;
  e->dest.pub.term_destination = dest_term;
  e->cinfo.dest = &e->dest.pub;
  e->cinfo.image_width = (JDIMENSION)W;
  e->cinfo.image_height = (JDIMENSION)H;
  e->cinfo.input_components = C;
  e->cinfo.in_color_space = C == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&e->cinfo);                 /* 4:2:0 chroma, as Pillow's save */
  jpeg_set_quality(&e->cinfo, quality, TRUE);
  jpeg_start_compress(&e->cinfo, TRUE);
  while (e->cinfo.next_scanline < e->cinfo.image_height) {
    JSAMPROW r = (JSAMPROW)(pix + (size_t)e->cinfo.next_scanline * (size_t)W * (size_t)C);
    jpeg_write_scanlines(&e->cinfo, &r, 1);
  }
  jpeg_finish_compress(&e->cinfo);
  *out = e->dest.buf;
  *outn = e->dest.cap - e->dest.pub.free_in_buffer;
  jpeg_destroy_compress(&e->cinfo);
  free(e);
  return LC_OK;
}
