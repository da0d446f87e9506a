/* text.c (binding): Lua functions of the text kernel family (caption metrics).
 * A corpus crosses the boundary as five flat Lua arrays of integers, built by
 * luacap.eval.metrics from token strings:
 *   hyp (sum of hyp_lens) ids, hyp_lens (S), ref (sum of ref_lens) ids, ref_lens (R),
 *   nrefs (S) references per hypothesis (each >= 1; they follow in order in ref_lens).
 * Not an interface for words: metrics.lua interns strings to ids. */
#include "bind.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The corpus and the malloc'd arrays behind it. */
typedef struct {
  lc_corpus c;
  int32_t *hyp, *ref;
  int64_t *hyp_off, *ref_off, *ref_first;
} corpus_buf;

static void corpus_free(corpus_buf *b) {
  free(b->hyp); free(b->ref); free(b->hyp_off); free(b->ref_off); free(b->ref_first);
  memset(b, 0, sizeof *b);
}

static const char *ARG[7] = {"hyp", "hyp_lens", "ref", "ref_lens", "nrefs",
                             "hyp_stem", "ref_stem"};   /* the last two: meteor only */

/* Reads the array at idx: n values, each an integer in [lo, hi], into out (n) as int64.
 * On failure writes a message into err and returns -1. */
static int read_ints(lua_State *L, int idx, const char *fn, int arg, int64_t *out, size_t n,
                     double lo, double hi, char *err, size_t errn) {
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, idx, (int)i + 1);
    double v = lua_tonumber(L, -1);    /* 0 for a non-number, caught by the type test */
    int ok = v >= lo && v <= hi && v == (double)(int64_t)v && lua_type(L, -1) == LUA_TNUMBER;
    lua_pop(L, 1);
    if (!ok) {
      snprintf(err, errn, "%s: %s[%d] must be an integer in [%.0f, %.0f]", fn, ARG[arg],
               (int)i + 1, lo, hi);
      return -1;
    }
    out[i] = (int64_t)v;
  }
  return 0;
}

/* Reads the n counts of array arg (each >= lo) at idx into off[1..n] and turns them into
 * offsets, off[0] = 0; they must add up to total, the size of array of (in units). On
 * failure writes a message into err and returns -1. */
static int read_offsets(lua_State *L, int idx, const char *fn, int arg, int64_t *off, size_t n,
                        double lo, size_t total, int of, const char *units, char *err,
                        size_t errn) {
  if (read_ints(L, idx, fn, arg, off + 1, n, lo, 2147483647.0, err, errn)) return -1;
  off[0] = 0;
  for (size_t i = 0; i < n; i++) off[i + 1] += off[i];
  if ((size_t)off[n] != total) {
    snprintf(err, errn, "%s: %s add up to %lld but %s has %d %s", fn, ARG[arg],
             (long long)off[n], ARG[of], (int)total, units);
    return -1;
  }
  return 0;
}

/* Checks the five arrays at idx..idx+4 and builds the corpus. Raises on a mistake, after
 * freeing everything it allocated. */
