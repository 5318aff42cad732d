/* Built instead of gpu/conv_cudnn.c when the CUDA toolkit has no cudnn.h: the convolutions then
 * always take the im2col + cuBLAS path, and fsvc.cuda.cudnn_is_available() says why. */
#include "conv.h"

static const char reason[] = "this build found no cudnn.h (install cuDNN 9 beside the CUDA toolkit and rebuild)";

int fsvc_gpu_cudnn_available(void) { return 0; }
const char *fsvc_gpu_cudnn_unavailable_reason(void) { return reason; }
int fsvc_gpu_cudnn_version(void) { return 0; }
const char *fsvc_gpu_cudnn_last_refusal(void) { return reason; }
int fsvc_gpu_cudnn_algorithms(fsvc_gpu_conv_pass pass, const fsvc_gpu_conv_geom *c, fsvc_dtype dt, int *algos,
                              int max) {
  (void)pass; (void)c; (void)dt; (void)algos; (void)max;
  return 0;
}
int fsvc_gpu_conv_cudnn(fsvc_gpu_conv_pass pass, const fsvc_gpu_conv_geom *c, fsvc_dtype dt, const void *in0,
                        const void *in1, void *out, fsvc_device dev, int algo) {
  (void)pass; (void)c; (void)dt; (void)in0; (void)in1; (void)out; (void)dev; (void)algo;
  return FSVC_CONV_UNSUPPORTED;
}
