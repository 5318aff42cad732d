/* topk: the k largest (or smallest) values along a dim with their int64 indices.
 *
 * Results are always sorted (best first) and ties go to the lower index, so the output is
 * deterministic; NaN counts as larger than every number (as PyTorch). For small k (the pitch
 * estimator's top-4 of 512 classes per frame) each row keeps a sorted buffer of k by insertion,
 * O(R k); larger k sort the whole row, O(R log R). Rows are independent: OpenMP over them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fsvc/autocast.h"
#include "fsvc/device.h"
#include "fsvc/ops_reduce.h"
#include "reduce_internal.h"

typedef struct {
  double v;
  int64_t i;
} entry;

/* a ranks before b. largest: bigger first, NaN biggest; smallest: smaller first, NaN last.
 * Equal values: lower index first. */
static inline int ranks_before(const entry *a, const entry *b, int largest) {
  int an = isnan(a->v), bn = isnan(b->v);
  if (an || bn) {
    if (an && bn) return a->i < b->i;
    return largest ? an : bn;
  }
  if (a->v != b->v) return largest ? a->v > b->v : a->v < b->v;
  return a->i < b->i;
}

static int cmp_largest(const void *pa, const void *pb) {
  const entry *a = pa, *b = pb;
  return ranks_before(a, b, 1) ? -1 : ranks_before(b, a, 1) ? 1 : 0;
}
static int cmp_smallest(const void *pa, const void *pb) {
  const entry *a = pa, *b = pb;
  return ranks_before(a, b, 0) ? -1 : ranks_before(b, a, 0) ? 1 : 0;
}

/* Load element r of a row that starts at base with stride `inner`. */
static inline double load(const void *base, fsvc_dtype dt, int64_t pos) {
  switch (dt) {
    case FSVC_FLOAT32: return ((const float *)base)[pos];
    case FSVC_FLOAT64: return ((const double *)base)[pos];
    default: return (double)((const int64_t *)base)[pos];
  }
}

/* saved[0] = indices; iarg[0] = dim. The gradient of each selected value goes to its index. */
static int topk_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gi) {
  if (!n->edges[0].needs_grad) return 0;
  gi[0] = fsvc_reduce_picked_grad(&n->edges[0], (int)n->iarg[0], n->iarg[1], g, n->saved[0]);
  return gi[0] ? 0 : -1;
}

fsvc_tensor *fsvc_topk(const fsvc_tensor *a, int64_t k, int dim, int largest, int sorted,
                       fsvc_tensor **indices) {
  FSVC_DISPATCH_CUDA(topk, a, k, dim, largest, sorted, indices);
  FSVC_CPU_LOWP("topk", FSVC_RECAST_SAME_DTYPE,
                fsvc_topk(FSVC_RECAST_ARG(0), k, dim, largest, sorted, indices), a);
  (void)sorted; /* always sorted: costs nothing extra here and keeps results deterministic */
  if (indices) *indices = NULL;
  if (fsvc_reduce_check_input(a, "topk", 1) != 0) return NULL;
  int d = fsvc_reduce_norm_dim(dim, a->ndim, "topk");
  if (d < 0) return NULL;
  int64_t outer, R, inner;
  fsvc_reduce_dim_layout(a->ndim, a->shape, d, &outer, &R, &inner);
  if (k < 0 || k > R) {
    char buf[128];
    fsvc_set_error("topk: k = %lld out of range for dim %d of size %lld (shape %s)", (long long)k,
                   d, (long long)R, fsvc_shape_str(a, buf, sizeof buf));
    return NULL;
  }
  fsvc_tensor *x = fsvc_contiguous_raw(a);
  if (!x) return NULL;
  int64_t oshape[FSVC_MAX_DIMS];
  for (int i = 0; i < a->ndim; i++) oshape[i] = i == d ? k : a->shape[i];
  fsvc_tensor *vals = fsvc_empty(a->ndim, oshape, a->dtype);
  fsvc_tensor *idx = fsvc_empty(a->ndim, oshape, FSVC_INT64);
  if (!vals || !idx) goto fail;

  const void *xp = fsvc_data(x);
  int64_t *ip = fsvc_data(idx);
  fsvc_dtype dt = a->dtype;
  int64_t rows = outer * inner;
  int use_sort = k > 16;
  int failed = 0;
  #pragma omp parallel if(rows * R > FSVC_REDUCE_PAR_THRESHOLD && rows > 1)
  {
    entry *buf = malloc((size_t)((use_sort ? R : k) + 1) * sizeof *buf);
    if (!buf) {
      #pragma omp atomic write
      failed = 1;
    }
    #pragma omp for schedule(static)
    for (int64_t row = 0; row < rows; row++) {
      if (!buf) continue;
      int64_t o = row / inner, i = row % inner;
      int64_t base = o * R * inner + i;
      int64_t filled = 0;
      if (use_sort) {
        for (int64_t r = 0; r < R; r++) buf[r] = (entry){load(xp, dt, base + r * inner), r};
        qsort(buf, (size_t)R, sizeof *buf, largest ? cmp_largest : cmp_smallest);
        filled = k;
      } else {
        /* insertion into a sorted buffer of at most k entries */
        for (int64_t r = 0; r < R && k > 0; r++) {
          entry e = {load(xp, dt, base + r * inner), r};
          if (filled == k && !ranks_before(&e, &buf[k - 1], largest)) continue;
          int64_t p = filled < k ? filled++ : k - 1;
          while (p > 0 && ranks_before(&e, &buf[p - 1], largest)) {
            buf[p] = buf[p - 1];
            p--;
          }
          buf[p] = e;
        }
      }
      for (int64_t j = 0; j < k; j++) {
        int64_t dst = (o * k + j) * inner + i;
        ip[dst] = buf[j].i;
        switch (dt) {
          case FSVC_FLOAT32: ((float *)fsvc_data(vals))[dst] = ((const float *)xp)[base + buf[j].i * inner]; break;
          case FSVC_FLOAT64: ((double *)fsvc_data(vals))[dst] = ((const double *)xp)[base + buf[j].i * inner]; break;
          default: ((int64_t *)fsvc_data(vals))[dst] = ((const int64_t *)xp)[base + buf[j].i * inner]; break;
        }
      }
      (void)filled;
    }
    free(buf);
  }
  if (failed) {
    fsvc_set_error("topk: out of memory");
    goto fail;
  }
  fsvc_tensor *in[1] = {(fsvc_tensor *)a};
  fsvc_node *n = fsvc_node_new("topk", 1, in, topk_backward);
  if (n) {
    n->iarg[0] = a->ndim ? d : 0;
    n->iarg[1] = k;
    fsvc_node_save(n, idx);
  }
  fsvc_node_attach(n, vals);
  fsvc_tensor_release(x);
  if (indices) *indices = idx;
  else fsvc_tensor_release(idx);
  return vals;
fail:
  fsvc_tensor_release(x);
  fsvc_tensor_release(vals);
  fsvc_tensor_release(idx);
  return NULL;
}

__attribute__((constructor)) static void register_topk_ops(void) {
  fsvc_register_differentiable("topk");
}
