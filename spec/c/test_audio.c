/* Tests of core/audio: file round trips, info, layout, mixdown, bad input, atomic save, resampling. */
#define _GNU_SOURCE /* mkdtemp */
#include "ctest.h"
#include "fsvc/audio.h"

#include <dirent.h>
#include <math.h>
#include <sndfile.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* libsndfile 1.2.0 leaks libvorbis's vorbis_info when opening a truncated Ogg file fails (a
 * library bug: nothing is returned for us to free). Tell LeakSanitizer in ASan builds; this hook
 * is an ordinary unused function otherwise. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:vorbis_info_init\n"; }

static char tmpdir[256];
static char err[512];

/* Path in the temp dir; the result lives until 8 more calls (copy it to keep it longer). */
static const char *tpath(const char *name) {
  static char buf[8][512];
  static int slot = 0;
  char *p = buf[slot++ % 8];
  snprintf(p, 512, "%s/%s", tmpdir, name);
  return p;
}

static int has(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }
#define CHECK_ERR(sub) do { int ok_ = has(err, sub); CHECK(ok_); \
  if (!ok_) fprintf(stderr, "  message was: \"%s\" (expected to contain \"%s\")\n", err, sub); } while (0)

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) { perror(path); exit(2); }
  if (n) fwrite(data, 1, n, f);
  fclose(f);
}

static unsigned char *read_bytes(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
  *n = fread(b, 1, (size_t)len, f);
  fclose(f);
  return b;
}

static void fill_sine(float *x, int64_t n, double freq, double rate, double amp, double phase) {
  for (int64_t i = 0; i < n; i++) x[i] = (float)(amp * sin(2 * M_PI * freq * (double)i / rate + phase));
}

/* Writes interleaved samples with libsndfile directly (formats fsvc_audio_save does not write). */
static int sndfile_write(const char *path, int format, const float *interleaved, int64_t frames,
                         int channels, int rate) {
  SF_INFO info = {0};
  info.channels = channels;
  info.samplerate = rate;
  info.format = format;
  if (!sf_format_check(&info)) return -1;
  SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
  if (!sf) return -1;
  sf_count_t w = sf_writef_float(sf, interleaved, frames);
  sf_close(sf);
  return w == frames ? 0 : -1;
}

static double max_abs_diff(const float *a, const float *b, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; i++) { double d = fabs((double)a[i] - b[i]); if (d > m) m = d; }
  return m;
}

/* Normalised correlation of y[lag + i] with ref[i] over i in [start, end). */
static double correlation(const float *y, int64_t ny, const float *ref, int64_t start, int64_t end, int64_t lag) {
  double sxy = 0, sxx = 0, syy = 0;
  for (int64_t i = start; i < end; i++) {
    int64_t j = i + lag;
    if (j < 0 || j >= ny) continue;
    sxy += (double)y[j] * ref[i];
    sxx += (double)ref[i] * ref[i];
    syy += (double)y[j] * y[j];
  }
  return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0;
}

static int count_dir_entries(const char *dir, const char *containing) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && (!containing || strstr(e->d_name, containing))) n++;
  closedir(d);
  return n;
}

static void remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char p[1024];
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
    else unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

/* ---- stereo test signal: distinct channels so a layout mix-up shows ------------------------- */
enum { SR = 48000, NFR = 20000 };
static float stereo[2 * NFR]; /* planar */

static void make_stereo(void) {
  fill_sine(stereo, NFR, 440, SR, 0.8, 0);
  fill_sine(stereo + NFR, NFR, 660, SR, 0.3, 0.5);
  stereo[NFR + 100] = 1.5f;  /* out of range: clipped for PCM, kept for float */
  stereo[NFR + 101] = -2.0f;
  stereo[5] = 1.0f;
  stereo[6] = -1.0f;
}

static void expect_clipped(const float *ref, float *clipped) {
  for (int i = 0; i < 2 * NFR; i++) clipped[i] = ref[i] > 1 ? 1 : (ref[i] < -1 ? -1 : ref[i]);
}

