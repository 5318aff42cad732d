/* The autograd engine: nodes, grad mode, and the reverse topological walk of backward(). */
#include <stdlib.h>
#include <string.h>

#include "fsvc/autograd.h"
#include "fsvc/autocast.h"
#include "fsvc/error.h"
#include "fsvc/ops.h"
#include "device_internal.h"

static _Thread_local int grad_disabled = 0;

int fsvc_grad_enabled(void) { return !grad_disabled; }
int fsvc_set_grad_enabled(int enabled) {
  int prev = !grad_disabled;
  grad_disabled = !enabled;
  return prev;
}

int fsvc_needs_grad(const fsvc_tensor *t) {
  return !grad_disabled && t && (t->requires_grad || t->grad_fn);
}

/* ---- the registry of differentiable ops ---------------------------------------------------- */
#define MAX_DIFFERENTIABLE 256
static const char *differentiable[MAX_DIFFERENTIABLE];
static int n_differentiable = 0;

void fsvc_register_differentiable(const char *op) {
  for (int i = 0; i < n_differentiable; i++)
    if (strcmp(differentiable[i], op) == 0) return;
  if (n_differentiable < MAX_DIFFERENTIABLE) differentiable[n_differentiable++] = op;
}
int fsvc_differentiable_count(void) { return n_differentiable; }
const char *fsvc_differentiable_name(int i) {
  return i >= 0 && i < n_differentiable ? differentiable[i] : NULL;
}

/* ---- nodes ---------------------------------------------------------------------------------- */
fsvc_node *fsvc_node_new(const char *op, int n_inputs, fsvc_tensor *const *inputs,
                         fsvc_backward_fn backward) {
  if (grad_disabled) return NULL;
  int any = 0;
  for (int i = 0; i < n_inputs; i++)
    if (inputs[i] && (inputs[i]->requires_grad || inputs[i]->grad_fn) &&
        fsvc_dtype_is_float(inputs[i]->dtype))
      any = 1;
  if (!any) return NULL;
  fsvc_node *n = calloc(1, sizeof *n);
  fsvc_edge *edges = calloc((size_t)(n_inputs > 0 ? n_inputs : 1), sizeof *edges);
  if (!n || !edges) {
    free(n);
    free(edges);
    return NULL; /* out of memory: the op result simply carries no history */
  }
  n->refcount = 1;
  n->op = op;
  n->n_inputs = n_inputs;
  n->edges = edges;
  n->backward = backward;
  for (int i = 0; i < n_inputs; i++) {
    fsvc_tensor *t = inputs[i];
    if (!t) continue;
    fsvc_edge *e = &edges[i];
    e->ndim = t->ndim;
    memcpy(e->shape, t->shape, sizeof e->shape);
    e->dtype = t->dtype;
    if (!fsvc_dtype_is_float(t->dtype)) continue;
    if (t->grad_fn) {
      e->node = fsvc_node_retain(t->grad_fn);
      e->needs_grad = 1;
    } else if (t->requires_grad) {
      e->leaf = fsvc_tensor_retain(t);
      e->needs_grad = 1;
    }
  }
  fsvc_register_differentiable(op);
  return n;
}

int fsvc_node_save(fsvc_node *n, const fsvc_tensor *t) {
  if (!n || n->n_saved >= FSVC_NODE_MAX_SAVED) return -1;
  fsvc_tensor *alias = fsvc_detach(t);
  if (!alias) return -1;
  n->saved[n->n_saved] = alias;
  return n->n_saved++;
}

void fsvc_node_attach(fsvc_node *n, fsvc_tensor *out) {
  if (!n) return;
  fsvc_node_release(out->grad_fn);
  out->grad_fn = n;
  out->requires_grad = 1;
}

fsvc_node *fsvc_node_retain(fsvc_node *n) {
  if (n) n->refcount++;
  return n;
}

static void node_drop_saved(fsvc_node *n) {
  for (int i = 0; i < n->n_saved; i++) {
    fsvc_tensor_release(n->saved[i]);
    n->saved[i] = NULL;
  }
  if (n->ctx_free && n->ctx) n->ctx_free(n->ctx);
  n->ctx = NULL;
}

