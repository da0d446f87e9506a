/* embedding.c: table lookup of token ids into rows of a weight matrix (Keras Embedding).
 * Not a sparse-gradient layer: backward adds into a dense dweight (V, D).
 * Shapes: N = B*T lookups, V vocabulary, D embedding width. Ids ride as floats; the
 * binding has checked that every id is an integer in [0, V-1]. */
#include "luacap.h"

#include <string.h>

/* Large loops run on all threads (OpenMP); below PAR_MIN_WORK elements one thread is
 * faster than waking the others. Each thread writes its own elements. */
#define PAR_MIN_WORK 32768
#include "parallel.h"

/* out (N, D) = weight[ids[i]] for each i; ids (N), weight (V, D).
 * mask (N) or NULL: 1 where id != 0, 0 where id == 0 (Keras mask_zero). Row 0 is still
 * looked up, as Keras does: it is an ordinary trainable row that downstream layers
 * ignore through the mask. */
void embedding_forward(float *out, float *mask, const float *ids, const float *weight,
                       int N, int D) {
  LC_OMP_FOR_IF((size_t)N * D)
  for (int i = 0; i < N; i++) {
    size_t id = (size_t)ids[i];
    memcpy(out + (size_t)i * D, weight + id * (size_t)D, (size_t)D * sizeof(float));
    if (mask) mask[i] = ids[i] != 0.0f ? 1.0f : 0.0f;
  }
}

/* Adds into dweight (V, D) from dout (N, D) and ids (N): a scatter-add, so an id that
 * appears k times receives the sum of its k output gradients.
 *   forward:  out[i, :] = weight[ids[i], :]
 *   backward: dweight[ids[i], :] += dout[i, :] */
void embedding_backward(float *dweight, const float *dout, const float *ids, int N, int D) {
  /* threads split the D columns: an id repeated in two rows is then added by one thread,
   * in row order, as the one-thread loop adds it */
  int nb = (D + 31) / 32;
  LC_OMP_FOR_IF((size_t)N * D)
  for (int jb = 0; jb < nb; jb++) {
    int d0 = jb * 32, d1 = d0 + 32 < D ? d0 + 32 : D;
    for (int i = 0; i < N; i++) {
      float *dw_row = dweight + (size_t)ids[i] * (size_t)D;
      const float *dout_i = dout + (size_t)i * D;
      for (int d = d0; d < d1; d++) dw_row[d] += dout_i[d];
    }
  }
}
