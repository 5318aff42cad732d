/* Shape and indexing ops on CUDA tensors: pad, index_select, gather, scatter_add. Node names and
 * gradients as core/ops/{pad,index}.c. (cat, stack and flip are views and strided copies: the
 * core's implementations serve CUDA tensors as they are.) */
#include <stdlib.h>
#include <string.h>

#include "gpu_ops.h"
#include "fsvc/ops_shape.h"
#include "ops/index_internal.h" /* gather's and scatter_add's backward, shared with the CPU */

/* ---- 16-bit accumulations -------------------------------------------------------------------------- */
/* The index ops' accumulations (pad's, index_select's and gather's backward, scatter_add) add many
 * values into one element with atomics. A float16/bfloat16 atomicAdd rounds at every add, so the
 * sum would depend on the order the atomics land in (and lose the small terms); these ops
 * accumulate 16-bit tensors in a float32 buffer instead and round once at the end (as the CPU,
 * which runs 16-bit ops through float32). Other dtypes accumulate in place. */
static fsvc_dtype accumulation_dtype(fsvc_dtype dt) {
  return dt == FSVC_FLOAT16 || dt == FSVC_BFLOAT16 ? FSVC_FLOAT32 : dt;
}

/* the accumulator acc (consumed) as a tensor of dt: acc itself, or its rounding to dt */
static fsvc_tensor *accumulated_as(fsvc_tensor *acc, fsvc_dtype dt) {
  if (!acc || acc->dtype == dt) return acc;
  fsvc_tensor *r = fsvc_to_dtype_raw(acc, dt);
  fsvc_tensor_release(acc);
  return r;
}

/* ---- pad ---------------------------------------------------------------------------------------------- */
/* iarg[0] = mode, iarg[1..4] = left pads of the last dims (last first) */
static int pad_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_edge *e = &n->edges[0];
  /* reflect/replicate pads add several output gradients into one input element (16-bit: in float32) */
  const fsvc_dtype acc = accumulation_dtype(g->dtype);
  fsvc_tensor *gx = fsvc_zeros_on(e->ndim, e->shape, acc, fsvc_tensor_device(g));
  fsvc_tensor *gc = gx ? fsvc_gpu_contig_as(g, acc) : NULL;
  int rc = -1;
  if (gc) {
    fsvc_gpu_geom og = fsvc_gpu_geom_of(gc), ig = fsvc_gpu_geom_of(gx);
    rc = fsvc_gpu_pad_launch(acc, fsvc_data(gc), &og, fsvc_data(gx), &ig, &n->iarg[1],
                             (int)n->iarg[0], 0, 1);
  }
  fsvc_tensor_release(gc);
  if (rc != 0) { fsvc_tensor_release(gx); return -1; }
  gin[0] = accumulated_as(gx, g->dtype);
  return gin[0] ? 0 : -1;
}

static fsvc_tensor *gpu_pad(const fsvc_tensor *a, int n_pads, const int64_t *pads, fsvc_pad_mode mode,
                            double value) {
  /* the pads reach here checked by core/ops/pad.c (the CPU's checks and messages) */
  if (n_pads > 8) { fsvc_set_error("pad: more than 4 padded dims is not implemented on CUDA yet"); return NULL; }
  int64_t shape[FSVC_MAX_DIMS], left[4] = {0, 0, 0, 0};
  memcpy(shape, a->shape, sizeof shape);
  for (int k = 0; k < n_pads / 2; k++) {
    int d = a->ndim - 1 - k;
    shape[d] = a->shape[d] + pads[2 * k] + pads[2 * k + 1];
    left[k] = pads[2 * k];
  }
  fsvc_tensor *out = fsvc_empty_on(a->ndim, shape, a->dtype, a->storage->device);
  if (!out) return NULL;
  fsvc_gpu_geom og = fsvc_gpu_geom_of(out), ig = fsvc_gpu_geom_of(a);
  if (fsvc_gpu_pad_launch(a->dtype, fsvc_data(out), &og, fsvc_data(a), &ig, left, (int)mode, value, 0) != 0) {
    fsvc_tensor_release(out);
    return NULL;
  }
  fsvc_node *n = fsvc_node_new("pad", 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, pad_backward);
  if (n) {
    n->iarg[0] = mode;
    for (int k = 0; k < 4; k++) n->iarg[1 + k] = left[k];
    fsvc_node_attach(n, out);
  }
  return out;
}