static void round_trip(const char *name, const char *format, fsvc_audio_sample_format sf,
                       double tol, const char *want_format, const char *want_subtype) {
  const char *p = tpath(name);
  int rc = fsvc_audio_save(p, stereo, NFR, 2, SR, format, sf, err, sizeof err);
  CHECK(rc == 0);
  if (rc != 0) { fprintf(stderr, "  save %s: %s\n", name, err); return; }

  fsvc_audio_info info;
  CHECK(fsvc_audio_info_read(p, &info, err, sizeof err) == 0);
  CHECK(info.frames == NFR);
  CHECK(info.channels == 2);
  CHECK(info.sample_rate == SR);
  CHECK(strcmp(info.format, want_format) == 0);
  CHECK(strcmp(info.subtype, want_subtype) == 0);
  CHECK_NEAR(info.duration_s, (double)NFR / SR, 1e-9);

  float *y = NULL;
  int64_t frames = 0;
  int ch = 0, rate = 0;
  rc = fsvc_audio_load(p, &y, &frames, &ch, &rate, err, sizeof err);
  CHECK(rc == 0);
  if (rc != 0) { fprintf(stderr, "  load %s: %s\n", name, err); return; }
  CHECK(frames == NFR);
  CHECK(ch == 2);
  CHECK(rate == SR);
  static float want[2 * NFR];
  if (sf == FSVC_AUDIO_FLOAT32) memcpy(want, stereo, sizeof want);
  else expect_clipped(stereo, want);
  double d0 = max_abs_diff(y, want, NFR), d1 = max_abs_diff(y + NFR, want + NFR, NFR);
  CHECK(d0 <= tol);
  CHECK(d1 <= tol);
  if (d0 > tol || d1 > tol) fprintf(stderr, "  %s: max error %g / %g, tolerance %g\n", name, d0, d1, tol);
  if (sf == FSVC_AUDIO_FLOAT32) CHECK(y[NFR + 100] == 1.5f); /* float is not clipped */
  free(y);
}

static void test_round_trips(void) {
  const double lsb16 = 1.0 / 32768, lsb24 = 1.0 / 8388608;
  /* one LSB of rounding plus libsndfile's 0x7FFF-vs-0x8000 scale asymmetry at full scale */
  round_trip("s16.wav", "wav", FSVC_AUDIO_PCM16, 1.5 * lsb16, "wav", "pcm16");
  round_trip("s24.wav", "wav", FSVC_AUDIO_PCM24, 1.5 * lsb24, "wav", "pcm24");
  round_trip("f32.wav", "wav", FSVC_AUDIO_FLOAT32, 0.0, "wav", "float");
  round_trip("s16.flac", "flac", FSVC_AUDIO_PCM16, 1.5 * lsb16, "flac", "pcm16");
  round_trip("s24.flac", "flac", FSVC_AUDIO_PCM24, 1.5 * lsb24, "flac", "pcm24");
  /* format from the extension, any case */
  round_trip("ext.FLAC", NULL, FSVC_AUDIO_PCM16, 1.5 * lsb16, "flac", "pcm16");
  round_trip("ext.wav", NULL, FSVC_AUDIO_PCM24, 1.5 * lsb24, "wav", "pcm24");
  /* format string wins over the extension */
  round_trip("forced.dat", "flac", FSVC_AUDIO_PCM16, 1.5 * lsb16, "flac", "pcm16");

  /* PCM quantisation is really happening (the tolerance is not vacuous) */
  float *y = NULL; int64_t fr; int ch, sr;
  if (fsvc_audio_load(tpath("s16.wav"), &y, &fr, &ch, &sr, err, sizeof err) == 0) {
    CHECK(max_abs_diff(y, stereo, NFR) > 0.1 * lsb16);
    free(y);
  }

  /* mono file */
  float mono[1000];
  fill_sine(mono, 1000, 1000, 16000, 0.5, 0);
  CHECK(fsvc_audio_save(tpath("mono.wav"), mono, 1000, 1, 16000, "wav", FSVC_AUDIO_FLOAT32, err, sizeof err) == 0);
  CHECK(fsvc_audio_load(tpath("mono.wav"), &y, &fr, &ch, &sr, err, sizeof err) == 0);
  CHECK(fr == 1000 && ch == 1 && sr == 16000);
  if (y) { CHECK(max_abs_diff(y, mono, 1000) == 0.0); free(y); }

  /* optional outputs may be NULL */
  y = NULL;
  CHECK(fsvc_audio_load(tpath("mono.wav"), &y, NULL, NULL, NULL, err, sizeof err) == 0);
  free(y);
}