static void check_corpus(lua_State *L, int idx, const char *fn, corpus_buf *b) {
  size_t len[5];
  for (int a = 0; a < 5; a++) {
    luaL_checktype(L, idx + a, LUA_TTABLE);
    len[a] = lua_objlen(L, idx + a);
  }
  if (len[1] != len[4])
    luaL_error(L, "%s: hyp_lens has %d entries but nrefs has %d, expected them equal", fn,
               (int)len[1], (int)len[4]);
  if (len[1] > 2147483647u) luaL_error(L, "%s: too many hypotheses", fn);
  size_t S = len[1], R = len[3], NH = len[0], NR = len[2];
  memset(b, 0, sizeof *b);
  int64_t *tmp = malloc((NH + NR + 2) * sizeof *tmp);
  b->hyp = malloc((NH + 1) * sizeof *b->hyp);
  b->ref = malloc((NR + 1) * sizeof *b->ref);
  b->hyp_off = malloc((S + 1) * sizeof *b->hyp_off);
  b->ref_off = malloc((R + 1) * sizeof *b->ref_off);
  b->ref_first = malloc((S + 1) * sizeof *b->ref_first);
  char err[200] = "";
  if (!tmp || !b->hyp || !b->ref || !b->hyp_off || !b->ref_off || !b->ref_first) {
    snprintf(err, sizeof err, "%s: out of memory for a corpus of %d hypotheses", fn, (int)S);
    goto fail;
  }
  /* ids */
  if (read_ints(L, idx, fn, 0, tmp, NH, -2147483648.0, 2147483647.0, err, sizeof err)) goto fail;
  for (size_t i = 0; i < NH; i++) b->hyp[i] = (int32_t)tmp[i];
  if (read_ints(L, idx + 2, fn, 2, tmp, NR, -2147483648.0, 2147483647.0, err, sizeof err))
    goto fail;
  for (size_t i = 0; i < NR; i++) b->ref[i] = (int32_t)tmp[i];
  /* lengths -> offsets */
  if (read_offsets(L, idx + 1, fn, 1, b->hyp_off, S, 0, NH, 0, "ids", err, sizeof err) ||
      read_offsets(L, idx + 3, fn, 3, b->ref_off, R, 0, NR, 2, "ids", err, sizeof err) ||
      read_offsets(L, idx + 4, fn, 4, b->ref_first, S, 1, R, 3, "entries", err, sizeof err))
    goto fail;
  free(tmp);
  b->c.S = (int)S;
  b->c.hyp = b->hyp; b->c.hyp_off = b->hyp_off;
  b->c.ref = b->ref; b->c.ref_off = b->ref_off; b->c.ref_first = b->ref_first;
  return;
fail:
  free(tmp);
  corpus_free(b);
  luaL_error(L, "%s", err);
}

static void set_int_array(lua_State *L, const char *key, const int64_t *v, int n) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushnumber(L, (lua_Number)v[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, key);
}

/* guess: coco-caption's denominators, sum max(0, L - n + 1) (den is nltk's, max(1, ...)). */
static void push_stats(lua_State *L, const int64_t *num, const int64_t *den,
                       const int64_t *guess, int64_t c, int64_t r, int N) {
  lua_createtable(L, 0, 5);
  set_int_array(L, "num", num, N);
  set_int_array(L, "den", den, N);
  set_int_array(L, "guess", guess, N);
  lua_pushnumber(L, (lua_Number)c); lua_setfield(L, -2, "hyp_len");
  lua_pushnumber(L, (lua_Number)r); lua_setfield(L, -2, "ref_len");
}

#define MAXN 64   /* highest n-gram order accepted from Lua */

/* core.bleu_stats(hyp, hyp_lens, ref, ref_lens, nrefs, N [, per_sentence])
 * -> {num = {N}, den = {N}, hyp_len =, ref_len =} summed over the corpus, or with
 *    per_sentence true a list of such tables, one per hypothesis. */
static int l_bleu_stats(lua_State *L) {
  const char *fn = "bleu_stats";
  lua_Integer N = luaL_checkinteger(L, 6);
  if (N < 1 || N > MAXN) luaL_error(L, "%s: N must be in [1, %d], got %d", fn, MAXN, (int)N);
  int per = lua_toboolean(L, 7);
  corpus_buf b;
  check_corpus(L, 1, fn, &b);
  size_t S = (size_t)b.c.S;
  int64_t *mem = malloc((2 * S * (size_t)N + 2 * S + 1) * sizeof *mem);
  if (!mem) { corpus_free(&b); return luaL_error(L, "%s: out of memory", fn); }
  int64_t *num = mem, *den = num + S * N, *hl = den + S * N, *rl = hl + S;
  if (bleu_stats_forward(num, den, hl, rl, &b.c, (int)N) != LC_OK) {
    free(mem); corpus_free(&b);
    return luaL_error(L, "%s: out of memory", fn);
  }
  corpus_free(&b);
  if (per) {
    lua_createtable(L, (int)S, 0);
    for (size_t s = 0; s < S; s++) {
      int64_t g[MAXN];
      for (int n = 0; n < N; n++) g[n] = hl[s] > n ? hl[s] - n : 0;
      push_stats(L, num + s * N, den + s * N, g, hl[s], rl[s], (int)N);
      lua_rawseti(L, -2, (int)s + 1);
    }
  } else {
    int64_t tn[MAXN] = {0}, td[MAXN] = {0}, tg[MAXN] = {0}, c = 0, r = 0;
    for (size_t s = 0; s < S; s++) {
      for (int n = 0; n < N; n++) {
        tn[n] += num[s * N + n]; td[n] += den[s * N + n];
        tg[n] += hl[s] > n ? hl[s] - n : 0;
      }
      c += hl[s]; r += rl[s];
    }
    push_stats(L, tn, td, tg, c, r, (int)N);
  }
  free(mem);
  return 1;
}

