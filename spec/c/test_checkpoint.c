/* Checkpoints in the C core: safetensors round trips, mapping lifetime, atomic writes, strict
 * validation of corrupt files, and torch.save imports (fixtures in spec/data). */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctest.h"
#include "fsvc/checkpoint.h"
#include "fsvc/error.h"
#include "io/zip_reader.h"

static char tmpdir[256];

static void path_in_tmp(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmpdir, name); }

static int count_temp_files(void) {
  int n = 0;
  DIR *d = opendir(tmpdir);
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (strstr(e->d_name, ".tmp.")) n++;
  if (d) closedir(d);
  return n;
}

static unsigned char *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)n + 1);
  *size = fread(b, 1, (size_t)n, f);
  fclose(f);
  return b;
}

static int tensors_equal(const fsvc_tensor *a, const fsvc_tensor *b) {
  if (a->dtype != b->dtype || !fsvc_same_shape(a, b)) return 0;
  for (int64_t i = 0; i < fsvc_numel(a); i++)
    if (fsvc_get_flat(a, i) != fsvc_get_flat(b, i)) return 0;
  return 1;
}

static fsvc_tensor *ramp(int ndim, const int64_t *shape, fsvc_dtype dt, double scale) {
  fsvc_tensor *t = fsvc_empty(ndim, shape, dt);
  for (int64_t i = 0; i < fsvc_numel(t); i++) fsvc_set_flat(t, i, (double)(i - 3) * scale);
  return t;
}

