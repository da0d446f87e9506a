/* fuzz/h5.c: libFuzzer target, luacap's HDF5 reader (csrc/io/h5.c) on any file: what
 * the model-file, checkpoint, Keras-weights and feature-cache loaders call, in the order
 * they call it. The input is written to a file in $TMPDIR (libhdf5 reads files), opened
 * read-only (superblock and size checks first), then every group is listed (depth <= 8),
 * every object's attributes read, every dataset's shape taken and, when it is within
 * lc_limits.dataset_bytes (1 MiB here), read (checksum verified). Seeds: fuzz/corpus/h5
 * (a luacap model file, a checkpoint with optimizer state, a feature cache, a Keras-layout
 * weights file, the spec fixture h5_mixed.h5 that h5py-style writers produce). */
#include "luacap.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[512];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc; (void)argv;
  const char *dir = getenv("TMPDIR");
  snprintf(path, sizeof path, "%s/luacap-fuzz-h5.%ld.h5", dir ? dir : "/tmp", (long)getpid());
  lc_limits.dataset_bytes = (int64_t)1 << 20;
  return 0;
}

static void walk(lc_h5 *h, const char *group, int depth, int *budget) {
  char err[256];
  const lc_h5_attr *attrs;
  size_t na;
  if (lc_h5_attrs(h, group, &attrs, &na, err, sizeof err) == LC_OK)
    for (size_t i = 0; i < na; i++)   /* touch every value the arena holds */
      for (size_t j = 0; j < attrs[i].count; j++)
        if (attrs[i].type == LC_H5_STRING && strlen(attrs[i].strs[j]) > attrs[i].lens[j]) abort();
  const char **names;
  const int *kinds;
  size_t count;
  if (depth > 8 || lc_h5_list(h, group, &names, &kinds, &count, err, sizeof err) != LC_OK) return;
  /* the arena is reused by the next list / attrs call: copy the names first */
  char **own = calloc(count ? count : 1, sizeof *own);
  int *kind = calloc(count ? count : 1, sizeof *kind);
  if (!own || !kind) abort();
  for (size_t i = 0; i < count; i++) {
    size_t len = strlen(group) + strlen(names[i]) + 2;
    own[i] = malloc(len);
    if (!own[i]) abort();
    snprintf(own[i], len, "%s%s%s", group, group[strlen(group) - 1] == '/' ? "" : "/", names[i]);
    kind[i] = strpbrk(names[i], "/.") ? -1 : kinds[i];   /* -1: resolves elsewhere */
  }
  for (size_t i = 0; i < count && --*budget > 0; i++) {
    /* list and kind never take a group for a dataset or back. They may disagree
     * otherwise: an object libhdf5 cannot open while it iterates a damaged group lists
     * as 'other' and opens by path afterwards, a dangling link lists as 'other' and is
     * 'none' by path, and a name holding '/' or '.' (a corrupt heap) resolves elsewhere */
    int k = lc_h5_kind(h, own[i]);
    if (kind[i] != -1 && k != kind[i] && (k == LC_H5_GROUP || k == LC_H5_DATASET) &&
        (kind[i] == LC_H5_GROUP || kind[i] == LC_H5_DATASET)) abort();
    if (kind[i] == LC_H5_GROUP && k == LC_H5_GROUP) {
      walk(h, own[i], depth + 1, budget);
    } else if (k == LC_H5_DATASET) {
      int ndim = 0;
      int64_t shape[LC_MAXDIM];
      if (lc_h5_dataset_shape(h, own[i], &ndim, shape, err, sizeof err) == LC_OK) {
        size_t numel = 1;
        for (int d = 0; d < ndim; d++) numel *= (size_t)shape[d];
        if ((double)numel * 4 > (double)lc_limits.dataset_bytes) abort();  /* the limit held */
        float *buf = malloc((numel ? numel : 1) * sizeof *buf);
        if (!buf) abort();
        lc_h5_read(h, own[i], buf, numel, err, sizeof err);
        free(buf);
      }
      const lc_h5_attr *a;
      size_t n;
      lc_h5_attrs(h, own[i], &a, &n, err, sizeof err);
    }
  }
  for (size_t i = 0; i < count; i++) free(own[i]);
  free(own);
  free(kind);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  if (size && fwrite(data, 1, size, f) != size) abort();
  fclose(f);
  char err[256];
  lc_h5 *h = NULL;
  if (lc_h5_open(&h, path, 0, err, sizeof err) == LC_OK) {
    int budget = 4096;
    walk(h, "/", 0, &budget);
    lc_h5_close(h, 0, err, sizeof err);
  } else if (h) {
    abort();                              /* a failed open owns nothing */
  }
  unlink(path);
  return 0;
}