/* core.bleu_score(stats, weights) -> BLEU from stats (as bleu_stats gives) and weights
 * (a list of at most N numbers). */
static int l_bleu_score(lua_State *L) {
  const char *fn = "bleu_score";
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  int K = (int)lua_objlen(L, 2);
  int64_t num[MAXN], den[MAXN];
  double w[MAXN];
  lua_getfield(L, 1, "num");
  lua_getfield(L, 1, "den");
  if (!lua_istable(L, -2) || !lua_istable(L, -1))
    luaL_error(L, "%s: stats must have tables num and den", fn);
  int N = (int)lua_objlen(L, -2);
  if (K < 1 || K > N)
    luaL_error(L, "%s: weights has %d entries, expected 1 to %d (the stats' orders)", fn, K, N);
  for (int n = 0; n < K; n++) {
    lua_rawgeti(L, -2, n + 1); num[n] = (int64_t)lua_tonumber(L, -1); lua_pop(L, 1);
    lua_rawgeti(L, -1, n + 1); den[n] = (int64_t)lua_tonumber(L, -1); lua_pop(L, 1);
    lua_rawgeti(L, 2, n + 1);
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "%s: weights[%d] is a %s, expected a number", fn, n + 1,
                 luaL_typename(L, -1));
    w[n] = lua_tonumber(L, -1); lua_pop(L, 1);
    if (num[n] < 0 || num[n] > den[n])   /* den 0 only with num 0: an empty corpus */
      luaL_error(L, "%s: stats.num[%d] must lie in [0, stats.den[%d]]", fn, n + 1, n + 1);
  }
  lua_pop(L, 2);
  lua_getfield(L, 1, "hyp_len");
  lua_getfield(L, 1, "ref_len");
  int64_t c = (int64_t)luaL_checknumber(L, -2), r = (int64_t)luaL_checknumber(L, -1);
  lua_pushnumber(L, bleu_from_stats(num, den, c, r, w, K));
  return 1;
}

/* core.bleu_coco(stats, N) -> coco-caption's BLEU-N from stats (as bleu_stats gives, with
 * guess), equal weights over orders 1..N. */
static int l_bleu_coco(lua_State *L) {
  const char *fn = "bleu_coco";
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer N = luaL_checkinteger(L, 2);
  int64_t num[MAXN], guess[MAXN];
  lua_getfield(L, 1, "num");
  lua_getfield(L, 1, "guess");
  if (!lua_istable(L, -2) || !lua_istable(L, -1))
    luaL_error(L, "%s: stats must have tables num and guess (from bleu_stats)", fn);
  int K = (int)lua_objlen(L, -2);
  if (N < 1 || N > K || (int)lua_objlen(L, -1) != K)
    luaL_error(L, "%s: N is %d, expected 1 to %d (the stats' orders)", fn, (int)N, K);
  for (int n = 0; n < (int)N; n++) {
    lua_rawgeti(L, -2, n + 1); num[n] = (int64_t)lua_tonumber(L, -1); lua_pop(L, 1);
    lua_rawgeti(L, -1, n + 1); guess[n] = (int64_t)lua_tonumber(L, -1); lua_pop(L, 1);
    if (num[n] < 0 || num[n] > guess[n])
      luaL_error(L, "%s: stats.num[%d] must lie in [0, stats.guess[%d]]", fn, n + 1, n + 1);
  }
  lua_pop(L, 2);
  lua_getfield(L, 1, "hyp_len");
  lua_getfield(L, 1, "ref_len");
  int64_t c = (int64_t)luaL_checknumber(L, -2), r = (int64_t)luaL_checknumber(L, -1);
  lua_pushnumber(L, bleu_coco_from_stats(num, guess, c, r, (int)N));
  return 1;
}

static int push_scores(lua_State *L, const double *v, int S) {
  lua_createtable(L, S, 0);
  for (int s = 0; s < S; s++) {
    lua_pushnumber(L, v[s]);
    lua_rawseti(L, -2, s + 1);
  }
  return 1;
}

/* Checks the corpus at 1..5, scores every hypothesis with CIDEr-D (N, sigma = p) or, with
 * rouge set, ROUGE-L (beta = p), and pushes the scores as a list; frees everything before
 * it raises. */
