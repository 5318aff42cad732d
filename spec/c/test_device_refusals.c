/* Functions without a device implementation refuse CUDA tensors with one line instead of reading
 * a device pointer as host memory: the core/dsp functions without a device path and the
 * safetensors writer. The functions with a device path check their arguments before taking it
 * (checked here with arguments that must fail first). A CUDA tensor is imitated by a CPU tensor whose storage says cuda:0 (as in
 * test_device.c): a refusal happens before any byte is read, so this runs on any machine, and the
 * host memory is freed by the CPU allocator whatever the device field says. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctest.h"
#include "fsvc/checkpoint.h"
#include "fsvc/device.h"
#include "fsvc/dsp.h"
#include "fsvc/fsvc.h"

static int refused(const char *op) {
  char want[128];
  snprintf(want, sizeof want, "%s: CUDA tensors are not supported yet", op);
  const char *e = fsvc_last_error();
  if (!e || !strstr(e, want)) {
    fprintf(stderr, "  %s: error was '%s'\n", op, e ? e : "(null)");
    return 0;
  }
  return 1;
}

static fsvc_tensor *fake_cuda(fsvc_tensor *t) {
  t->storage->device.type = FSVC_CUDA;
  t->storage->device.index = 0;
  return t;
}

static void test_dsp(void) {
  fsvc_tensor *wave = fsvc_zeros(2, (int64_t[]){1, 1920}, FSVC_FLOAT32);
  fsvc_tensor *cwave = fake_cuda(fsvc_zeros(2, (int64_t[]){1, 1920}, FSVC_FLOAT32));
  fsvc_tensor *f0 = fake_cuda(fsvc_full(3, (int64_t[]){1, 1, 4}, 100.0, FSVC_FLOAT32));
  fsvc_tensor *ids = fake_cuda(fsvc_zeros(3, (int64_t[]){1, 1, 4}, FSVC_INT64));
  fsvc_tensor *spec = fake_cuda(fsvc_zeros(4, (int64_t[]){1, 9, 5, 2}, FSVC_FLOAT32));
  fsvc_stft_options so;
  fsvc_stft_default_options(&so, 16);

  /* stft, istft, magnitude, spectrogram, mel_spectrogram, the losses, energy,
   * oscillate_harmonics and the pitch helpers have device paths (core/dsp/dsp_device.c,
   * dsp_device_pitch.c, tested in spec/cuda_dsp_spec.lua); the streaming objects below refuse.
   * Bad arguments with a CUDA tensor get the CPU's message before any device work: */
  fsvc_tensor *bad_spec = fake_cuda(fsvc_zeros(4, (int64_t[]){1, 7, 5, 2}, FSVC_FLOAT32));
  CHECK(fsvc_istft(bad_spec, &so, 0) == NULL &&
        strstr(fsvc_last_error(), "istft: input has 7 frequency bins, n_fft 16 needs 9"));
  fsvc_tensor_release(bad_spec);

  /* bad arguments with a CUDA tensor get the CPU's message before any device work */
  CHECK(fsvc_oscillate_harmonics(ids, 480, 24000, 0, 10, NULL) == NULL &&
        strstr(fsvc_last_error(), "must be float32 or float64"));
  CHECK(fsvc_oscillate_harmonics(cwave, 480, 24000, 0, 10, NULL) == NULL &&
        strstr(fsvc_last_error(), "oscillate_harmonics: f0 must be [B, 1, T]"));
  CHECK(fsvc_oscillate_harmonics(f0, 0, 24000, 0, 10, NULL) == NULL &&
        strstr(fsvc_last_error(), "frame_size >= 1"));
  CHECK(fsvc_freq2id(ids) == NULL && strstr(fsvc_last_error(), "freq2id: input must be float32"));
  CHECK(fsvc_pitch_shift(f0, NAN) == NULL && strstr(fsvc_last_error(), "pitch_shift: semitones"));
  CHECK(fsvc_id2freq(ids, FSVC_INT64) == NULL && strstr(fsvc_last_error(), "id2freq: dtype"));
  CHECK(fsvc_interpolate_f0(f0, 0) == NULL && strstr(fsvc_last_error(), "interpolate_f0: n_out"));

  fsvc_oscillator *osc = fsvc_oscillator_new(1, 480, 24000, 0, 10);
  CHECK(osc != NULL);
  if (osc) {
    CHECK(fsvc_oscillator_process(osc, f0) == NULL && refused("oscillator_process"));
    fsvc_oscillator_free(osc);
  }
  fsvc_stream_stft *ss = fsvc_stream_stft_new(&so);
  CHECK(ss != NULL);
  if (ss) {
    fsvc_tensor *chunk = fake_cuda(fsvc_zeros(2, (int64_t[]){1, 16}, FSVC_FLOAT32));
    CHECK(fsvc_stream_stft_process(ss, chunk) == NULL && refused("stream_stft_process"));
    fsvc_tensor_release(chunk);
    fsvc_stream_stft_free(ss);
  }

  /* the same calls on host tensors still work (the refusal looks at the device only) */
  fsvc_tensor *e = fsvc_energy(wave, 480);
  CHECK(e != NULL && e->shape[2] == 4);
  fsvc_tensor_release(e);

  fsvc_tensor *list[] = {wave, cwave, f0, ids, spec};
  for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) fsvc_tensor_release(list[i]);
}

static void test_safetensors_writer(void) {
  char path[] = "/tmp/fsvc_test_refuse_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  close(fd);
  FILE *f = fopen(path, "wb"); /* a previous checkpoint that a refused save must not clobber */
  fputs("keep", f);
  fclose(f);
  fsvc_tensor_dict *d = fsvc_tensor_dict_new();
  fsvc_tensor *host = fsvc_zeros(1, (int64_t[]){3}, FSVC_FLOAT32);
  fsvc_tensor *dev = fake_cuda(fsvc_zeros(1, (int64_t[]){3}, FSVC_FLOAT32));
  CHECK(fsvc_tensor_dict_set(d, "a.host", host) == 0 && fsvc_tensor_dict_set(d, "b.dev", dev) == 0);
  CHECK(fsvc_safetensors_save(path, d) == -1);
  const char *err = fsvc_last_error();
  CHECK(err && strstr(err, "save_safetensors") && strstr(err, "'b.dev'") && strstr(err, "cuda"));
  if (err && !strstr(err, "cuda")) fprintf(stderr, "  error was '%s'\n", err);
  char buf[8] = "";
  f = fopen(path, "rb");
  CHECK(f && fgets(buf, sizeof buf, f) && strcmp(buf, "keep") == 0);
  if (f) fclose(f);
  remove(path);
  fsvc_tensor_dict_free(d);
  fsvc_tensor_release(host);
  fsvc_tensor_release(dev);
}

int main(void) {
  test_dsp();
  test_safetensors_writer();
  return CTEST_END();
}
