/* luacap.h: the tensor struct and every kernel's prototype, grouped by family.
 * Tier 1 of luacap: plain C99, never includes lua.h, never prints or exits.
 * Kernels return 0 (LC_OK) or a negative code; messages go into a caller's buffer.
 *
 * Shape vocabulary, used in every comment below:
 *   B batch, T time steps, C in-features / channels, H hidden units, V vocabulary,
 *   D model width, OC out-channels, K kernel size, IH/IW input height/width,
 *   OH/OW output height/width, N rows of a matrix, M columns.
 */
#ifndef LUACAP_H
#define LUACAP_H

#include <stddef.h>
#include <stdint.h>

#define LC_MAXDIM 4
#define LC_OK 0
#define LC_ENOMEM (-1)
#define LC_EDATA (-2)   /* bad input data: corrupt file, malformed record */
#define LC_EIO (-3)     /* the file system said no */
#define LC_EARG (-4)    /* a value out of range that the binding could not see */

/* ---------------------------------------------------------------- tensor.c */
/* Refcounted, 64-byte-aligned float storage outside the Lua heap. */
typedef struct lc_storage {
  float *data;      /* (n) */
  size_t n;         /* number of floats */
  int refcount;
} lc_storage;

/* A contiguous row-major float32 view of up to 4 dims. data points into storage. */
typedef struct lc_tensor {
  float *data;
  int ndim;                    /* 0 only for a freed tensor */
  int64_t shape[LC_MAXDIM];
  lc_storage *storage;         /* NULL once freed */
} lc_tensor;

lc_storage *lc_storage_new(size_t n);          /* zero-filled; NULL when out of memory */
void lc_storage_retain(lc_storage *s);
void lc_storage_release(lc_storage *s);        /* frees at refcount 0 */
size_t lc_numel(const lc_tensor *t);
size_t lc_shape_numel(int ndim, const int64_t *shape);
/* x (n) = 0; on all threads when n is large (zeroing 15 M gradients each step). */
void lc_zero(float *x, size_t n);
/* y (n) += a * x (n); on all threads when n is large. */
void lc_axpy(float *y, float a, const float *x, size_t n);
/* dst[i] = src[rows[i]] for i < n, rows of `row` floats, rows 0-based and in range. */
void lc_gather_rows(float *dst, const float *src, const int *rows, size_t n, size_t row);
/* dst[rows[i]] = src[i], or += with add; a repeated row: the later i wins, or the sums
 * add in order of i. Both on all threads when large. */
void lc_scatter_rows(float *dst, const float *src, const int *rows, size_t n, size_t row,
                     int add);
/* out (outer, inner) = 1-based index of the first maximum of x (outer, len, inner) along
 * len; NaN never wins, a NaN first element does (as a loop of '>' tests gives). */
void lc_argmax(float *out, const float *x, size_t outer, size_t len, size_t inner);

/* ---------------------------------------------------------------- rng.c */
/* The one seedable generator (xoshiro256**, seeded by splitmix64). Same seed,
 * same stream on every machine. */
void lc_rng_seed(uint64_t seed);
uint64_t lc_rng_seed_value(void);              /* the seed last given (0: never seeded) */
uint64_t lc_rng_u64(void);
double lc_rng_uniform(void);                   /* [0, 1) with 53 random bits */
double lc_rng_normal(void);                    /* N(0, 1), Box-Muller */
uint64_t lc_rng_below(uint64_t n);             /* uniform integer in [0, n), unbiased */
void lc_rng_fill_uniform(float *out, size_t n, float lo, float hi);
void lc_rng_fill_keep(float *mask, size_t n, double p, float keep);  /* u >= p ? keep : 0 */
void lc_rng_fill_normal(float *out, size_t n, float mean, float std);
void lc_rng_get_state(uint64_t out[4], int *has_spare, double *spare);
void lc_rng_set_state(const uint64_t in[4], int has_spare, double spare);

/* ---------------------------------------------------------------- blas.c */
/* Row-major sgemm: C (M,N) = alpha * op(A) (M,K) @ op(B) (K,N) + beta * C.
 * ta / tb nonzero mean A / B are stored transposed, (K,M) / (N,K). */
void lc_sgemm(int ta, int tb, int M, int N, int K, float alpha,
              const float *A, const float *B, float beta, float *C);
void lc_set_threads(int n);                    /* OpenBLAS and OpenMP together */
int lc_get_threads(void);
const char *lc_blas_core(void);                /* OpenBLAS' kernel family, e.g. "Haswell" */

/* ---------------------------------------------------------------- nn/packed_gemm.c */
/* C (M, N) += A (M, K) @ B with B packed once into column panels (a recurrent kernel used
 * at every step): packed_gemm_size(K, N) floats; pack from b (K, N), or with trans from
 * b (N, K) for B = b^T. */
size_t packed_gemm_size(int K, int N);
int packed_gemm_panel_width(void);   /* NR: pk holds ceil(N / NR) panels of (K, NR) */
void packed_gemm_pack(float *pk, const float *b, int K, int N, int trans);
void packed_gemm_acc(float *c, const float *a, const float *pk, int M, int N, int K);
/* c_i (M, N) += a_i (M, K) @ B_i, i < batch: c (batch, M, N), a (batch, M, K), pk the B_i
 * packed one after the other (packed_gemm_size(K, N) floats each). */
