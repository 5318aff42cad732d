/* Tests for Harvest and DIO+StoneMask (core/dsp/harvest.c, dio.c, stonemask.c) against WORLD's
 * own output in <fixtures>/f0 (see MANIFEST.md there), plus argument checks.
 *
 * Acceptance per signal, for Harvest vs NAME.harvest.txt and DIO vs NAME.dio.txt (and Harvest
 * with f0_ceil 1000 vs 03_tone_high_44k.harvest_ceil1000.txt):
 *   - frame count == floor(1000*N/fs/period) + 1 == reference line count
 *   - voicing decisions agree on >= 98% of frames
 *   - on frames both call voiced: median |error| < 1 cent, and < 1% of them off by > 50 cents
 * Timing (Harvest seconds per second of audio) is printed, never asserted. */
#include "ctest.h"
#include "fsvc/f0.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#ifndef FSVC_FIXTURES_DIR
#define FSVC_FIXTURES_DIR "../shared/reference/fixtures"
#endif

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of this thread: less disturbed than wall time on a shared machine. */
static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint32_t rd32(const unsigned char *p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* Minimal RIFF/WAVE reader: 16-bit PCM mono only. Samples are int16 / 32768. */
static double *read_wav(const char *path, int64_t *n, int *fs) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = (unsigned char *)malloc((size_t)size);
  if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
    fclose(f);
    free(buf);
    return NULL;
  }
  fclose(f);
  double *x = NULL;
  if (size < 12 || memcmp(buf, "RIFF", 4) || memcmp(buf + 8, "WAVE", 4)) goto out;
  int channels = 0, bits = 0, format = 0;
  long pos = 12;
  while (pos + 8 <= size) {
    uint32_t len = rd32(buf + pos + 4);
    const unsigned char *body = buf + pos + 8;
    if (!memcmp(buf + pos, "fmt ", 4) && len >= 16) {
      format = rd16(body);
      channels = rd16(body + 2);
      *fs = (int)rd32(body + 4);
      bits = rd16(body + 14);
    } else if (!memcmp(buf + pos, "data", 4)) {
      if (format != 1 || channels != 1 || bits != 16) goto out;
      if (pos + 8 + (long)len > size) len = (uint32_t)(size - pos - 8);
      *n = len / 2;
      x = (double *)malloc(sizeof(double) * (size_t)(*n > 0 ? *n : 1));
      if (!x) goto out;
      for (int64_t i = 0; i < *n; i++) x[i] = (int16_t)rd16(body + 2 * i) / 32768.0;
      goto out;
    }
    pos += 8 + len + (len & 1);
  }
out:
  free(buf);
  return x;
}

/* Reference track: "time f0" per line. Returns the f0 values. */
static double *read_track(const char *path, int64_t *n) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  int64_t cap = 1024, k = 0;
  double *v = (double *)malloc(sizeof(double) * (size_t)cap);
  double t, f0;
  while (v && fscanf(f, "%lf %lf", &t, &f0) == 2) {
    if (k == cap) {
      cap *= 2;
      double *nv = (double *)realloc(v, sizeof(double) * (size_t)cap);
      if (!nv) {
        free(v);
        v = NULL;
        break;
      }
      v = nv;
    }
    v[k++] = f0;
  }
  fclose(f);
  *n = k;
  return v;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  int64_t frames;
  double agree_pct, median_cents, over50_pct;
  int both_voiced;
} stats;

static stats compare(const double *got, const double *ref, int64_t n) {
  stats s = {n, 0, 0, 0, 0};
  double *cents = (double *)malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
  int agree = 0, nb = 0, over = 0;
  for (int64_t i = 0; i < n; i++) {
    int vg = got[i] > 0, vr = ref[i] > 0;
    if (vg == vr) agree++;
    if (vg && vr) {
      double c = fabs(1200.0 * log2(got[i] / ref[i]));
      cents[nb++] = c;
      if (c > 50.0) over++;
    }
  }
  s.agree_pct = n ? 100.0 * agree / n : 0;
  s.both_voiced = nb;
  if (nb > 0) {
    qsort(cents, (size_t)nb, sizeof(double), cmp_double);
    s.median_cents = nb % 2 ? cents[nb / 2] : 0.5 * (cents[nb / 2 - 1] + cents[nb / 2]);
    s.over50_pct = 100.0 * over / nb;
  }
  free(cents);
  return s;
}