static int corpus_scores(lua_State *L, const char *fn, int rouge, int N, double p) {
  corpus_buf b;
  check_corpus(L, 1, fn, &b);
  double *scores = malloc(((size_t)b.c.S + 1) * sizeof *scores);
  int rc = !scores ? LC_ENOMEM
           : rouge ? rouge_l_forward(scores, &b.c, p) : cider_d_forward(scores, &b.c, N, p);
  if (rc != LC_OK) {
    free(scores); corpus_free(&b);
    return luaL_error(L, "%s: out of memory", fn);
  }
  corpus_free(&b);
  push_scores(L, scores, (int)lua_objlen(L, 2));
  free(scores);
  return 1;
}

/* core.cider_d(hyp, hyp_lens, ref, ref_lens, nrefs [, N = 4, sigma = 6]) -> scores (S) */
static int l_cider_d(lua_State *L) {
  const char *fn = "cider_d";
  lua_Integer N = luaL_optinteger(L, 6, 4);
  double sigma = luaL_optnumber(L, 7, 6.0);
  if (N < 1 || N > MAXN) luaL_error(L, "%s: N must be in [1, %d], got %d", fn, MAXN, (int)N);
  if (!(sigma > 0)) luaL_error(L, "%s: sigma must be positive, got %g", fn, sigma);
  return corpus_scores(L, fn, 0, (int)N, sigma);
}

/* core.rouge_l(hyp, hyp_lens, ref, ref_lens, nrefs [, beta = 1.2]) -> scores (S) */
static int l_rouge_l(lua_State *L) {
  const char *fn = "rouge_l";
  double beta = luaL_optnumber(L, 6, 1.2);
  if (!(beta > 0)) luaL_error(L, "%s: beta must be positive, got %g", fn, beta);
  return corpus_scores(L, fn, 1, 0, beta);
}

/* core.meteor(hyp, hyp_lens, ref, ref_lens, nrefs, hyp_stem, ref_stem
 *             [, alpha = 0.9, beta = 3, gamma = 0.5]) -> scores (S)
 * hyp_stem, ref_stem: stem ids, one per entry of hyp and ref (luacap.eval.metrics.meteor). */
static int l_meteor(lua_State *L) {
  const char *fn = "meteor";
  double alpha = luaL_optnumber(L, 8, 0.9), beta = luaL_optnumber(L, 9, 3.0),
         gamma = luaL_optnumber(L, 10, 0.5);
  if (!(alpha >= 0 && alpha <= 1)) luaL_error(L, "%s: alpha must be in [0, 1], got %g", fn, alpha);
  if (!(beta >= 0 && beta < HUGE_VAL))
    luaL_error(L, "%s: beta must be finite and >= 0, got %g", fn, beta);
  if (!(gamma >= 0 && gamma < HUGE_VAL))
    luaL_error(L, "%s: gamma must be finite and >= 0, got %g", fn, gamma);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 6, LUA_TTABLE);
  luaL_checktype(L, 7, LUA_TTABLE);
  size_t NH = lua_objlen(L, 1), NR = lua_objlen(L, 3);
  if (lua_objlen(L, 6) != NH)
    luaL_error(L, "%s: hyp_stem has %d entries but hyp has %d, expected them equal", fn,
               (int)lua_objlen(L, 6), (int)NH);
  if (lua_objlen(L, 7) != NR)
    luaL_error(L, "%s: ref_stem has %d entries but ref has %d, expected them equal", fn,
               (int)lua_objlen(L, 7), (int)NR);
  corpus_buf b;
  check_corpus(L, 1, fn, &b);
  size_t S = (size_t)b.c.S, n = NH > NR ? NH : NR;
  int64_t *tmp = malloc((n + 1) * sizeof *tmp);
  int32_t *stems = malloc((NH + NR + 1) * sizeof *stems);
  double *scores = malloc((S + 1) * sizeof *scores);
  char err[200] = "";
  if (!tmp || !stems || !scores) {
    snprintf(err, sizeof err, "%s: out of memory", fn);
    goto fail;
  }
  if (read_ints(L, 6, fn, 5, tmp, NH, -2147483648.0, 2147483647.0, err, sizeof err)) goto fail;
  for (size_t i = 0; i < NH; i++) stems[i] = (int32_t)tmp[i];
  if (read_ints(L, 7, fn, 6, tmp, NR, -2147483648.0, 2147483647.0, err, sizeof err)) goto fail;
  for (size_t i = 0; i < NR; i++) stems[NH + i] = (int32_t)tmp[i];
  if (meteor_forward(scores, &b.c, stems, stems + NH, alpha, beta, gamma) != LC_OK) {
    snprintf(err, sizeof err, "%s: out of memory", fn);
    goto fail;
  }
  free(tmp); free(stems); corpus_free(&b);
  push_scores(L, scores, (int)S);
  free(scores);
  return 1;