void packed_gemm_acc_batch(float *c, const float *a, const float *pk, int batch, int M, int N,
                           int K);

/* ---------------------------------------------------------------- image/ */
/* Image codecs (jpeg.c, png.c), resize.c, preprocess.c. A decoded image is
 * malloc'd bytes pix (H, W, 3), RGB interleaved, row-major; the caller frees it.
 * Decoders never raise or exit: bad data gives LC_EDATA and a reason in msg. */
/* Run-time allocation limits (tensor.c holds them; luacap.set_limits sets them from Lua).
 * image_pixels: decoders refuse larger headers (default 2^28 pixels, 3 GiB as floats);
 * dataset_bytes: HDF5 readers refuse a dataset claiming more (default 2^34, 16 GiB). */
typedef struct { int64_t image_pixels, dataset_bytes; } lc_limits_t;
extern lc_limits_t lc_limits;
#define LC_IMAGE_MAX_PIXELS (lc_limits.image_pixels)
enum { LC_IMG_UNKNOWN = 0, LC_IMG_JPEG = 1, LC_IMG_PNG = 2 };
int lc_image_sniff(const unsigned char *buf, size_t n);   /* from the magic bytes */
/* Decode buf (n bytes). pix NULL: read the header only. C: channels stored in the
 * file (1 grey, 2 grey+alpha, 3 colour, 4 RGBA or CMYK); *pix is always (H, W, 3). */
int lc_jpeg_decode(unsigned char **pix, int *H, int *W, int *C,
                   const unsigned char *buf, size_t n, char *msg, size_t msgn);
int lc_png_decode(unsigned char **pix, int *H, int *W, int *C,
                  const unsigned char *buf, size_t n, char *msg, size_t msgn);
/* Encode pix (H, W, C), C 1 (grey) or 3 (RGB), into *out (malloc'd, *outn bytes). */
int lc_jpeg_encode(unsigned char **out, size_t *outn, const unsigned char *pix,
                   int H, int W, int C, int quality, char *msg, size_t msgn);
int lc_png_encode(unsigned char **out, size_t *outn, const unsigned char *pix,
                  int H, int W, int C, char *msg, size_t msgn);
/* out (OH, OW, C) from img (IH, IW, C) as Pillow's Image.resize(NEAREST). */
void resize_nearest_forward(float *out, const float *img, int IH, int IW, int OH, int OW, int C);
/* out (OH, OW, C) from img (IH, IW, C) as Pillow's Image.resize(BILINEAR): a triangle
 * filter whose support widens by the scale factor when shrinking (antialiased). Returns
 * LC_ENOMEM when its coefficient tables cannot be allocated. */
int resize_bilinear_forward(float *out, const float *img, int IH, int IW, int OH, int OW, int C);
/* out (H, W, 3) BGR minus the ImageNet means from img (H, W, 3) RGB: Keras' 'caffe' mode. */
void vgg_preprocess_forward(float *out, const float *img, int H, int W);

/* ---------------------------------------------------------------- io/ */
/* h5.c: named float32 tensors and string attributes in HDF5 files (libhdf5, 1.8 format).
 * A handle owns one open file. A writer writes to "<path>.tmp.<pid>" and only
 * lc_h5_close(h, 1, ...) renames it over path, so a crash never leaves half a file.
 * Names are HDF5 paths ("/encoder/dense/kernel", leading '/' optional). Results of
 * lc_h5_list / lc_h5_attrs live in the handle's scratch arena until the next such call
 * or close. Failures return LC_EDATA (bad file or missing object), LC_EIO, LC_ENOMEM or
 * LC_EARG and write a reason (without the file's path) into err (n bytes). */
typedef struct lc_h5 lc_h5;
enum { LC_H5_NONE = 0, LC_H5_GROUP = 1, LC_H5_DATASET = 2, LC_H5_OTHER = 3 };
enum { LC_H5_STRING = 1, LC_H5_NUMBER = 2 };
typedef struct lc_h5_attr {
  const char *name;
  int type;               /* LC_H5_STRING or LC_H5_NUMBER */
  int is_array;           /* 0: a scalar attribute; 1: an array (flattened row-major) */
  size_t count;           /* number of values; 1 for a scalar */
  const char **strs;      /* (count) NUL-terminated, for LC_H5_STRING */
  const size_t *lens;     /* (count) byte lengths of strs */
  const double *nums;     /* (count) for LC_H5_NUMBER */
} lc_h5_attr;

int lc_h5_open(lc_h5 **out, const char *path, int writable, char *err, size_t n);
/* Closes every HDF5 handle and frees h. Writer: commit 1 flushes, fsyncs and renames the
 * temporary file over path; commit 0 (or any failure) removes it. */
int lc_h5_close(lc_h5 *h, int commit, char *err, size_t n);
int lc_h5_kind(lc_h5 *h, const char *name);    /* LC_H5_NONE / GROUP / DATASET / OTHER */
/* Shape of a float dataset (float32, float64, ... converted on read); ndim 0 for a scalar. */
int lc_h5_dataset_shape(lc_h5 *h, const char *name, int *ndim, int64_t *shape,
                        char *err, size_t n);