static void check_stats(const char *what, const char *name, stats s) {
  int ok = s.agree_pct >= 98.0 && s.both_voiced > 0 && s.median_cents < 1.0 &&
           s.over50_pct < 1.0;
  if (!ok) fprintf(stderr, "FAIL %s %s\n", what, name);
  CHECK(s.agree_pct >= 98.0);
  CHECK(s.both_voiced > 0);
  CHECK(s.median_cents < 1.0);
  CHECK(s.over50_pct < 1.0);
}

static const char *kSignals[] = {
    "01_tone_glide_vibrato_16k", "02_tone_low_24k",        "03_tone_high_44k",
    "04_vowels_srcfilter_24k",   "05_vuv_alternation_22k", "06_speech_espeak_24k",
    "07_speech_flite_noise15dB_24k", "08_hard_edges_16k",
};

static void run_fixtures(const char *dir) {
  char path[2048];
  double total_audio = 0.0, total_harvest = 0.0, total_dio = 0.0, total_harvest_cpu = 0.0;
  printf("%-31s %6s | %-28s | %-28s | %s\n", "signal", "frames", "harvest: agree%  med.c  >50c%",
         "dio: agree%  med.c  >50c%", "harvest s/s (cpu)");
  for (size_t k = 0; k < sizeof(kSignals) / sizeof(kSignals[0]); k++) {
    const char *name = kSignals[k];
    int64_t n = 0;
    int fs = 0;
    snprintf(path, sizeof path, "%s/%s.wav", dir, name);
    double *x = read_wav(path, &n, &fs);
    CHECK(x != NULL);
    if (!x) {
      fprintf(stderr, "cannot read %s\n", path);
      continue;
    }
    fsvc_f0_options o;
    fsvc_f0_default_options(&o);
    int64_t frames = fsvc_f0_frame_count(n, fs, o.frame_period_ms);
    CHECK(frames == (int64_t)(1000.0 * n / fs / 5.0) + 1);
    double *hv = (double *)malloc(sizeof(double) * (size_t)frames);
    double *dv = (double *)malloc(sizeof(double) * (size_t)frames);
    char err[256] = "";
    double c0 = cpu_s(), t0 = now_s();
    int rc = fsvc_harvest(x, n, fs, &o, hv, err, sizeof err);
    double t1 = now_s(), c1 = cpu_s();
    CHECK(rc == 0);
    if (rc) fprintf(stderr, "harvest error: %s\n", err);
    rc = fsvc_dio(x, n, fs, &o, dv, err, sizeof err);
    double t2 = now_s();
    CHECK(rc == 0);
    if (rc) fprintf(stderr, "dio error: %s\n", err);
    double dur = (double)n / fs;
    total_audio += dur;
    total_harvest += t1 - t0;
    total_harvest_cpu += c1 - c0;
    total_dio += t2 - t1;

    int64_t nref = 0;
    snprintf(path, sizeof path, "%s/%s.harvest.txt", dir, name);
    double *href = read_track(path, &nref);
    CHECK(href != NULL && nref == frames);
    stats hs = {0, 0, 0, 0, 0};
    if (href && nref == frames) {
      hs = compare(hv, href, frames);
      check_stats("harvest", name, hs);
    }
    snprintf(path, sizeof path, "%s/%s.dio.txt", dir, name);
    double *dref = read_track(path, &nref);
    CHECK(dref != NULL && nref == frames);
    stats ds = {0, 0, 0, 0, 0};
    if (dref && nref == frames) {
      ds = compare(dv, dref, frames);
      check_stats("dio", name, ds);
    }
    printf("%-31s %6lld | %12.2f %7.3f %7.2f | %10.2f %7.3f %7.2f | %.4f\n", name,
           (long long)frames, hs.agree_pct, hs.median_cents, hs.over50_pct, ds.agree_pct,
           ds.median_cents, ds.over50_pct, (c1 - c0) / dur);

    /* Harvest with f0_ceil 1000 where a reference exists */
    snprintf(path, sizeof path, "%s/%s.harvest_ceil1000.txt", dir, name);
    struct stat st;
    if (stat(path, &st) == 0) {
      double *cref = read_track(path, &nref);
      fsvc_f0_options o2 = o;
      o2.f0_ceil = 1000.0;
      rc = fsvc_harvest(x, n, fs, &o2, hv, err, sizeof err);
      CHECK(rc == 0);
      CHECK(cref != NULL && nref == frames);
      if (cref && nref == frames) {
        stats cs = compare(hv, cref, frames);
        check_stats("harvest_ceil1000", name, cs);
        printf("%-31s %6lld | %12.2f %7.3f %7.2f | %28s |\n", "  (harvest f0_ceil 1000)",
               (long long)frames, cs.agree_pct, cs.median_cents, cs.over50_pct, "");
      }
      free(cref);
    }
    free(href);
    free(dref);
    free(hv);
    free(dv);
    free(x);
  }
  if (total_audio > 0)
    printf("timing (one call each, %.2f s of audio): harvest %.4f s per s of audio CPU time "
           "(%.4f wall), dio+stonemask %.4f s/s wall\n",
           total_audio, total_harvest_cpu / total_audio, total_harvest / total_audio,
           total_dio / total_audio);
}

