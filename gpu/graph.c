/* CUDA graphs: a fixed-shape piece of work (a streaming conversion step, a training step's forward
 * and backward) captured once and replayed with one launch, which removes the per-kernel launch
 * cost that dominates small steps.
 *
 * Capture runs on the graph's own stream (the legacy default stream cannot be captured). While it
 * runs, launches are recorded instead of executed; anything that waits for the device (item(),
 * printing a CUDA tensor, index checks that read indices on the host, moving a CPU tensor other
 * than a Lua number) makes the capture fail with a CUDA error. Memory cannot be allocated during
 * a capture, so the Lua side (lua/fsvc/cuda_graph.lua) runs the function once first on the same
 * stream with the collector stopped: that warm-up leaves a cached block of every size the capture
 * will ask for, and the allocator (allocator.c) gives the blocks used during the capture to the
 * graph for as long as it lives. Replays run on the caller's current stream, so later work on that
 * stream sees their results. */
#include <cuda_runtime.h>
#include <stdlib.h>

#include "fsvc/error.h"
#include "gpu_internal.h"

struct fsvc_gpu_graph {
  cudaStream_t stream;
  void *prev_stream;
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  int pool;
  int state; /* 0 new, 1 warming up, 2 capturing, 3 captured */
};

static int next_pool = 1;

fsvc_gpu_graph *fsvc_gpu_graph_new(void) {
  if (fsvc_gpu_device_count() == 0) {
    fsvc_set_error("cuda graph: no CUDA device (%s)", fsvc_gpu_unavailable_reason());
    return NULL;
  }
  fsvc_gpu_graph *g = calloc(1, sizeof *g);
  if (!g) {
    fsvc_set_error("cuda graph: out of host memory");
    return NULL;
  }
  if (fsvc_gpu_check((int)cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking), "cuda graph") != 0) {
    free(g);
    return NULL;
  }
  g->pool = __atomic_fetch_add(&next_pool, 1, __ATOMIC_RELAXED);
  return g;
}

int fsvc_gpu_graph_warmup_begin(fsvc_gpu_graph *g) {
  if (g->state != 0) {
    fsvc_set_error("cuda graph: already captured (make a new graph, or reset this one)");
    return -1;
  }
  /* the graph's stream starts after everything already queued on the caller's stream */
  if (fsvc_gpu_synchronize() != 0) return -1;
  g->prev_stream = fsvc_gpu_stream();
  fsvc_gpu_set_stream(g->stream);
  g->state = 1;
  return 0;
}

int fsvc_gpu_graph_warmup_end(fsvc_gpu_graph *g) {
  if (g->state != 1) {
    fsvc_set_error("cuda graph: warm-up was not started");
    return -1;
  }
  fsvc_gpu_set_stream(g->prev_stream);
  g->state = 0;
  return fsvc_gpu_check((int)cudaStreamSynchronize(g->stream), "cuda graph warm-up");
}

int fsvc_gpu_graph_capture_begin(fsvc_gpu_graph *g) {
  if (g->state != 0) {
    fsvc_set_error("cuda graph: capture_begin on a graph that is %s",
                   g->state == 1 ? "warming up" : g->state == 2 ? "being captured" : "already captured");
    return -1;
  }
  if (fsvc_gpu_synchronize() != 0) return -1;
  g->prev_stream = fsvc_gpu_stream();
  fsvc_gpu_set_stream(g->stream);
  fsvc_gpu_pool_capture(g->pool);
  if (fsvc_gpu_check((int)cudaStreamBeginCapture(g->stream, cudaStreamCaptureModeGlobal),
                     "cuda graph capture") != 0) {
    fsvc_gpu_pool_capture(0);
    fsvc_gpu_set_stream(g->prev_stream);
    return -1;
  }
  g->state = 2;
  return 0;
}

int fsvc_gpu_graph_capture_end(fsvc_gpu_graph *g) {
  if (g->state != 2) {
    fsvc_set_error("cuda graph: capture_end without capture_begin");
    return -1;
  }
  cudaError_t e = cudaStreamEndCapture(g->stream, &g->graph);
  fsvc_gpu_pool_capture(0);
  fsvc_gpu_set_stream(g->prev_stream);
  (void)cudaGetLastError(); /* the error that invalidated the capture, reported below instead */
  if (e != cudaSuccess || !g->graph) {
    g->state = 0;
    g->graph = NULL;
    fsvc_set_error("cuda graph: capture failed (%s): the captured function waited for the device "
                   "(item(), printing, index checks on the host, moving CPU tensors) or allocated "
                   "memory the warm-up did not", cudaGetErrorString(e));
    return -1;
  }
  if (fsvc_gpu_check((int)cudaGraphInstantiate(&g->exec, g->graph, 0), "cuda graph instantiate") != 0) {
    cudaGraphDestroy(g->graph);
    g->graph = NULL;
    g->state = 0;
    return -1;
  }
  g->state = 3;
  return 0;
}

int fsvc_gpu_graph_is_captured(const fsvc_gpu_graph *g) { return g && g->state == 3; }

int fsvc_gpu_is_capturing(void) {
  cudaStream_t s = (cudaStream_t)fsvc_gpu_stream();
  if (!s || fsvc_gpu_device_count() == 0) return 0; /* the legacy stream is never captured */
  enum cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(s, &st) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return st != cudaStreamCaptureStatusNone;
}

int fsvc_gpu_graph_replay(fsvc_gpu_graph *g) {
  if (g->state != 3) {
    fsvc_set_error("cuda graph: replay before a successful capture");
    return -1;
  }
  fsvc_gpu_index_check_pending(); /* the graph may hold index kernels */
  return fsvc_gpu_check((int)cudaGraphLaunch(g->exec, (cudaStream_t)fsvc_gpu_stream()), "cuda graph replay");
}

void fsvc_gpu_graph_free(fsvc_gpu_graph *g) {
  if (!g) return;
  if (g->state == 2) { /* freed while capturing (an error unwound past capture_end) */
    cudaGraph_t tmp = NULL;
    cudaStreamEndCapture(g->stream, &tmp);
    if (tmp) cudaGraphDestroy(tmp);
    fsvc_gpu_pool_capture(0);
    fsvc_gpu_set_stream(g->prev_stream);
    (void)cudaGetLastError();
  } else if (g->state == 1) {
    fsvc_gpu_set_stream(g->prev_stream);
  }
  cudaDeviceSynchronize(); /* a replay may still be running */
  if (g->exec) cudaGraphExecDestroy(g->exec);
  if (g->graph) cudaGraphDestroy(g->graph);
  fsvc_gpu_pool_release(g->pool);
  fsvc_gpu_fft_forget_stream(g->stream);
  cudaStreamDestroy(g->stream);
  free(g);
}
