/* The emulation's cuda_profiler_api.h: starting and stopping a profiler's collection (ncu
 * --profile-from-start off, fsvc.cuda.profiler_start) does nothing without a GPU. */
#ifndef FSVC_EMU_CUDA_PROFILER_API_H
#define FSVC_EMU_CUDA_PROFILER_API_H
#include "cuda_runtime.h"
#ifdef __cplusplus
extern "C" {
#endif
cudaError_t cudaProfilerStart(void);
cudaError_t cudaProfilerStop(void);
#ifdef __cplusplus
}
#endif
#endif
