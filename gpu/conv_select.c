/* Which implementation computes a convolution pass (gpu/conv.h).
 *
 * "auto" (the default; FSVC_CONV_BACKEND=auto|im2col|cudnn or fsvc.cuda.set_conv_backend sets
 * another) times im2col + cuBLAS and up to three of cuDNN's algorithms (its heuristic's first
 * choices) the first time a (pass, shape, dtype, TF32) is met, then keeps the fastest for that
 * key, as PyTorch's cudnn.benchmark does. The timing is a warm-up and two timed calls of each on
 * the current stream with CUDA events; a synchronisation, so only at a shape's first use. During
 * a CUDA-graph capture nothing can be timed: an untimed shape runs im2col there and is timed at
 * its next eager use. A cuDNN failure that is a refusal (unsupported shape or dtype, workspace)
 * falls back to im2col and is recorded with its reason; other errors are errors.
 *
 * Every choice is recorded (fsvc.cuda.conv_choices()) with both times, so a benchmark can print
 * which implementation each layer of a network uses and why. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "gpu_ops.h"

static pthread_mutex_t table_mutex = PTHREAD_MUTEX_INITIALIZER;
static fsvc_gpu_conv_choice *choices;
static int n_choices, cap_choices;
static int backend = -1; /* unset: read FSVC_CONV_BACKEND on first use */

const char *fsvc_gpu_conv_backend_name(fsvc_gpu_conv_backend b) {
  return b == FSVC_CONV_IM2COL ? "im2col" : b == FSVC_CONV_CUDNN ? "cudnn" : "auto";
}
const char *fsvc_gpu_conv_pass_name(fsvc_gpu_conv_pass p) {
  return p == FSVC_CONV_FORWARD ? "forward" : p == FSVC_CONV_BACKWARD_DATA ? "backward_data" : "backward_filter";
}

fsvc_gpu_conv_backend fsvc_gpu_get_conv_backend(void) {
  pthread_mutex_lock(&table_mutex);
  if (backend < 0) {
    const char *v = getenv("FSVC_CONV_BACKEND");
    backend = v && strcmp(v, "im2col") == 0 ? FSVC_CONV_IM2COL : v && strcmp(v, "cudnn") == 0 ? FSVC_CONV_CUDNN
                                                                                                : FSVC_CONV_AUTO;
  }
  int b = backend;
  pthread_mutex_unlock(&table_mutex);
  return (fsvc_gpu_conv_backend)b;
}

void fsvc_gpu_set_conv_backend(fsvc_gpu_conv_backend b) {
  pthread_mutex_lock(&table_mutex);
  backend = (int)b;
  n_choices = 0;
  pthread_mutex_unlock(&table_mutex);
}

int fsvc_gpu_conv_choice_get(int i, fsvc_gpu_conv_choice *out) {
  pthread_mutex_lock(&table_mutex);
  int ok = i >= 0 && i < n_choices;
  if (ok) *out = choices[i];
  pthread_mutex_unlock(&table_mutex);
  return ok;
}

static int same_key(const fsvc_gpu_conv_choice *e, fsvc_gpu_conv_pass pass, const fsvc_gpu_conv_geom *c,
                    fsvc_dtype dt, int tf32) {
  return e->pass == pass && e->dtype == dt && e->tf32 == tf32 && memcmp(&e->geom, c, sizeof *c) == 0;
}

/* a copy of the recorded choice for the key; 0 when there is none */
static int lookup(fsvc_gpu_conv_pass pass, const fsvc_gpu_conv_geom *c, fsvc_dtype dt, int tf32,
                  fsvc_gpu_conv_choice *out) {
  pthread_mutex_lock(&table_mutex);
  int found = 0;
  for (int i = 0; i < n_choices && !found; i++)
    if (same_key(&choices[i], pass, c, dt, tf32)) {
      *out = choices[i];
      found = 1;
    }
  pthread_mutex_unlock(&table_mutex);
  return found;
}

/* records (or replaces) the choice for its key */
static void record(const fsvc_gpu_conv_choice *ch) {
  pthread_mutex_lock(&table_mutex);
  int i = 0;
  while (i < n_choices && !same_key(&choices[i], ch->pass, &ch->geom, ch->dtype, ch->tf32)) i++;
  if (i == n_choices) {
    if (n_choices == cap_choices) {
      int cap = cap_choices ? 2 * cap_choices : 32;
      fsvc_gpu_conv_choice *p = realloc(choices, (size_t)cap * sizeof *p);
      if (!p) { /* out of host memory: the choice is simply not remembered */
        pthread_mutex_unlock(&table_mutex);
        return;
      }
      choices = p;
      cap_choices = cap;
    }
    n_choices++;
  }
  choices[i] = *ch;
  pthread_mutex_unlock(&table_mutex);
}

static fsvc_gpu_conv_choice new_choice(fsvc_gpu_conv_pass pass, const fsvc_gpu_conv_geom *c, fsvc_dtype dt,
                                       int tf32) {
  fsvc_gpu_conv_choice ch;
  memset(&ch, 0, sizeof ch);
  ch.pass = pass;
  ch.geom = *c;
  ch.dtype = dt;
  ch.tf32 = tf32;
  ch.cudnn_algo = -1;
  ch.im2col_ms = -1;
  ch.cudnn_ms = -1;
  return ch;
}

/* runs one implementation (algo -2 = im2col) */
static int run_one(int algo, fsvc_gpu_conv_pass pass, const fsvc_gpu_conv_geom *c, fsvc_dtype dt, const void *in0,
                   const void *in1, void *out, fsvc_device dev) {
  if (algo == -2) return fsvc_gpu_conv_im2col(pass, c, dt, in0, in1, out, dev);
  return fsvc_gpu_conv_cudnn(pass, c, dt, in0, in1, out, dev, algo);
}

