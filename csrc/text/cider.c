/* cider.c: CIDEr-D per image as the coco-caption toolkit computes it (pycocoevalcap
 * cider/cider_scorer.py; Vedantam, Zitnick, Parikh 2015, "CIDEr: Consensus-based Image
 * Description Evaluation"). Not plain CIDEr (no clipping, no penalty), no PTB tokenizer,
 * and the idf comes from the references given, not from a stored COCO table.
 *
 * Every sentence becomes, for each order n = 1..N, a tf-idf vector over its n-grams g:
 *   v_n(g) = tf(g) * (log(S) - log(max(1, df(g))))
 * df(g) = the number of images whose reference set contains g; S = the number of images.
 * For hypothesis h and one reference r:
 *   sim_n = sum_g min(v_n^h(g), v_n^r(g)) * v_n^r(g) / (|v_n^h| |v_n^r|)   (0 if a norm is 0)
 *           * exp(-(l_h - l_r)^2 / (2 sigma^2))
 *   CIDEr-D(h) = 10 * mean_n (sum_r sim_n) / (number of references)
 * l is coco-caption's "length": it adds the term frequencies of order index 1, that is the
 * number of BIGRAMS (L - 1 for L >= 1), not the number of words. We keep that quirk so the
 * scores match the toolkit. coco-caption reports the mean over images; sigma = 6, N = 4.
 */
#include "../luacap.h"

#include <math.h>
#include <stdlib.h>

/* One distinct n-gram of the corpus. */
typedef struct {
  const int32_t *ids;   /* (n) first occurrence, inside the corpus arrays */
  int32_t n;            /* order */
  int32_t df;           /* images whose references contain it */
  int32_t last;         /* last image counted into df */
  double idf;           /* log(S) - log(max(1, df)) */
} gram;

typedef struct {
  gram *grams; int32_t ngrams;
  int32_t *slots; size_t cap;          /* hash slots holding gram indices, -1 empty */
} gram_table;

