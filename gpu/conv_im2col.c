/* The 1-D convolution passes as im2col + cuBLAS GEMMs (gpu/conv.h): one code path for every
 * stride/dilation/padding/groups combination, deterministic (col2im gathers, no atomics), at the
 * price of a cols buffer of B x cin*k x tout elements from the caching allocator.
 *
 * Grouped convolutions are G independent GEMMs per sample. cuBLAS's strided batches cover one of
 * the two loops: over the batch for each group, or over the groups for each sample, whichever
 * makes fewer launches (the discriminator's grouped layers have more groups than samples). */
#include "conv.h"
#include "gpu_ops.h"

typedef struct {
  int64_t ck, cog;   /* GEMM sizes per group: cin/g * k, cout/g */
  size_t es;         /* element size */
} conv_sizes;

static conv_sizes sizes_of(const fsvc_gpu_conv_geom *c, fsvc_dtype dt) {
  conv_sizes z = {c->cin / c->g * c->k, c->cout / c->g, fsvc_dtype_size(dt)};
  return z;
}

static fsvc_tensor *cols_buffer(const fsvc_gpu_conv_geom *c, fsvc_dtype dt, fsvc_device dev) {
  int64_t shape[3] = {c->B, c->cin * c->k, c->tout};
  return fsvc_empty_on(3, shape, dt, dev);
}

/* y [B, cout, tout] = W cols, per group */
static int forward(const fsvc_gpu_conv_geom *c, fsvc_dtype dt, const void *x, const void *w, void *y,
                   fsvc_device dev) {
  conv_sizes z = sizes_of(c, dt);
  fsvc_tensor *cols = cols_buffer(c, dt, dev);
  if (!cols) return -1;
  const char *cb = fsvc_data(cols), *wb = w;
  char *yb = y;
  int rc = fsvc_gpu_im2col_launch(dt, x, fsvc_data(cols), c->B, c->cin, c->t, c->k, c->tout, c->s, c->p, c->d, FSVC_IM2COL);
  int64_t cols_per_b = c->cin * c->k * c->tout, y_per_b = c->cout * c->tout;
  if (c->g <= c->B) {
    for (int64_t gi = 0; gi < c->g && rc == 0; gi++)
      rc = fsvc_gpu_gemm_batched(dt, 0, 0, z.cog, c->tout, z.ck, 1.0, wb + (size_t)(gi * z.cog * z.ck) * z.es, z.ck, 0,
                                 cb + (size_t)(gi * z.ck * c->tout) * z.es, c->tout, cols_per_b, 0.0,
                                 yb + (size_t)(gi * z.cog * c->tout) * z.es, c->tout, y_per_b, c->B);
  } else {
    for (int64_t b = 0; b < c->B && rc == 0; b++)
      rc = fsvc_gpu_gemm_batched(dt, 0, 0, z.cog, c->tout, z.ck, 1.0, wb, z.ck, z.cog * z.ck,
                                 cb + (size_t)(b * cols_per_b) * z.es, c->tout, z.ck * c->tout, 0.0,
                                 yb + (size_t)(b * y_per_b) * z.es, c->tout, z.cog * c->tout, c->g);
  }
  fsvc_tensor_release(cols);
  return rc;
}