static void test_round_trip(void) {
  char path[300];
  path_in_tmp(path, sizeof path, "rt.safetensors");
  fsvc_tensor_dict *d = fsvc_tensor_dict_new();
  int64_t s23[] = {2, 3}, s5[] = {5}, s0[] = {0, 4}, s46[] = {4, 6};
  fsvc_tensor *ts[7];
  ts[0] = ramp(2, s23, FSVC_FLOAT32, 0.25);
  ts[1] = ramp(2, s23, FSVC_FLOAT64, 1.0 / 3);
  ts[2] = ramp(1, s5, FSVC_INT64, 1e12);
  ts[3] = ramp(1, s5, FSVC_FLOAT16, 0.5);
  ts[4] = ramp(2, s23, FSVC_BFLOAT16, 2);
  ts[5] = fsvc_zeros(2, s0, FSVC_FLOAT32);
  fsvc_tensor *base = ramp(2, s46, FSVC_FLOAT32, 1);
  int64_t tshape[] = {6, 4}, tstride[] = {1, 6};
  ts[6] = fsvc_view_raw(base, 2, tshape, tstride, 0); /* transposed view */
  const char *names[] = {"f32", "f64", "i64", "f16", "bf16", "empty", "dec.ups.0.weight"};
  for (int i = 0; i < 7; i++) CHECK(fsvc_tensor_dict_set(d, names[i], ts[i]) == 0);
  fsvc_tensor *scalar = fsvc_scalar(7.5, FSVC_FLOAT32);
  CHECK(fsvc_tensor_dict_set(d, "scalar", scalar) == 0);
  CHECK(fsvc_tensor_dict_set_meta(d, "config", "{\"hop\": 320}\n\"quoted\"") == 0);
  CHECK(fsvc_tensor_dict_set_meta(d, "format", "pt") == 0);
  CHECK(fsvc_tensor_dict_count(d) == 8);
  CHECK(fsvc_safetensors_save(path, d) == 0);
  CHECK(count_temp_files() == 0);

  fsvc_tensor_dict *r = fsvc_safetensors_load(path);
  CHECK(r != NULL);
  if (!r) { fprintf(stderr, "%s\n", fsvc_last_error()); return; }
  CHECK(fsvc_tensor_dict_count(r) == 8);
  for (int i = 0; i < 7; i++) {
    fsvc_tensor *t = fsvc_tensor_dict_get(r, names[i]);
    CHECK(t && tensors_equal(t, ts[i]));
  }
  fsvc_tensor *sc = fsvc_tensor_dict_get(r, "scalar");
  CHECK(sc && sc->ndim == 0 && fsvc_get_flat(sc, 0) == 7.5);
  CHECK(fsvc_tensor_dict_get_meta(r, "config") &&
        strcmp(fsvc_tensor_dict_get_meta(r, "config"), "{\"hop\": 320}\n\"quoted\"") == 0);
  CHECK(fsvc_tensor_dict_get_meta(r, "format") && strcmp(fsvc_tensor_dict_get_meta(r, "format"), "pt") == 0);
  /* keys sorted in the header; header length a multiple of 8 */
  size_t n;
  unsigned char *bytes = read_file(path, &n);
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = hl << 8 | bytes[i];
  CHECK(hl % 8 == 0);
  char *hdr = strndup((char *)bytes + 8, hl);
  char *pm = strstr(hdr, "__metadata__"), *pb = strstr(hdr, "\"bf16\""), *pf = strstr(hdr, "\"f32\"");
  CHECK(pm && pb && pf && pm < pb && pb < pf);
  free(hdr);
  free(bytes);

  /* mapping lifetime: tensors outlive the dict */
  fsvc_tensor *keep = fsvc_tensor_retain(fsvc_tensor_dict_get(r, "f64"));
  fsvc_tensor_dict_free(r);
  CHECK(tensors_equal(keep, ts[1]));
  fsvc_set_flat(keep, 0, 99); /* writable (private mapping) */
  CHECK(fsvc_get_flat(keep, 0) == 99);
  fsvc_tensor_release(keep);
  fsvc_tensor_dict *again = fsvc_safetensors_load(path);
  CHECK(again && fsvc_get_flat(fsvc_tensor_dict_get(again, "f64"), 0) == -1.0);
  fsvc_tensor_dict_free(again);

  /* checkpoint_load dispatches to safetensors */
  fsvc_tensor_dict *c = fsvc_checkpoint_load(path);
  CHECK(c && fsvc_tensor_dict_count(c) == 8);
  fsvc_tensor_dict_free(c);

  /* a failed save leaves the previous file as it was, and no temp file */
  bytes = read_file(path, &n);
  fsvc_tensor *freed = fsvc_zeros(1, s5, FSVC_FLOAT32);
  fsvc_tensor_free_data(freed);
  CHECK(fsvc_tensor_dict_set(d, "freed", freed) == 0);
  CHECK(fsvc_safetensors_save(path, d) == -1);
  CHECK(strstr(fsvc_last_error(), "freed") && strstr(fsvc_last_error(), path));
  fsvc_tensor_dict *bad = fsvc_tensor_dict_new();
  fsvc_value iv = {FSVC_VALUE_INT, 3, 0, NULL};
  fsvc_tensor_dict_set(bad, "w", ts[0]);
  fsvc_tensor_dict_set_value(bad, "epoch", iv);
  CHECK(fsvc_safetensors_save(path, bad) == -1);
  CHECK(strstr(fsvc_last_error(), "epoch") != NULL);
  fsvc_tensor_dict_free(bad);
  size_t n2;
  unsigned char *bytes2 = read_file(path, &n2);
  CHECK(n == n2 && memcmp(bytes, bytes2, n) == 0);
  CHECK(count_temp_files() == 0);
  free(bytes);
  free(bytes2);
  char nodir[300];
  path_in_tmp(nodir, sizeof nodir, "missing/dir/x.safetensors");
  CHECK(fsvc_safetensors_save(nodir, d) == -1);

  /* an empty dict is a valid file */
  fsvc_tensor_dict *empty = fsvc_tensor_dict_new();
  CHECK(fsvc_safetensors_save(path, empty) == 0);
  fsvc_tensor_dict *e2 = fsvc_safetensors_load(path);
  CHECK(e2 && fsvc_tensor_dict_count(e2) == 0);
  fsvc_tensor_dict_free(e2);
  fsvc_tensor_dict_free(empty);

  fsvc_tensor_release(freed);
  fsvc_tensor_release(scalar);
  fsvc_tensor_release(base);
  for (int i = 0; i < 7; i++) fsvc_tensor_release(ts[i]);
  fsvc_tensor_dict_free(d);
  unlink(path);
}

/* Builds "len8 + header(padded) + data" in memory. */
static unsigned char *st_bytes(const char *json, size_t data_len, size_t *n, int pad) {
  size_t hl = strlen(json), padded = pad ? (hl + 7) / 8 * 8 : hl;
  *n = 8 + padded + data_len;
  unsigned char *b = calloc(1, *n);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)padded >> (8 * i));
  memcpy(b + 8, json, hl);
  memset(b + 8 + hl, ' ', padded - hl);
  for (size_t i = 0; i < data_len; i++) b[8 + padded + i] = (unsigned char)i;
  return b;
}