static int32_t intern(gram_table *t, const int32_t *ids, int n) {
  size_t i = (size_t)lc_ngram_hash(ids, n) & (t->cap - 1);
  for (;;) {
    int32_t g = t->slots[i];
    if (g < 0) {
      g = t->ngrams++;
      t->grams[g] = (gram){ids, n, 0, -1, 0.0};
      t->slots[i] = g;
      return g;
    }
    const gram *e = &t->grams[g];
    if (e->n == n) {
      int k = 0;
      while (k < n && e->ids[k] == ids[k]) k++;
      if (k == n) return g;
    }
    i = (i + 1) & (t->cap - 1);
  }
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* Ascending order; a caption has a few dozen n-grams, where insertion sort beats qsort. */
static void sort_ids(int32_t *a, size_t n) {
  if (n > 64) { qsort(a, n, sizeof *a, cmp_i32); return; }
  for (size_t i = 1; i < n; i++) {
    int32_t v = a[i];
    size_t j = i;
    for (; j > 0 && a[j - 1] > v; j--) a[j] = a[j - 1];
    a[j] = v;
  }
}

/* scores (S): CIDEr-D of each hypothesis (already x10).
 * Returns LC_OK or LC_ENOMEM. */
int cider_d_forward(double *scores, const lc_corpus *corpus, int N, double sigma) {
  const lc_corpus *c = corpus;
  int S = c->S;
  int64_t R = c->ref_first[S];
  size_t Q = (size_t)S + (size_t)R;          /* sentences: hypotheses, then references */
  /* sentence q's tokens */
#define SENT(q) ((q) < (size_t)S ? c->hyp + c->hyp_off[q] : c->ref + c->ref_off[(q) - S])
#define SLEN(q) ((q) < (size_t)S ? c->hyp_off[(q) + 1] - c->hyp_off[q] \
                                 : c->ref_off[(q) - S + 1] - c->ref_off[(q) - S])
  size_t M = 0;                              /* n-gram occurrences, all orders */
  for (size_t q = 0; q < Q; q++)
    for (int n = 1; n <= N; n++)
      if (SLEN(q) >= n) M += (size_t)(SLEN(q) - n + 1);

  gram_table t = {0};
  t.cap = 16;
  while (t.cap < 2 * M + 2) t.cap <<= 1;
  t.grams = malloc((M + 1) * sizeof *t.grams);
  t.slots = malloc(t.cap * sizeof *t.slots);
  int32_t *gid = malloc((M + 1) * sizeof *gid);      /* per sentence: distinct gram ids */
  int32_t *tf = malloc((M + 1) * sizeof *tf);        /* their counts */
  double *vec = malloc((M + 1) * sizeof *vec);       /* their tf-idf values */
  size_t *off = malloc((Q + 1) * sizeof *off);       /* sentence q: entries off[q]..off[q+1] */
  double *norm = malloc((Q * (size_t)N + 1) * sizeof *norm);   /* (Q, N) */
  double *len = malloc((Q + 1) * sizeof *len);        /* bigram counts (coco's "length") */
  double *val = malloc((size_t)N * sizeof *val);
  if (!t.grams || !t.slots || !gid || !tf || !vec || !off || !norm || !len || !val) {
    free(t.grams); free(t.slots); free(gid); free(tf); free(vec); free(off); free(norm);
    free(len); free(val);
    return LC_ENOMEM;
  }
  for (size_t i = 0; i < t.cap; i++) t.slots[i] = -1;

  /* 1. every sentence as sorted distinct (gram, count) pairs */
  size_t e = 0;
  for (size_t q = 0; q < Q; q++) {
    const int32_t *w = SENT(q);
    int64_t L = SLEN(q);
    size_t start = e;
    for (int n = 1; n <= N; n++)
      for (int64_t i = 0; i + n <= L; i++) gid[e++] = intern(&t, w + i, n);
    sort_ids(gid + start, e - start);
    size_t k = start;
    for (size_t i = start; i < e; i++) {
      if (k > start && gid[k - 1] == gid[i]) { tf[k - 1]++; continue; }
      gid[k] = gid[i]; tf[k] = 1; k++;
    }
    off[q] = start;
    e = k;
  }
  off[Q] = e;

  /* 2. document frequency over images: each image's references count a gram once */
  for (int s = 0; s < S; s++)
    for (int64_t j = c->ref_first[s]; j < c->ref_first[s + 1]; j++) {
      size_t q = (size_t)S + (size_t)j;
      for (size_t k = off[q]; k < off[q + 1]; k++) {
        gram *g = &t.grams[gid[k]];
        if (g->last != s) { g->last = s; g->df++; }
      }
    }

  /* 3. tf-idf vectors, their norms per order, and the bigram "length" */
  double ref_len = log((double)S);
  for (int32_t g = 0; g < t.ngrams; g++)
    t.grams[g].idf = ref_len - log(t.grams[g].df > 1 ? (double)t.grams[g].df : 1.0);
  for (size_t q = 0; q < Q; q++) {
    double *norm_q = norm + q * (size_t)N;
    for (int n = 0; n < N; n++) norm_q[n] = 0.0;
    len[q] = 0.0;
    for (size_t k = off[q]; k < off[q + 1]; k++) {
      const gram *g = &t.grams[gid[k]];
      vec[k] = (double)tf[k] * g->idf;
      norm_q[g->n - 1] += vec[k] * vec[k];
      if (g->n == 2) len[q] += tf[k];
    }
    for (int n = 0; n < N; n++) norm_q[n] = sqrt(norm_q[n]);
  }

  /* 4. clipped cosine per order and reference, Gaussian length penalty, mean, x10 */
  for (int s = 0; s < S; s++) {
    size_t qh = (size_t)s;
    const double *norm_h = norm + qh * (size_t)N;
    double total[64] = {0};
    int64_t nrefs = c->ref_first[s + 1] - c->ref_first[s];
    for (int64_t j = c->ref_first[s]; j < c->ref_first[s + 1]; j++) {
      size_t qr = (size_t)S + (size_t)j;
      const double *norm_r = norm + qr * (size_t)N;
      for (int n = 0; n < N; n++) val[n] = 0.0;
      /* both entry lists are sorted by gram id: merge them */
      size_t a = off[qh], b = off[qr];
      while (a < off[qh + 1] && b < off[qr + 1]) {
        if (gid[a] < gid[b]) a++;
        else if (gid[a] > gid[b]) b++;
        else {
          double vh = vec[a], vr = vec[b];
          val[t.grams[gid[a]].n - 1] += (vh < vr ? vh : vr) * vr;
          a++; b++;
        }
      }
      double delta = len[qh] - len[qr];
      double pen = exp(-(delta * delta) / (2.0 * sigma * sigma));
      for (int n = 0; n < N && n < 64; n++) {
        if (norm_h[n] != 0.0 && norm_r[n] != 0.0) val[n] /= norm_h[n] * norm_r[n];
        total[n] += val[n] * pen;
      }
    }
    double mean = 0.0;
    for (int n = 0; n < N && n < 64; n++) mean += total[n];
    mean /= N;
    scores[s] = nrefs > 0 ? mean / (double)nrefs * 10.0 : 0.0;
  }
#undef SENT
#undef SLEN
  free(t.grams); free(t.slots); free(gid); free(tf); free(vec); free(off); free(norm);
  free(len); free(val);
  return LC_OK;
}

