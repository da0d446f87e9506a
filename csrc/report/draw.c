/* draw.c: a small canvas over cairo for the report figures (loss curve, caption grids).
 * Tier 1: includes cairo.h, never lua.h; never prints or exits. Not a plotting library:
 * axes, ticks and layout are computed in Lua (lua/luacap/report/), this file only draws.
 *
 * Coordinates are pixels, origin at the top-left, y down (cairo's device space).
 * Colours are r, g, b, a in [0, 1]. Images are img (H, W, 3) floats in [0, 255], RGB.
 * Text uses cairo's toy font API with "DejaVu Sans" (fonts-dejavu-core).
 */
#include "../luacap.h"

#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#define LC_FONT_FACE "DejaVu Sans"

struct lc_canvas {
  cairo_surface_t *surface;   /* ARGB32 (W, H), owned */
  cairo_t *cr;                /* owned; draws into surface */
  int W, H;
};

static void set_msg(char *msg, size_t n, const char *what, cairo_status_t st) {
  if (msg && n) snprintf(msg, n, "%s: %s", what, cairo_status_to_string(st));
}

/* Takes ownership of surface; on failure destroys it. */
static int canvas_wrap(lc_canvas **out, cairo_surface_t *surface, const char *what, char *msg,
                       size_t n) {
  *out = NULL;
  cairo_status_t st = cairo_surface_status(surface);
  if (st != CAIRO_STATUS_SUCCESS) {
    set_msg(msg, n, what, st);
    cairo_surface_destroy(surface);
    return st == CAIRO_STATUS_NO_MEMORY ? LC_ENOMEM : LC_EDATA;
  }
  cairo_t *cr = cairo_create(surface);
  st = cairo_status(cr);
  if (st != CAIRO_STATUS_SUCCESS) {
    set_msg(msg, n, what, st);
    cairo_destroy(cr);
    cairo_surface_destroy(surface);
    return LC_ENOMEM;
  }
  lc_canvas *c = malloc(sizeof *c);
  if (!c) {
    if (msg && n) snprintf(msg, n, "%s: out of memory", what);
    cairo_destroy(cr);
    cairo_surface_destroy(surface);
    return LC_ENOMEM;
  }
  c->surface = surface;
  c->cr = cr;
  c->W = cairo_image_surface_get_width(surface);
  c->H = cairo_image_surface_get_height(surface);
  cairo_select_font_face(cr, LC_FONT_FACE, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, 12.0);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
  *out = c;
  return LC_OK;
}

/* A W x H canvas painted white. */
int lc_canvas_new(lc_canvas **out, int W, int H, char *msg, size_t n) {
  *out = NULL;
  if (W < 1 || H < 1 || W > 32767 || H > 32767) {
    if (msg && n) snprintf(msg, n, "canvas size %d x %d out of range [1, 32767]", W, H);
    return LC_EARG;
  }
  cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, W, H);
  int rc = canvas_wrap(out, s, "create canvas", msg, n);
  if (rc != LC_OK) return rc;
  cairo_set_source_rgb((*out)->cr, 1, 1, 1);
  cairo_paint((*out)->cr);
  return LC_OK;
}

/* A canvas holding the PNG file at path (to read figures back, in specs and reports). */
int lc_canvas_load_png(lc_canvas **out, const char *path, char *msg, size_t n) {
  cairo_surface_t *png = cairo_image_surface_create_from_png(path);
  cairo_status_t st = cairo_surface_status(png);
  if (st != CAIRO_STATUS_SUCCESS) {
    *out = NULL;
    set_msg(msg, n, "read png", st);
    cairo_surface_destroy(png);
    return st == CAIRO_STATUS_NO_MEMORY ? LC_ENOMEM
         : st == CAIRO_STATUS_FILE_NOT_FOUND || st == CAIRO_STATUS_READ_ERROR ? LC_EIO
         : LC_EDATA;
  }
  /* Copy onto an ARGB32 canvas over white so every loaded PNG has one pixel layout. */
  int W = cairo_image_surface_get_width(png), H = cairo_image_surface_get_height(png);
  int rc = lc_canvas_new(out, W, H, msg, n);
  if (rc == LC_OK) {
    cairo_set_source_surface((*out)->cr, png, 0, 0);
    cairo_paint((*out)->cr);
  }
  cairo_surface_destroy(png);
  return rc;
}

void lc_canvas_free(lc_canvas *c) {
  if (!c) return;
  cairo_destroy(c->cr);
  cairo_surface_destroy(c->surface);
  free(c);
}