static void test_stereo_layout(void) {
  /* channel 0 all +0.25, channel 1 all -0.5: planar means the first half is channel 0 */
  enum { N = 300 };
  float planar[2 * N];
  for (int i = 0; i < N; i++) { planar[i] = 0.25f; planar[N + i] = -0.5f; }
  CHECK(fsvc_audio_save(tpath("layout.wav"), planar, N, 2, 8000, "wav", FSVC_AUDIO_FLOAT32, err, sizeof err) == 0);
  /* read back raw with libsndfile: the file must be interleaved L R L R */
  SF_INFO info = {0};
  SNDFILE *sf = sf_open(tpath("layout.wav"), SFM_READ, &info);
  CHECK(sf != NULL);
  if (sf) {
    float inter[2 * N];
    CHECK(sf_readf_float(sf, inter, N) == N);
    CHECK(inter[0] == 0.25f && inter[1] == -0.5f && inter[2] == 0.25f && inter[2 * N - 1] == -0.5f);
    sf_close(sf);
  }
  /* and a file written interleaved by libsndfile loads planar */
  float inter[2 * N];
  for (int i = 0; i < N; i++) { inter[2 * i] = (float)i / N; inter[2 * i + 1] = -(float)i / N; }
  CHECK(sndfile_write(tpath("inter.wav"), SF_FORMAT_WAV | SF_FORMAT_FLOAT, inter, N, 2, 8000) == 0);
  float *y = NULL; int64_t fr; int ch, sr;
  CHECK(fsvc_audio_load(tpath("inter.wav"), &y, &fr, &ch, &sr, err, sizeof err) == 0);
  if (y) {
    int ok = fr == N && ch == 2;
    for (int i = 0; ok && i < N; i++) ok = y[i] == (float)i / N && y[N + i] == -(float)i / N;
    CHECK(ok);
    free(y);
  }
  /* many channels */
  enum { C = 6, M = 50 };
  float many[C * M];
  for (int c = 0; c < C; c++) for (int i = 0; i < M; i++) many[c * M + i] = (float)(c * 1000 + i) / 8192.0f;
  CHECK(fsvc_audio_save(tpath("six.flac"), many, M, C, 44100, NULL, FSVC_AUDIO_PCM24, err, sizeof err) == 0);
  CHECK(fsvc_audio_load(tpath("six.flac"), &y, &fr, &ch, &sr, err, sizeof err) == 0);
  if (y) { CHECK(fr == M && ch == C && sr == 44100); CHECK(max_abs_diff(y, many, C * M) < 2e-6); free(y); }
}

static void test_mixdown(void) {
  float planar[6] = {1, 2, 3, 3, 4, 5}, mono[3];
  fsvc_audio_mix_to_mono(planar, 3, 2, mono);
  CHECK(mono[0] == 2 && mono[1] == 3 && mono[2] == 4);
  float three[6] = {0.3f, -0.6f, 0.9f, 0.0f, 0.3f, 0.6f}; /* 3 channels x 2 frames */
  fsvc_audio_mix_to_mono(three, 2, 3, mono);
  CHECK_NEAR(mono[0], (0.3 + 0.9 + 0.3) / 3, 1e-7);
  CHECK_NEAR(mono[1], (-0.6 + 0.0 + 0.6) / 3, 1e-7);
  fsvc_audio_mix_to_mono(planar, 3, 2, planar); /* in place */
  CHECK(planar[0] == 2 && planar[1] == 3 && planar[2] == 4);
  float one[3] = {0.1f, 0.2f, 0.3f};
  fsvc_audio_mix_to_mono(one, 3, 1, mono);
  CHECK(mono[0] == 0.1f && mono[2] == 0.3f);
}