/* ---------------------------------------------------------------- cached scorer (SCST)
 * Self-critical training scores many sampled captions per batch against the references of
 * their images. The document frequencies come once from a fixed reference set (the
 * training references: S_df images), as ruotianluo's self-critical.pytorch caches them
 * ("coco-train" df); each reference's tf-idf vector, norms and length are computed once
 * too. Scoring a candidate then costs a hash lookup per n-gram and one merge per
 * reference. With the df of the very references scored against, the score equals
 * cider_d_forward's (the same formula; only the summation order of the norms differs).
 * A candidate n-gram absent from the table has df 0: idf log(S_df), and it matches no
 * reference. */
struct lc_cider_df {
  int N, S;                    /* orders 1..N; S images */
  int32_t G;                   /* distinct n-grams of the references */
  int32_t *arena;              /* every gram's ids, concatenated */
  int64_t *gram_off;           /* (G+1) gram g is arena[gram_off[g] .. gram_off[g+1]) */
  double *idf;                 /* (G) log(S) - log(max(1, df)) */
  int32_t *slots; size_t cap;  /* hash slots holding gram indices, -1 empty */
  int64_t *img_first;          /* (S+1) image s has references img_first[s] .. [s+1]-1 */
  int64_t *ent_off;            /* (R+1) reference j's entries ent_off[j] .. [j+1]-1 */
  int32_t *ent_gid;            /* sorted distinct gram ids of each reference */
  double *ent_vec;             /* their tf-idf values */
  double *ref_norm;            /* (R, N) norms per order */
  double *ref_len;             /* (R) bigram counts (coco's "length") */
};

/* The gram index of ids[0..n), or -1 when the references never hold it. */
static int32_t df_find(const lc_cider_df *d, const int32_t *ids, int n) {
  size_t i = (size_t)lc_ngram_hash(ids, n) & (d->cap - 1);
  for (;;) {
    int32_t g = d->slots[i];
    if (g < 0) return -1;
    const int32_t *e = d->arena + d->gram_off[g];
    if (d->gram_off[g + 1] - d->gram_off[g] == n) {
      int k = 0;
      while (k < n && e[k] == ids[k]) k++;
      if (k == n) return g;
    }
    i = (i + 1) & (d->cap - 1);
  }
}