/* ---- index_select / gather / scatter_add ------------------------------------------------------------ */
/* The arguments reach these ops checked by core/ops/index.c (the same checks and messages as on
 * the CPU): index int64 on a's device or on the CPU, a CPU index already range-checked there,
 * shapes and dtypes fit. A CUDA index is used as it is: the kernels check it and report through
 * the index-error word (gpu_internal.h), so no index is copied to the host (no synchronisation,
 * and the op can be captured into a CUDA graph). */

/* the index on a's device (new reference) */
static fsvc_tensor *device_index(const fsvc_tensor *index, const fsvc_tensor *a) {
  if (fsvc_tensor_is_cuda(index)) return fsvc_tensor_retain((fsvc_tensor *)index);
  fsvc_tensor *h = fsvc_contiguous_raw(index);
  fsvc_tensor *moved = h ? fsvc_to_device_raw(h, a->storage->device) : NULL;
  fsvc_tensor_release(h);
  return moved;
}

/* dim normalised as core/ops/index.c did (a 0-d input has dim 0) */
static int index_dim(const fsvc_tensor *a, int dim) {
  return a->ndim == 0 ? 0 : dim < 0 ? dim + a->ndim : dim;
}

/* saved[0] = index (contiguous); iarg[0] = dim */
static int index_select_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin) {
  if (!n->edges[0].needs_grad) return 0;
  const fsvc_edge *e = &n->edges[0];
  int d = (int)n->iarg[0];
  const fsvc_dtype acc = accumulation_dtype(g->dtype); /* repeated indices add up: 16-bit in float32 */
  fsvc_tensor *gx = fsvc_zeros_on(e->ndim, e->shape, acc, fsvc_tensor_device(g));
  fsvc_tensor *gc = gx ? fsvc_gpu_contig_as(g, acc) : NULL;
  int64_t outer = 1, inner = 1;
  for (int k = 0; k < d; k++) outer *= e->shape[k];
  for (int k = d + 1; k < e->ndim; k++) inner *= e->shape[k];
  int rc = gc ? fsvc_gpu_index_select_launch(1, acc, fsvc_data(gx), e->ndim ? e->shape[d] : 1,
                                             fsvc_data(gc), fsvc_numel(n->saved[0]),
                                             fsvc_data(n->saved[0]), outer, inner) : -1;
  fsvc_tensor_release(gc);
  if (rc != 0) { fsvc_tensor_release(gx); return -1; }
  gin[0] = accumulated_as(gx, g->dtype);
  return gin[0] ? 0 : -1;
}

static fsvc_tensor *gpu_index_select(const fsvc_tensor *a, int dim, const fsvc_tensor *index) {
  int d = index_dim(a, dim);
  int64_t size = a->ndim ? a->shape[d] : 1;
  fsvc_tensor *di = device_index(index, a);
  if (!di) return NULL;
  fsvc_tensor *x = fsvc_contiguous_raw(a), *ic = fsvc_contiguous_raw(di);
  fsvc_tensor_release(di);
  int64_t k = fsvc_numel(index), shape[FSVC_MAX_DIMS], outer = 1, inner = 1;
  memcpy(shape, a->shape, sizeof shape);
  if (a->ndim) shape[d] = k;
  for (int q = 0; q < d; q++) outer *= a->shape[q];
  for (int q = d + 1; q < a->ndim; q++) inner *= a->shape[q];
  fsvc_tensor *out = x && ic ? fsvc_empty_on(a->ndim, shape, a->dtype, a->storage->device) : NULL;
  if (!out || fsvc_gpu_index_select_launch(0, a->dtype, fsvc_data(x), size, fsvc_data(out), k,
                                           fsvc_data(ic), outer, inner) != 0) {
    fsvc_tensor_release(out);
    out = NULL;
  }
  if (out) {
    fsvc_node *n = fsvc_node_new("index_select", 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, index_select_backward);
    if (n) {
      fsvc_node_save(n, ic);
      n->iarg[0] = d;
      fsvc_node_attach(n, out);
    }
  }
  fsvc_tensor_release(x);
  fsvc_tensor_release(ic);
  return out;
}