static void test_memory_load(void) {
  size_t n = 0;
  unsigned char *bytes = read_bytes(tpath("s24.flac"), &n);
  CHECK(bytes != NULL && n > 100);
  if (!bytes) return;
  float *a = NULL, *b = NULL; int64_t fa = 0, fb = 0; int ca = 0, cb = 0, ra = 0, rb = 0;
  CHECK(fsvc_audio_load(tpath("s24.flac"), &a, &fa, &ca, &ra, err, sizeof err) == 0);
  CHECK(fsvc_audio_load_memory(bytes, n, "archive:s24.flac", &b, &fb, &cb, &rb, err, sizeof err) == 0);
  CHECK(fa == fb && ca == cb && ra == rb);
  if (a && b && fa == fb && ca == cb) CHECK(memcmp(a, b, (size_t)fa * ca * sizeof(float)) == 0);
  free(a); free(b);
  /* errors from memory name the given name */
  CHECK(fsvc_audio_load_memory(bytes, 40, "archive:s24.flac", &b, &fb, &cb, &rb, err, sizeof err) == -1);
  CHECK_ERR("archive:s24.flac");
  CHECK(b == NULL);
  CHECK(fsvc_audio_load_memory(bytes, 0, "zip:empty.wav", &b, &fb, &cb, &rb, err, sizeof err) == -1);
  CHECK_ERR("zip:empty.wav"); CHECK_ERR("empty");
  CHECK(fsvc_audio_load_memory("just some text, not audio", 25, NULL, &b, &fb, &cb, &rb, err, sizeof err) == -1);
  CHECK_ERR("<memory>"); CHECK_ERR("not a recognised audio file");
  free(bytes);
}

static void test_ogg_mp3(void) {
  enum { N = 24000, R = 24000 };
  static float x[N];
  fill_sine(x, N, 440, R, 0.5, 0);
  /* Ogg Vorbis: written with libsndfile directly (fsvc_audio_save writes wav and flac only) */
  if (sndfile_write(tpath("tone.ogg"), SF_FORMAT_OGG | SF_FORMAT_VORBIS, x, N, 1, R) == 0) {
    fsvc_audio_info info;
    CHECK(fsvc_audio_info_read(tpath("tone.ogg"), &info, err, sizeof err) == 0);
    CHECK(strcmp(info.format, "ogg") == 0 && strcmp(info.subtype, "vorbis") == 0);
    CHECK(info.frames == N && info.channels == 1 && info.sample_rate == R);
    float *y = NULL; int64_t fr = 0; int ch = 0, sr = 0;
    CHECK(fsvc_audio_load(tpath("tone.ogg"), &y, &fr, &ch, &sr, err, sizeof err) == 0);
    if (y) {
      CHECK(fr == N && ch == 1 && sr == R);
      double c = correlation(y, fr, x, 1000, N - 1000, 0);
      CHECK(c > 0.999);
      if (c <= 0.999) fprintf(stderr, "  ogg correlation %g\n", c);
      free(y);
    }
  } else {
    CTEST_SKIP("installed libsndfile cannot write Ogg Vorbis; ogg read test skipped");
  }
  /* MP3: libsndfile >= 1.1 writes through LAME and reads through mpg123 */
  if (sndfile_write(tpath("tone.mp3"), SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, x, N, 1, R) == 0) {
    fsvc_audio_info info;
    CHECK(fsvc_audio_info_read(tpath("tone.mp3"), &info, err, sizeof err) == 0);
    CHECK(strcmp(info.format, "mp3") == 0 && strcmp(info.subtype, "mp3") == 0);
    CHECK(info.channels == 1 && info.sample_rate == R);
    float *y = NULL; int64_t fr = 0; int ch = 0, sr = 0;
    CHECK(fsvc_audio_load(tpath("tone.mp3"), &y, &fr, &ch, &sr, err, sizeof err) == 0);
    if (y) {
      CHECK(ch == 1 && sr == R);
      CHECK(llabs(fr - N) <= 2 * 1152); /* encoder padding is at most a couple of mp3 frames */
      double best = 0; int64_t best_lag = 0;
      for (int64_t lag = -2400; lag <= 2400; lag++) {
        double c = correlation(y, fr, x, 3000, N - 3000, lag);
        if (c > best) best = c, best_lag = lag;
      }
      CHECK(best > 0.99);
      if (best <= 0.99) fprintf(stderr, "  mp3 best correlation %g at lag %lld\n", best, (long long)best_lag);
      free(y);
    }
  } else {
    CTEST_SKIP("installed libsndfile cannot write MP3; mp3 read test skipped");
  }
}

