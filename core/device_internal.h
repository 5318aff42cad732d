/* Device paths of the core's raw helpers (tensor.c, autograd.c call these for device tensors;
 * implemented in device.c on top of the backend table). Internal to core/. */
#ifndef FSVC_DEVICE_INTERNAL_H
#define FSVC_DEVICE_INTERNAL_H
#include "fsvc/device.h"

int fsvc_device_copy_(fsvc_tensor *dst, const fsvc_tensor *src);
int fsvc_device_fill_(fsvc_tensor *t, double value);
/* running total of device bytes allocated through fsvc_empty_on (paces Lua's collector, which does
 * not see device memory, together with the CPU total) */
int64_t fsvc_device_bytes_total(void);
#endif
