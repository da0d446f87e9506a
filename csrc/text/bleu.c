/* bleu.c: corpus BLEU (Papineni et al. 2002) with the exact semantics of nltk 3.8's
 * corpus_bleu without smoothing. Not a tokenizer: words arrive as integer ids.
 *
 * Vocabulary: S hypotheses, R references in all, N the highest n-gram order, L a
 * sentence's length in tokens. The corpus layout (lc_corpus) is in luacap.h.
 *
 * For each hypothesis s and order n (1..N):
 *   num[s][n] = sum over distinct hypothesis n-grams g of min(count_hyp(g), max_j count_ref_j(g))
 *   den[s][n] = max(1, L_s - n + 1)            (a hypothesis shorter than n still adds 1)
 *   hyp_len[s] = L_s,  ref_len[s] = the reference length closest to L_s, ties to the shorter
 * The corpus score sums these over s, then (bleu_from_stats):
 *   0                                   when the unigram numerator is 0 (nltk returns 0)
 *   BP * exp(sum_n w_n log p_n)         otherwise, p_n = num_n / den_n, and p_n replaced by
 *                                       DBL_MIN (nltk's sys.float_info.min, SmoothingFunction
 *                                       method0) when num_n = 0: a tiny score, not 0
 *   BP = 1 if c > r, 0 if c = 0, else exp(1 - r / c)   (c = sum L_s, r = sum ref_len)
 * coco-caption's BLEU (pycocoevalcap's Bleu, which papers report; bleu_coco_from_stats) has
 * the same clipped matches and closest lengths but its own denominators and epsilons:
 *   guess_n = sum_s max(0, L_s - n + 1)
 *   BLEU-N  = (prod_{n<=N} (num_n + 1e-15) / (guess_n + 1e-9))^(1/N) * BP'
 *   BP' = exp(1 - 1/q) if q < 1, else 1,   q = (c + 1e-15) / (r + 1e-9)
 * so a missing order makes the score small, never 0, and never DBL_MIN-tiny.
 */
#include "../luacap.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

/* One slot of the per-hypothesis n-gram table. */
typedef struct {
  int32_t pos;      /* start of the n-gram in the hypothesis; -1 marks an empty slot */
  int32_t count;    /* occurrences in the hypothesis */
  int32_t maxref;   /* largest count in any single reference so far */
  int32_t cur;      /* count in the reference being scanned */
} slot;

/* Hashes grow one token per order: h_n(i) = step(h_{n-1}(i), ids[i + n - 1]), so each
 * order costs one step per position instead of n. */
#define HASH_SEED 0x9E3779B97F4A7C15ull
static inline uint64_t step(uint64_t h, int32_t id) {
  h ^= (uint64_t)(uint32_t)id;
  h *= 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 31);
}

/* The same hash in one call: lc_ngram_hash(ids, n) = h_n(0) (cider.c interns with it). */
uint64_t lc_ngram_hash(const int32_t *ids, int n) {
  uint64_t h = HASH_SEED;
  for (int k = 0; k < n; k++) h = step(h, ids[k]);
  return h;
}

static inline int same(const int32_t *a, const int32_t *b, int n) {
  for (int k = 0; k < n; k++)
    if (a[k] != b[k]) return 0;
  return 1;
}

/* The slot holding the n-gram ids[0..n) (hash h) of hypothesis hyp, or the empty slot
 * where it would go. cap is a power of two above the number of n-grams, so probing ends. */
static inline slot *find(slot *tab, size_t cap, const int32_t *hyp, const int32_t *ids, int n,
                         uint64_t h) {
  size_t i = (size_t)h & (cap - 1);
  for (;;) {
    slot *t = &tab[i];
    if (t->pos < 0 || same(hyp + t->pos, ids, n)) return t;
    i = (i + 1) & (cap - 1);
  }
}

/* Per-hypothesis statistics, orders 1..N.
 *   corpus: S hypotheses with their references (luacap.h)
 * writes: num (S, N) clipped n-gram matches, den (S, N) n-gram counts (at least 1),
 *         hyp_len (S), ref_len (S) closest reference length (0 when a hypothesis has none).
 * Returns LC_OK, or LC_ENOMEM when the scratch cannot be allocated. */
