/* safetensors read (memory-mapped, strictly validated) and atomic write.
 *
 * Format: u64 little-endian N, N bytes of JSON header, then the byte buffer:
 *   {"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}}
 * Offsets are relative to the start of the buffer. The JSON parser below reads exactly this shape
 * (objects, strings, integer arrays) and skips unknown fields of any JSON type. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsvc/checkpoint.h"
#include "fsvc/device.h"
#include "fsvc/error.h"
#include "io_internal.h"

#define OP_LOAD "load_safetensors"
#define OP_SAVE "save_safetensors"
/* The reference implementation refuses headers above 100 MB; so do we (a corrupt length field
 * must not make us scan gigabytes). */
#define MAX_HEADER ((uint64_t)100 * 1000 * 1000)
#define MAX_JSON_DEPTH 64

/* ---- dtypes --------------------------------------------------------------------------------- */
typedef struct {
  const char *code;
  int size;
  fsvc_dtype dt;   /* the fsvc dtype it loads as */
  int widen;       /* stored integer type copied into int64 */
  int is_signed;   /* for widening */
} st_dtype;

static const st_dtype st_dtypes[] = {
    {"F32", 4, FSVC_FLOAT32, 0, 0}, {"F64", 8, FSVC_FLOAT64, 0, 0},
    {"F16", 2, FSVC_FLOAT16, 0, 0}, {"BF16", 2, FSVC_BFLOAT16, 0, 0},
    {"I64", 8, FSVC_INT64, 0, 1},   {"I32", 4, FSVC_INT64, 1, 1},
    {"I16", 2, FSVC_INT64, 1, 1},   {"I8", 1, FSVC_INT64, 1, 1},
    {"U8", 1, FSVC_INT64, 1, 0},    {"BOOL", 1, FSVC_INT64, 1, 0},
};
#define N_ST_DTYPES (sizeof st_dtypes / sizeof st_dtypes[0])

static const char *st_code_of(fsvc_dtype dt) {
  for (size_t i = 0; i < N_ST_DTYPES; i++)
    if (!st_dtypes[i].widen && st_dtypes[i].dt == dt) return st_dtypes[i].code;
  return NULL;
}

/* ---- JSON reading --------------------------------------------------------------------------- */
typedef struct {
  const char *p, *end;
  const char *file;
  int failed;
} json_in;

typedef struct {
  char *name;
  const st_dtype *dtype;
  int ndim;
  int64_t shape[FSVC_MAX_DIMS];
  uint64_t begin, end;
  int have_dtype, have_shape, have_offsets;
} st_entry;

