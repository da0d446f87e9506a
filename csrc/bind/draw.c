/* draw.c (binding): the luacap.Canvas userdata over report/draw.c (cairo), for plots and
 * caption grids drawn from Lua. Not a plotting API: the Lua side lays out axes and text.
 * The userdata holds the only pointer to its lc_canvas; __gc and free() release it once.
 * A failed file write or an unreadable PNG returns nil, msg; misuse raises. */
#include "bind.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define LCB_CANVAS_MT "luacap.Canvas"

typedef struct { lc_canvas *c; } canvas_ud;

static lc_canvas *check_canvas(lua_State *L, int idx) {
  canvas_ud *u = luaL_checkudata(L, idx, LCB_CANVAS_MT);
  if (!u->c) luaL_error(L, "bad argument #%d: canvas was freed", idx);
  return u->c;
}

/* A finite number argument; raises naming the method and the argument otherwise. */
static double check_num(lua_State *L, int idx, const char *fn, const char *arg) {
  double v = luaL_checknumber(L, idx);
  if (!isfinite(v)) luaL_error(L, "%s: %s must be finite, got %g", fn, arg, v);
  return v;
}

/* ------------------------------------------------------------ constructors */

static int l_canvas(lua_State *L) {            /* canvas(W, H) -> canvas | nil, msg */
  double W = check_num(L, 1, "canvas", "W"), H = check_num(L, 2, "canvas", "H");
  if (W != floor(W) || H != floor(H))
    return luaL_error(L, "canvas: W and H must be integers, got %g x %g", W, H);
  char msg[256];
  lc_canvas *c;
  /* The userdata exists before the canvas so that a failed allocation of it cannot leak. */
  canvas_ud *u = lua_newuserdata(L, sizeof *u);
  u->c = NULL;
  luaL_getmetatable(L, LCB_CANVAS_MT);
  lua_setmetatable(L, -2);
  if (W < 1 || H < 1 || W > 32767 || H > 32767)
    return luaL_error(L, "canvas: size %g x %g out of range [1, 32767]", W, H);
  if (lc_canvas_new(&c, (int)W, (int)H, msg, sizeof msg) != LC_OK) return lcb_fail(L, msg);
  u->c = c;
  return 1;
}

static int l_canvas_load_png(lua_State *L) {   /* canvas_load_png(path) -> canvas | nil, msg */
  const char *path = luaL_checkstring(L, 1);
  char msg[256], full[512];
  canvas_ud *u = lua_newuserdata(L, sizeof *u);
  u->c = NULL;
  luaL_getmetatable(L, LCB_CANVAS_MT);
  lua_setmetatable(L, -2);
  lc_canvas *c;
  if (lc_canvas_load_png(&c, path, msg, sizeof msg) != LC_OK) {
    snprintf(full, sizeof full, "%s: %s", path, msg);
    return lcb_fail(L, full);
  }
  u->c = c;
  return 1;
}

static int l_mkdir_p(lua_State *L) {           /* mkdir_p(path) -> true | nil, msg */
  const char *path = luaL_checkstring(L, 1);
  char msg[512];
  if (lc_mkdir_p(path, msg, sizeof msg) != LC_OK) return lcb_fail(L, msg);
  lua_pushboolean(L, 1);
  return 1;
}

/* ------------------------------------------------------------ methods */

static int m_gc(lua_State *L) {                /* safe to run twice, and after free() */
  canvas_ud *u = luaL_checkudata(L, 1, LCB_CANVAS_MT);
  lc_canvas_free(u->c);
  u->c = NULL;
  return 0;
}

static int m_isfreed(lua_State *L) {
  canvas_ud *u = luaL_checkudata(L, 1, LCB_CANVAS_MT);
  lua_pushboolean(L, u->c == NULL);
  return 1;
}

static int m_size(lua_State *L) {              /* -> W, H */
  lc_canvas *c = check_canvas(L, 1);
  lua_pushinteger(L, lc_canvas_width(c));
  lua_pushinteger(L, lc_canvas_height(c));
  return 2;
}

static int m_status(lua_State *L) {            /* -> true | nil, msg */
  char msg[256];
  if (lc_canvas_status(check_canvas(L, 1), msg, sizeof msg) != LC_OK) return lcb_fail(L, msg);
  lua_pushboolean(L, 1);
  return 1;
}