int lc_canvas_width(const lc_canvas *c) { return c->W; }
int lc_canvas_height(const lc_canvas *c) { return c->H; }

/* LC_OK, or LC_EDATA with cairo's reason (a NaN coordinate puts the context in error). */
int lc_canvas_status(const lc_canvas *c, char *msg, size_t n) {
  cairo_status_t st = cairo_status(c->cr);
  if (st == CAIRO_STATUS_SUCCESS) return LC_OK;
  set_msg(msg, n, "draw", st);
  return LC_EDATA;
}

void lc_canvas_color(lc_canvas *c, double r, double g, double b, double a) {
  cairo_set_source_rgba(c->cr, r, g, b, a);
}

void lc_canvas_line_width(lc_canvas *c, double w) { cairo_set_line_width(c->cr, w); }

/* dashes (n) on/off lengths in pixels; n 0 gives a solid line. */
void lc_canvas_dash(lc_canvas *c, const double *dashes, int n) {
  cairo_set_dash(c->cr, dashes, n, 0.0);
}

/* Only draws inside (x, y, w, h) until lc_canvas_unclip. */
void lc_canvas_clip(lc_canvas *c, double x, double y, double w, double h) {
  cairo_reset_clip(c->cr);
  cairo_rectangle(c->cr, x, y, w, h);
  cairo_clip(c->cr);
}

void lc_canvas_unclip(lc_canvas *c) { cairo_reset_clip(c->cr); }

void lc_canvas_rect(lc_canvas *c, double x, double y, double w, double h, int fill) {
  cairo_new_path(c->cr);
  cairo_rectangle(c->cr, x, y, w, h);
  if (fill) cairo_fill(c->cr);
  else cairo_stroke(c->cr);
}

/* xy (n, 2) points; stroked as one open line, or filled as a closed polygon. */
void lc_canvas_polyline(lc_canvas *c, const double *xy, int n, int fill) {
  if (n < 1) return;
  cairo_new_path(c->cr);
  cairo_move_to(c->cr, xy[0], xy[1]);
  for (int i = 1; i < n; i++) cairo_line_to(c->cr, xy[2 * i], xy[2 * i + 1]);
  if (fill) {
    cairo_close_path(c->cr);
    cairo_fill(c->cr);
  } else {
    cairo_stroke(c->cr);
  }
}

void lc_canvas_circle(lc_canvas *c, double x, double y, double r, int fill) {
  cairo_new_path(c->cr);
  cairo_arc(c->cr, x, y, r, 0.0, 2.0 * M_PI);
  if (fill) cairo_fill(c->cr);
  else cairo_stroke(c->cr);
}

