/* The backwards of gather and scatter_add, shared by the CPU ops (core/ops/index.c) and the CUDA
 * ops (gpu/ops_shape.c): written with the public ops, they run on the gradient's device. A node
 * using them saves the index (int64, on the data's device) as saved[0] and the dim as iarg[0];
 * scatter_add's node has the edges (a, index, src). */
#ifndef FSVC_OPS_INDEX_INTERNAL_H
#define FSVC_OPS_INDEX_INTERNAL_H

#include "fsvc/autograd.h"

int fsvc_gather_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin);
int fsvc_scatter_add_backward(fsvc_node *n, const fsvc_tensor *g, fsvc_tensor **gin);

#endif