/* ---- bad input ------------------------------------------------------------------------------- */

static int load_fails(const char *path) {
  float *y = (float *)1; /* must be reset to NULL on failure */
  int64_t fr = 0; int ch = 0, sr = 0;
  err[0] = '\0';
  int rc = fsvc_audio_load(path, &y, &fr, &ch, &sr, err, sizeof err);
  if (rc == 0) { free(y); return 0; }
  return y == NULL && strchr(err, '\n') == NULL && has(err, path);
}

static void test_bad_input(void) {
  char want[1024];
  /* missing file: exact message */
  char missing[512];
  snprintf(missing, sizeof missing, "%s", tpath("missing.wav"));
  CHECK(load_fails(missing));
  snprintf(want, sizeof want, "audio.load: cannot open '%s': No such file or directory", missing);
  CHECK(strcmp(err, want) == 0);
  if (strcmp(err, want) != 0) fprintf(stderr, "  got \"%s\"\n", err);
  fsvc_audio_info info;
  CHECK(fsvc_audio_info_read(missing, &info, err, sizeof err) == -1);
  CHECK_ERR("audio.info: cannot open"); CHECK_ERR("No such file");

  /* a directory */
  CHECK(load_fails(tmpdir));
  CHECK_ERR("Is a directory");

  /* empty file */
  write_bytes(tpath("empty.wav"), "", 0);
  CHECK(load_fails(tpath("empty.wav")));
  CHECK_ERR("empty");

  /* not audio at all */
  const char *text = "hello, this is a text file and not a wav\n";
  write_bytes(tpath("text.wav"), text, strlen(text));
  CHECK(load_fails(tpath("text.wav")));
  CHECK_ERR("not a recognised audio file");
  CHECK(fsvc_audio_info_read(tpath("text.wav"), &info, err, sizeof err) == -1);
  CHECK_ERR("not a recognised audio file");

  size_t n = 0;
  unsigned char *wav = read_bytes(tpath("s16.wav"), &n);
  CHECK(wav != NULL && n == 44 + NFR * 4);
  if (!wav) return;

  /* truncated inside the header */
  write_bytes(tpath("cut_header.wav"), wav, 30);
  CHECK(load_fails(tpath("cut_header.wav")));
  CHECK_ERR("truncated");
  /* truncated inside the data: libsndfile would silently shorten this; we report it */
  write_bytes(tpath("half.wav"), wav, n / 2);
  CHECK(load_fails(tpath("half.wav")));
  CHECK_ERR("truncated");

  /* corrupt header: the chunk ids are garbage */
  unsigned char *bad = malloc(n);
  memcpy(bad, wav, n);
  memcpy(bad + 12, "XXXXYYYY", 8);
  write_bytes(tpath("badhdr.wav"), bad, n);
  CHECK(load_fails(tpath("badhdr.wav")));
  CHECK_ERR("corrupt");
  /* a RIFF/WAVE header whose fmt chunk claims an unknown codec */
  memcpy(bad, wav, n);
  bad[20] = 0x34; bad[21] = 0x12;
  write_bytes(tpath("codec.wav"), bad, n);
  CHECK(load_fails(tpath("codec.wav")));
  CHECK_ERR("cannot decode");

  /* sample rate 0 (offset 24 of a canonical wav header) */
  memcpy(bad, wav, n);
  memset(bad + 24, 0, 4);
  write_bytes(tpath("rate0.wav"), bad, n);
  CHECK(load_fails(tpath("rate0.wav")));
  CHECK_ERR("sample rate 0");

  /* zero frames: a valid header and no data */
  memcpy(bad, wav, 44);
  uint32_t riff = 36, data = 0;
  memcpy(bad + 4, &riff, 4);   /* little-endian host assumed, as in every target */
  memcpy(bad + 40, &data, 4);
  write_bytes(tpath("zero.wav"), bad, 44);
  CHECK(load_fails(tpath("zero.wav")));
  CHECK_ERR("zero frames");
  free(bad);
  free(wav);

  /* truncated flac and ogg */
  unsigned char *flac = read_bytes(tpath("s16.flac"), &n);
  if (flac) {
    write_bytes(tpath("half.flac"), flac, n / 2);
    CHECK(load_fails(tpath("half.flac")));
    CHECK_ERR("truncated");
    write_bytes(tpath("cut.flac"), flac, 20);
    CHECK(load_fails(tpath("cut.flac")));
    CHECK_ERR("truncated");
    free(flac);
  }
  unsigned char *ogg = read_bytes(tpath("tone.ogg"), &n);
  if (ogg) {
    write_bytes(tpath("short.ogg"), ogg, n < 3000 ? n / 2 : 3000);
    CHECK(load_fails(tpath("short.ogg")));
    CHECK_ERR("truncated");
    free(ogg);
  }

  /* NaN and Inf samples in a float wav */
  float x[1000];
  fill_sine(x, 1000, 100, 8000, 0.5, 0);
  x[700] = NAN;
  CHECK(sndfile_write(tpath("nan.wav"), SF_FORMAT_WAV | SF_FORMAT_FLOAT, x, 1000, 1, 8000) == 0);
  CHECK(load_fails(tpath("nan.wav")));
  CHECK_ERR("NaN"); CHECK_ERR("frame 700");
  x[700] = 0.0f;
  x[999] = -INFINITY;
  CHECK(sndfile_write(tpath("inf.wav"), SF_FORMAT_WAV | SF_FORMAT_FLOAT, x, 1000, 1, 8000) == 0);
  CHECK(load_fails(tpath("inf.wav")));
  CHECK_ERR("Inf");

  /* NULL errbuf and a tiny errbuf are safe */
  float *y = NULL;
  CHECK(fsvc_audio_load(missing, &y, NULL, NULL, NULL, NULL, 0) == -1);
  char small[8];
  CHECK(fsvc_audio_load(missing, &y, NULL, NULL, NULL, small, sizeof small) == -1);
  CHECK(strlen(small) == 7);
  CHECK(fsvc_audio_load(NULL, &y, NULL, NULL, NULL, err, sizeof err) == -1);
}