static fsvc_tensor *gather_raw(const fsvc_tensor *a, int d, const fsvc_tensor *index) {
  fsvc_tensor *out = fsvc_empty_on(index->ndim, index->shape, a->dtype, a->storage->device);
  if (!out) return NULL;
  fsvc_gpu_geom og = fsvc_gpu_geom_of(out), sg = fsvc_gpu_geom_of(a), ig = fsvc_gpu_geom_of(index);
  if (fsvc_gpu_gather_scatter_launch(0, a->dtype, fsvc_data(out), &og, fsvc_data(a), &sg, fsvc_data(index),
                                     &ig, d) != 0) {
    fsvc_tensor_release(out);
    return NULL;
  }
  return out;
}

static fsvc_tensor *gpu_gather(const fsvc_tensor *a, int dim, const fsvc_tensor *index) {
  int d = index_dim(a, dim);
  fsvc_tensor *di = device_index(index, a);
  if (!di) return NULL;
  fsvc_tensor *out = gather_raw(a, d, di);
  if (out) {
    fsvc_node *n = fsvc_node_new("gather", 1, (fsvc_tensor *[]){(fsvc_tensor *)a}, fsvc_gather_backward);
    if (n) {
      fsvc_node_save(n, di);
      n->iarg[0] = d;
      fsvc_node_attach(n, out);
    }
  }
  fsvc_tensor_release(di);
  return out;
}

static fsvc_tensor *gpu_scatter_add(const fsvc_tensor *a, int dim, const fsvc_tensor *index,
                                    const fsvc_tensor *src) {
  int d = index_dim(a, dim);
  fsvc_tensor *di = device_index(index, a);
  if (!di) return NULL;
  /* repeated indices add up: a 16-bit a accumulates in a float32 copy (src too, exactly), rounded
   * once at the end */
  const fsvc_dtype acc = accumulation_dtype(a->dtype);
  fsvc_tensor *sc = acc == src->dtype ? fsvc_tensor_retain((fsvc_tensor *)src) : fsvc_to_dtype_raw(src, acc);
  fsvc_tensor *out = !sc ? NULL : acc == a->dtype ? fsvc_clone_raw(a) : fsvc_to_dtype_raw(a, acc);
  if (out) {
    fsvc_gpu_geom og = fsvc_gpu_geom_of(out), sg = fsvc_gpu_geom_of(sc), ig = fsvc_gpu_geom_of(di);
    if (fsvc_gpu_gather_scatter_launch(1, acc, fsvc_data(out), &og, fsvc_data(sc), &sg,
                                       fsvc_data(di), &ig, d) != 0) {
      fsvc_tensor_release(out);
      out = NULL;
    }
  }
  fsvc_tensor_release(sc);
  out = accumulated_as(out, a->dtype);
  if (out) {
    fsvc_node *n = fsvc_node_new("scatter_add", 3, (fsvc_tensor *[]){(fsvc_tensor *)a, (fsvc_tensor *)index,
                                                                    (fsvc_tensor *)src}, fsvc_scatter_add_backward);
    if (n) {
      fsvc_node_save(n, di);
      n->iarg[0] = d;
      fsvc_node_attach(n, out);
    }
  }
  fsvc_tensor_release(di);
  return out;
}

void fsvc_gpu_fill_shape(fsvc_cuda_op_table *t) {
  t->pad = gpu_pad;
  t->index_select = gpu_index_select; t->gather = gpu_gather; t->scatter_add = gpu_scatter_add;
}