/* out (numel) = the dataset's values as float32; numel must match its shape. */
int lc_h5_read(lc_h5 *h, const char *name, float *out, size_t numel, char *err, size_t n);
uint32_t lc_crc32c(const void *data, size_t n);   /* CRC-32C, the datasets' checksum */
/* data (shape) written as a float32 dataset, or with half != 0 as IEEE float16 (half the
 * bytes; values rounded to nearest even, beyond +-65504 to infinity), its checksum that of
 * the rounded values as float32 (what a read gives back); missing groups are created. */
int lc_h5_write(lc_h5 *h, const char *name, const float *data, int ndim,
                const int64_t *shape, int half, char *err, size_t n);
/* x rounded to the nearest float16 value (ties to even), returned as a float. */
float lc_round_half(float x);
/* Members of a group: names (count) and kinds (count), in the group's creation order
 * when it tracks one, else in name order (HDF5's default, and h5py's). */
int lc_h5_list(lc_h5 *h, const char *group, const char ***names, const int **kinds,
               size_t *count, char *err, size_t n);
/* Every attribute of an object (group or dataset): attrs (count), in name order. */
int lc_h5_attrs(lc_h5 *h, const char *obj, const lc_h5_attr **attrs, size_t *count,
                char *err, size_t n);
/* A string attribute on obj (created as a group when missing), replacing any old one:
 * is_array 0 writes strs[0] as a scalar fixed-length string, is_array 1 writes strs
 * (count) as a 1-d array of fixed-length, NUL-padded strings, as h5py writes numpy 'S'
 * arrays (Keras' layer_names, weight_names). */
int lc_h5_write_attr(lc_h5 *h, const char *obj, const char *name, const char *const *strs,
                     const size_t *lens, size_t count, int is_array, char *err, size_t n);

/* ---------------------------------------------------------------- nn/: dense, conv2d, pool */
/* Images and feature maps are channels-last, NHWC: x (B, IH, IW, C), as Keras stores
 * them and as luacap.image gives (H, W, 3). Weights keep Keras' layouts: a Dense kernel
 * (C, OC), a conv kernel (KH, KW, C, OC), biases (OC); Keras files load without copies.
 * Backward functions ADD into every gradient (callers zero them once per step). */

/* dense.c.  out (N, OC) = act(x (N, C) @ kernel (C, OC) + bias (OC)); bias may be NULL;
 * relu != 0 fuses max(., 0). N counts rows: B, or B*T for sequences. */
void dense_forward(float *out, const float *x, const float *kernel, const float *bias,
                   int N, int C, int OC, int relu);
void dense_forward_ref(float *out, const float *x, const float *kernel, const float *bias,
                       int N, int C, int OC, int relu);
/* dense_forward with pk the kernel packed by packed_gemm_pack(pk, kernel, C, OC, 0). */
void dense_forward_packed(float *out, const float *x, const float *pk, const float *bias,
                          int N, int C, int OC, int relu);
/* Adds into dx (N, C) (NULL: skipped), dkernel (C, OC), dbias (OC) (NULL: skipped).
 * dpre (N, OC): scratch, needed only when relu != 0; out (N, OC) is forward's output. */
void dense_backward(float *dx, float *dkernel, float *dbias, float *dpre,
                    const float *dout, const float *out, const float *x, const float *kernel,
                    int N, int C, int OC, int relu);

/* activation.c.  out (n) = max(x, 0) (out may alias x); dx (n) += dout * (out > 0). */
void relu_forward(float *out, const float *x, size_t n);
void relu_backward(float *dx, const float *dout, const float *out, size_t n);

/* conv2d.c.  Geometry of one 2-d convolution or pooling window, NHWC. */
typedef struct lc_conv_geom {
  int B, IH, IW, C;       /* input (B, IH, IW, C) */
  int OC;                 /* output channels (pooling: OC = C) */
  int KH, KW, SH, SW;     /* window and strides */
  int pad_top, pad_left;  /* zero rows/columns before the image ('same'); 0 for 'valid' */
  int OH, OW;             /* output (B, OH, OW, OC) */
} lc_conv_geom;
/* Fills g for padding 'valid' (same = 0) or 'same' (same = 1) with Keras/TF's rule:
 * OH = ceil(IH / SH), pad_total = max((OH - 1) * SH + KH - IH, 0), pad_top = pad_total / 2.
 * 'valid': OH = floor((IH - KH) / SH) + 1. Returns LC_EARG when the output would be empty. */
int lc_conv_geom_init(lc_conv_geom *g, int B, int IH, int IW, int C, int OC, int KH, int KW,
                      int SH, int SW, int same);
/* out (B, OH, OW, OC) = conv(x (B, IH, IW, C), weight (KH, KW, C, OC)) + bias (OC or NULL),
 * then max(., 0) when relu. im2col in bounded chunks of output pixels + one sgemm per chunk.
 * With at least as many images as threads, each thread convolves whole images in cached
 * chunks; otherwise the batch goes in large chunks through OpenBLAS' threads.
 * work: conv2d_forward_workspace_size(g) floats of scratch, or NULL (then allocated here:
 * a fresh buffer of up to 16 MB a call is fresh pages to fault in, each call).
 * Returns LC_ENOMEM when the column buffer cannot be allocated. */