static int m_color(lua_State *L) {             /* color(r, g, b[, a]) in [0, 1] */
  lc_canvas *c = check_canvas(L, 1);
  double r = check_num(L, 2, "color", "r"), g = check_num(L, 3, "color", "g");
  double b = check_num(L, 4, "color", "b");
  double a = lua_isnoneornil(L, 5) ? 1.0 : check_num(L, 5, "color", "a");
  lc_canvas_color(c, r, g, b, a);
  return 0;
}

static int m_line_width(lua_State *L) {
  lc_canvas *c = check_canvas(L, 1);
  double w = check_num(L, 2, "line_width", "width");
  if (w < 0) return luaL_error(L, "line_width: width must be >= 0, got %g", w);
  lc_canvas_line_width(c, w);
  return 0;
}

static int m_dash(lua_State *L) {              /* dash{on, off, ...}; dash() for solid */
  lc_canvas *c = check_canvas(L, 1);
  double d[16];
  int n = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    n = (int)lua_objlen(L, 2);
    if (n > 16) return luaL_error(L, "dash: at most 16 lengths, got %d", n);
    double total = 0;
    for (int i = 0; i < n; i++) {
      lua_rawgeti(L, 2, i + 1);
      d[i] = lua_tonumber(L, -1);
      lua_pop(L, 1);
      if (!(d[i] >= 0) || !isfinite(d[i]))
        return luaL_error(L, "dash: length %d must be a finite number >= 0", i + 1);
      total += d[i];
    }
    if (n > 0 && total <= 0) return luaL_error(L, "dash: lengths must not all be 0");
  }
  lc_canvas_dash(c, d, n);
  return 0;
}

static int m_clip(lua_State *L) {              /* clip(x, y, w, h) */
  lc_canvas *c = check_canvas(L, 1);
  lc_canvas_clip(c, check_num(L, 2, "clip", "x"), check_num(L, 3, "clip", "y"),
                 check_num(L, 4, "clip", "w"), check_num(L, 5, "clip", "h"));
  return 0;
}

static int m_unclip(lua_State *L) {
  lc_canvas_unclip(check_canvas(L, 1));
  return 0;
}

static int m_rect(lua_State *L) {              /* rect(x, y, w, h[, fill]) */
  lc_canvas *c = check_canvas(L, 1);
  lc_canvas_rect(c, check_num(L, 2, "rect", "x"), check_num(L, 3, "rect", "y"),
                 check_num(L, 4, "rect", "w"), check_num(L, 5, "rect", "h"),
                 lua_toboolean(L, 6));
  return 0;
}

/* polyline({x1, y1, x2, y2, ...}[, fill]): stroked, or filled as a closed polygon. */
static int m_polyline(lua_State *L) {
  lc_canvas *c = check_canvas(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int fill = lua_toboolean(L, 3);
  int len = (int)lua_objlen(L, 2);
  if (len % 2) return luaL_error(L, "polyline: expected x, y pairs, got %d numbers", len);
  /* A userdata buffer: the collector owns it, so raising below leaks nothing. */
  double *xy = lua_newuserdata(L, (size_t)(len > 0 ? len : 1) * sizeof(double));
  for (int i = 0; i < len; i++) {
    lua_rawgeti(L, 2, i + 1);
    if (lua_type(L, -1) != LUA_TNUMBER)
      return luaL_error(L, "polyline: element %d is a %s, expected a number", i + 1,
                        luaL_typename(L, -1));
    xy[i] = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!isfinite(xy[i]))
      return luaL_error(L, "polyline: element %d must be finite, got %g", i + 1, xy[i]);
  }
  lc_canvas_polyline(c, xy, len / 2, fill);
  return 0;
}

static int m_circle(lua_State *L) {            /* circle(x, y, r[, fill]) */
  lc_canvas *c = check_canvas(L, 1);
  double r = check_num(L, 4, "circle", "r");
  if (r < 0) return luaL_error(L, "circle: r must be >= 0, got %g", r);
  lc_canvas_circle(c, check_num(L, 2, "circle", "x"), check_num(L, 3, "circle", "y"), r,
                   lua_toboolean(L, 5));
  return 0;
}

static int m_font(lua_State *L) {              /* font(size[, bold]) */
  lc_canvas *c = check_canvas(L, 1);
  double size = check_num(L, 2, "font", "size");
  if (size <= 0) return luaL_error(L, "font: size must be > 0, got %g", size);
  lc_canvas_font(c, size, lua_toboolean(L, 3));
  return 0;
}