int bleu_stats_forward(int64_t *num, int64_t *den, int64_t *hyp_len, int64_t *ref_len,
                       const lc_corpus *corpus, int N) {
  const lc_corpus *c = corpus;
  int64_t maxL = 0, maxRL = 0;        /* longest hypothesis, most reference tokens of one */
  for (int s = 0; s < c->S; s++) {
    int64_t L = c->hyp_off[s + 1] - c->hyp_off[s];
    int64_t RL = c->ref_off[c->ref_first[s + 1]] - c->ref_off[c->ref_first[s]];
    if (L > maxL) maxL = L;
    if (RL > maxRL) maxRL = RL;
  }
  size_t cap = 8;
  while (cap < 2 * (size_t)maxL + 2) cap <<= 1;
  slot *tab = malloc(cap * sizeof *tab);
  int32_t *used = malloc((cap + 1) * sizeof *used);   /* occupied slots, in insertion order */
  int32_t *touched = malloc((cap + 1) * sizeof *touched);
  uint64_t *hh = malloc(((size_t)maxL + 1) * sizeof *hh);    /* (L) hypothesis hashes */
  uint64_t *rh = malloc(((size_t)maxRL + 1) * sizeof *rh);   /* reference hashes */
  if (!tab || !used || !touched || !hh || !rh) {
    free(tab); free(used); free(touched); free(hh); free(rh);
    return LC_ENOMEM;
  }
  for (size_t i = 0; i < cap; i++) tab[i].pos = -1;

  for (int s = 0; s < c->S; s++) {
    const int32_t *hyp_s = c->hyp + c->hyp_off[s];
    int64_t L = c->hyp_off[s + 1] - c->hyp_off[s];
    int64_t r0 = c->ref_first[s], r1 = c->ref_first[s + 1];
    const int32_t *ref_s = c->ref + c->ref_off[r0];   /* this hypothesis' references, in a row */
    int64_t *num_s = num + (size_t)s * N, *den_s = den + (size_t)s * N;

    /* closest reference length: smallest (|Lr - L|, Lr) */
    int64_t best = 0;
    for (int64_t j = r0; j < r1; j++) {
      int64_t Lr = c->ref_off[j + 1] - c->ref_off[j];
      int64_t d = Lr > L ? Lr - L : L - Lr, bd = best > L ? best - L : L - best;
      if (j == r0 || d < bd || (d == bd && Lr < best)) best = Lr;
    }
    hyp_len[s] = L;
    ref_len[s] = best;

    for (int64_t i = 0; i < L; i++) hh[i] = HASH_SEED;
    for (int64_t k = 0; k < c->ref_off[r1] - c->ref_off[r0]; k++) rh[k] = HASH_SEED;
    int any = 1;                          /* did order n-1 match anything? */
    for (int n = 1; n <= N; n++) {
      int64_t m = L - n + 1;              /* n-grams in the hypothesis */
      num_s[n - 1] = 0;
      den_s[n - 1] = m > 1 ? m : 1;
      /* no (n-1)-gram matched, so no n-gram can: num stays 0 */
      if (m <= 0 || !any) continue;
      int nused = 0;
      for (int64_t i = 0; i < m; i++) {
        hh[i] = step(hh[i], hyp_s[i + n - 1]);
        slot *t = find(tab, cap, hyp_s, hyp_s + i, n, hh[i]);
        if (t->pos < 0) {
          t->pos = (int32_t)i; t->count = 0; t->maxref = 0; t->cur = 0;
          used[nused++] = (int32_t)(t - tab);
        }
        t->count++;
      }
      for (int64_t j = r0; j < r1; j++) {
        int64_t base = c->ref_off[j] - c->ref_off[r0];
        const int32_t *ref_j = ref_s + base;
        uint64_t *rh_j = rh + base;
        int64_t mr = c->ref_off[j + 1] - c->ref_off[j] - n + 1;
        int ntouched = 0;
        for (int64_t k = 0; k < mr; k++) {
          rh_j[k] = step(rh_j[k], ref_j[k + n - 1]);
          slot *t = find(tab, cap, hyp_s, ref_j + k, n, rh_j[k]);
          if (t->pos < 0) continue;       /* not in the hypothesis: cannot match */
          if (t->cur++ == 0) touched[ntouched++] = (int32_t)(t - tab);
        }
        for (int k = 0; k < ntouched; k++) {
          slot *t = &tab[touched[k]];
          if (t->cur > t->maxref) t->maxref = t->cur;
          t->cur = 0;
        }
      }
      int64_t matched = 0;
      for (int k = 0; k < nused; k++) {
        slot *t = &tab[used[k]];
        matched += t->count < t->maxref ? t->count : t->maxref;
        t->pos = -1;                      /* leave the table empty for the next round */
      }
      num_s[n - 1] = matched;
      any = matched > 0;
    }
  }
  free(tab); free(used); free(touched); free(hh); free(rh);
  return LC_OK;
}

/* The BLEU score from corpus totals (sums over hypotheses of bleu_stats_forward's rows).
 *   num, den, w (N); c = total hypothesis length, r = total closest reference length.
 * Weights of 0 still see their order's precision (0 * log(DBL_MIN) = 0), as in nltk. */
double bleu_from_stats(const int64_t *num, const int64_t *den, int64_t c, int64_t r,
                       const double *w, int N) {
  if (N < 1 || num[0] == 0) return 0.0;
  double bp = c > r ? 1.0 : (c == 0 ? 0.0 : exp(1.0 - (double)r / (double)c));
  /* Neumaier-compensated sum: nltk adds the terms with math.fsum (exactly rounded). */
  double sum = 0.0, comp = 0.0;
  for (int n = 0; n < N; n++) {
    double p = num[n] > 0 ? (double)num[n] / (double)den[n] : DBL_MIN;
    double term = w[n] * log(p);
    double t = sum + term;
    if (fabs(sum) >= fabs(term)) comp += (sum - t) + term;
    else comp += (term - t) + sum;
    sum = t;
  }
  return bp * exp(sum + comp);
}

/* coco-caption's corpus BLEU-N (equal weights 1/N) from corpus totals: num, guess (N) as in
 * the header, c and r the total hypothesis and closest reference lengths. */
double bleu_coco_from_stats(const int64_t *num, const int64_t *guess, int64_t c, int64_t r,
                            int N) {
  const double tiny = 1e-15, small = 1e-9;
  if (N < 1) return 0.0;
  double logp = 0.0;
  for (int n = 0; n < N; n++) logp += log(((double)num[n] + tiny) / ((double)guess[n] + small));
  double score = exp(logp / N);
  double q = ((double)c + tiny) / ((double)r + small);
  if (q < 1.0) score *= exp(1.0 - 1.0 / q);
  return score;
}