fail:
  free(tmp); free(stems); free(scores); corpus_free(&b);
  return luaL_error(L, "%s", err);
}

/* ------------------------------------------------------------ cached CIDEr-D scorer */
/* A luacap.CiderScorer userdata holds the only pointer to its lc_cider_df; __gc and free()
 * release it once. */
#define LCB_CIDER_MT "luacap.CiderScorer"

typedef struct { lc_cider_df *d; } cider_ud;

static lc_cider_df *check_scorer(lua_State *L, int idx) {
  cider_ud *u = luaL_checkudata(L, idx, LCB_CIDER_MT);
  if (!u->d) luaL_error(L, "bad argument #%d: cider scorer was freed", idx);
  return u->d;
}

/* core.cider_scorer(ref, ref_lens, nrefs [, N = 4]) -> scorer: document frequencies and
 * reference vectors of S = #nrefs images (image s has the next nrefs[s] references). */
static int l_cider_scorer(lua_State *L) {
  const char *fn = "cider_scorer";
  lua_Integer N = luaL_optinteger(L, 4, 4);
  if (N < 1 || N > MAXN) luaL_error(L, "%s: N must be in [1, %d], got %d", fn, MAXN, (int)N);
  for (int a = 1; a <= 3; a++) luaL_checktype(L, a, LUA_TTABLE);
  size_t NR = lua_objlen(L, 1), R = lua_objlen(L, 2), S = lua_objlen(L, 3);
  if (S < 1) luaL_error(L, "%s: nrefs is empty, expected at least one image", fn);
  if (S > 2147483647u) luaL_error(L, "%s: too many images", fn);
  cider_ud *u = lua_newuserdata(L, sizeof *u);   /* before any malloc: raising cannot leak */
  u->d = NULL;
  luaL_getmetatable(L, LCB_CIDER_MT);
  lua_setmetatable(L, -2);
  corpus_buf b;
  memset(&b, 0, sizeof b);
  int64_t *tmp = malloc((NR + 1) * sizeof *tmp);
  b.ref = malloc((NR + 1) * sizeof *b.ref);
  b.ref_off = malloc((R + 1) * sizeof *b.ref_off);
  b.ref_first = malloc((S + 1) * sizeof *b.ref_first);
  char err[200] = "";
  if (!tmp || !b.ref || !b.ref_off || !b.ref_first) {
    snprintf(err, sizeof err, "%s: out of memory for %d images", fn, (int)S);
    goto fail;
  }
  if (read_ints(L, 1, fn, 2, tmp, NR, -2147483648.0, 2147483647.0, err, sizeof err)) goto fail;
  for (size_t i = 0; i < NR; i++) b.ref[i] = (int32_t)tmp[i];
  if (read_offsets(L, 2, fn, 3, b.ref_off, R, 0, NR, 2, "ids", err, sizeof err) ||
      read_offsets(L, 3, fn, 4, b.ref_first, S, 1, R, 3, "entries", err, sizeof err))
    goto fail;
  b.c.S = (int)S;
  b.c.ref = b.ref; b.c.ref_off = b.ref_off; b.c.ref_first = b.ref_first;
  if (cider_df_build(&u->d, &b.c, (int)N) != LC_OK) {
    snprintf(err, sizeof err, "%s: out of memory for %d images", fn, (int)S);
    goto fail;
  }
  free(tmp); corpus_free(&b);
  return 1;
fail:
  free(tmp); corpus_free(&b);
  return luaL_error(L, "%s", err);
}

/* scorer:score(hyp, hyp_lens, images [, sigma = 6]) -> scores (K): candidate k (the next
 * hyp_lens[k] ids of hyp) against the references of stored image images[k] (1-based). */