int conv2d_forward(float *out, const float *x, const float *weight, const float *bias,
                   const lc_conv_geom *g, int relu, float *work);
/* Floats of work conv2d_forward, and conv2d_backward with or without dx and relu_out, use
 * (they depend on the thread count at the call). */
size_t conv2d_forward_workspace_size(const lc_conv_geom *g);
size_t conv2d_backward_workspace_size(const lc_conv_geom *g, int with_dx, int relu);
/* The direct seven-loop convolution, for specs. */
void conv2d_forward_ref(float *out, const float *x, const float *weight, const float *bias,
                        const lc_conv_geom *g, int relu);
/* Adds into dx (B, IH, IW, C) (NULL: skipped), dweight (KH, KW, C, OC), dbias (OC or NULL)
 * from dout (B, OH, OW, OC), the gradient of the output. relu_out: the forward's output
 * when it had the fused relu (dout is then masked by relu_out > 0 chunk by chunk), or NULL.
 * work: conv2d_backward_workspace_size(g, dx != NULL, relu_out != NULL) floats or NULL.
 * Per image (threads' private weight gradients, summed in a fixed order) as the forward. */
int conv2d_backward(float *dx, float *dweight, float *dbias, const float *dout,
                    const float *relu_out, const float *x, const float *weight,
                    const lc_conv_geom *g, float *work);

/* winograd.c.  3x3 stride-1 convolutions by Winograd F(m x m, 3 x 3), m = 4 or 2, forward
 * only (backward: conv2d_backward). a = m + 2, N = a*a transform positions.
 * Is g a 3x3, stride-1 window (any padding)? */
int winograd_supported(const lc_conv_geom *g);
/* U (N, C, OC) = G g G^T of every 3x3 filter of weight (3, 3, C, OC): once per weight. */
void winograd_filter_transform(float *U, const float *weight, int m, int C, int OC);
/* out (B, OH, OW, OC) = conv(x (B, IH, IW, C), weight) + bias (OC or NULL), then max(., 0)
 * when relu, from U of winograd_filter_transform; work (winograd_workspace_size floats) or
 * NULL to allocate it per call. LC_EARG: not 3x3/stride 1 or m not 2/4;
 * LC_ENOMEM: the tile buffers could not be allocated. */
int winograd_conv2d_forward(float *out, const float *x, const float *U, const float *bias,
                            const lc_conv_geom *g, int m, int relu, float *work);
/* Floats of scratch winograd_conv2d_forward uses (its work argument): one chunk's tiles. */
size_t winograd_workspace_size(const lc_conv_geom *g, int m);
/* A position-weighted 64-bit fingerprint of x (n): the key of a cached filter transform. */
uint64_t winograd_fingerprint(const float *x, size_t n);

/* pool.c.  Max pooling, 'valid' windows, g from lc_conv_geom_init(.., OC = C, .., 0).
 * out (B, OH, OW, C) = max over each KH x KW window of x (B, IH, IW, C). */
void maxpool2d_forward(float *out, const float *x, const lc_conv_geom *g);
/* dx (B, IH, IW, C) += dout routed to each window's maximum (the first one on ties). */
void maxpool2d_backward(float *dx, const float *dout, const float *x, const lc_conv_geom *g);

/* ---------------------------------------------------------------- nn/: lstm, attention */
/* lstm.c: Keras LSTM (gates i, f, c, o) over a whole sequence; see the file's header.
 *   x (B, T, C), or (B, C) with repeat (the same input at every step, as after a
 *   RepeatVector)  mask (B, T) 1/0 or NULL  kernel (C, 4H)  rkernel (H, 4H)  bias (4H)
 *   h0, c0 (B, H) or NULL   out (B, T, H) when return_sequences (processing order), else (B, H)
 *   kernel NULL (forward and backward): x is the input projection x @ kernel, C = 4H,
 *   dx its gradient, dkernel unused
 *   caches by processing step: gates (T, B, 4H) post-activation, cs, hs (T, B, H)
 *   zx (B, T, 4H) forward scratch; dz (T, B, 4H), dzx (B, T, 4H) backward scratch
 *   (zx, dzx (B, 4H) with repeat)
 * The fast pair computes only the real (step, row) pairs of the mask and keeps gates as a
 * compact block in its own order: pair lstm_forward with lstm_backward, *_ref with *_ref.
 * backward writes dx shaped like x (and dh0, dc0 (B, H) unless NULL), ADDS into dkernel,
 * drkernel, dbias. *_ref: plain loops, same arguments (scratch unused). Return LC_OK or
 * LC_ENOMEM. */
int lstm_forward(float *out, float *gates, float *cs, float *hs, float *zx,
                 const float *x, const float *mask, const float *kernel, const float *rkernel,
                 const float *bias, const float *h0, const float *c0,
                 int B, int T, int C, int H, int go_backwards, int return_sequences,
                 int zero_output_for_mask, int repeat);