static void test_save_errors_and_atomicity(void) {
  float x[100] = {0};
  CHECK(fsvc_audio_save(tpath("f.flac"), x, 100, 1, 16000, "flac", FSVC_AUDIO_FLOAT32, err, sizeof err) == -1);
  CHECK_ERR("flac"); CHECK_ERR("float32");
  CHECK(fsvc_audio_save(tpath("f.ogg"), x, 100, 1, 16000, NULL, FSVC_AUDIO_PCM16, err, sizeof err) == -1);
  CHECK_ERR("'ogg'");
  CHECK(fsvc_audio_save(tpath("noext"), x, 100, 1, 16000, NULL, FSVC_AUDIO_PCM16, err, sizeof err) == -1);
  CHECK_ERR("extension");
  CHECK(fsvc_audio_save(tpath("r.wav"), x, 100, 1, 0, "wav", FSVC_AUDIO_PCM16, err, sizeof err) == -1);
  CHECK_ERR("sample_rate");
  CHECK(fsvc_audio_save(tpath("r.wav"), x, 0, 1, 16000, "wav", FSVC_AUDIO_PCM16, err, sizeof err) == -1);
  CHECK_ERR("frames");
  CHECK(fsvc_audio_save(tpath("r.wav"), x, 100, 0, 16000, "wav", FSVC_AUDIO_PCM16, err, sizeof err) == -1);
  CHECK_ERR("channels");
  CHECK(fsvc_audio_save(tpath("r.flac"), x, 10, 9, 16000, "flac", FSVC_AUDIO_PCM16, err, sizeof err) == -1);
  CHECK_ERR("9 channels");
  CHECK(fsvc_audio_save(tpath("no/such/dir/a.wav"), x, 100, 1, 16000, "wav", FSVC_AUDIO_PCM16, err, sizeof err) == -1);
  CHECK_ERR("cannot create"); CHECK_ERR("No such file");

  /* an existing good file survives a save that fails midway (NaN well past the first chunk) */
  umask(022);
  char keep[512];
  snprintf(keep, sizeof keep, "%s", tpath("keep.wav"));
  enum { N = 30000 };
  static float good[N], badx[N];
  fill_sine(good, N, 300, 16000, 0.5, 0);
  memcpy(badx, good, sizeof badx);
  badx[N - 5] = NAN;
  CHECK(fsvc_audio_save(keep, good, N, 1, 16000, "wav", FSVC_AUDIO_PCM16, err, sizeof err) == 0);
  struct stat st;
  CHECK(stat(keep, &st) == 0 && (st.st_mode & 0777) == 0644); /* mkstemp's 0600 was widened */
  size_t n0 = 0, n1 = 0;
  unsigned char *before = read_bytes(keep, &n0);
  CHECK(fsvc_audio_save(keep, badx, N, 1, 16000, "wav", FSVC_AUDIO_PCM16, err, sizeof err) == -1);
  CHECK_ERR("NaN"); CHECK_ERR("keep.wav");
  unsigned char *after = read_bytes(keep, &n1);
  CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0);
  free(before); free(after);
  /* replacing keeps the old file's permissions */
  chmod(keep, 0640);
  CHECK(fsvc_audio_save(keep, good, N / 2, 1, 16000, "wav", FSVC_AUDIO_PCM16, err, sizeof err) == 0);
  CHECK(stat(keep, &st) == 0 && (st.st_mode & 0777) == 0640);
  fsvc_audio_info info;
  CHECK(fsvc_audio_info_read(keep, &info, err, sizeof err) == 0 && info.frames == N / 2);

  /* a failure at the final rename (the target is a directory) also cleans up */
  mkdir(tpath("adir.wav"), 0755);
  CHECK(fsvc_audio_save(tpath("adir.wav"), good, N, 1, 16000, "wav", FSVC_AUDIO_PCM16, err, sizeof err) == -1);
  CHECK_ERR("adir.wav");

  /* no temp files left behind by any save in this run, successful or not */
  CHECK(count_dir_entries(tmpdir, ".tmp-") == 0);
}

