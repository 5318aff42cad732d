/* Broadcast shapes and the strided multi-operand iterator (see broadcast.h). */
#include "ops/broadcast.h"

#include <stdio.h>
#include <string.h>

#include "fsvc/error.h"

int fsvc_broadcast_shape(int n, const fsvc_tensor *const *ts, int *ndim, int64_t *shape,
                         const char *op) {
  int nd = 0;
  for (int k = 0; k < n; k++)
    if (ts[k] && ts[k]->ndim > nd) nd = ts[k]->ndim;
  for (int d = 0; d < nd; d++) shape[d] = 1;
  for (int k = 0; k < n; k++) {
    const fsvc_tensor *t = ts[k];
    if (!t) continue;
    int lead = nd - t->ndim;
    for (int d = 0; d < t->ndim; d++) {
      int64_t s = t->shape[d], *o = &shape[lead + d];
      if (s == *o || s == 1) continue;
      if (*o == 1) { *o = s; continue; }
      /* name every operand's shape so the user sees which one is off */
      char msg[512] = "", buf[128];
      size_t used = 0;
      for (int j = 0; j < n && used < sizeof msg; j++) {
        if (!ts[j]) continue;
        used += (size_t)snprintf(msg + used, sizeof msg - used, "%s%s", used ? " and " : "",
                                 fsvc_shape_str(ts[j], buf, sizeof buf));
      }
      fsvc_set_error("%s: shapes %s cannot be broadcast together (dim %d: %lld vs %lld)", op, msg,
                     lead + d - nd, (long long)*o, (long long)s);
      return -1;
    }
  }
  *ndim = nd;
  return 0;
}

int fsvc_bcast_iter_init(fsvc_bcast_iter *it, int nops, const fsvc_tensor *const *ts, int ndim,
                         const int64_t *shape, const char *op) {
  memset(it, 0, sizeof *it);
  it->nops = nops;
  /* aligned strides: operand dims are right-aligned to the output, missing or size-1 dims get 0 */
  int64_t sh[FSVC_MAX_DIMS], st[FSVC_BCAST_MAX_OPS][FSVC_MAX_DIMS];
  int64_t numel = 1;
  for (int d = 0; d < ndim; d++) {
    sh[d] = shape[d];
    numel *= shape[d];
  }
  for (int k = 0; k < nops; k++) {
    const fsvc_tensor *t = ts[k];
    int lead = ndim - t->ndim;
    if (lead < 0) goto bad;
    for (int d = 0; d < ndim; d++) {
      if (d < lead) { st[k][d] = 0; continue; }
      int64_t s = t->shape[d - lead];
      if (s == shape[d]) st[k][d] = s == 1 ? 0 : t->stride[d - lead];
      else if (s == 1) st[k][d] = 0;
      else goto bad;
    }
    it->data[k] = fsvc_data(t);
    it->elsize[k] = (int64_t)fsvc_dtype_size(t->dtype);
  }
  it->numel = numel;
  /* drop size-1 dims, then merge dim d into d+1 when every operand steps through them as one */
  int nd = 0;
  for (int d = 0; d < ndim; d++) {
    if (sh[d] == 1) continue;
    if (nd > 0) {
      int mergeable = 1;
      for (int k = 0; k < nops; k++)
        if (it->stride[k][nd - 1] != st[k][d] * sh[d]) { mergeable = 0; break; }
      if (mergeable) {
        it->shape[nd - 1] *= sh[d];
        for (int k = 0; k < nops; k++) it->stride[k][nd - 1] = st[k][d];
        continue;
      }
    }
    it->shape[nd] = sh[d];
    for (int k = 0; k < nops; k++) it->stride[k][nd] = st[k][d];
    nd++;
  }
  if (nd == 0) { /* a single element */
    it->shape[0] = numel; /* 1, or 0 for an empty tensor with all-unit dims (cannot happen) */
    for (int k = 0; k < nops; k++) it->stride[k][0] = 1;
    nd = 1;
  }
  it->ndim = nd;
  return 0;
bad: {
  char a[128], b[128];
  fsvc_set_error("%s: shape %s cannot be broadcast to %s", op, fsvc_shape_str(ts[0], a, sizeof a),
                 fsvc_shape_str_n(ndim, shape, b, sizeof b));
  return -1;
}
}

/* Runs fn over the row-major element range [begin, end) of the iteration space. */
static void run_range(const fsvc_bcast_iter *it, fsvc_bcast_row_fn fn, void *ctx, int64_t begin,
                      int64_t end) {
  int nd = it->ndim, nops = it->nops;
  int64_t idx[FSVC_MAX_DIMS];
  int64_t rem = begin;
  for (int d = nd - 1; d >= 0; d--) {
    idx[d] = rem % it->shape[d];
    rem /= it->shape[d];
  }
  int64_t inner = it->shape[nd - 1];
  int64_t inner_stride[FSVC_BCAST_MAX_OPS];
  for (int k = 0; k < nops; k++) inner_stride[k] = it->stride[k][nd - 1];
  int64_t pos = begin;
  while (pos < end) {
    char *ptr[FSVC_BCAST_MAX_OPS];
    for (int k = 0; k < nops; k++) {
      int64_t off = 0;
      for (int d = 0; d < nd; d++) off += idx[d] * it->stride[k][d];
      ptr[k] = it->data[k] + off * it->elsize[k];
    }
    int64_t len = inner - idx[nd - 1];
    if (len > end - pos) len = end - pos;
    fn(ptr, inner_stride, len, ctx);
    pos += len;
    idx[nd - 1] = 0;
    for (int d = nd - 2; d >= 0; d--) {
      if (++idx[d] < it->shape[d]) break;
      idx[d] = 0;
    }
  }
}

void fsvc_bcast_run(const fsvc_bcast_iter *it, fsvc_bcast_row_fn fn, void *ctx,
                    int64_t parallel_min) {
  int64_t n = it->numel;
  if (n <= 0) return;
  if (n < parallel_min || parallel_min <= 0) {
    run_range(it, fn, ctx, 0, n);
    return;
  }
  /* Blocks of 16K elements: big enough to amortise the row set-up, a multiple of the vector
   * width so blocks of a contiguous row start aligned, and many per thread for balance. */
  const int64_t block = 16384;
  int64_t nblocks = (n + block - 1) / block;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < nblocks; b++) {
    int64_t begin = b * block, end = begin + block < n ? begin + block : n;
    run_range(it, fn, ctx, begin, end);
  }
}

int fsvc_has_internal_overlap(const fsvc_tensor *t) {
  for (int d = 0; d < t->ndim; d++)
    if (t->shape[d] > 1 && t->stride[d] == 0) return 1;
  return 0;
}