/* One lstm_forward call's arguments, for lstm_forward_pair. */
typedef struct {
  float *out, *gates, *cs, *hs, *zx;
  const float *x, *mask, *kernel, *rkernel, *bias, *h0, *c0;
  int B, T, C, H, go_backwards, return_sequences, zero_output_for_mask, repeat;
} lstm_forward_args;
/* lstm_forward(a), and lstm_forward(b) unless b is NULL: two independent calls (a
 * BiLSTM's directions, which write into different buffers). On a team of exactly two
 * OpenMP threads each call runs on one thread, with one-thread kernels inside, where one
 * call on both threads waits at four barriers a step; else one after the other. The
 * results are those of the two calls. */
int lstm_forward_pair(const lstm_forward_args *a, const lstm_forward_args *b);
int lstm_forward_ref(float *out, float *gates, float *cs, float *hs, float *zx,
                     const float *x, const float *mask, const float *kernel,
                     const float *rkernel, const float *bias, const float *h0, const float *c0,
                     int B, int T, int C, int H, int go_backwards, int return_sequences,
                     int zero_output_for_mask, int repeat);
int lstm_backward(float *dx, float *dkernel, float *drkernel, float *dbias, float *dh0,
                  float *dc0, float *dz, float *dzx, const float *dout, const float *x,
                  const float *mask, const float *kernel, const float *rkernel,
                  const float *gates, const float *cs, const float *hs, const float *h0,
                  const float *c0, int B, int T, int C, int H, int go_backwards,
                  int return_sequences, int zero_output_for_mask, int repeat);
/* One lstm_backward call's arguments, for lstm_backward_pair. */
typedef struct {
  float *dx, *dkernel, *drkernel, *dbias, *dh0, *dc0, *dz, *dzx;
  const float *dout, *x, *mask, *kernel, *rkernel, *gates, *cs, *hs, *h0, *c0;
  int B, T, C, H, go_backwards, return_sequences, zero_output_for_mask, repeat;
} lstm_backward_args;
/* lstm_backward(a), and lstm_backward(b) unless b is NULL, as lstm_forward_pair: each on
 * its own thread on a team of exactly two. The two write into different buffers. */
int lstm_backward_pair(const lstm_backward_args *a, const lstm_backward_args *b);
int lstm_backward_ref(float *dx, float *dkernel, float *drkernel, float *dbias, float *dh0,
                      float *dc0, float *dz, float *dzx, const float *dout, const float *x,
                      const float *mask, const float *kernel, const float *rkernel,
                      const float *gates, const float *cs, const float *hs, const float *h0,
                      const float *c0, int B, int T, int C, int H, int go_backwards,
                      int return_sequences, int zero_output_for_mask, int repeat);
/* One decoding step, no cache: x (B, C), h_prev, c_prev (B, H) or NULL -> h, c (B, H);
 * gates (B, 4H) scratch. */
void lstm_step(float *h, float *c, float *gates, const float *x, const float *h_prev,
               const float *c_prev, const float *kernel, const float *rkernel,
               const float *bias, int B, int C, int H);
/* One cell with caches, for decoders that build each step's input from the last state:
 * gates (B, 4H) in: pre-activations, out: i, f, g, o; c_prev (B, H) -> h, c (B, H).
 * backward: dz (B, 4H) written from dh (B, H); dc (B, H) in: dL/dc, out: dL/dc_prev. */
void lstm_cell_forward(float *h, float *c, float *gates, const float *c_prev, int B, int H);
void lstm_cell_backward(float *dz, float *dc, const float *dh, const float *gates,
                        const float *c, const float *c_prev, int B, int H);
/* out (N, M) = Keras Orthogonal: QR of a normal (max, min) draw, sign-fixed, transposed
 * when N < M (rows orthonormal then). LC_OK, LC_ENOMEM or LC_EARG (rank deficient). */
int orthogonal_init(float *out, int N, int M);
/* Bidirectional concat: out (B, T, 2H) = [fwd, bwd (time-reversed when reverse)], and the
 * split back: dfwd, dbwd (B, T, H) from dout (B, T, 2H). */
void bidir_concat_forward(float *out, const float *fwd, const float *bwd, int B, int T, int H,
                          int reverse);
void bidir_concat_backward(float *dfwd, float *dbwd, const float *dout, int B, int T, int H,
                           int reverse);
/* attention.c: q (B, Tq, D), v (B, Tv, D); weights (B, Tq, Tv) = softmax_Tv(q v^T);
 * ctx (B, Tq, D) = weights @ v. backward writes dq, dv; dscores (B, Tq, Tv) scratch, or
 * with dctx NULL the weights' gradient on entry (a caller that read the weights itself).
 * qmask (B, Tq) or NULL: rows with 0 get ctx, weights, dq 0 and add nothing to dv. */
void attention_forward(float *ctx, float *weights, const float *q, const float *v,
                       const float *qmask, int B, int Tq, int Tv, int D);
void attention_forward_ref(float *ctx, float *weights, const float *q, const float *v,
                           const float *qmask, int B, int Tq, int Tv, int D);
/* Decoding: attention_forward's weights alone (the decoder reads the context through
 * the image's projected values, packed_gemm_acc_batch). */
void attention_weights(float *weights, const float *q, const float *v, const float *qmask,
                       int B, int Tq, int Tv, int D);
void attention_backward(float *dq, float *dv, float *dscores, const float *dctx,
                        const float *q, const float *v, const float *weights,
                        const float *qmask, int B, int Tq, int Tv, int D);