/* ---- resampling ------------------------------------------------------------------------------ */

static void check_resampled_sine(double from, double to, double freq, double amp) {
  const int64_t n = (int64_t)llround(from); /* one second */
  float *x = malloc((size_t)n * sizeof(float));
  fill_sine(x, n, freq, from, amp, 0.3);
  int64_t m = fsvc_resample_output_length(n, from, to);
  CHECK(m == (int64_t)llround((double)n * to / from));
  float *y = malloc((size_t)(m + 1) * sizeof(float));
  y[m] = 12345.0f; /* guard: nothing written past m */
  int rc = fsvc_resample(x, n, from, to, y, err, sizeof err);
  CHECK(rc == 0);
  if (rc != 0) fprintf(stderr, "  resample %g -> %g: %s\n", from, to, err);
  CHECK(y[m] == 12345.0f);
  float *ref = malloc((size_t)m * sizeof(float));
  fill_sine(ref, m, freq, to, amp, 0.3);
  int64_t a = m / 10, b = m - m / 10; /* away from the edges */
  double corr = correlation(y, m, ref, a, b, 0);
  double p = 0, maxerr = 0;
  for (int64_t i = a; i < b; i++) p += (double)y[i] * y[i];
  double amp_out = sqrt(2.0 * p / (double)(b - a));
  /* sample by sample, all but the filter's edge transients (~100 samples): this also checks that
   * the filter delay is removed (no time shift) and that the tail was flushed, not zero-padded */
  for (int64_t i = 256; i < m - 256; i++)
    if (fabs((double)y[i] - ref[i]) > maxerr) maxerr = fabs((double)y[i] - ref[i]);
  CHECK(corr > 0.999999);
  CHECK_NEAR(amp_out, amp, 1e-3 * amp);
  CHECK(maxerr < 1e-6); /* measured ~3e-8 with VHQ */
  if (!(corr > 0.999999) || maxerr >= 1e-6)
    fprintf(stderr, "  resample %g -> %g: corr %.9f amp %.6f max err %g\n", from, to, corr, amp_out, maxerr);
  free(x); free(y); free(ref);
}