void cider_df_free(lc_cider_df *d) {
  if (!d) return;
  free(d->arena); free(d->gram_off); free(d->idf); free(d->slots); free(d->img_first);
  free(d->ent_off); free(d->ent_gid); free(d->ent_vec); free(d->ref_norm); free(d->ref_len);
  free(d);
}

/* Builds the scorer from refs' references (refs->S images, refs->ref_first/ref/ref_off;
 * the hypothesis fields are not read), orders 1..N. Returns LC_OK or LC_ENOMEM (*out NULL). */
int cider_df_build(lc_cider_df **out, const lc_corpus *refs, int N) {
  const lc_corpus *c = refs;
  int S = c->S;
  int64_t R = c->ref_first[S];
  *out = NULL;
  size_t M = 0, A = 0;                       /* n-gram occurrences; their ids */
  for (int64_t j = 0; j < R; j++) {
    int64_t L = c->ref_off[j + 1] - c->ref_off[j];
    for (int n = 1; n <= N; n++)
      if (L >= n) { M += (size_t)(L - n + 1); A += (size_t)(L - n + 1) * (size_t)n; }
  }
  lc_cider_df *d = calloc(1, sizeof *d);
  if (!d) return LC_ENOMEM;
  d->N = N; d->S = S;
  d->cap = 16;
  while (d->cap < 2 * M + 2) d->cap <<= 1;
  d->arena = malloc((A + 1) * sizeof *d->arena);
  d->gram_off = malloc((M + 2) * sizeof *d->gram_off);
  d->slots = malloc(d->cap * sizeof *d->slots);
  d->img_first = malloc(((size_t)S + 1) * sizeof *d->img_first);
  d->ent_off = malloc(((size_t)R + 1) * sizeof *d->ent_off);
  d->ent_gid = malloc((M + 1) * sizeof *d->ent_gid);
  d->ent_vec = malloc((M + 1) * sizeof *d->ent_vec);
  d->ref_norm = malloc(((size_t)R * (size_t)N + 1) * sizeof *d->ref_norm);
  d->ref_len = malloc(((size_t)R + 1) * sizeof *d->ref_len);
  int32_t *tf = malloc((M + 1) * sizeof *tf);
  int32_t *df = malloc((M + 1) * sizeof *df), *last = malloc((M + 1) * sizeof *last);
  if (!d->arena || !d->gram_off || !d->slots || !d->img_first || !d->ent_off || !d->ent_gid ||
      !d->ent_vec || !d->ref_norm || !d->ref_len || !tf || !df || !last) {
    free(tf); free(df); free(last); cider_df_free(d);
    return LC_ENOMEM;
  }
  for (size_t i = 0; i < d->cap; i++) d->slots[i] = -1;
  for (int s = 0; s <= S; s++) d->img_first[s] = c->ref_first[s];

  /* 1. intern every reference n-gram (ids copied into the arena); each reference as sorted
   *    distinct (gram, count) pairs */
  size_t e = 0, a = 0;
  d->gram_off[0] = 0;
  for (int64_t j = 0; j < R; j++) {
    const int32_t *w = c->ref + c->ref_off[j];
    int64_t L = c->ref_off[j + 1] - c->ref_off[j];
    size_t start = e;
    for (int n = 1; n <= N; n++)
      for (int64_t i = 0; i + n <= L; i++) {
        int32_t g = df_find(d, w + i, n);
        if (g < 0) {
          g = d->G++;
          for (int k = 0; k < n; k++) d->arena[a++] = w[i + k];
          d->gram_off[g + 1] = (int64_t)a;
          size_t h = (size_t)lc_ngram_hash(w + i, n) & (d->cap - 1);
          while (d->slots[h] >= 0) h = (h + 1) & (d->cap - 1);
          d->slots[h] = g;
          df[g] = 0; last[g] = -1;
        }
        d->ent_gid[e++] = g;
      }
    sort_ids(d->ent_gid + start, e - start);
    size_t k = start;
    for (size_t i = start; i < e; i++) {
      if (k > start && d->ent_gid[k - 1] == d->ent_gid[i]) { tf[k - 1]++; continue; }
      d->ent_gid[k] = d->ent_gid[i]; tf[k] = 1; k++;
    }
    d->ent_off[j] = (int64_t)start;
    e = k;
  }
  d->ent_off[R] = (int64_t)e;

  /* 2. document frequency over images: each image's references count a gram once */
  for (int s = 0; s < S; s++)
    for (int64_t j = c->ref_first[s]; j < c->ref_first[s + 1]; j++)
      for (int64_t k = d->ent_off[j]; k < d->ent_off[j + 1]; k++) {
        int32_t g = d->ent_gid[k];
        if (last[g] != s) { last[g] = s; df[g]++; }
      }
  d->idf = malloc(((size_t)d->G + 1) * sizeof *d->idf);
  if (!d->idf) { free(tf); free(df); free(last); cider_df_free(d); return LC_ENOMEM; }
  double log_s = log((double)S);
  for (int32_t g = 0; g < d->G; g++) d->idf[g] = log_s - log(df[g] > 1 ? (double)df[g] : 1.0);

  /* 3. reference vectors, norms per order, bigram "length" */
  for (int64_t j = 0; j < R; j++) {
    double *norm_j = d->ref_norm + (size_t)j * (size_t)N;
    for (int n = 0; n < N; n++) norm_j[n] = 0.0;
    d->ref_len[j] = 0.0;
    for (int64_t k = d->ent_off[j]; k < d->ent_off[j + 1]; k++) {
      int32_t g = d->ent_gid[k];
      int n = (int)(d->gram_off[g + 1] - d->gram_off[g]);
      d->ent_vec[k] = (double)tf[k] * d->idf[g];
      norm_j[n - 1] += d->ent_vec[k] * d->ent_vec[k];
      if (n == 2) d->ref_len[j] += tf[k];
    }
    for (int n = 0; n < N; n++) norm_j[n] = sqrt(norm_j[n]);
  }
  free(tf); free(df); free(last);
  *out = d;
  return LC_OK;
}