/* ---- synthetic checks ---------------------------------------------------------------------- */

static void test_synthetic(void) {
  /* A 200 Hz harmonic tone (harmonics 1/k up to 7 kHz) at 16 kHz: both estimators must find it.
   * (Harvest scores a candidate by how well its first 6 harmonics line up, so a tone with only
   * a few harmonics would be judged unvoiced, as in the reference.) */
  const int fs = 16000, n = 16000;
  double *x = (double *)malloc(sizeof(double) * n);
  for (int i = 0; i < n; i++) {
    double ph = 2.0 * 3.14159265358979 * 200.0 * i / fs, v = 0.0;
    for (int k = 1; k * 200 <= 7000; k++) v += sin(k * ph + 0.7 * k * k) / k;
    x[i] = 0.2 * v;
  }
  fsvc_f0_options o;
  fsvc_f0_default_options(&o);
  int64_t frames = fsvc_f0_frame_count(n, fs, o.frame_period_ms);
  CHECK(frames == 201);
  double *f0 = (double *)malloc(sizeof(double) * (size_t)frames);
  char err[256];
  CHECK(fsvc_harvest(x, n, fs, &o, f0, err, sizeof err) == 0);
  CHECK_NEAR(f0[100], 200.0, 0.5);
  CHECK(fsvc_dio(x, n, fs, &o, f0, err, sizeof err) == 0);
  CHECK_NEAR(f0[100], 200.0, 0.5);
  /* StoneMask alone pulls a 5% off initial value back to the true F0 */
  double t = 0.5, in = 210.0, out = 0.0;
  CHECK(fsvc_stonemask(x, n, fs, &t, &in, 1, &out, err, sizeof err) == 0);
  CHECK_NEAR(out, 200.0, 0.2);
  /* other frame periods */
  o.frame_period_ms = 1.0;
  frames = fsvc_f0_frame_count(n, fs, o.frame_period_ms);
  CHECK(frames == 1001);
  double *f1 = (double *)malloc(sizeof(double) * (size_t)frames);
  CHECK(fsvc_harvest(x, n, fs, &o, f1, err, sizeof err) == 0);
  CHECK_NEAR(f1[500], 200.0, 0.5);
  /* silence is unvoiced */
  for (int i = 0; i < n; i++) x[i] = 0.0;
  CHECK(fsvc_harvest(x, n, fs, NULL, f0, err, sizeof err) == 0);
  int voiced = 0;
  for (int i = 0; i < 201; i++) voiced += f0[i] > 0;
  CHECK(voiced == 0);
  /* very short input works */
  CHECK(fsvc_harvest(x, 5, fs, NULL, f0, err, sizeof err) == 0);
  CHECK(fsvc_dio(x, 5, fs, NULL, f0, err, sizeof err) == 0);
  free(f1);
  free(f0);
  free(x);
}