static void test_resample(void) {
  check_resampled_sine(48000, 24000, 1000, 0.5);
  check_resampled_sine(24000, 16000, 1000, 0.5);
  check_resampled_sine(16000, 24000, 1000, 0.5);
  check_resampled_sine(44100, 24000, 1000, 0.5);
  check_resampled_sine(48000, 48000 / M_SQRT2, 1000, 0.5);      /* irrational ratio */
  check_resampled_sine(22050, 22050 * M_PI / 2, 1000, 0.9);     /* irrational, upsampling */
  check_resampled_sine(16000, 16000, 1000, 0.5);                 /* identity */

  /* exact output lengths, including ones soxr would round differently */
  CHECK(fsvc_resample_output_length(48000, 48000, 24000) == 24000);
  CHECK(fsvc_resample_output_length(1001, 48000, 16000) == 334);   /* 333.67 */
  CHECK(fsvc_resample_output_length(1000, 48000, 16000) == 333);   /* 333.33 */
  CHECK(fsvc_resample_output_length(3, 2, 1) == 2);                /* 1.5 rounds up */
  CHECK(fsvc_resample_output_length(12345, 44100, 24000) == 6718); /* 6718.37 */
  for (int64_t n = 1; n < 400; n += 37) {
    int64_t m = fsvc_resample_output_length(n, 44100, 16000);
    CHECK(m == (int64_t)llround(n * 16000.0 / 44100.0));
    if (m > 0) {
      float in[400], out[400];
      fill_sine(in, n, 500, 44100, 0.5, 0);
      CHECK(fsvc_resample(in, n, 44100, 16000, out, err, sizeof err) == 0);
    }
  }

  /* an alias above the new Nyquist is removed, not folded down */
  {
    enum { N = 48000 };
    static float x[N], y[N];
    fill_sine(x, N, 10000, 48000, 0.5, 0);
    CHECK(fsvc_resample(x, N, 48000, 16000, y, err, sizeof err) == 0);
    double p = 0;
    for (int i = 1600; i < 16000 - 1600; i++) p += (double)y[i] * y[i];
    double rms = sqrt(p / (16000 - 3200));
    CHECK(rms < 1e-4);
    if (rms >= 1e-4) fprintf(stderr, "  alias rms %g\n", rms);
  }

  /* errors name the argument */
  float in[10] = {0}, out[100];
  CHECK(fsvc_resample(in, 10, 0, 16000, out, err, sizeof err) == -1); CHECK_ERR("from_rate");
  CHECK(fsvc_resample(in, 10, -1, 16000, out, err, sizeof err) == -1); CHECK_ERR("from_rate");
  CHECK(fsvc_resample(in, 10, NAN, 16000, out, err, sizeof err) == -1); CHECK_ERR("from_rate");
  CHECK(fsvc_resample(in, 10, 16000, INFINITY, out, err, sizeof err) == -1); CHECK_ERR("to_rate");
  CHECK(fsvc_resample(in, 10, 16000, 0, out, err, sizeof err) == -1); CHECK_ERR("to_rate");
  CHECK(fsvc_resample(in, 0, 16000, 8000, out, err, sizeof err) == -1); CHECK_ERR("0 samples");
  CHECK(fsvc_resample(in, 1, 48000, 8000, out, err, sizeof err) == -1); CHECK_ERR("too short");
  CHECK(fsvc_resample(NULL, 10, 16000, 8000, out, err, sizeof err) == -1); CHECK_ERR("NULL");
  CHECK(fsvc_resample_output_length(0, 16000, 8000) == -1);
  CHECK(fsvc_resample_output_length(10, 0, 8000) == -1);
  CHECK(fsvc_resample_output_length(10, 8000, NAN) == -1);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "%s/fsvc_test_audio_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 2; }
  make_stereo();
  test_round_trips();
  test_stereo_layout();
  test_mixdown();
  test_memory_load();
  test_ogg_mp3();
  test_bad_input();
  test_save_errors_and_atomicity();
  test_resample();
  if (getenv("FSVC_KEEP_TMP")) printf("kept %s\n", tmpdir);
  else remove_tree(tmpdir);
  return CTEST_END();
}
