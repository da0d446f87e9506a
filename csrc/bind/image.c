/* image.c (binding): Lua functions of the image kernel family.
 * Bytes in, tensors out: file reading and writing live in lua/luacap/image.lua, so the
 * codecs here see Lua strings. Bad data gives nil, "<name>: <reason>"; wrong argument
 * types and shapes raise. Images are (H, W, 3) float tensors holding 0..255. */
#include "bind.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *format_name(int fmt) {
  return fmt == LC_IMG_JPEG ? "jpeg" : fmt == LC_IMG_PNG ? "png" : "unknown";
}

/* Decodes buf (header only when pix is NULL). Returns LC_OK, or writes the reason to msg. */
static int decode_bytes(int fmt, unsigned char **pix, int *H, int *W, int *C,
                        const unsigned char *buf, size_t n, char *msg, size_t msgn) {
  if (n == 0) {
    snprintf(msg, msgn, "empty file");
    return LC_EDATA;
  }
  if (fmt == LC_IMG_JPEG) return lc_jpeg_decode(pix, H, W, C, buf, n, msg, msgn);
  if (fmt == LC_IMG_PNG) return lc_png_decode(pix, H, W, C, buf, n, msg, msgn);
  snprintf(msg, msgn, "not a JPEG or PNG file (unrecognised first bytes)");
  return LC_EDATA;
}

static int fail_named(lua_State *L, const char *name, const char *msg) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", name, msg);
  return 2;
}

/* image_decode(bytes[, name]) -> (H, W, 3) tensor of 0..255 | nil, "name: reason".
 * The header is read first and the tensor pushed before the full decode, so nothing
 * that can raise runs while the decoded bytes are ours to free. */
static int l_decode(lua_State *L) {
  size_t n;
  const unsigned char *buf = (const unsigned char *)luaL_checklstring(L, 1, &n);
  const char *name = luaL_optstring(L, 2, "image data");
  int fmt = lc_image_sniff(buf, n), H, W, C;
  char msg[256];
  int rc = decode_bytes(fmt, NULL, &H, &W, &C, buf, n, msg, sizeof msg);
  if (rc == LC_OK && (int64_t)H * W > LC_IMAGE_MAX_PIXELS) {
    snprintf(msg, sizeof msg, "image too large (%d x %d)", H, W);
    rc = LC_EDATA;
  }
  if (rc == LC_ENOMEM) return luaL_error(L, "image_decode: %s: out of memory", name);
  if (rc != LC_OK) return fail_named(L, name, msg);
  int64_t shape[3] = {H, W, 3};
  lc_tensor *t = lcb_push(L, 3, shape);
  unsigned char *pix = NULL;
  int h2, w2;
  rc = decode_bytes(fmt, &pix, &h2, &w2, &C, buf, n, msg, sizeof msg);
  if (rc == LC_OK && (h2 != H || w2 != W)) {   /* cannot happen without scaling; be sure */
    free(pix);
    snprintf(msg, sizeof msg, "decoded size %dx%d differs from the header's %dx%d", h2, w2, H, W);
    rc = LC_EDATA;
  }
  if (rc == LC_ENOMEM) return luaL_error(L, "image_decode: %s: out of memory", name);
  if (rc != LC_OK) return fail_named(L, name, msg);
  size_t np = (size_t)H * (size_t)W * 3;
  for (size_t i = 0; i < np; i++) t->data[i] = (float)pix[i];
  free(pix);
  return 1;
}

/* image_info(bytes[, name]) -> format, height, width, channels | nil, "name: reason" */
static int l_info(lua_State *L) {
  size_t n;
  const unsigned char *buf = (const unsigned char *)luaL_checklstring(L, 1, &n);
  const char *name = luaL_optstring(L, 2, "image data");
  int fmt = lc_image_sniff(buf, n), H, W, C;
  char msg[256];
  int rc = decode_bytes(fmt, NULL, &H, &W, &C, buf, n, msg, sizeof msg);
  if (rc == LC_ENOMEM) return luaL_error(L, "image_info: %s: out of memory", name);
  if (rc != LC_OK) return fail_named(L, name, msg);
  lua_pushstring(L, format_name(fmt));
  lua_pushinteger(L, H);
  lua_pushinteger(L, W);
  lua_pushinteger(L, C);
  return 4;
}

/* Checks that t is an image (H, W, 3), (H, W, 1) or (H, W); returns its channels. */
static int check_image(lua_State *L, const char *fn, const lc_tensor *t) {
  if ((t->ndim == 3 && (t->shape[2] == 3 || t->shape[2] == 1)) || t->ndim == 2) {
    if (t->shape[0] >= 1 && t->shape[1] >= 1) return t->ndim == 3 ? (int)t->shape[2] : 1;
  }
  int64_t want[3] = {-1, -1, 3};
  lcb_expect_shape(L, fn, "img", t, 3, want, "(H, W, 3) with H, W >= 1");
  return luaL_error(L, "%s: img has an empty shape, expected H, W >= 1", fn);
}

#define BYTES_KEY "luacap.image.bytes"
typedef struct {
  const char *p;
  size_t n;
} bytes_arg;