static int has(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

static void test_bad_input(void) {
  double x[1000], f0[64];
  for (int i = 0; i < 1000; i++) x[i] = 0.1 * sin(i * 0.1);
  fsvc_f0_options o;
  fsvc_f0_default_options(&o);
  char err[256];

  err[0] = 0;
  CHECK(fsvc_harvest(x, 0, 16000, &o, f0, err, sizeof err) == -1);
  CHECK(has(err, "harvest") && has(err, "n must be > 0"));
  err[0] = 0;
  CHECK(fsvc_harvest(x, 1000, 0, &o, f0, err, sizeof err) == -1);
  CHECK(has(err, "harvest: sample_rate must be > 0 (got 0)"));
  CHECK(fsvc_dio(x, 1000, -5, &o, f0, err, sizeof err) == -1);
  CHECK(has(err, "dio: sample_rate"));
  CHECK(fsvc_harvest(NULL, 1000, 16000, &o, f0, err, sizeof err) == -1);
  CHECK(has(err, "x must not be NULL"));
  CHECK(fsvc_harvest(x, 1000, 16000, &o, NULL, err, sizeof err) == -1);
  CHECK(has(err, "out_f0"));
  CHECK(fsvc_dio(x, 1000, 16000, &o, NULL, err, sizeof err) == -1);
  CHECK(has(err, "out_f0"));

  x[10] = NAN;
  CHECK(fsvc_harvest(x, 1000, 16000, &o, f0, err, sizeof err) == -1);
  CHECK(has(err, "x[10]") && has(err, "not finite"));
  CHECK(fsvc_dio(x, 1000, 16000, &o, f0, err, sizeof err) == -1);
  x[10] = INFINITY;
  CHECK(fsvc_harvest(x, 1000, 16000, &o, f0, err, sizeof err) == -1);
  CHECK(has(err, "x[10]"));
  x[10] = 0.0;

  fsvc_f0_options b = o;
  b.f0_floor = 500;
  b.f0_ceil = 400;
  CHECK(fsvc_harvest(x, 1000, 16000, &b, f0, err, sizeof err) == -1);
  CHECK(has(err, "f0_ceil must be > f0_floor"));
  b.f0_ceil = 500;
  CHECK(fsvc_dio(x, 1000, 16000, &b, f0, err, sizeof err) == -1);
  CHECK(has(err, "f0_ceil"));
  b = o;
  b.f0_floor = 0;
  CHECK(fsvc_harvest(x, 1000, 16000, &b, f0, err, sizeof err) == -1);
  CHECK(has(err, "f0_floor"));
  b = o;
  b.frame_period_ms = 0;
  CHECK(fsvc_harvest(x, 1000, 16000, &b, f0, err, sizeof err) == -1);
  CHECK(has(err, "frame_period_ms"));
  b = o;
  b.f0_ceil = NAN;
  CHECK(fsvc_harvest(x, 1000, 16000, &b, f0, err, sizeof err) == -1);
  b = o;
  b.speed = 0;
  CHECK(fsvc_dio(x, 1000, 16000, &b, f0, err, sizeof err) == -1);
  CHECK(has(err, "speed"));
  b = o;
  b.f0_ceil = 1000;
  CHECK(fsvc_harvest(x, 1000, 1000, &b, f0, err, sizeof err) == -1);
  CHECK(has(err, "sample_rate / 2"));

  double t = 0.01, in = 100.0;
  CHECK(fsvc_stonemask(x, 1000, 16000, NULL, &in, 1, f0, err, sizeof err) == -1);
  CHECK(has(err, "times"));
  CHECK(fsvc_stonemask(x, 0, 16000, &t, &in, 1, f0, err, sizeof err) == -1);
  in = NAN;
  CHECK(fsvc_stonemask(x, 1000, 16000, &t, &in, 1, f0, err, sizeof err) == -1);
  CHECK(has(err, "f0_in[0]"));
  /* NULL errbuf is fine */
  CHECK(fsvc_harvest(x, 0, 16000, &o, f0, NULL, 0) == -1);

  CHECK(fsvc_f0_frame_count(0, 16000, 5.0) == -1);
  CHECK(fsvc_f0_frame_count(32219, 16000, 5.0) == 403);
  CHECK(fsvc_f0_frame_count(40000, 16000, 5.0) == 501);
  o.f0_floor = 1; /* touch defaults struct */
  fsvc_f0_default_options(&o);
  CHECK(o.f0_floor == 71.0 && o.f0_ceil == 800.0 && o.frame_period_ms == 5.0 &&
        o.allowed_range == 0.1 && o.channels_in_octave == 2.0 && o.speed == 1);
}

int main(void) {
  test_bad_input();
  test_synthetic();
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/f0", FSVC_FIXTURES_DIR);
  struct stat st;
  if (stat(dir, &st) != 0) {
    CTEST_SKIP("F0 fixtures not found (" FSVC_FIXTURES_DIR "/f0); comparison with WORLD skipped");
  } else {
    run_fixtures(dir);
  }
  return CTEST_END();
}
