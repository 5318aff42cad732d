/* Reverse-mode automatic differentiation on a graph of op nodes.
 *
 * An op that may need gradients does, after computing its output `out`:
 *     fsvc_node *n = fsvc_node_new("mul", 2, (fsvc_tensor *[]){a, b}, mul_backward);
 *     if (n) { fsvc_node_save(n, a); fsvc_node_save(n, b); fsvc_node_attach(n, out); }
 * fsvc_node_new returns NULL when grad mode is off or no input needs a gradient, so the op then
 * records nothing. The node keeps, per input, an edge to the input's own grad_fn (or to the input
 * itself when it is a leaf that requires grad) and the input's shape; it does not keep inputs
 * alive unless they are saved. Every node has exactly one output.
 *
 * backward(node, grad_out, grad_in) fills grad_in[i] (new references, shape = input i's shape)
 * for each input with node->edges[i].needs_grad, and may leave the others NULL. It runs with grad
 * mode off. It returns 0, or -1 with an error set.
 */
#ifndef FSVC_AUTOGRAD_H
#define FSVC_AUTOGRAD_H

#include "fsvc/tensor.h"

#define FSVC_NODE_MAX_SAVED 8

typedef struct fsvc_node fsvc_node;
typedef int (*fsvc_backward_fn)(fsvc_node *node, const fsvc_tensor *grad_out,
                                fsvc_tensor **grad_in);

typedef struct {
  fsvc_node *node;   /* input's grad_fn (owned reference), or NULL */
  fsvc_tensor *leaf; /* input itself when it is a leaf requiring grad (owned reference), or NULL */
  int needs_grad;
  int ndim;
  int64_t shape[FSVC_MAX_DIMS];
  fsvc_dtype dtype;
} fsvc_edge;

struct fsvc_node {
  int refcount;
  const char *op; /* static string naming the op, e.g. "conv1d" */
  int n_inputs;
  fsvc_edge *edges;
  fsvc_tensor *saved[FSVC_NODE_MAX_SAVED]; /* detached aliases (owned) */
  int n_saved;
  int64_t iarg[8]; /* op arguments the backward needs (dims, strides, ...) */
  double farg[4];
  void *ctx; /* op-owned extra state, freed with ctx_free */
  void (*ctx_free)(void *ctx);
  fsvc_backward_fn backward;
  int released; /* saved tensors dropped after a backward without retain_graph */
  /* engine scratch */
  fsvc_tensor *grad_accum;
  int64_t dependencies;
  uint64_t epoch;
};

/* grad mode (thread-local) */
int fsvc_grad_enabled(void);
int fsvc_set_grad_enabled(int enabled); /* returns the previous value */
/* True when an op producing from t should record a node: grad mode on and t requires grad. */
int fsvc_needs_grad(const fsvc_tensor *t);

fsvc_node *fsvc_node_new(const char *op, int n_inputs, fsvc_tensor *const *inputs,
                         fsvc_backward_fn backward);
/* Saves a detached alias of t; returns its slot index, or -1. */
int fsvc_node_save(fsvc_node *n, const fsvc_tensor *t);
/* Makes `out` the node's output: out->grad_fn = node (takes the caller's node reference). */
void fsvc_node_attach(fsvc_node *n, fsvc_tensor *out);
fsvc_node *fsvc_node_retain(fsvc_node *n);
void fsvc_node_release(fsvc_node *n);

/* Back-propagates from `root`. `grad` may be NULL when root has one element (then 1 is used).
 * Gradients of leaves are accumulated into leaf->grad. Unless retain_graph, saved tensors are
 * dropped and a second backward through the same nodes fails with a clear error. */
int fsvc_backward(fsvc_tensor *root, const fsvc_tensor *grad, int retain_graph);

/* Helpers for backward functions. */
/* Sums `grad` down to `shape` (undoes broadcasting). New reference. */
fsvc_tensor *fsvc_sum_to_shape(const fsvc_tensor *grad, int ndim, const int64_t *shape);
/* a + b for equal shapes, any strides; result contiguous, dtype of a. New reference. */
fsvc_tensor *fsvc_add_same_shape_raw(const fsvc_tensor *a, const fsvc_tensor *b);

/* The list of op names that have a backward, registered by each op file at startup through
 * fsvc_register_differentiable (used by the gradient-check coverage spec). */
void fsvc_register_differentiable(const char *op);
int fsvc_differentiable_count(void);
const char *fsvc_differentiable_name(int i);

#endif
