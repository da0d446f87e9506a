/* meteor.c: sentence METEOR per hypothesis as nltk 3.8's nltk.translate.meteor_score computes
 * it (Banerjee & Lavie 2005; nltk's formula and defaults alpha 0.9, beta 3, gamma 0.5), with
 * two of nltk's three matching modules: exact, then Porter stem. No WordNet synonym module
 * (WordNet is not available here), so a pair that nltk aligns through a synonym scores lower
 * here; without synonym matches the score equals nltk's. Not METEOR 1.5 (no paraphrases,
 * no function-word weights, no corpus-level aggregation).
 *
 * Ids arrive already lower-cased and stemmed (luacap.eval.metrics interns the strings): word
 * ids in the corpus, stem ids in hyp_stem / ref_stem, aligned with corpus->hyp / ->ref.
 *
 * Alignment of hypothesis h (nh) with reference r (nr), nltk's greedy order per module:
 *   for i = nh-1 .. 0 (unaligned i only), for j = nr-1 .. 0 (unaligned j only):
 *     if h[i] equals r[j] in this module: align i with j, go to the next i
 * first on word ids, then on stem ids for what is left. m = aligned pairs; taken in order of
 * i, a pair starts a new chunk unless it follows pair (i-1, j-1). Then
 *   P = m / nh   R = m / nr   Fmean = P R / (alpha P + (1 - alpha) R)
 *   penalty = gamma (chunks / m)^beta   score = (1 - penalty) Fmean;   0 when m = 0
 * (an empty hypothesis or reference aligns nothing). Per hypothesis the max over references.
 */
#include "../luacap.h"

#include <math.h>
#include <stdlib.h>

/* One alignment module: aligns each unaligned h[i] (i descending) with the last unaligned
 * r[j] of equal id. to_ref (nh): ref position of each hyp position or -1; used (nr) flags.
 * Returns the number of pairs added. */
static int64_t align_module(int64_t *to_ref, unsigned char *used, const int32_t *h, int64_t nh,
                            const int32_t *r, int64_t nr) {
  int64_t added = 0;
  for (int64_t i = nh - 1; i >= 0; i--) {
    if (to_ref[i] >= 0) continue;
    for (int64_t j = nr - 1; j >= 0; j--) {
      if (!used[j] && r[j] == h[i]) {
        to_ref[i] = j;
        used[j] = 1;
        added++;
        break;
      }
    }
  }
  return added;
}

/* METEOR of one hypothesis against one reference; to_ref (nh), used (nr) scratch. */
static double meteor_pair(const int32_t *h, const int32_t *hs, int64_t nh, const int32_t *r,
                          const int32_t *rs, int64_t nr, double alpha, double beta,
                          double gamma, int64_t *to_ref, unsigned char *used) {
  if (nh == 0 || nr == 0) return 0.0;
  for (int64_t i = 0; i < nh; i++) to_ref[i] = -1;
  for (int64_t j = 0; j < nr; j++) used[j] = 0;
  int64_t m = align_module(to_ref, used, h, nh, r, nr);
  m += align_module(to_ref, used, hs, nh, rs, nr);
  if (m == 0) return 0.0;
  int64_t chunks = 0, prev = -2;      /* prev: ref position of the previous pair, -2 none */
  for (int64_t i = 0; i < nh; i++) {
    int64_t j = to_ref[i];
    if (j < 0) { prev = -2; continue; }
    if (j != prev + 1) chunks++;
    prev = j;
  }
  /* the operations in nltk's order, so that the doubles agree bit for bit */
  double p = (double)m / (double)nh, rc = (double)m / (double)nr;
  double fmean = (p * rc) / (alpha * p + (1.0 - alpha) * rc);
  double frag = (double)chunks / (double)m;
  double penalty = gamma * pow(frag, beta);
  return (1.0 - penalty) * fmean;
}

/* scores (S): METEOR of each hypothesis, the max over its references.
 *   hyp_stem (corpus->hyp_off[S]) and ref_stem (corpus->ref_off[R]) stem ids.
 * Returns LC_OK or LC_ENOMEM. */
int meteor_forward(double *scores, const lc_corpus *corpus, const int32_t *hyp_stem,
                   const int32_t *ref_stem, double alpha, double beta, double gamma) {
  const lc_corpus *c = corpus;
  int64_t maxh = 0, maxr = 0;
  for (int s = 0; s < c->S; s++) {
    int64_t L = c->hyp_off[s + 1] - c->hyp_off[s];
    if (L > maxh) maxh = L;
    for (int64_t j = c->ref_first[s]; j < c->ref_first[s + 1]; j++) {
      int64_t Lr = c->ref_off[j + 1] - c->ref_off[j];
      if (Lr > maxr) maxr = Lr;
    }
  }
  int64_t *to_ref = malloc(((size_t)maxh + 1) * sizeof *to_ref);
  unsigned char *used = malloc((size_t)maxr + 1);
  if (!to_ref || !used) { free(to_ref); free(used); return LC_ENOMEM; }
  for (int s = 0; s < c->S; s++) {
    int64_t ho = c->hyp_off[s], nh = c->hyp_off[s + 1] - ho;
    double best = -INFINITY;          /* every hypothesis has a reference */
    for (int64_t j = c->ref_first[s]; j < c->ref_first[s + 1]; j++) {
      int64_t ro = c->ref_off[j], nr = c->ref_off[j + 1] - ro;
      double v = meteor_pair(c->hyp + ho, hyp_stem + ho, nh, c->ref + ro, ref_stem + ro, nr,
                             alpha, beta, gamma, to_ref, used);
      if (v > best) best = v;
    }
    scores[s] = best;
  }
  free(to_ref);
  free(used);
  return LC_OK;
}