/* Releasing a long chain recursively could overflow the C stack (a 10 000-op graph), so the
 * release walks an explicit work list. */
void fsvc_node_release(fsvc_node *n) {
  if (!n || --n->refcount > 0) return;
  size_t cap = 16, len = 0;
  fsvc_node **work = malloc(cap * sizeof *work);
  if (!work) return; /* leak rather than crash */
  work[len++] = n;
  while (len) {
    fsvc_node *cur = work[--len];
    node_drop_saved(cur);
    fsvc_tensor_release(cur->grad_accum);
    for (int i = 0; i < cur->n_inputs; i++) {
      fsvc_edge *e = &cur->edges[i];
      fsvc_tensor_release(e->leaf);
      if (e->node && --e->node->refcount == 0) {
        if (len == cap) {
          fsvc_node **grown = realloc(work, 2 * cap * sizeof *work);
          if (!grown) continue;
          work = grown;
          cap *= 2;
        }
        work[len++] = e->node;
      }
    }
    free(cur->edges);
    free(cur);
  }
  free(work);
}

/* ---- raw helpers for gradients ------------------------------------------------------------- */
/* a + b with grad mode off, through the elementwise op (which dispatches by device). */
fsvc_tensor *fsvc_add_same_shape_raw(const fsvc_tensor *a, const fsvc_tensor *b) {
  if (!fsvc_same_shape(a, b)) {
    char x[128], y[128];
    fsvc_set_error("backward (gradient accumulation): shapes %s and %s differ",
                   fsvc_shape_str(a, x, sizeof x), fsvc_shape_str(b, y, sizeof y));
    return NULL;
  }
  fsvc_tensor *bc = b->dtype == a->dtype ? fsvc_tensor_retain((fsvc_tensor *)b) : fsvc_to_dtype_raw(b, a->dtype);
  if (!bc) return NULL;
  int prev = fsvc_set_grad_enabled(0);
  fsvc_tensor *out = fsvc_add(a, bc);
  fsvc_set_grad_enabled(prev);
  fsvc_tensor_release(bc);
  return out;
}

/* Undoes broadcasting: sums the leading dims and the dims where the target has size 1, with the
 * reductions' own kernels (which also dispatch to the GPU), then drops the leading dims. */
fsvc_tensor *fsvc_sum_to_shape(const fsvc_tensor *grad, int ndim, const int64_t *shape) {
  char a[128], b[128];
  int lead = grad->ndim - ndim;
  int dims[FSVC_MAX_DIMS], n_dims = 0;
  if (lead < 0) goto bad;
  for (int d = 0; d < grad->ndim; d++) {
    int64_t want = d < lead ? 1 : shape[d - lead];
    if (d >= lead && want == grad->shape[d]) continue;
    if (want != 1) goto bad;
    dims[n_dims++] = d;
  }
  if (n_dims == 0) return fsvc_clone_raw(grad);
  int prev = fsvc_set_grad_enabled(0);
  fsvc_tensor *summed = fsvc_sum(grad, n_dims, dims, 1);
  fsvc_tensor *out = summed ? fsvc_reshape(summed, ndim, shape) : NULL;
  fsvc_set_grad_enabled(prev);
  fsvc_tensor_release(summed);
  if (out && !fsvc_is_contiguous(out)) {
    fsvc_tensor *c = fsvc_clone_raw(out);
    fsvc_tensor_release(out);
    out = c;
  }
  return out;
bad:
  fsvc_set_error("sum_to_shape: cannot reduce gradient of shape %s to %s",
                 fsvc_shape_str(grad, a, sizeof a), fsvc_shape_str_n(ndim, shape, b, sizeof b));
  return NULL;
}

/* ---- the engine ----------------------------------------------------------------------------- */
static uint64_t engine_epoch = 0;

/* slot += g in place when nobody else can see slot's memory (the common case in a training
 * loop: .grad from the previous step was zeroed or accumulates micro-batches). */
static int add_in_place_if_private(fsvc_tensor *slot, const fsvc_tensor *g) {
  if (slot->refcount != 1 || !slot->storage || slot->storage->refcount != 1 ||
      slot->storage->release || !fsvc_same_shape(slot, g) || slot->dtype != g->dtype ||
      !fsvc_dtype_is_float(slot->dtype))
    return 0;
  return fsvc_add_(slot, g, 1.0) == 0; /* grad mode is off in the engine */
}