void attention_backward_ref(float *dq, float *dv, float *dscores, const float *dctx,
                            const float *q, const float *v, const float *weights,
                            const float *qmask, int B, int Tq, int Tv, int D);

/* shift.c: prefix sharing. src (R, T, W), out/dout (B, T, W), rep (B) 0-based rows of
 * src, shift (B) >= 0: out[b, t] = src[rep[b], t - shift[b]] (0 for t < shift[b]);
 * shift_scatter_add ADDS the transpose into dsrc. */
void shift_gather(float *out, const float *src, const int *rep, const int *shift,
                  int B, int T, int W);
void shift_scatter_add(float *dsrc, const float *dout, const int *rep, const int *shift,
                       int B, int T, int W);
/* Decoding: a prefix one token longer than its parent. out (B, T, W), src (R, Ts, W) with
 * Ts = T - 1 (grows) or T (slides): out[b, t] = src[rep[b], t + Ts - T + 1] for t < T - 1,
 * out[b, T - 1] = last[b] (B, W). reverse_steps_add: out[b, t] = a[b, t] + src[b, T - 1 - t]. */
void shift_append(float *out, const float *src, const int *rep, const float *last,
                  int B, int T, int Ts, int W);
void reverse_steps_add(float *out, const float *a, const float *src, int B, int T, int W);

/* additive_attention.c: Show-Attend-Tell's soft attention step (see the file's header).
 *   encp (B, L, A) = a W_e + b_e   hp (B, A) = h_{t-1} W_h   w (A)   feats a (B, L, D)
 *   g (B) gate logits or NULL   writes alpha (B, L), z (B, D), beta (B), zg (B, D) = beta z
 * backward: ADDS into dencp (B, L, A), dfeats (B, L, D), dw (A); WRITES dhp (B, A), dg (B)
 * (NULL when g was); dalpha (B, L) an extra gradient of alpha or NULL; work (B, L + A). */
void additive_attention_forward(float *zg, float *z, float *alpha, float *beta,
                                const float *encp, const float *hp, const float *feats,
                                const float *w, const float *g, int B, int L, int A, int D);
void additive_attention_forward_ref(float *zg, float *z, float *alpha, float *beta,
                                    const float *encp, const float *hp, const float *feats,
                                    const float *w, const float *g, int B, int L, int A, int D);
void additive_attention_backward(float *dencp, float *dhp, float *dfeats, float *dw, float *dg,
                                 float *work, const float *dzg, const float *dalpha,
                                 const float *z, const float *alpha, const float *beta,
                                 const float *encp, const float *hp, const float *feats,
                                 const float *w, int B, int L, int A, int D);
void additive_attention_backward_ref(float *dencp, float *dhp, float *dfeats, float *dw,
                                     float *dg, float *work, const float *dzg,
                                     const float *dalpha, const float *z, const float *alpha,
                                     const float *beta, const float *encp, const float *hp,
                                     const float *feats, const float *w, int B, int L, int A,
                                     int D);

/* ---------------------------------------------------------------- nn/: embedding, dropout, xent, adam */
/* Token ids ride as floats; the binding has checked them (integers in range) first.
 * Kernels for input gradients (dx) write; kernels for parameter gradients add. */
/* embedding.c: out (N, D) = weight (V, D) rows at ids (N); mask (N) or NULL gets
 * 1 where id != 0, else 0 (Keras mask_zero; row 0 is still looked up). */
void embedding_forward(float *out, float *mask, const float *ids, const float *weight,
                       int N, int D);
/* Adds dout (N, D) into dweight (V, D) rows at ids (N): a scatter-add. */
void embedding_backward(float *dweight, const float *dout, const float *ids, int N, int D);
/* dropout.c: out (n) = x * mask, mask (n) drawn from lc_rng: 1/(1-p) kept, 0 dropped. */
void dropout_forward(float *out, float *mask, const float *x, size_t n, float p);
/* The same with masks keyed per row: row b's mask depends only on (key, salt, epoch,
 * row_ids[b]) and the position in the row. x, out, mask (B, R); row_ids (B). */
void dropout_forward_keyed(float *out, float *mask, const float *x, size_t B, size_t R, float p,
                           uint64_t key, uint64_t salt, uint64_t epoch, const uint64_t *row_ids);
void dropout_backward(float *dx, const float *dout, const float *mask, size_t n);
/* elementwise.c: out (B, T, C) = x (B, C) repeated; dx (B, C) = sum over T of dout. */
void repeat_forward(float *out, const float *x, int B, int T, int C);
void repeat_backward(float *dx, const float *dout, int B, int T, int C);
/* out (N, CT) columns [off, off+C) = x (N, C); dx (N, C) = those columns of dout. */
void concat_forward(float *out, const float *x, int N, int C, int CT, int off);
void concat_backward(float *dx, const float *dout, int N, int C, int CT, int off);
/* xent.c: probs (N, V) = softmax(logits (N, V)); with targets (N): returns the sum over
 * rows of w_i * -log probs[i, t_i] (w = mask (N) or 1) and *count = sum of w. */
double xent_forward(float *probs, double *count, const float *logits, const float *targets,
                    const float *mask, int N, int V);