/* milliseconds per call (a warm-up, then two timed calls); -1 when cuDNN refused, -2 on an error */
static double time_one(int algo, fsvc_gpu_conv_pass pass, const fsvc_gpu_conv_geom *c, fsvc_dtype dt,
                       const void *in0, const void *in1, void *out, fsvc_device dev) {
  int rc = run_one(algo, pass, c, dt, in0, in1, out, dev);
  if (rc != 0) return rc == FSVC_CONV_UNSUPPORTED ? -1 : -2;
  void *e0 = fsvc_gpu_event_record();
  for (int i = 0; i < 2 && rc == 0; i++) rc = run_one(algo, pass, c, dt, in0, in1, out, dev);
  void *e1 = fsvc_gpu_event_record();
  double ms = e0 && e1 && rc == 0 ? fsvc_gpu_event_elapsed_ms(e0, e1) / 2 : -2;
  fsvc_gpu_event_destroy(e0);
  fsvc_gpu_event_destroy(e1);
  if (rc != 0) return rc == FSVC_CONV_UNSUPPORTED ? -1 : -2;
  return ms;
}

static int tune(fsvc_gpu_conv_pass pass, const fsvc_gpu_conv_geom *c, fsvc_dtype dt, int tf32, const void *in0,
                const void *in1, void *out, fsvc_device dev) {
  fsvc_gpu_conv_choice ch = new_choice(pass, c, dt, tf32);
  if (!fsvc_gpu_cudnn_available()) {
    snprintf(ch.note, sizeof ch.note, "cuDNN unavailable");
    record(&ch);
    return fsvc_gpu_conv_im2col(pass, c, dt, in0, in1, out, dev);
  }
  ch.im2col_ms = time_one(-2, pass, c, dt, in0, in1, out, dev);
  if (ch.im2col_ms < 0) return -1;
  int algos[3];
  int n = fsvc_gpu_cudnn_algorithms(pass, c, dt, algos, 3);
  if (n == 0) snprintf(ch.note, sizeof ch.note, "cuDNN: %s", fsvc_gpu_cudnn_last_refusal());
  for (int i = 0; i < n; i++) {
    double ms = time_one(algos[i], pass, c, dt, in0, in1, out, dev);
    if (ms == -2) return -1;
    if (ms < 0) {
      snprintf(ch.note, sizeof ch.note, "cuDNN: %s", fsvc_gpu_cudnn_last_refusal());
      continue;
    }
    if (ch.cudnn_ms < 0 || ms < ch.cudnn_ms) {
      ch.cudnn_ms = ms;
      ch.cudnn_algo = algos[i];
    }
  }
  ch.use_cudnn = ch.cudnn_ms >= 0 && ch.cudnn_ms < ch.im2col_ms;
  record(&ch);
  /* the last timed call may have been a refused or slower algorithm: compute the result once more */
  return run_one(ch.use_cudnn ? ch.cudnn_algo : -2, pass, c, dt, in0, in1, out, dev) == 0 ? 0 : -1;
}

int fsvc_gpu_conv(fsvc_gpu_conv_pass pass, const fsvc_gpu_conv_geom *c, fsvc_dtype dt, const void *in0,
                  const void *in1, void *out, fsvc_device dev) {
  fsvc_gpu_conv_backend b = fsvc_gpu_get_conv_backend();
  if (b == FSVC_CONV_IM2COL) return fsvc_gpu_conv_im2col(pass, c, dt, in0, in1, out, dev);
  int tf32 = dt == FSVC_FLOAT32 && fsvc_gpu_allow_tf32;
  fsvc_gpu_conv_choice ch;
  int known = lookup(pass, c, dt, tf32, &ch);
  if (b == FSVC_CONV_CUDNN) {
    int rc = fsvc_gpu_conv_cudnn(pass, c, dt, in0, in1, out, dev, -1);
    if (!known) { /* recorded once per key: what ran, and why not cuDNN when it refused */
      ch = new_choice(pass, c, dt, tf32);
      ch.use_cudnn = rc == 0;
      snprintf(ch.note, sizeof ch.note, rc == FSVC_CONV_UNSUPPORTED ? "forced; cuDNN refused: %s" : "forced%s",
               rc == FSVC_CONV_UNSUPPORTED ? fsvc_gpu_cudnn_last_refusal() : "");
      record(&ch);
    }
    if (rc != FSVC_CONV_UNSUPPORTED) return rc;
    return fsvc_gpu_conv_im2col(pass, c, dt, in0, in1, out, dev);
  }
  if (known) {
    if (!ch.use_cudnn) return fsvc_gpu_conv_im2col(pass, c, dt, in0, in1, out, dev);
    int rc = fsvc_gpu_conv_cudnn(pass, c, dt, in0, in1, out, dev, ch.cudnn_algo);
    if (rc != FSVC_CONV_UNSUPPORTED) return rc;
    ch.use_cudnn = 0; /* refused now (e.g. the workspace limit changed): im2col from here on */
    snprintf(ch.note, sizeof ch.note, "cuDNN refused later: %s", fsvc_gpu_cudnn_last_refusal());
    record(&ch);
    return fsvc_gpu_conv_im2col(pass, c, dt, in0, in1, out, dev);
  }
  if (fsvc_gpu_is_capturing()) return fsvc_gpu_conv_im2col(pass, c, dt, in0, in1, out, dev);
  return tune(pass, c, dt, tf32, in0, in1, out, dev);
}
