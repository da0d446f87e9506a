/* rouge.c: ROUGE-L per image as the coco-caption toolkit computes it (pycocoevalcap
 * rouge/rouge.py; Lin 2004, "ROUGE: a package for automatic evaluation of summaries").
 * Not ROUGE-N, not ROUGE-W, no stemming or stop words: ids are compared as they are.
 *
 * For hypothesis h with references r_1..r_k (lengths in tokens):
 *   P = max_j LCS(h, r_j) / |h|      R = max_j LCS(h, r_j) / |r_j|   (maxima taken apart)
 *   score = (1 + beta^2) P R / (R + beta^2 P)   when P and R are both nonzero, else 0
 * coco-caption uses beta = 1.2 and averages the scores over images. An empty hypothesis
 * or an empty reference contributes precision / recall 0 (coco-caption would split "" into
 * one empty token and get the same 0 for a hypothesis).
 */
#include "../luacap.h"

#include <stdlib.h>

/* Length of the longest common subsequence of a (na) and b (nb); row (nb + 1) scratch. */
static int64_t lcs(const int32_t *a, int64_t na, const int32_t *b, int64_t nb, int64_t *row) {
  for (int64_t j = 0; j <= nb; j++) row[j] = 0;
  for (int64_t i = 1; i <= na; i++) {
    int64_t diag = 0;                      /* row[j-1] of the previous i */
    for (int64_t j = 1; j <= nb; j++) {
      int64_t up = row[j];
      if (a[i - 1] == b[j - 1]) row[j] = diag + 1;
      else if (row[j - 1] > row[j]) row[j] = row[j - 1];
      diag = up;
    }
  }
  return row[nb];
}

/* scores (S): ROUGE-L F of each hypothesis against its references.
 * Returns LC_OK or LC_ENOMEM. */
int rouge_l_forward(double *scores, const lc_corpus *corpus, double beta) {
  const lc_corpus *c = corpus;
  int64_t maxh = 0;
  for (int s = 0; s < c->S; s++) {
    int64_t L = c->hyp_off[s + 1] - c->hyp_off[s];
    if (L > maxh) maxh = L;
  }
  int64_t *row = malloc(((size_t)maxh + 1) * sizeof *row);
  if (!row) return LC_ENOMEM;
  double b2 = beta * beta;
  for (int s = 0; s < c->S; s++) {
    const int32_t *h = c->hyp + c->hyp_off[s];
    int64_t nh = c->hyp_off[s + 1] - c->hyp_off[s];
    double pmax = 0.0, rmax = 0.0;
    for (int64_t j = c->ref_first[s]; j < c->ref_first[s + 1]; j++) {
      int64_t nr = c->ref_off[j + 1] - c->ref_off[j];
      if (nh == 0 || nr == 0) continue;
      /* the DP row runs along the hypothesis, so the scratch is sized once */
      int64_t l = lcs(c->ref + c->ref_off[j], nr, h, nh, row);
      double p = (double)l / (double)nh, r = (double)l / (double)nr;
      if (p > pmax) pmax = p;
      if (r > rmax) rmax = r;
    }
    scores[s] = (pmax != 0.0 && rmax != 0.0)
                    ? ((1.0 + b2) * pmax * rmax) / (rmax + b2 * pmax) : 0.0;
  }
  free(row);
  return LC_OK;
}