/* dlogits (N, V) = w_i * (probs - onehot(t_i)) / count; zeros when count is 0. */
void xent_backward(float *dlogits, const float *probs, const float *targets, const float *mask,
                   double count, int N, int V);
/* adam.c: m, v moments and param (n) updated with lr_t = lr sqrt(1-b2^t)/(1-b1^t):
 * param -= lr_t m / (sqrt(v) + eps), Keras/TF's "epsilon hat" form. */
void adam_update(float *param, float *m, float *v, const float *grad, size_t n, float lr_t,
                 float beta1, float beta2, float eps);

/* ---- nn/: gru */
/* gru.c: Keras GRU, reset_after=True (TF2 default), gates z, r, h along the 3H axis; see
 * the file's header for the equations.
 *   x (B, T, C)  mask (B, T) 1/0 or NULL  kernel (C, 3H)  rkernel (H, 3H)
 *   bias (2, 3H) (input bias, recurrent bias)  h0 (B, H) or NULL
 *   out (B, T, H) when return_sequences, else (B, H)
 *   caches by step: gates (T, B, 3H) post-activation z, r, hh; rz (T, B, 3H)
 *   = h_{t-1} @ rkernel + bias[1]; hs (T, B, H). zx (B, T, 3H) forward scratch;
 *   dz (T, B, 3H), dzx (B, T, 3H) backward scratch.
 * Fast and *_ref write the same caches (pairs mix freely). backward writes dx (B, T, C)
 * and dh0 (B, H) unless NULL, ADDS into dkernel, drkernel, dbias. LC_OK or LC_ENOMEM. */
int gru_forward(float *out, float *gates, float *rz, float *hs, float *zx,
                const float *x, const float *mask, const float *kernel, const float *rkernel,
                const float *bias, const float *h0, int B, int T, int C, int H,
                int return_sequences);
int gru_forward_ref(float *out, float *gates, float *rz, float *hs, float *zx,
                    const float *x, const float *mask, const float *kernel,
                    const float *rkernel, const float *bias, const float *h0,
                    int B, int T, int C, int H, int return_sequences);
int gru_backward(float *dx, float *dkernel, float *drkernel, float *dbias, float *dh0,
                 float *dz, float *dzx, const float *dout, const float *x, const float *mask,
                 const float *kernel, const float *rkernel, const float *gates,
                 const float *rz, const float *hs, const float *h0, int B, int T, int C, int H,
                 int return_sequences);
int gru_backward_ref(float *dx, float *dkernel, float *drkernel, float *dbias, float *dh0,
                     float *dz, float *dzx, const float *dout, const float *x,
                     const float *mask, const float *kernel, const float *rkernel,
                     const float *gates, const float *rz, const float *hs, const float *h0,
                     int B, int T, int C, int H, int return_sequences);
/* One decoding step, no cache: x (B, C), h_prev (B, H) or NULL -> h (B, H);
 * work (2, B, 3H) scratch. */
void gru_step(float *h, float *work, const float *x, const float *h_prev, const float *kernel,
              const float *rkernel, const float *bias, int B, int C, int H);

/* ---- nn/: transformer */
/* layernorm.c: over the last axis. x, out (N, D)  gamma, beta (D)  mean, rstd (N) caches
 * (rstd = 1/sqrt(var + eps), var biased). backward writes dx (N, D), ADDS into dgamma, dbeta. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *x,
                       const float *gamma, const float *beta, int N, int D, float eps);
void layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                        const float *x, const float *mean, const float *rstd,
                        const float *gamma, int N, int D);
/* mha.c: multi-head scaled dot-product attention after the projections, NH heads of
 * DH = D / NH columns. q (B, Tq, D)  k, v (B, Tk, D)  key_mask (B, Tk) 1/0 or NULL
 * causal (needs Tq == Tk): query i sees keys j <= i. ctx (B, Tq, D), probs (B, NH, Tq, Tk);
 * a row with every key masked has probs and ctx 0. backward writes dq, dk, dv.
 * mha_forward / mha_backward return LC_OK or LC_ENOMEM (per-head workspace). */
int mha_forward(float *ctx, float *probs, const float *q, const float *k, const float *v,
                const float *key_mask, int B, int Tq, int Tk, int D, int NH, int causal);
void mha_forward_ref(float *ctx, float *probs, const float *q, const float *k, const float *v,
                     const float *key_mask, int B, int Tq, int Tk, int D, int NH, int causal);
int mha_backward(float *dq, float *dk, float *dv, const float *dctx, const float *probs,
                 const float *q, const float *k, const float *v,
                 int B, int Tq, int Tk, int D, int NH);

/* ---------------------------------------------------------------- text/ */
/* Caption metrics over token ids (bleu.c, cider.c, rouge.c). S hypotheses (one per image),
 * R references in all, N the highest n-gram order. Ids are any int32 values: equal id,
 * equal word. Hypothesis s has references ref_first[s] .. ref_first[s+1]-1. */