static int m_cider_score(lua_State *L) {
  const char *fn = "cider_scorer:score";
  lc_cider_df *d = check_scorer(L, 1);
  for (int a = 2; a <= 4; a++) luaL_checktype(L, a, LUA_TTABLE);
  double sigma = luaL_optnumber(L, 5, 6.0);
  if (!(sigma > 0)) luaL_error(L, "%s: sigma must be positive, got %g", fn, sigma);
  size_t NH = lua_objlen(L, 2), K = lua_objlen(L, 3);
  if (lua_objlen(L, 4) != K)
    luaL_error(L, "%s: hyp_lens has %d entries but images has %d, expected them equal", fn,
               (int)K, (int)lua_objlen(L, 4));
  int S = cider_df_images(d);
  int64_t *tmp = malloc((NH + K + 1) * sizeof *tmp);
  int32_t *hyp = malloc((NH + 1) * sizeof *hyp), *img = malloc((K + 1) * sizeof *img);
  int64_t *off = malloc((K + 1) * sizeof *off);
  double *scores = malloc((K + 1) * sizeof *scores);
  char err[200] = "";
  if (!tmp || !hyp || !img || !off || !scores) {
    snprintf(err, sizeof err, "%s: out of memory", fn);
    goto fail;
  }
  if (read_ints(L, 2, fn, 0, tmp, NH, -2147483648.0, 2147483647.0, err, sizeof err)) goto fail;
  for (size_t i = 0; i < NH; i++) hyp[i] = (int32_t)tmp[i];
  if (read_offsets(L, 3, fn, 1, off, K, 0, NH, 0, "ids", err, sizeof err)) goto fail;
  for (size_t k = 0; k < K; k++) {
    lua_rawgeti(L, 4, (int)k + 1);
    double v = lua_tonumber(L, -1);
    int ok = lua_type(L, -1) == LUA_TNUMBER && v >= 1 && v <= S && v == floor(v);
    lua_pop(L, 1);
    if (!ok) {
      snprintf(err, sizeof err, "%s: images[%d] must be an integer in [1, %d] (the scorer's images)",
               fn, (int)k + 1, S);
      goto fail;
    }
    img[k] = (int32_t)v - 1;
  }
  if (cider_df_score(scores, d, hyp, off, img, (int)K, sigma) != LC_OK) {
    snprintf(err, sizeof err, "%s: out of memory", fn);
    goto fail;
  }
  free(tmp); free(hyp); free(img); free(off);
  push_scores(L, scores, (int)K);
  free(scores);
  return 1;
fail:
  free(tmp); free(hyp); free(img); free(off); free(scores);
  return luaL_error(L, "%s", err);
}

static int m_cider_images(lua_State *L) {
  lua_pushinteger(L, cider_df_images(check_scorer(L, 1)));
  return 1;
}

static int m_cider_gc(lua_State *L) {            /* safe to run twice, and after free() */
  cider_ud *u = luaL_checkudata(L, 1, LCB_CIDER_MT);
  cider_df_free(u->d);
  u->d = NULL;
  return 0;
}

static int m_cider_isfreed(lua_State *L) {
  cider_ud *u = luaL_checkudata(L, 1, LCB_CIDER_MT);
  lua_pushboolean(L, u->d == NULL);
  return 1;
}

static int m_cider_tostring(lua_State *L) {
  cider_ud *u = luaL_checkudata(L, 1, LCB_CIDER_MT);
  if (!u->d) lua_pushliteral(L, "luacap.CiderScorer (freed)");
  else lua_pushfstring(L, "luacap.CiderScorer (%d images, n = %d)", cider_df_images(u->d),
                       cider_df_orders(u->d));
  return 1;
}

static const luaL_Reg cider_methods[] = {
  {"score", m_cider_score}, {"images", m_cider_images}, {"free", m_cider_gc},
  {"isfreed", m_cider_isfreed},
  {NULL, NULL}
};

static const luaL_Reg functions[] = {
  {"cider_scorer", l_cider_scorer},
  {"bleu_stats", l_bleu_stats},
  {"bleu_score", l_bleu_score},
  {"bleu_coco", l_bleu_coco},
  {"cider_d", l_cider_d},
  {"rouge_l", l_rouge_l},
  {"meteor", l_meteor},
  {NULL, NULL}
};

void lcb_open_text(lua_State *L) {
  lcb_new_class(L, LCB_CIDER_MT, cider_methods, m_cider_gc, m_cider_tostring);
  lua_pop(L, 1);
  lcb_setfuncs(L, functions);
}