static int m_measure(lua_State *L) {           /* measure(s) -> width, ascent, descent */
  lc_canvas *c = check_canvas(L, 1);
  const char *s = luaL_checkstring(L, 2);
  double w, a, d;
  lc_canvas_measure(c, s, &w, &a, &d);
  lua_pushnumber(L, w);
  lua_pushnumber(L, a);
  lua_pushnumber(L, d);
  return 3;
}

static int m_text(lua_State *L) {              /* text(x, y, s[, angle]): baseline at y */
  lc_canvas *c = check_canvas(L, 1);
  double x = check_num(L, 2, "text", "x"), y = check_num(L, 3, "text", "y");
  const char *s = luaL_checkstring(L, 4);
  double angle = lua_isnoneornil(L, 5) ? 0.0 : check_num(L, 5, "text", "angle");
  lc_canvas_text(c, x, y, s, angle);
  return 0;
}

/* image(img, x, y, w, h) -> true | nil, msg: img (H, W, 3) or (H, W, 1) or (H, W) in
 * [0, 255], scaled into the rectangle. */
static int m_image(lua_State *L) {
  lc_canvas *c = check_canvas(L, 1);
  lc_tensor *t = lcb_check(L, 2);
  double x = check_num(L, 3, "image", "x"), y = check_num(L, 4, "image", "y");
  double w = check_num(L, 5, "image", "w"), h = check_num(L, 6, "image", "h");
  int C = t->ndim == 2 ? 1 : t->ndim == 3 ? (int)t->shape[2] : 0;
  if (C != 1 && C != 3) {
    int64_t want[3] = {-1, -1, 3};
    lcb_expect_shape(L, "image", "img", t, 3, want, "(H, W, 3)");
  }
  char msg[256];
  if (lc_canvas_image(c, t->data, (int)t->shape[0], (int)t->shape[1], C, x, y, w, h, msg,
                      sizeof msg) != LC_OK)
    return lcb_fail(L, msg);
  lua_pushboolean(L, 1);
  return 1;
}

static int m_pixels(lua_State *L) {            /* -> tensor (H, W, 3) in [0, 255] */
  lc_canvas *c = check_canvas(L, 1);
  int64_t shape[3] = {lc_canvas_height(c), lc_canvas_width(c), 3};
  lc_tensor *t = lcb_push(L, 3, shape);
  lc_canvas_pixels(c, t->data);
  return 1;
}

static int m_write_png(lua_State *L) {         /* write_png(path) -> true | nil, msg */
  lc_canvas *c = check_canvas(L, 1);
  const char *path = luaL_checkstring(L, 2);
  char msg[256], full[512];
  if (lc_canvas_write_png(c, path, msg, sizeof msg) != LC_OK) {
    snprintf(full, sizeof full, "%s: %s", path, msg);
    return lcb_fail(L, full);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int m_tostring(lua_State *L) {
  canvas_ud *u = luaL_checkudata(L, 1, LCB_CANVAS_MT);
  if (!u->c) lua_pushliteral(L, "luacap.Canvas (freed)");
  else lua_pushfstring(L, "luacap.Canvas (%d x %d)", lc_canvas_width(u->c), lc_canvas_height(u->c));
  return 1;
}

static const luaL_Reg methods[] = {
  {"size", m_size}, {"status", m_status}, {"color", m_color}, {"line_width", m_line_width},
  {"dash", m_dash}, {"clip", m_clip}, {"unclip", m_unclip}, {"rect", m_rect},
  {"polyline", m_polyline}, {"circle", m_circle}, {"font", m_font}, {"measure", m_measure},
  {"text", m_text}, {"image", m_image}, {"pixels", m_pixels}, {"write_png", m_write_png},
  {"free", m_gc}, {"isfreed", m_isfreed},
  {NULL, NULL}
};

static const luaL_Reg functions[] = {
  {"canvas", l_canvas},
  {"canvas_load_png", l_canvas_load_png},
  {"mkdir_p", l_mkdir_p},
  {NULL, NULL}
};

void lcb_open_draw(lua_State *L) {
  lcb_new_class(L, LCB_CANVAS_MT, methods, m_gc, m_tostring);
  lua_setfield(L, -2, "Canvas");
  lcb_setfuncs(L, functions);
}