typedef struct lc_corpus {
  int S;
  const int32_t *hyp;         /* every hypothesis' ids, concatenated */
  const int64_t *hyp_off;     /* (S+1) hypothesis s is hyp[hyp_off[s] .. hyp_off[s+1]) */
  const int32_t *ref;         /* every reference's ids, concatenated */
  const int64_t *ref_off;     /* (R+1) reference j is ref[ref_off[j] .. ref_off[j+1]) */
  const int64_t *ref_first;   /* (S+1) */
} lc_corpus;
uint64_t lc_ngram_hash(const int32_t *ids, int n);
/* bleu.c (nltk 3.8 corpus_bleu, no smoothing). Writes num, den (S, N) clipped matches and
 * max(1, L-n+1); hyp_len, ref_len (S) length and closest reference length (ties shorter). */
int bleu_stats_forward(int64_t *num, int64_t *den, int64_t *hyp_len, int64_t *ref_len,
                       const lc_corpus *corpus, int N);
/* num, den, w (N) summed over the corpus; c, r total lengths. 0 when num[0] = 0. */
double bleu_from_stats(const int64_t *num, const int64_t *den, int64_t c, int64_t r,
                       const double *w, int N);
/* coco-caption's BLEU-N: guess (N) = sum max(0, L-n+1), epsilons 1e-15 / 1e-9 (bleu.c). */
double bleu_coco_from_stats(const int64_t *num, const int64_t *guess, int64_t c, int64_t r,
                            int N);
/* cider.c (coco-caption CIDEr-D): scores (S), each x10; tf-idf over the references. */
int cider_d_forward(double *scores, const lc_corpus *corpus, int N, double sigma);
/* cider.c, cached: document frequencies and reference vectors of a fixed reference set
 * (refs->S images; the hypothesis fields are not read), built once; then CIDEr-D (x10) of K
 * candidates, candidate k (hyp[hyp_off[k] .. hyp_off[k+1])) against stored image image[k]
 * (0-based). Equal to cider_d_forward when the df come from the references scored against.
 * build and score return LC_OK or LC_ENOMEM; free takes NULL. */
typedef struct lc_cider_df lc_cider_df;
int cider_df_build(lc_cider_df **out, const lc_corpus *refs, int N);
int cider_df_score(double *scores, const lc_cider_df *d, const int32_t *hyp,
                   const int64_t *hyp_off, const int32_t *image, int K, double sigma);
int cider_df_images(const lc_cider_df *d);
int cider_df_orders(const lc_cider_df *d);
void cider_df_free(lc_cider_df *d);
/* rouge.c (coco-caption ROUGE-L): scores (S), F with max precision, max recall over refs. */
int rouge_l_forward(double *scores, const lc_corpus *corpus, double beta);
/* meteor.c (nltk 3.8 meteor_score without WordNet): scores (S), max over references; exact
 * then stem alignment, hyp_stem / ref_stem stem ids aligned with corpus->hyp / corpus->ref. */
int meteor_forward(double *scores, const lc_corpus *corpus, const int32_t *hyp_stem,
                   const int32_t *ref_stem, double alpha, double beta, double gamma);

/* ---------------------------------------------------------------- report/ (cairo drawing) */
/* draw.c: a canvas (a cairo ARGB32 surface and its context, W x H pixels, origin top-left,
 * y down) that the Lua report code draws plots and caption grids on. The canvas owns its
 * surface and context; lc_canvas_free releases both. Colours r, g, b, a in [0, 1].
 * Images img (H, W, C) floats in [0, 255], C 3 (RGB) or 1 (grey). Fonts: "DejaVu Sans". */
typedef struct lc_canvas lc_canvas;
int lc_canvas_new(lc_canvas **out, int W, int H, char *msg, size_t n);  /* white */
int lc_canvas_load_png(lc_canvas **out, const char *path, char *msg, size_t n);
void lc_canvas_free(lc_canvas *c);
int lc_canvas_width(const lc_canvas *c);
int lc_canvas_height(const lc_canvas *c);
int lc_canvas_status(const lc_canvas *c, char *msg, size_t n);  /* LC_EDATA once in error */
void lc_canvas_color(lc_canvas *c, double r, double g, double b, double a);
void lc_canvas_line_width(lc_canvas *c, double w);
void lc_canvas_dash(lc_canvas *c, const double *dashes, int n);  /* n 0: solid */
void lc_canvas_clip(lc_canvas *c, double x, double y, double w, double h);
void lc_canvas_unclip(lc_canvas *c);
void lc_canvas_rect(lc_canvas *c, double x, double y, double w, double h, int fill);
void lc_canvas_polyline(lc_canvas *c, const double *xy, int n, int fill);  /* xy (n, 2) */
void lc_canvas_circle(lc_canvas *c, double x, double y, double r, int fill);
void lc_canvas_font(lc_canvas *c, double size, int bold);
void lc_canvas_measure(lc_canvas *c, const char *s, double *width, double *ascent,
                       double *descent);
void lc_canvas_text(lc_canvas *c, double x, double y, const char *s, double angle);
int lc_canvas_image(lc_canvas *c, const float *img, int H, int W, int C, double x, double y,
                    double w, double h, char *msg, size_t n);
void lc_canvas_pixels(lc_canvas *c, float *out);                 /* out (H, W, 3) */
int lc_canvas_write_png(lc_canvas *c, const char *path, char *msg, size_t n);
int lc_mkdir_p(const char *path, char *msg, size_t n);           /* for report folders */

#endif