int cider_df_images(const lc_cider_df *d) { return d->S; }
int cider_df_orders(const lc_cider_df *d) { return d->N; }

/* scores (K): CIDEr-D (x10) of candidate k (hyp[hyp_off[k] .. hyp_off[k+1])) against the
 * references of stored image image[k] (0-based, < S). Returns LC_OK or LC_ENOMEM. */
int cider_df_score(double *scores, const lc_cider_df *d, const int32_t *hyp,
                   const int64_t *hyp_off, const int32_t *image, int K, double sigma) {
  int N = d->N;
  int64_t maxl = 0;
  for (int k = 0; k < K; k++)
    if (hyp_off[k + 1] - hyp_off[k] > maxl) maxl = hyp_off[k + 1] - hyp_off[k];
  size_t M = (size_t)maxl * (size_t)N + 1;   /* at most this many n-grams per candidate */
  int32_t *gid = malloc(M * sizeof *gid);     /* gram index, or -(1 + first occurrence) */
  int32_t *gn = malloc(M * sizeof *gn);       /* order of each entry */
  int32_t *pos = malloc(M * sizeof *pos);     /* unseen grams: start position in the candidate */
  int32_t *tf = malloc(M * sizeof *tf);
  double *vec = malloc(M * sizeof *vec);
  double *norm = malloc((size_t)N * sizeof *norm), *val = malloc((size_t)N * sizeof *val);
  if (!gid || !gn || !pos || !tf || !vec || !norm || !val) {
    free(gid); free(gn); free(pos); free(tf); free(vec); free(norm); free(val);
    return LC_ENOMEM;
  }
  double log_s = log((double)d->S);
  for (int k = 0; k < K; k++) {
    const int32_t *w = hyp + hyp_off[k];
    int64_t L = hyp_off[k + 1] - hyp_off[k];
    /* the candidate's n-grams: known ones by gram index; an unseen one by a negative id
     * naming its first occurrence (unseen grams are rare: a quadratic scan finds it) */
    size_t m = 0;
    for (int n = 1; n <= N; n++)
      for (int64_t i = 0; i + n <= L; i++) {
        int32_t g = df_find(d, w + i, n);
        if (g < 0) {
          g = -1 - (int32_t)m;
          for (size_t q = 0; q < m; q++) {
            if (gid[q] >= 0 || gn[q] != n || gid[q] != -1 - (int32_t)q) continue;
            int t = 0;
            while (t < n && w[pos[q] + t] == w[i + t]) t++;
            if (t == n) { g = gid[q]; break; }
          }
        }
        gid[m] = g; gn[m] = n; pos[m] = (int32_t)i; m++;
      }
    /* sorted distinct entries with counts (negative ids first; they match nothing) */
    for (size_t i = 1; i < m; i++) {           /* insertion sort by gid, carrying gn */
      int32_t v = gid[i], vn = gn[i];
      size_t j = i;
      for (; j > 0 && gid[j - 1] > v; j--) { gid[j] = gid[j - 1]; gn[j] = gn[j - 1]; }
      gid[j] = v; gn[j] = vn;
    }
    size_t u = 0;
    for (size_t i = 0; i < m; i++) {
      if (u > 0 && gid[u - 1] == gid[i]) { tf[u - 1]++; continue; }
      gid[u] = gid[i]; gn[u] = gn[i]; tf[u] = 1; u++;
    }
    for (int n = 0; n < N; n++) norm[n] = 0.0;
    double len = 0.0;
    for (size_t i = 0; i < u; i++) {
      vec[i] = (double)tf[i] * (gid[i] >= 0 ? d->idf[gid[i]] : log_s);
      norm[gn[i] - 1] += vec[i] * vec[i];
      if (gn[i] == 2) len += tf[i];
    }
    for (int n = 0; n < N; n++) norm[n] = sqrt(norm[n]);
    /* clipped cosine per order and reference, length penalty, as cider_d_forward */
    int s = image[k];
    int64_t nrefs = d->img_first[s + 1] - d->img_first[s];
    for (int n = 0; n < N; n++) val[n] = 0.0;
    double mean = 0.0;
    for (int64_t j = d->img_first[s]; j < d->img_first[s + 1]; j++) {
      const double *norm_r = d->ref_norm + (size_t)j * (size_t)N;
      double part[64] = {0};
      size_t a = 0;
      int64_t b = d->ent_off[j];
      while (a < u && gid[a] < 0) a++;
      while (a < u && b < d->ent_off[j + 1]) {
        if (gid[a] < d->ent_gid[b]) a++;
        else if (gid[a] > d->ent_gid[b]) b++;
        else {
          double vh = vec[a], vr = d->ent_vec[b];
          part[gn[a] - 1] += (vh < vr ? vh : vr) * vr;
          a++; b++;
        }
      }
      double delta = len - d->ref_len[j];
      double pen = exp(-(delta * delta) / (2.0 * sigma * sigma));
      for (int n = 0; n < N && n < 64; n++) {
        if (norm[n] != 0.0 && norm_r[n] != 0.0) part[n] /= norm[n] * norm_r[n];
        val[n] += part[n] * pen;
      }
    }
    for (int n = 0; n < N && n < 64; n++) mean += val[n];
    mean /= N;
    scores[k] = nrefs > 0 ? mean / (double)nrefs * 10.0 : 0.0;
  }
  free(gid); free(gn); free(pos); free(tf); free(vec); free(norm); free(val);
  return LC_OK;
}
