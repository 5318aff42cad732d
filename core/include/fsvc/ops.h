/* Every tensor op of the core. Each area has its own header; all ops record autograd history
 * when an input requires grad (see autograd.h) and return NULL with an error on bad input. */
#ifndef FSVC_OPS_H
#define FSVC_OPS_H
#include "fsvc/ops_elementwise.h"
#include "fsvc/ops_reduce.h"
#include "fsvc/ops_shape.h"
#include "fsvc/ops_nn.h"
#include "fsvc/threads.h"
#endif