static void expect_bad(const char *json, size_t data_len, const char *needle) {
  size_t n;
  unsigned char *b = st_bytes(json, data_len, &n, 1);
  fsvc_tensor_dict *d = fsvc_safetensors_load_memory(b, n, "bad.safetensors");
  CHECK(d == NULL);
  const char *e = fsvc_last_error();
  int ok = d == NULL && strstr(e, "bad.safetensors") && strstr(e, needle) && !strchr(e, '\n');
  CHECK(ok);
  if (!ok) fprintf(stderr, "  json %s\n  error: %s (wanted '%s')\n", json, e, needle);
  fsvc_tensor_dict_free(d);
  free(b);
}

static void test_bad_safetensors(void) {
  /* structural */
  CHECK(fsvc_safetensors_load_memory("", 0, "bad.safetensors") == NULL);
  CHECK(strstr(fsvc_last_error(), "truncated") != NULL);
  unsigned char huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
  CHECK(fsvc_safetensors_load_memory(huge, 16, "bad.safetensors") == NULL);
  CHECK(strstr(fsvc_last_error(), "header length") != NULL);
  unsigned char past[16] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
  CHECK(fsvc_safetensors_load_memory(past, 16, "bad.safetensors") == NULL);
  CHECK(strstr(fsvc_last_error(), "header length") != NULL);
  CHECK(fsvc_safetensors_load("/nonexistent/file.safetensors") == NULL);
  CHECK(strstr(fsvc_last_error(), "/nonexistent/file.safetensors") != NULL);

  const char *w = "\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}";
  char buf[512];
  /* JSON */
  expect_bad("[]", 8, "expected '{'");
  expect_bad("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}", 8, "JSON");
  expect_bad("{\"w\" {\"dtype\": \"F32\"}}", 8, "expected ':'");
  expect_bad("{\"w\": {\"dtype\": \"F32\", \"shape\": [2,], \"data_offsets\": [0, 8]}}", 8, "integer");
  expect_bad("{\"w\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", 8, "integer");
  expect_bad("{\"w\": {\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, 8]}}", 8, "fraction");
  expect_bad("{\"w\": {\"dtype\": \"F\\q32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "escape");
  expect_bad("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}} x", 8, "after the header");
  expect_bad("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 99999999999999999999]}}", 8, "too large");
  expect_bad("{\"w\": {\"x\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}", 0, "deeply");
  /* semantics, naming the key */
  expect_bad("{\"w\": {\"dtype\": \"F33\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "'w': unsupported dtype 'F33'");
  expect_bad("{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 12, "'w': shape [3]");
  expect_bad("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4, "'w': data_offsets [0, 8] out of range");
  expect_bad("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", 8, "'w'");
  expect_bad("{\"w\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8, "'w': missing \"data_offsets\"");
  expect_bad("{\"w\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "'w': missing \"dtype\"");
  expect_bad("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8, 9]}}", 8, "[begin, end]");
  expect_bad("{\"w\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,2], \"data_offsets\": [0, 8]}}", 8, "more than 8 dims");
  expect_bad("{\"w\": {\"dtype\": \"F32\", \"shape\": [1099511627776, 1099511627776], \"data_offsets\": [0, 8]}}", 8, "too large");
  snprintf(buf, sizeof buf, "{%s, \"v\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", w);
  expect_bad(buf, 12, "overlap");
  snprintf(buf, sizeof buf, "{%s, %s}", w, w);
  expect_bad(buf, 8, "'w' appears twice");
  expect_bad("{\"__metadata__\": {\"k\": 3}}", 0, "'k': values must be strings");

  /* accepted: unknown fields skipped, widened integer dtypes, unpadded header, misaligned data */
  {
    size_t n;
    unsigned char *b = st_bytes("{\"b\": {\"dtype\": \"BOOL\", \"shape\": [3], \"data_offsets\": [0, 3], \"extra\": {\"x\": [1, null, true, -2.5e3, \"s\"]}},"
                                " \"i\": {\"dtype\": \"I16\", \"shape\": [2], \"data_offsets\": [3, 7]},"
                                " \"f\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [7, 11]}}", 11, &n, 0);
    b[n - 11 + 0] = 0, b[n - 11 + 1] = 1, b[n - 11 + 2] = 2;              /* bool 0, 1, 2 -> 0, 1, 1 */
    b[n - 11 + 3] = 0xfe, b[n - 11 + 4] = 0xff, b[n - 11 + 5] = 7, b[n - 11 + 6] = 0; /* -2, 7 */
    float one = 1.5f;
    memcpy(b + n - 4, &one, 4);
    fsvc_tensor_dict *d = fsvc_safetensors_load_memory(b, n, "ok.safetensors");
    CHECK(d != NULL);
    if (d) {
      fsvc_tensor *tb = fsvc_tensor_dict_get(d, "b"), *ti = fsvc_tensor_dict_get(d, "i"),
                  *tf = fsvc_tensor_dict_get(d, "f");
      CHECK(tb && tb->dtype == FSVC_INT64 && fsvc_get_flat(tb, 0) == 0 && fsvc_get_flat(tb, 2) == 1);
      CHECK(ti && ti->dtype == FSVC_INT64 && fsvc_get_flat(ti, 0) == -2 && fsvc_get_flat(ti, 1) == 7);
      CHECK(tf && tf->dtype == FSVC_FLOAT32 && fsvc_get_flat(tf, 0) == 1.5);
      CHECK(strcmp(fsvc_tensor_dict_name(d, 0), "b") == 0); /* header order kept */
    } else fprintf(stderr, "%s\n", fsvc_last_error());
    fsvc_tensor_dict_free(d);
    free(b);
  }
  {
    size_t n;
    unsigned char *b = st_bytes("{\"__metadata__\": {\"k\\u00e9\\ud83d\\ude00\": \"v\\n\"}}", 0, &n, 1);
    fsvc_tensor_dict *d = fsvc_safetensors_load_memory(b, n, "ok.safetensors");
    CHECK(d && fsvc_tensor_dict_get_meta(d, "k\xc3\xa9\xf0\x9f\x98\x80") &&
          strcmp(fsvc_tensor_dict_get_meta(d, "k\xc3\xa9\xf0\x9f\x98\x80"), "v\n") == 0);
    fsvc_tensor_dict_free(d);
    free(b);
  }
  /* every truncation of a valid file fails cleanly */
  {
    char path[300];
    path_in_tmp(path, sizeof path, "trunc.safetensors");
    fsvc_tensor_dict *d = fsvc_tensor_dict_new();
    int64_t s[] = {3, 5};
    fsvc_tensor *t = ramp(2, s, FSVC_FLOAT32, 1);
    fsvc_tensor_dict_set(d, "w", t);
    fsvc_tensor_dict_set_meta(d, "m", "x");
    fsvc_safetensors_save(path, d);
    size_t n;
    unsigned char *b = read_file(path, &n);
    int all_fail = 1;
    for (size_t k = 0; k < n; k++) {
      fsvc_tensor_dict *r = fsvc_safetensors_load_memory(b, k, "trunc");
      if (r) all_fail = 0;
      fsvc_tensor_dict_free(r);
    }
    CHECK(all_fail);
    fsvc_tensor_dict *r = fsvc_safetensors_load_memory(b, n, "full");
    CHECK(r && tensors_equal(fsvc_tensor_dict_get(r, "w"), t));
    fsvc_tensor_dict_free(r);
    free(b);
    fsvc_tensor_release(t);
    fsvc_tensor_dict_free(d);
    unlink(path);
  }
}

static void test_torch(void) {
  fsvc_tensor_dict *d = fsvc_torch_load("spec/data/dtypes.pt");
  CHECK(d != NULL);
  if (!d) { fprintf(stderr, "%s\n", fsvc_last_error()); return; }
  fsvc_tensor *i64 = fsvc_tensor_dict_get(d, "i64"), *u8 = fsvc_tensor_dict_get(d, "u8"),
              *flag = fsvc_tensor_dict_get(d, "flag"), *sc = fsvc_tensor_dict_get(d, "scalar");
  CHECK(i64 && i64->dtype == FSVC_INT64 && i64->ndim == 2 && fsvc_get_flat(i64, 0) == -3 &&
        fsvc_get_flat(i64, 9) == 6);
  CHECK(u8 && u8->dtype == FSVC_INT64 && fsvc_get_flat(u8, 2) == 255);
  CHECK(flag && fsvc_get_flat(flag, 0) == 1 && fsvc_get_flat(flag, 1) == 0);
  CHECK(sc && sc->ndim == 0 && fsvc_get_flat(sc, 0) == 2.5);
  CHECK(fsvc_tensor_dict_get(d, "f16") && fsvc_tensor_dict_get(d, "f16")->dtype == FSVC_FLOAT16);
  CHECK(fsvc_tensor_dict_get(d, "bf16") && fsvc_tensor_dict_get(d, "bf16")->dtype == FSVC_BFLOAT16);
  /* tensors outlive the dict (and the mapping) */
  fsvc_tensor *keep = fsvc_tensor_retain(i64);
  fsvc_tensor_dict_free(d);
  CHECK(fsvc_get_flat(keep, 9) == 6);
  fsvc_tensor_release(keep);

  /* shared storage stays shared */
  d = fsvc_torch_load("spec/data/shared.pt");
  CHECK(d && fsvc_tensor_dict_get(d, "a")->storage == fsvc_tensor_dict_get(d, "whole")->storage);
  fsvc_tensor_dict_free(d);

  /* nested checkpoint: dotted names and scalar values */
  d = fsvc_torch_load("spec/data/nested.pt");
  CHECK(d && fsvc_tensor_dict_get(d, "model.0.weight") && fsvc_tensor_dict_get(d, "optimizer.state.0.exp_avg"));
  const fsvc_value *epoch = fsvc_tensor_dict_get_value(d, "epoch"), *loss = fsvc_tensor_dict_get_value(d, "loss");
  CHECK(epoch && epoch->kind == FSVC_VALUE_INT && epoch->i == 7);
  CHECK(loss && loss->kind == FSVC_VALUE_FLOAT && loss->f == 0.25);
  CHECK(fsvc_tensor_dict_get_meta(d, "name") && strcmp(fsvc_tensor_dict_get_meta(d, "name"), "fsvc-test") == 0);
  const fsvc_value *none = fsvc_tensor_dict_get_value(d, "nothing");
  CHECK(none && none->kind == FSVC_VALUE_NONE);
  fsvc_tensor_dict_free(d);

  d = fsvc_checkpoint_load("spec/data/weightnorm.pt");
  CHECK(d && fsvc_tensor_dict_get(d, "weight_g") && fsvc_tensor_dict_get(d, "weight_v"));
  fsvc_tensor_dict_free(d);

  /* deflate: works with zlib linked, else a clear error */
  d = fsvc_torch_load("spec/data/deflated.pt");
  if (fsvc_zip_has_inflate()) CHECK(d && fsvc_tensor_dict_count(d) == 10);
  else CHECK(!d && strstr(fsvc_last_error(), "zlib"));
  fsvc_tensor_dict_free(d);

  /* refusals name the file */
  CHECK(fsvc_torch_load("spec/data/legacy.pt") == NULL);
  CHECK(strstr(fsvc_last_error(), "legacy") && strstr(fsvc_last_error(), "spec/data/legacy.pt"));
  CHECK(fsvc_checkpoint_load("spec/data/legacy.pt") == NULL);
  CHECK(strstr(fsvc_last_error(), "legacy") != NULL);
  CHECK(fsvc_torch_load("spec/data/make_pt_fixtures.py") == NULL);
  CHECK(strstr(fsvc_last_error(), "zip") != NULL);

  /* every truncation and many single-byte corruptions of a real file fail cleanly or load */
  size_t n;
  unsigned char *b = read_file("spec/data/nested.pt", &n);
  int truncs_fail = 1;
  for (size_t k = 0; k < n; k += 7) {
    fsvc_tensor_dict *r = fsvc_torch_load_memory(b, k, "trunc.pt");
    if (r) truncs_fail = 0;
    else if (!strstr(fsvc_last_error(), "trunc.pt")) truncs_fail = 0;
    fsvc_tensor_dict_free(r);
  }
  CHECK(truncs_fail);
  unsigned char *c = malloc(n);
  unsigned seed = 1;
  for (int k = 0; k < 3000; k++) {
    memcpy(c, b, n);
    seed = seed * 1103515245u + 12345u;
    c[(seed >> 8) % n] ^= (unsigned char)(1 + (seed >> 24) % 255);
    fsvc_tensor_dict *r = fsvc_torch_load_memory(c, n, "corrupt.pt");
    fsvc_tensor_dict_free(r);
  }
  CHECK(1); /* survived (ASan builds check the memory) */
  free(c);
  free(b);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/fsvc_ckpt_XXXXXX");
  if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
  test_round_trip();
  test_bad_safetensors();
  test_torch();
  rmdir(tmpdir);
  return CTEST_END();
}