/* Sets the error once: "load_safetensors: file: header: msg (at byte k)". */
FSVC_PRINTF(3, 4) static void jerr(json_in *in, const char *start, const char *fmt, ...);
#include <stdarg.h>
static void jerr(json_in *in, const char *start, const char *fmt, ...) {
  if (in->failed) return;
  in->failed = 1;
  char msg[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fsvc_set_error("%s: %s: invalid JSON header: %s (at header byte %ld)", OP_LOAD, in->file, msg,
                 (long)(in->p - start));
}

static void skip_ws(json_in *in) {
  while (in->p < in->end && (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r'))
    in->p++;
}

static int expect(json_in *in, const char *start, char c) {
  skip_ws(in);
  if (in->p >= in->end || *in->p != c) {
    if (in->p >= in->end) jerr(in, start, "expected '%c', got the end of the header", c);
    else jerr(in, start, "expected '%c', got '%c'", c, *in->p);
    return -1;
  }
  in->p++;
  return 0;
}

static int peek(json_in *in, char c) {
  skip_ws(in);
  return in->p < in->end && *in->p == c;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int read_hex4(json_in *in, const char *start, unsigned *out) {
  if (in->end - in->p < 4) { jerr(in, start, "truncated \\u escape"); return -1; }
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(in->p[i]);
    if (h < 0) { jerr(in, start, "bad \\u escape"); return -1; }
    v = v * 16 + (unsigned)h;
  }
  in->p += 4;
  *out = v;
  return 0;
}

/* A JSON string, unescaped into a new NUL-terminated buffer (NULL on error). */
static char *read_string(json_in *in, const char *start) {
  if (expect(in, start, '"')) return NULL;
  size_t cap = 32, n = 0;
  char *s = malloc(cap);
  if (!s) { jerr(in, start, "out of memory"); return NULL; }
  for (;;) {
    if (in->p >= in->end) { jerr(in, start, "unterminated string"); break; }
    unsigned char c = (unsigned char)*in->p++;
    char buf[4];
    int len = 0;
    if (c == '"') { s[n] = '\0'; return s; }
    if (c < 0x20) { jerr(in, start, "control character in a string"); break; }
    if (c != '\\') {
      buf[len++] = (char)c;
    } else {
      if (in->p >= in->end) { jerr(in, start, "unterminated string"); break; }
      char e = *in->p++;
      unsigned cp;
      switch (e) {
        case '"': case '\\': case '/': buf[len++] = e; break;
        case 'b': buf[len++] = '\b'; break;
        case 'f': buf[len++] = '\f'; break;
        case 'n': buf[len++] = '\n'; break;
        case 'r': buf[len++] = '\r'; break;
        case 't': buf[len++] = '\t'; break;
        case 'u':
          if (read_hex4(in, start, &cp)) goto fail;
          if (cp >= 0xd800 && cp < 0xdc00) { /* surrogate pair */
            unsigned lo;
            if (in->end - in->p < 2 || in->p[0] != '\\' || in->p[1] != 'u') {
              jerr(in, start, "unpaired surrogate in \\u escape");
              goto fail;
            }
            in->p += 2;
            if (read_hex4(in, start, &lo)) goto fail;
            if (lo < 0xdc00 || lo > 0xdfff) { jerr(in, start, "unpaired surrogate in \\u escape"); goto fail; }
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else if (cp >= 0xdc00 && cp < 0xe000) {
            jerr(in, start, "unpaired surrogate in \\u escape");
            goto fail;
          }
          if (cp == 0) { jerr(in, start, "NUL character in a string"); goto fail; }
          if (cp < 0x80) buf[len++] = (char)cp;
          else if (cp < 0x800) { buf[len++] = (char)(0xc0 | (cp >> 6)); buf[len++] = (char)(0x80 | (cp & 0x3f)); }
          else if (cp < 0x10000) {
            buf[len++] = (char)(0xe0 | (cp >> 12));
            buf[len++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            buf[len++] = (char)(0x80 | (cp & 0x3f));
          } else {
            buf[len++] = (char)(0xf0 | (cp >> 18));
            buf[len++] = (char)(0x80 | ((cp >> 12) & 0x3f));
            buf[len++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            buf[len++] = (char)(0x80 | (cp & 0x3f));
          }
          break;
        default: jerr(in, start, "bad escape '\\%c'", e); goto fail;
      }
    }
    if (n + (size_t)len + 1 > cap) {
      cap *= 2;
      char *ns = realloc(s, cap);
      if (!ns) { jerr(in, start, "out of memory"); break; }
      s = ns;
    }
    memcpy(s + n, buf, (size_t)len);
    n += (size_t)len;
  }
fail:
  free(s);
  return NULL;
}

/* A non-negative integer that fits in 2^53 (what JSON writers produce exactly). */
static int read_uint(json_in *in, const char *start, uint64_t *out) {
  skip_ws(in);
  const char *s = in->p;
  uint64_t v = 0;
  while (in->p < in->end && *in->p >= '0' && *in->p <= '9') {
    if (v > ((uint64_t)1 << 53)) { jerr(in, start, "integer too large"); return -1; }
    v = v * 10 + (uint64_t)(*in->p++ - '0');
  }
  if (in->p == s) { jerr(in, start, "expected a non-negative integer"); return -1; }
  if (in->p < in->end && (*in->p == '.' || *in->p == 'e' || *in->p == 'E')) {
    jerr(in, start, "expected an integer, got a fraction");
    return -1;
  }
  *out = v;
  return 0;
}

static int skip_value(json_in *in, const char *start, int depth);

static int skip_container(json_in *in, const char *start, int depth, char close, int is_object) {
  in->p++;
  if (peek(in, close)) { in->p++; return 0; }
  for (;;) {
    if (is_object) {
      char *k = read_string(in, start);
      if (!k) return -1;
      free(k);
      if (expect(in, start, ':')) return -1;
    }
    if (skip_value(in, start, depth + 1)) return -1;
    if (peek(in, ',')) { in->p++; continue; }
    return expect(in, start, close);
  }
}

static int skip_value(json_in *in, const char *start, int depth) {
  if (depth > MAX_JSON_DEPTH) { jerr(in, start, "nested too deeply"); return -1; }
  skip_ws(in);
  if (in->p >= in->end) { jerr(in, start, "expected a value, got the end of the header"); return -1; }
  char c = *in->p;
  if (c == '{') return skip_container(in, start, depth, '}', 1);
  if (c == '[') return skip_container(in, start, depth, ']', 0);
  if (c == '"') {
    char *s = read_string(in, start);
    free(s);
    return s ? 0 : -1;
  }
  static const char *const words[] = {"true", "false", "null"};
  for (int i = 0; i < 3; i++) {
    size_t n = strlen(words[i]);
    if ((size_t)(in->end - in->p) >= n && memcmp(in->p, words[i], n) == 0) { in->p += n; return 0; }
  }
  const char *s = in->p;
  if (*in->p == '-') in->p++;
  while (in->p < in->end && strchr("0123456789.eE+-", *in->p)) in->p++;
  if (in->p == s || (in->p == s + 1 && *s == '-')) { jerr(in, start, "unexpected character '%c'", c); return -1; }
  return 0;
}

static int read_tensor_info(json_in *in, const char *start, st_entry *e) {
  if (expect(in, start, '{')) return -1;
  if (peek(in, '}')) { in->p++; return 0; }
  for (;;) {
    char *k = read_string(in, start);
    if (!k) return -1;
    if (expect(in, start, ':')) { free(k); return -1; }
    int rc = 0;
    if (strcmp(k, "dtype") == 0) {
      char *code = read_string(in, start);
      if (!code) rc = -1;
      else {
        e->dtype = NULL;
        for (size_t i = 0; i < N_ST_DTYPES; i++)
          if (strcmp(code, st_dtypes[i].code) == 0) e->dtype = &st_dtypes[i];
        if (!e->dtype) {
          fsvc_set_error("%s: %s: tensor '%s': unsupported dtype '%.40s' (fsvc reads F32, F64, F16, "
                         "BF16, I64, I32, I16, I8, U8, BOOL)", OP_LOAD, in->file, e->name, code);
          in->failed = 1;
          rc = -1;
        }
        e->have_dtype = 1;
        free(code);
      }
    } else if (strcmp(k, "shape") == 0 || strcmp(k, "data_offsets") == 0) {
      int is_shape = k[0] == 's';
      uint64_t vals[FSVC_MAX_DIMS + 1];
      int n = 0;
      if (expect(in, start, '[')) rc = -1;
      else if (peek(in, ']')) in->p++;
      else
        for (;;) {
          uint64_t v;
          if (read_uint(in, start, &v)) { rc = -1; break; }
          if (n >= (is_shape ? FSVC_MAX_DIMS : 2)) {
            fsvc_set_error("%s: %s: tensor '%s': %s", OP_LOAD, in->file, e->name,
                           is_shape ? "more than 8 dims" : "data_offsets must be [begin, end]");
            in->failed = 1;
            rc = -1;
            break;
          }
          vals[n++] = v;
          if (peek(in, ',')) { in->p++; continue; }
          rc = expect(in, start, ']');
          break;
        }
      if (rc == 0 && is_shape) {
        e->ndim = n;
        for (int i = 0; i < n; i++) e->shape[i] = (int64_t)vals[i];
        e->have_shape = 1;
      } else if (rc == 0) {
        if (n != 2) {
          fsvc_set_error("%s: %s: tensor '%s': data_offsets must be [begin, end]", OP_LOAD, in->file,
                         e->name);
          in->failed = 1;
          rc = -1;
        } else {
          e->begin = vals[0];
          e->end = vals[1];
          e->have_offsets = 1;
        }
      }
    } else {
      rc = skip_value(in, start, 2);
    }
    free(k);
    if (rc) return -1;
    if (peek(in, ',')) { in->p++; continue; }
    return expect(in, start, '}');
  }
}

static int read_metadata(json_in *in, const char *start, fsvc_tensor_dict *d) {
  if (expect(in, start, '{')) return -1;
  if (peek(in, '}')) { in->p++; return 0; }
  for (;;) {
    char *k = read_string(in, start);
    if (!k) return -1;
    skip_ws(in);
    if (expect(in, start, ':')) { free(k); return -1; }
    skip_ws(in);
    if (in->p < in->end && *in->p != '"') {
      fsvc_set_error("%s: %s: __metadata__ '%.80s': values must be strings", OP_LOAD, in->file, k);
      in->failed = 1;
      free(k);
      return -1;
    }
    char *v = read_string(in, start);
    int rc = v ? fsvc_tensor_dict_set_meta(d, k, v) : -1;
    free(k);
    free(v);
    if (rc) return -1;
    if (peek(in, ',')) { in->p++; continue; }
    return expect(in, start, '}');
  }
}

/* ---- loading -------------------------------------------------------------------------------- */
static int cmp_begin(const void *a, const void *b) {
  const st_entry *x = *(st_entry *const *)a, *y = *(st_entry *const *)b;
  return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}
static int cmp_name(const void *a, const void *b) {
  return strcmp((*(st_entry *const *)a)->name, (*(st_entry *const *)b)->name);
}

static void free_entries(st_entry *e, size_t n) {
  for (size_t i = 0; i < n; i++) free(e[i].name);
  free(e);
}

/* Parses and validates the whole file in m; builds the dict (tensors wrap m where possible). */
static fsvc_tensor_dict *load_mapping(fsvc_mapping *m, const char *file) {
  if (m->size < 8) {
    fsvc_set_error("%s: %s: truncated file (%zu bytes; a safetensors file starts with an 8-byte "
                   "header length)", OP_LOAD, file, m->size);
    return NULL;
  }
  uint64_t n = (uint64_t)fsvc_read_int_le(m->base, 8, 0);
  if (n > MAX_HEADER) {
    fsvc_set_error("%s: %s: bad header length %llu (more than 100 MB; not a safetensors file?)",
                   OP_LOAD, file, (unsigned long long)n);
    return NULL;
  }
  if (n < 2 || n > m->size - 8) {
    fsvc_set_error("%s: %s: bad header length %llu for a file of %zu bytes (truncated or not a "
                   "safetensors file)", OP_LOAD, file, (unsigned long long)n, m->size);
    return NULL;
  }
  const char *start = (const char *)m->base + 8;
  const unsigned char *buffer = m->base + 8 + n;
  uint64_t buffer_size = m->size - 8 - n;
  json_in in = {start, start + n, file, 0};

  fsvc_tensor_dict *d = fsvc_tensor_dict_new();
  size_t count = 0, cap = 0;
  st_entry *entries = NULL;
  st_entry **order = NULL;
  if (!d) return NULL;
  if (expect(&in, start, '{')) goto fail;
  if (peek(&in, '}')) in.p++;
  else
    for (;;) {
      char *k = read_string(&in, start);
      if (!k) goto fail;
      if (expect(&in, start, ':')) { free(k); goto fail; }
      if (strcmp(k, "__metadata__") == 0) {
        free(k);
        if (read_metadata(&in, start, d)) goto fail;
      } else {
        if (count == cap) {
          cap = cap ? cap * 2 : 64;
          st_entry *ne = realloc(entries, cap * sizeof *ne);
          if (!ne) { free(k); fsvc_set_error("%s: %s: out of memory", OP_LOAD, file); goto fail; }
          entries = ne;
        }
        st_entry *e = &entries[count++];
        memset(e, 0, sizeof *e);
        e->name = k;
        if (read_tensor_info(&in, start, e)) goto fail;
        if (!e->have_dtype || !e->have_shape || !e->have_offsets) {
          fsvc_set_error("%s: %s: tensor '%s': missing \"%s\"", OP_LOAD, file, e->name,
                         !e->have_dtype ? "dtype" : !e->have_shape ? "shape" : "data_offsets");
          goto fail;
        }
      }
      if (peek(&in, ',')) { in.p++; continue; }
      if (expect(&in, start, '}')) goto fail;
      break;
    }
  skip_ws(&in);
  if (in.p != in.end) {
    jerr(&in, start, "unexpected text after the header object");
    goto fail;
  }

  /* sizes and ranges */
  for (size_t i = 0; i < count; i++) {
    st_entry *e = &entries[i];
    uint64_t numel = 1;
    int too_big = 0;
    for (int j = 0; j < e->ndim; j++) {
      uint64_t s = (uint64_t)e->shape[j];
      if (s != 0 && numel > ((uint64_t)1 << 40) / s) too_big = 1;
      numel *= s;
      if (s == 0) { numel = 0; too_big = 0; break; }
    }
    char shp[160];
    fsvc_shape_str_n(e->ndim, e->shape, shp, sizeof shp);
    if (too_big) {
      fsvc_set_error("%s: %s: tensor '%s': shape %s is too large", OP_LOAD, file, e->name, shp);
      goto fail;
    }
    if (e->begin > e->end || e->end > buffer_size) {
      fsvc_set_error("%s: %s: tensor '%s': data_offsets [%llu, %llu] out of range (the data buffer "
                     "has %llu bytes: truncated file?)", OP_LOAD, file, e->name,
                     (unsigned long long)e->begin, (unsigned long long)e->end,
                     (unsigned long long)buffer_size);
      goto fail;
    }
    if (e->end - e->begin != numel * (uint64_t)e->dtype->size) {
      fsvc_set_error("%s: %s: tensor '%s': shape %s of %s needs %llu bytes but data_offsets "
                     "[%llu, %llu] hold %llu", OP_LOAD, file, e->name, shp, e->dtype->code,
                     (unsigned long long)(numel * (uint64_t)e->dtype->size),
                     (unsigned long long)e->begin, (unsigned long long)e->end,
                     (unsigned long long)(e->end - e->begin));
      goto fail;
    }
  }
  order = malloc((count ? count : 1) * sizeof *order);
  if (!order) { fsvc_set_error("%s: %s: out of memory", OP_LOAD, file); goto fail; }
  for (size_t i = 0; i < count; i++) order[i] = &entries[i];
  qsort(order, count, sizeof *order, cmp_name);
  for (size_t i = 1; i < count; i++)
    if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
      fsvc_set_error("%s: %s: tensor '%s' appears twice in the header", OP_LOAD, file, order[i]->name);
      goto fail;
    }
  qsort(order, count, sizeof *order, cmp_begin);
  const st_entry *prev = NULL;
  for (size_t i = 0; i < count; i++) {
    if (order[i]->begin == order[i]->end) continue; /* empty tensors occupy nothing */
    if (prev && order[i]->begin < prev->end) {
      fsvc_set_error("%s: %s: tensor '%s': data_offsets [%llu, %llu] overlap those of '%s' [%llu, "
                     "%llu]", OP_LOAD, file, order[i]->name, (unsigned long long)order[i]->begin,
                     (unsigned long long)order[i]->end, prev->name,
                     (unsigned long long)prev->begin, (unsigned long long)prev->end);
      goto fail;
    }
    prev = order[i];
  }

  /* tensors, in header order */
  for (size_t i = 0; i < count; i++) {
    st_entry *e = &entries[i];
    const unsigned char *src = buffer + e->begin;
    fsvc_tensor *t;
    if (e->dtype->widen) {
      t = fsvc_empty(e->ndim, e->shape, FSVC_INT64);
      if (t) {
        int64_t *dst = fsvc_data(t), cnt = fsvc_numel(t);
        for (int64_t j = 0; j < cnt; j++)
          dst[j] = fsvc_read_int_le(src + j * e->dtype->size, e->dtype->size, e->dtype->is_signed);
        if (strcmp(e->dtype->code, "BOOL") == 0)
          for (int64_t j = 0; j < cnt; j++) dst[j] = dst[j] != 0;
      }
    } else if ((uintptr_t)src % (uintptr_t)e->dtype->size == 0) {
      t = fsvc_mapping_wrap(m, (size_t)(src - m->base), e->ndim, e->shape, e->dtype->dt);
    } else { /* misaligned for its element type: copy so kernels may assume alignment */
      t = fsvc_empty(e->ndim, e->shape, e->dtype->dt);
      if (t) memcpy(fsvc_data(t), src, (size_t)(e->end - e->begin));
    }
    if (!t) {
      fsvc_set_error("%s: %s: tensor '%s': %s", OP_LOAD, file, e->name, fsvc_last_error());
      goto fail;
    }
    int rc = fsvc_tensor_dict_set(d, e->name, t);
    fsvc_tensor_release(t);
    if (rc) goto fail;
  }
  free(order);
  free_entries(entries, count);
  return d;
fail:
  free(order);
  free_entries(entries, count);
  fsvc_tensor_dict_free(d);
  return NULL;
}

fsvc_tensor_dict *fsvc_safetensors_load(const char *path) {
  if (!path) { fsvc_set_error("%s: NULL path", OP_LOAD); return NULL; }
  fsvc_mapping *m = fsvc_mapping_open(path, OP_LOAD);
  if (!m) return NULL;
  fsvc_tensor_dict *d = load_mapping(m, path);
  fsvc_mapping_release(m); /* the tensors hold their own references */
  if (!d) fsvc_io_error_oneline();
  return d;
}

fsvc_tensor_dict *fsvc_safetensors_load_memory(const void *data, size_t size, const char *name) {
  if (!name) name = "<memory>";
  if (!data && size) { fsvc_set_error("%s: %s: NULL buffer", OP_LOAD, name); return NULL; }
  fsvc_mapping *m = fsvc_mapping_copy(data, size, OP_LOAD, name);
  if (!m) return NULL;
  fsvc_tensor_dict *d = load_mapping(m, name);
  fsvc_mapping_release(m);
  if (!d) fsvc_io_error_oneline();
  return d;
}

/* ---- writing -------------------------------------------------------------------------------- */
typedef struct {
  char *p;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap : 256;
    while (b->n + n + 1 > nc) nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np) { b->oom = 1; return; }
    b->p = np;
    b->cap = nc;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_json_string(sbuf *b, const char *s) {
  sb_put(b, "\"", 1);
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    char esc[8];
    if (*c == '"' || *c == '\\') { esc[0] = '\\'; esc[1] = (char)*c; sb_put(b, esc, 2); }
    else if (*c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", *c); sb_put(b, esc, 6); }
    else sb_put(b, (const char *)c, 1);
  }
  sb_put(b, "\"", 1);
}

typedef struct {
  const char *name;
  fsvc_tensor *t; /* borrowed from the dict */
  size_t nbytes;
  uint64_t begin;
} save_entry;

static int cmp_save_name(const void *a, const void *b) {
  return strcmp(((const save_entry *)a)->name, ((const save_entry *)b)->name);
}
/* Data layout: widest elements first, then by name, so every tensor stays aligned to its element
 * size given the 8-aligned buffer start (what the reference writer does too). */
static int cmp_save_layout(const void *a, const void *b) {
  const save_entry *x = *(save_entry *const *)a, *y = *(save_entry *const *)b;
  size_t sx = fsvc_dtype_size(x->t->dtype), sy = fsvc_dtype_size(y->t->dtype);
  if (sx != sy) return sx > sy ? -1 : 1;
  return strcmp(x->name, y->name);
}

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

int fsvc_safetensors_save(const char *path, const fsvc_tensor_dict *d) {
  if (!path || !*path || !d) { fsvc_set_error("%s: NULL or empty path or dict", OP_SAVE); return -1; }
  int64_t count = fsvc_tensor_dict_count(d);
  save_entry *es = calloc((size_t)(count ? count : 1), sizeof *es);
  save_entry **layout = calloc((size_t)(count ? count : 1), sizeof *layout);
  sbuf h = {0};
  char *tmp = NULL;
  int fd = -1, rc = -1;
  if (!es || !layout) { fsvc_set_error("%s: %s: out of memory", OP_SAVE, path); goto done; }

  /* validate everything before touching the disk */
  for (int64_t i = 0; i < count; i++) {
    es[i].name = fsvc_tensor_dict_name(d, i);
    es[i].t = fsvc_tensor_dict_at(d, i);
    const fsvc_tensor *t = es[i].t;
    if (!*es[i].name || strcmp(es[i].name, "__metadata__") == 0) {
      fsvc_set_error("%s: %s: tensor name '%s' is reserved or empty", OP_SAVE, path, es[i].name);
      goto done;
    }
    if (!t->storage) {
      fsvc_set_error("%s: %s: tensor '%s' was freed", OP_SAVE, path, es[i].name);
      goto done;
    }
    if (fsvc_tensor_is_cuda(t)) { /* the bytes are written from host memory (FSVC_REFUSE_CUDA's
                                     rule, with the key named); fsvc.save_safetensors copies first */
      char dev[32];
      fsvc_set_error("%s: %s: tensor '%s' is on %s; copy it to the host first (x:cpu())", OP_SAVE,
                     path, es[i].name, fsvc_device_str(t->storage->device, dev, sizeof dev));
      goto done;
    }
    if (!st_code_of(t->dtype)) {
      fsvc_set_error("%s: %s: tensor '%s' has dtype %s, which safetensors cannot hold", OP_SAVE,
                     path, es[i].name, fsvc_dtype_name(t->dtype));
      goto done;
    }
    es[i].nbytes = (size_t)fsvc_numel(t) * fsvc_dtype_size(t->dtype);
  }
  for (int64_t i = 0; i < fsvc_tensor_dict_value_count(d); i++)
    if (fsvc_tensor_dict_value_at(d, i)->kind != FSVC_VALUE_STRING) {
      fsvc_set_error("%s: %s: metadata '%s' is not a string (safetensors metadata holds strings "
                     "only)", OP_SAVE, path, fsvc_tensor_dict_value_key(d, i));
      goto done;
    }
  qsort(es, (size_t)count, sizeof *es, cmp_save_name);
  for (int64_t i = 0; i < count; i++) layout[i] = &es[i];
  qsort(layout, (size_t)count, sizeof *layout, cmp_save_layout);
  uint64_t off = 0;
  for (int64_t i = 0; i < count; i++) {
    layout[i]->begin = off;
    off += layout[i]->nbytes;
  }

  /* header: metadata first, then tensors by name */
  sb_str(&h, "{");
  int64_t nmeta = fsvc_tensor_dict_value_count(d);
  if (nmeta > 0) {
    /* metadata keys sorted too, for reproducible files */
    int64_t *idx = malloc((size_t)nmeta * sizeof *idx);
    if (!idx) { fsvc_set_error("%s: %s: out of memory", OP_SAVE, path); goto done; }
    for (int64_t i = 0; i < nmeta; i++) idx[i] = i;
    for (int64_t i = 1; i < nmeta; i++) /* insertion sort: metadata maps are small */
      for (int64_t j = i; j > 0 && strcmp(fsvc_tensor_dict_value_key(d, idx[j - 1]),
                                          fsvc_tensor_dict_value_key(d, idx[j])) > 0; j--) {
        int64_t tmpi = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = tmpi;
      }
    sb_str(&h, "\"__metadata__\":{");
    for (int64_t i = 0; i < nmeta; i++) {
      if (i) sb_str(&h, ",");
      sb_json_string(&h, fsvc_tensor_dict_value_key(d, idx[i]));
      sb_str(&h, ":");
      sb_json_string(&h, fsvc_tensor_dict_value_at(d, idx[i])->s);
    }
    sb_str(&h, "}");
    free(idx);
  }
  for (int64_t i = 0; i < count; i++) {
    char num[64];
    if (i || nmeta > 0) sb_str(&h, ",");
    sb_json_string(&h, es[i].name);
    sb_str(&h, ":{\"dtype\":\"");
    sb_str(&h, st_code_of(es[i].t->dtype));
    sb_str(&h, "\",\"shape\":[");
    for (int j = 0; j < es[i].t->ndim; j++) {
      snprintf(num, sizeof num, j ? ",%lld" : "%lld", (long long)es[i].t->shape[j]);
      sb_str(&h, num);
    }
    snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)es[i].begin,
             (unsigned long long)(es[i].begin + es[i].nbytes));
    sb_str(&h, num);
  }
  sb_str(&h, "}");
  while (h.n % 8) sb_str(&h, " ");
  if (h.oom) { fsvc_set_error("%s: %s: out of memory", OP_SAVE, path); goto done; }

  /* temp file next to the target, so rename() is atomic on the same file system */
  size_t plen = strlen(path);
  tmp = malloc(plen + 16);
  if (!tmp) { fsvc_set_error("%s: %s: out of memory", OP_SAVE, path); goto done; }
  snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
  fd = mkstemp(tmp);
  if (fd < 0) {
    fsvc_set_error("%s: %s: cannot create a temporary file next to it (%s)", OP_SAVE, path,
                   strerror(errno));
    free(tmp);
    tmp = NULL;
    goto done;
  }
  fchmod(fd, 0644);
  unsigned char len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
  if (write_all(fd, len8, 8) || write_all(fd, h.p, h.n)) goto io_error;
  for (int64_t i = 0; i < count; i++) {
    fsvc_tensor *c = fsvc_contiguous_raw(layout[i]->t);
    if (!c) {
      fsvc_set_error("%s: %s: tensor '%s': %s", OP_SAVE, path, layout[i]->name, fsvc_last_error());
      goto done;
    }
    int wr = write_all(fd, fsvc_data(c), layout[i]->nbytes);
    fsvc_tensor_release(c);
    if (wr) goto io_error;
  }
  if (fsync(fd) != 0) goto io_error;
  if (close(fd) != 0) { fd = -1; goto io_error; }
  fd = -1;
  if (rename(tmp, path) != 0) goto io_error;
  free(tmp);
  tmp = NULL;
  { /* make the rename itself durable */
    char *dir = strdup(path);
    if (dir) {
      char *slash = strrchr(dir, '/');
      const char *dn = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
      int dfd = open(dn, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) { fsync(dfd); close(dfd); }
      free(dir);
    }
  }
  rc = 0;
  goto done;
io_error:
  fsvc_set_error("%s: %s: write failed (%s); the previous file, if any, is untouched", OP_SAVE,
                 path, strerror(errno));
done:
  if (fd >= 0) close(fd);
  if (tmp) { unlink(tmp); free(tmp); }
  free(h.p);
  free(es);
  free(layout);
  if (rc) fsvc_io_error_oneline();
  return rc;
}