static int push_bytes(lua_State *L) {  /* under lua_cpcall: registry[BYTES_KEY] = bytes */
  bytes_arg *b = lua_touserdata(L, 1);
  lua_pushlstring(L, b->p, b->n);
  lua_setfield(L, LUA_REGISTRYINDEX, BYTES_KEY);
  return 0;
}

/* image_encode(img, 'png' | 'jpeg'[, quality]) -> bytes | nil, reason.
 * Values are rounded to the nearest integer and clipped to 0..255 (NaN gives 0). */
static int l_encode(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  const char *fmt = luaL_checkstring(L, 2);
  int is_png = strcmp(fmt, "png") == 0, is_jpeg = strcmp(fmt, "jpeg") == 0;
  if (!is_png && !is_jpeg)
    return luaL_error(L, "image_encode: format '%s', expected 'png' or 'jpeg'", fmt);
  lua_Number q = luaL_optnumber(L, 3, 90);
  if (q != floor(q) || q < 1 || q > 100)
    return luaL_error(L, "image_encode: quality %g, expected an integer in 1..100", q);
  int C = check_image(L, "image_encode", t);
  int H = (int)t->shape[0], W = (int)t->shape[1];
  size_t np = (size_t)H * (size_t)W * (size_t)C;
  unsigned char *pix = malloc(np);
  if (!pix) return luaL_error(L, "image_encode: out of memory");
  for (size_t i = 0; i < np; i++) {
    float v = t->data[i];
    pix[i] = (unsigned char)(v >= 255.0f ? 255 : v > 0.0f ? (int)floorf(v + 0.5f) : 0);
  }
  unsigned char *out;
  size_t outn;
  char msg[256];
  int rc = is_png ? lc_png_encode(&out, &outn, pix, H, W, C, msg, sizeof msg)
                  : lc_jpeg_encode(&out, &outn, pix, H, W, C, (int)q, msg, sizeof msg);
  free(pix);
  if (rc == LC_ENOMEM) return luaL_error(L, "image_encode: out of memory");
  if (rc != LC_OK) return lcb_fail(L, msg);
  /* lua_pushlstring may raise (out of memory) while out is ours: push it under
   * lua_cpcall, free out, then re-raise any error. */
  bytes_arg ba = {(const char *)out, outn};
  int prc = lua_cpcall(L, push_bytes, &ba);
  free(out);
  if (prc != 0) return lua_error(L);
  lua_getfield(L, LUA_REGISTRYINDEX, BYTES_KEY);
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, BYTES_KEY);
  return 1;
}

/* image_resize(img (IH, IW, C), OH, OW, 'nearest' | 'bilinear') -> new (OH, OW, C) */
static int l_resize(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  lua_Number oh = luaL_checknumber(L, 2), ow = luaL_checknumber(L, 3);
  const char *mode = luaL_optstring(L, 4, "nearest");
  int nearest = strcmp(mode, "nearest") == 0, bilinear = strcmp(mode, "bilinear") == 0;
  if (!nearest && !bilinear)
    return luaL_error(L, "image_resize: mode '%s', expected 'nearest' or 'bilinear'", mode);
  if (oh != floor(oh) || ow != floor(ow) || oh < 1 || ow < 1 || oh > 65535 || ow > 65535)
    return luaL_error(L, "image_resize: size %g x %g, expected integers in 1..65535", oh, ow);
  int64_t want[3] = {-1, -1, -1};
  lcb_expect_shape(L, "image_resize", "img", t, 3, want, "(IH, IW, C)");
  if (t->shape[0] < 1 || t->shape[1] < 1 || t->shape[2] < 1)
    return luaL_error(L, "image_resize: img is empty, expected IH, IW, C >= 1");
  int IH = (int)t->shape[0], IW = (int)t->shape[1], C = (int)t->shape[2];
  int64_t shape[3] = {(int64_t)oh, (int64_t)ow, C};
  lc_tensor *out = lcb_push(L, 3, shape);
  if (nearest) {
    resize_nearest_forward(out->data, t->data, IH, IW, (int)oh, (int)ow, C);
  } else if (resize_bilinear_forward(out->data, t->data, IH, IW, (int)oh, (int)ow, C) != LC_OK) {
    return luaL_error(L, "image_resize: out of memory for the filter tables");
  }
  return 1;
}

/* image_vgg_preprocess(img (H, W, 3) RGB) -> new (H, W, 3) BGR minus the ImageNet means */
static int l_vgg_preprocess(lua_State *L) {
  lc_tensor *t = lcb_check(L, 1);
  int64_t want[3] = {-1, -1, 3};
  lcb_expect_shape(L, "image_vgg_preprocess", "img", t, 3, want, "(H, W, 3) RGB");
  lc_tensor *out = lcb_push(L, 3, t->shape);
  vgg_preprocess_forward(out->data, t->data, (int)t->shape[0], (int)t->shape[1]);
  return 1;
}

static const luaL_Reg functions[] = {
  {"image_resize", l_resize},
  {"image_vgg_preprocess", l_vgg_preprocess},
  {"image_decode", l_decode},
  {"image_info", l_info},
  {"image_encode", l_encode},
  {NULL, NULL}
};

void lcb_open_image(lua_State *L) { lcb_setfuncs(L, functions); }