static int accumulate(fsvc_tensor **slot, fsvc_tensor *g /* consumed */) {
  if (!*slot) {
    *slot = g;
    return 0;
  }
  if (add_in_place_if_private(*slot, g)) {
    fsvc_tensor_release(g);
    return 0;
  }
  fsvc_tensor *sum = fsvc_add_same_shape_raw(*slot, g);
  fsvc_tensor_release(g);
  if (!sum) return -1;
  fsvc_tensor_release(*slot);
  *slot = sum;
  return 0;
}

static int grad_matches_edge(const fsvc_tensor *g, const fsvc_edge *e, const char *op, int i) {
  int ok = g->ndim == e->ndim;
  for (int d = 0; ok && d < e->ndim; d++) ok = g->shape[d] == e->shape[d];
  if (!ok) {
    char a[128], b[128];
    fsvc_set_error("backward of %s: gradient for input %d has shape %s, expected %s", op, i,
                   fsvc_shape_str(g, a, sizeof a), fsvc_shape_str_n(e->ndim, e->shape, b, sizeof b));
  }
  return ok;
}

static int backward_walk(fsvc_tensor *root, const fsvc_tensor *grad, int retain_graph) {
  char a[128], b[128];
  if (!root->grad_fn && !root->requires_grad) {
    fsvc_set_error("backward: tensor does not require grad and has no grad_fn");
    return -1;
  }
  fsvc_tensor *g0;
  if (grad) {
    if (!fsvc_same_shape(grad, root)) {
      fsvc_set_error("backward: gradient shape %s does not match tensor shape %s",
                     fsvc_shape_str(grad, a, sizeof a), fsvc_shape_str(root, b, sizeof b));
      return -1;
    }
    g0 = fsvc_to_dtype_raw(grad, root->dtype);
  } else {
    if (fsvc_numel(root) != 1) {
      fsvc_set_error("backward: gradient can be implicit only for a tensor of one element "
                     "(shape %s); pass a gradient", fsvc_shape_str(root, a, sizeof a));
      return -1;
    }
    g0 = fsvc_full_on(root->ndim, root->shape, 1.0, root->dtype, fsvc_tensor_device(root));
  }
  if (!g0) return -1;
  if (!root->grad_fn) { /* a leaf: its gradient is the seed */
    int rc = accumulate(&root->grad, g0);
    return rc;
  }

  /* Pass 1: collect reachable nodes and count, for each, the edges that point at it. */
  uint64_t epoch = ++engine_epoch;
  size_t cap = 64, len = 0, stack_len = 0;
  fsvc_node **order = malloc(cap * sizeof *order);
  fsvc_node **stack = malloc(cap * sizeof *stack);
  size_t stack_cap = cap;
  int rc = -1;
  if (!order || !stack) goto oom;
  fsvc_node *start = root->grad_fn;
  if (start->released) {
    fsvc_set_error("backward through the graph a second time (of op %s): its saved tensors were "
                   "freed; pass retain_graph=true to the first backward", start->op);
    goto done;
  }
  start->epoch = epoch;
  start->dependencies = 0;
  stack[stack_len++] = start;
  while (stack_len) {
    fsvc_node *n = stack[--stack_len];
    if (len == cap) {
      fsvc_node **grown = realloc(order, 2 * cap * sizeof *order);
      if (!grown) goto oom;
      order = grown;
      cap *= 2;
    }
    order[len++] = n;
    for (int i = 0; i < n->n_inputs; i++) {
      fsvc_node *m = n->edges[i].node;
      if (!m) continue;
      if (m->epoch != epoch) {
        m->epoch = epoch;
        m->dependencies = 0;
        if (stack_len == stack_cap) {
          fsvc_node **grown = realloc(stack, 2 * stack_cap * sizeof *stack);
          if (!grown) goto oom;
          stack = grown;
          stack_cap *= 2;
        }
        stack[stack_len++] = m;
      }
      m->dependencies++;
    }
  }

  /* Pass 2: Kahn's walk from the root; a node runs once all its consumers have given grads. */
  if (stack_cap < len) {
    fsvc_node **grown = realloc(stack, len * sizeof *stack);
    if (!grown) goto oom;
    stack = grown;
    stack_cap = len;
  }
  fsvc_tensor_release(start->grad_accum);
  start->grad_accum = g0;
  g0 = NULL;
  stack_len = 0;
  stack[stack_len++] = start;
  int prev_mode = fsvc_set_grad_enabled(0);
  while (stack_len) {
    fsvc_node *n = stack[--stack_len];
    fsvc_tensor *gout = n->grad_accum;
    n->grad_accum = NULL;
    if (n->released) {
      fsvc_set_error("backward through the graph a second time (of op %s): its saved tensors "
                     "were freed; pass retain_graph=true to the first backward", n->op);
      fsvc_tensor_release(gout);
      fsvc_set_grad_enabled(prev_mode);
      goto done;
    }
    fsvc_tensor *gin_small[8] = {0};
    fsvc_tensor **gin = n->n_inputs <= 8 ? gin_small : calloc((size_t)n->n_inputs, sizeof *gin);
    if (!gin) { fsvc_tensor_release(gout); fsvc_set_grad_enabled(prev_mode); goto oom; }
    int brc = gout ? n->backward(n, gout, gin) : 0;
    fsvc_tensor_release(gout);
    if (!retain_graph) {
      node_drop_saved(n);
      n->released = 1;
    }
    for (int i = 0; i < n->n_inputs; i++) {
      fsvc_edge *e = &n->edges[i];
      fsvc_tensor *gi = gin[i];
      gin[i] = NULL;
      if (brc == 0 && gi && e->needs_grad && !grad_matches_edge(gi, e, n->op, i)) brc = -1;
      if (brc != 0 || !e->needs_grad) {
        fsvc_tensor_release(gi);
        if (e->node && brc == 0) {
          if (--e->node->dependencies == 0) stack[stack_len++] = e->node;
        }
        continue;
      }
      if (gi && gi->dtype != e->dtype) {
        fsvc_tensor *cast = fsvc_to_dtype_raw(gi, e->dtype);
        fsvc_tensor_release(gi);
        gi = cast;
      }
      if (e->leaf) {
        if (gi) {
          /* a leaf's .grad must own its memory: optimisers and clipping change it in place, and
           * a backward may hand the same tensor to several inputs */
          if (!fsvc_is_contiguous(gi) || gi->refcount > 1 || gi->storage->refcount > 1) {
            fsvc_tensor *c = fsvc_clone_raw(gi);
            fsvc_tensor_release(gi);
            gi = c;
          }
          if (!gi || accumulate(&e->leaf->grad, gi) != 0) brc = -1;
        }
      } else if (e->node) {
        if (gi && accumulate(&e->node->grad_accum, gi) != 0) brc = -1;
        if (--e->node->dependencies == 0) stack[stack_len++] = e->node; /* stack fits: each once */
      } else {
        fsvc_tensor_release(gi);
      }
    }
    if (gin != gin_small) free(gin);
    if (brc != 0) {
      fsvc_set_grad_enabled(prev_mode);
      /* drop partial accumulations so a later backward starts clean */
      for (size_t k = 0; k < len; k++) {
        fsvc_tensor_release(order[k]->grad_accum);
        order[k]->grad_accum = NULL;
      }
      goto done;
    }
  }
  fsvc_set_grad_enabled(prev_mode);
  rc = 0;
  goto done;
oom:
  fsvc_set_error("backward: out of memory");
done:
  fsvc_tensor_release(g0);
  free(order);
  free(stack);
  return rc;
}

/* Backward ops follow the dtypes the forward recorded: autocast, if on, must not cast them. */
int fsvc_backward(fsvc_tensor *root, const fsvc_tensor *grad, int retain_graph) {
  fsvc_autocast_state prev = fsvc_autocast_get(), off = prev;
  off.enabled = 0;
  fsvc_autocast_restore(off);
  int rc = backward_walk(root, grad, retain_graph);
  fsvc_autocast_restore(prev);
  return rc;
}