/* gx [B, cin, t] = col2im(W^T gy), per group */
static int backward_data(const fsvc_gpu_conv_geom *c, fsvc_dtype dt, const void *w, const void *gy, void *gx,
                         fsvc_device dev) {
  conv_sizes z = sizes_of(c, dt);
  fsvc_tensor *cols = cols_buffer(c, dt, dev);
  if (!cols) return -1;
  char *cb = fsvc_data(cols);
  const char *wb = w, *gb = gy;
  int64_t cols_per_b = c->cin * c->k * c->tout, y_per_b = c->cout * c->tout;
  int rc = 0;
  if (c->g <= c->B) {
    for (int64_t gi = 0; gi < c->g && rc == 0; gi++)
      rc = fsvc_gpu_gemm_batched(dt, 1, 0, z.ck, c->tout, z.cog, 1.0, wb + (size_t)(gi * z.cog * z.ck) * z.es, z.ck, 0,
                                 gb + (size_t)(gi * z.cog * c->tout) * z.es, c->tout, y_per_b, 0.0,
                                 cb + (size_t)(gi * z.ck * c->tout) * z.es, c->tout, cols_per_b, c->B);
  } else {
    for (int64_t b = 0; b < c->B && rc == 0; b++)
      rc = fsvc_gpu_gemm_batched(dt, 1, 0, z.ck, c->tout, z.cog, 1.0, wb, z.ck, z.cog * z.ck,
                                 gb + (size_t)(b * y_per_b) * z.es, c->tout, z.cog * c->tout, 0.0,
                                 cb + (size_t)(b * cols_per_b) * z.es, c->tout, z.ck * c->tout, c->g);
  }
  if (rc == 0)
    rc = fsvc_gpu_im2col_launch(dt, gx, fsvc_data(cols), c->B, c->cin, c->t, c->k, c->tout, c->s, c->p, c->d, FSVC_COL2IM);
  fsvc_tensor_release(cols);
  return rc;
}

/* gw [cout, cin/g, k] = sum_b gy[b] cols[b]^T, per group. The sum over the batch is folded into
 * the GEMMs' inner dimension: cols in the [cin*k, B, tout] layout and gy copied to [cout, B, tout]
 * make each group's gradient one GEMM over B*tout (one strided-batched call for all groups),
 * instead of B accumulating GEMMs with an inner dimension of tout. */
static int backward_filter(const fsvc_gpu_conv_geom *c, fsvc_dtype dt, const void *x, const void *gy, void *gw,
                           fsvc_device dev) {
  conv_sizes z = sizes_of(c, dt);
  if (c->B == 0) return fsvc_gpu_fill_launch(gw, dt, &(fsvc_gpu_geom){1, {c->cout * z.ck}, {1}}, 0);
  fsvc_tensor *cols = cols_buffer(c, dt, dev);
  if (!cols) return -1;
  int64_t bt = c->B * c->tout;
  int rc = fsvc_gpu_im2col_launch(dt, x, fsvc_data(cols), c->B, c->cin, c->t, c->k, c->tout, c->s, c->p, c->d,
                                  FSVC_IM2COL_BATCH_INNER);
  const void *gy_cbt = gy; /* gy as [cout, B, tout]: a copy unless B == 1 */
  fsvc_tensor *moved = NULL;
  if (rc == 0 && c->B > 1) {
    int64_t shape[3] = {c->cout, c->B, c->tout};
    moved = fsvc_empty_on(3, shape, dt, dev);
    if (!moved) rc = -1;
    fsvc_gpu_geom dst = {3, {c->cout, c->B, c->tout}, {bt, c->tout, 1}};
    fsvc_gpu_geom src = {3, {c->cout, c->B, c->tout}, {c->tout, c->cout * c->tout, 1}};
    if (rc == 0) rc = fsvc_gpu_copy_launch(fsvc_data(moved), dt, &dst, gy, dt, &src);
    if (rc == 0) gy_cbt = fsvc_data(moved);
  }
  if (rc == 0)
    rc = fsvc_gpu_gemm_batched(dt, 0, 1, z.cog, z.ck, bt, 1.0, gy_cbt, bt, z.cog * bt, fsvc_data(cols), bt,
                               z.ck * bt, 0.0, gw, z.ck, z.cog * z.ck, c->g);
  fsvc_tensor_release(moved);
  fsvc_tensor_release(cols);
  return rc;
}

int fsvc_gpu_conv_im2col(fsvc_gpu_conv_pass pass, const fsvc_gpu_conv_geom *c, fsvc_dtype dt, const void *in0,
                         const void *in1, void *out, fsvc_device dev) {
  switch (pass) {
  case FSVC_CONV_FORWARD: return forward(c, dt, in0, in1, out, dev);
  case FSVC_CONV_BACKWARD_DATA: return backward_data(c, dt, in0, in1, out, dev);
  case FSVC_CONV_BACKWARD_FILTER: return backward_filter(c, dt, in0, in1, out, dev);
  }
  fsvc_set_error("conv1d: unknown pass %d", (int)pass);
  return -1;
}
