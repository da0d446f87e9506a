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