void lc_canvas_font(lc_canvas *c, double size, int bold) {
  cairo_select_font_face(c->cr, LC_FONT_FACE, CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(c->cr, size);
}

/* Of the UTF-8 string s in the current font: advance width, and the font's ascent and
 * descent (line metrics, the same for every string, so lines stack evenly). */
void lc_canvas_measure(lc_canvas *c, const char *s, double *width, double *ascent,
                       double *descent) {
  cairo_text_extents_t te;
  cairo_font_extents_t fe;
  cairo_text_extents(c->cr, s, &te);
  cairo_font_extents(c->cr, &fe);
  *width = te.x_advance;
  *ascent = fe.ascent;
  *descent = fe.descent;
}

/* s with its baseline starting at (x, y), turned by angle radians (clockwise) about it. */
void lc_canvas_text(lc_canvas *c, double x, double y, const char *s, double angle) {
  cairo_save(c->cr);
  cairo_new_path(c->cr);
  cairo_translate(c->cr, x, y);
  if (angle != 0.0) cairo_rotate(c->cr, angle);
  cairo_move_to(c->cr, 0, 0);
  cairo_show_text(c->cr, s);
  cairo_restore(c->cr);
}

/* Paints img (H, W, 3), values in [0, 255] (clamped, NaN as 0), scaled to fill the
 * rectangle (x, y, w, h) with a smooth filter. C 1 (grey) is also accepted. */
int lc_canvas_image(lc_canvas *c, const float *img, int H, int W, int C, double x, double y,
                    double w, double h, char *msg, size_t n) {
  if (H < 1 || W < 1 || H > 32767 || W > 32767 || (C != 1 && C != 3)) {
    if (msg && n) snprintf(msg, n, "image (%d, %d, %d) cannot be drawn", H, W, C);
    return LC_EARG;
  }
  if (!(w > 0) || !(h > 0)) return LC_OK;
  cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
  if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
    set_msg(msg, n, "image surface", cairo_surface_status(s));
    cairo_surface_destroy(s);
    return LC_ENOMEM;
  }
  cairo_surface_flush(s);
  unsigned char *dst = cairo_image_surface_get_data(s);
  int stride = cairo_image_surface_get_stride(s);
  for (int i = 0; i < H; i++) {
    uint32_t *row = (uint32_t *)(dst + (size_t)i * (size_t)stride);
    const float *img_i = img + (size_t)i * (size_t)W * (size_t)C;
    for (int j = 0; j < W; j++) {
      uint32_t rgb[3];
      for (int k = 0; k < 3; k++) {
        float v = img_i[(size_t)j * (size_t)C + (size_t)(C == 3 ? k : 0)];
        if (!(v > 0.0f)) v = 0.0f;            /* also NaN */
        if (v > 255.0f) v = 255.0f;
        rgb[k] = (uint32_t)lrintf(v);
      }
      row[j] = 0xff000000u | (rgb[0] << 16) | (rgb[1] << 8) | rgb[2];  /* native-endian xRGB */
    }
  }
  cairo_surface_mark_dirty(s);
  cairo_t *cr = c->cr;
  cairo_save(cr);
  cairo_new_path(cr);
  cairo_rectangle(cr, x, y, w, h);
  cairo_clip(cr);
  cairo_translate(cr, x, y);
  cairo_scale(cr, w / (double)W, h / (double)H);
  cairo_set_source_surface(cr, s, 0, 0);
  /* GOOD downscales with a box filter in cairo >= 1.14, so thumbnails do not alias. */
  cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_GOOD);
  cairo_pattern_set_extend(cairo_get_source(cr), CAIRO_EXTEND_PAD);
  cairo_paint(cr);
  cairo_restore(cr);
  cairo_surface_destroy(s);
  return LC_OK;
}

/* out (H, W, 3) floats in [0, 255]: the canvas' pixels, composited over white. */
void lc_canvas_pixels(lc_canvas *c, float *out) {
  cairo_surface_flush(c->surface);
  const unsigned char *src = cairo_image_surface_get_data(c->surface);
  int stride = cairo_image_surface_get_stride(c->surface);
  for (int i = 0; i < c->H; i++) {
    const uint32_t *row = (const uint32_t *)(src + (size_t)i * (size_t)stride);
    float *out_i = out + (size_t)i * (size_t)c->W * 3;
    for (int j = 0; j < c->W; j++) {
      uint32_t p = row[j];
      /* premultiplied ARGB: over white, channel + (255 - alpha) */
      float a = (float)(p >> 24);
      out_i[3 * j + 0] = (float)((p >> 16) & 0xff) + 255.0f - a;
      out_i[3 * j + 1] = (float)((p >> 8) & 0xff) + 255.0f - a;
      out_i[3 * j + 2] = (float)(p & 0xff) + 255.0f - a;
    }
  }
}

/* Writes the canvas to path as PNG; LC_EIO with cairo's reason when it cannot. */
int lc_canvas_write_png(lc_canvas *c, const char *path, char *msg, size_t n) {
  int rc = lc_canvas_status(c, msg, n);
  if (rc != LC_OK) return rc;
  cairo_surface_flush(c->surface);
  cairo_status_t st = cairo_surface_write_to_png(c->surface, path);
  if (st != CAIRO_STATUS_SUCCESS) {
    set_msg(msg, n, "write png", st);
    return st == CAIRO_STATUS_NO_MEMORY ? LC_ENOMEM : LC_EIO;
  }
  return LC_OK;
}

/* mkdir -p path (mode 0755); LC_EIO with strerror when a part cannot be made. */
int lc_mkdir_p(const char *path, char *msg, size_t n) {
  size_t len = strlen(path);
  char *buf = malloc(len + 1);
  if (!buf) return LC_ENOMEM;
  memcpy(buf, path, len + 1);
  int rc = LC_OK;
  for (size_t i = 1; i <= len && rc == LC_OK; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char saved = buf[i];
    buf[i] = '\0';
    struct stat sb;
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
      if (msg && n) snprintf(msg, n, "mkdir %s: %s", buf, strerror(errno));
      rc = LC_EIO;
    } else if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
      if (msg && n) snprintf(msg, n, "mkdir %s: exists and is not a directory", buf);
      rc = LC_EIO;
    }
    buf[i] = saved;
  }
  free(buf);
  return rc;
}
