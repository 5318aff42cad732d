/* The public C API of fsvc's core, in one include. */
#ifndef FSVC_H
#define FSVC_H
#include "fsvc/error.h"
#include "fsvc/tensor.h"
#include "fsvc/autograd.h"
#include "fsvc/random.h"
#include "fsvc/ops.h"
#include "fsvc/autocast.h"
#endif
