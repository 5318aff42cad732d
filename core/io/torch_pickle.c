/* Import of torch.save files (the zip format of torch >= 1.6):
 *
 *   <archive>/data.pkl     a pickle (protocol 2) of the saved object, usually a state_dict
 *   <archive>/data/<key>   the raw little-endian bytes of each storage
 *   <archive>/byteorder    "little" (newer torch only)
 *
 * The pickle is run by a small virtual machine that knows the opcodes state_dicts and training
 * checkpoints use, and calls only what it recognises: collections.OrderedDict, torch._utils.
 * _rebuild_tensor_v2 / _rebuild_tensor / _rebuild_parameter(_with_state), torch._tensor.
 * _rebuild_from_type_v2 and torch.Size. Any other class or function becomes an opaque object
 * that is skipped: unpickling here never runs code. Storages come from BINPERSID persistent ids
 * ('storage', torch.FloatStorage, key, location, numel). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsvc/checkpoint.h"
#include "fsvc/error.h"
#include "io_internal.h"
#include "zip_reader.h"

#define OP "load_torch"
#define MAX_FLATTEN_DEPTH 100

/* ---- values --------------------------------------------------------------------------------- */
typedef enum {
  V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_BYTES, V_TUPLE, V_LIST, V_DICT, V_GLOBAL, V_STORAGE,
  V_TENSOR, V_OBJECT
} vkind;

typedef struct pv {
  vkind kind;
  int64_t i;
  double f;
  char *s; /* STR/BYTES; GLOBAL: "module\0name" with name at s + strlen(s) + 1 */
  size_t slen;
  struct pv **items; /* TUPLE/LIST: n items; DICT: n pairs stored as 2n (key, value) */
  size_t n, cap;
  fsvc_tensor *t; /* STORAGE (1-d, all elements) and TENSOR; owned by the vm's list */
} pv;

typedef struct {
  const char *file;
  const unsigned char *p, *start, *end;
  pv **nodes; /* every value ever made, freed together */
  size_t n_nodes, cap_nodes;
  pv **stack;
  size_t sp, cap_stack;
  size_t *marks;
  size_t n_marks, cap_marks;
  pv **memo;
  size_t cap_memo, memo_count;
  fsvc_tensor **tensors;
  size_t n_tensors, cap_tensors;
  /* storages by key, so tensors that share one share it here too */
  pv **storages;
  size_t n_storages, cap_storages;
  /* where storages come from */
  fsvc_mapping *map;
  const fsvc_zip *zip;
  const char *prefix; /* "<archive>/" */
  int failed;
} vm;

FSVC_PRINTF(2, 3) static int vm_err(vm *v, const char *fmt, ...);
#include <stdarg.h>
static int vm_err(vm *v, const char *fmt, ...) {
  if (v->failed) return -1;
  v->failed = 1;
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fsvc_set_error("%s: %s: data.pkl: %s (at pickle byte %ld)", OP, v->file, msg,
                 (long)(v->p - v->start));
  return -1;
}

static int grow(vm *v, void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t nc = *cap ? *cap * 2 : 16;
  while (nc < need) nc *= 2;
  void *p = realloc(*arr, nc * elem);
  if (!p) return vm_err(v, "out of memory");
  *arr = p;
  *cap = nc;
  return 0;
}

static pv *new_value(vm *v, vkind k) {
  if (grow(v, (void **)&v->nodes, &v->cap_nodes, v->n_nodes + 1, sizeof *v->nodes)) return NULL;
  pv *x = calloc(1, sizeof *x);
  if (!x) { vm_err(v, "out of memory"); return NULL; }
  x->kind = k;
  v->nodes[v->n_nodes++] = x;
  return x;
}

static int add_item(vm *v, pv *c, pv *item) {
  if (grow(v, (void **)&c->items, &c->cap, c->n + 1, sizeof *c->items)) return -1;
  c->items[c->n++] = item;
  return 0;
}

static int own_tensor(vm *v, fsvc_tensor *t) {
  if (grow(v, (void **)&v->tensors, &v->cap_tensors, v->n_tensors + 1, sizeof *v->tensors)) {
    fsvc_tensor_release(t);
    return -1;
  }
  v->tensors[v->n_tensors++] = t;
  return 0;
}

static int push(vm *v, pv *x) {
  if (!x) return -1;
  if (grow(v, (void **)&v->stack, &v->cap_stack, v->sp + 1, sizeof *v->stack)) return -1;
  v->stack[v->sp++] = x;
  return 0;
}

static pv *pop(vm *v) {
  size_t floor = v->n_marks ? v->marks[v->n_marks - 1] : 0;
  if (v->sp <= floor) { vm_err(v, "stack underflow"); return NULL; }
  return v->stack[--v->sp];
}

static pv *top(vm *v) {
  size_t floor = v->n_marks ? v->marks[v->n_marks - 1] : 0;
  if (v->sp <= floor) { vm_err(v, "stack underflow"); return NULL; }
  return v->stack[v->sp - 1];
}

/* Pops everything above the last MARK into a new tuple (or list). */
static pv *pop_mark(vm *v, vkind k) {
  if (!v->n_marks) { vm_err(v, "MARK expected"); return NULL; }
  size_t m = v->marks[--v->n_marks];
  pv *t = new_value(v, k);
  if (!t) return NULL;
  for (size_t i = m; i < v->sp; i++)
    if (add_item(v, t, v->stack[i])) return NULL;
  v->sp = m;
  return t;
}

static const unsigned char *take(vm *v, size_t n) {
  if ((size_t)(v->end - v->p) < n) { vm_err(v, "truncated pickle"); return NULL; }
  const unsigned char *r = v->p;
  v->p += n;
  return r;
}

static pv *make_string(vm *v, vkind k, const unsigned char *s, size_t n) {
  pv *x = new_value(v, k);
  if (!x) return NULL;
  x->s = malloc(n + 1);
  if (!x->s) { vm_err(v, "out of memory"); return NULL; }
  memcpy(x->s, s, n);
  x->s[n] = '\0';
  x->slen = n;
  return x;
}

/* A newline-terminated line (text opcodes GLOBAL, INT, ...), without the newline. */
static const unsigned char *read_line(vm *v, size_t *len) {
  const unsigned char *nl = memchr(v->p, '\n', (size_t)(v->end - v->p));
  if (!nl) { vm_err(v, "truncated pickle (line without newline)"); return NULL; }
  const unsigned char *s = v->p;
  *len = (size_t)(nl - s);
  v->p = nl + 1;
  return s;
}

static pv *make_global(vm *v, const char *mod, size_t ml, const char *name, size_t nl) {
  pv *g = new_value(v, V_GLOBAL);
  if (!g) return NULL;
  g->s = malloc(ml + nl + 2);
  if (!g->s) { vm_err(v, "out of memory"); return NULL; }
  memcpy(g->s, mod, ml);
  g->s[ml] = '\0';
  memcpy(g->s + ml + 1, name, nl);
  g->s[ml + 1 + nl] = '\0';
  return g;
}
static const char *gmod(const pv *g) { return g->s; }
static const char *gname(const pv *g) { return g->s + strlen(g->s) + 1; }
static int is_global(const pv *g, const char *mod, const char *name) {
  return g->kind == V_GLOBAL && strcmp(gmod(g), mod) == 0 && strcmp(gname(g), name) == 0;
}

/* ---- storages ------------------------------------------------------------------------------- */
typedef struct {
  const char *name;
  int size;
  fsvc_dtype dt;
  int widen, is_signed, is_bool;
} storage_type;

static const storage_type storage_types[] = {
    {"FloatStorage", 4, FSVC_FLOAT32, 0, 0, 0},   {"DoubleStorage", 8, FSVC_FLOAT64, 0, 0, 0},
    {"HalfStorage", 2, FSVC_FLOAT16, 0, 0, 0},    {"BFloat16Storage", 2, FSVC_BFLOAT16, 0, 0, 0},
    {"LongStorage", 8, FSVC_INT64, 0, 1, 0},      {"IntStorage", 4, FSVC_INT64, 1, 1, 0},
    {"ShortStorage", 2, FSVC_INT64, 1, 1, 0},     {"CharStorage", 1, FSVC_INT64, 1, 1, 0},
    {"ByteStorage", 1, FSVC_INT64, 1, 0, 0},      {"BoolStorage", 1, FSVC_INT64, 1, 0, 1},
};

static pv *persistent_load(vm *v, pv *pid) {
  if (pid->kind != V_TUPLE || pid->n < 5 || pid->items[0]->kind != V_STR ||
      strcmp(pid->items[0]->s, "storage") != 0) {
    vm_err(v, "unsupported persistent id (expected ('storage', type, key, location, numel))");
    return NULL;
  }
  pv *type = pid->items[1], *key = pid->items[2], *numel_v = pid->items[4];
  if (type->kind != V_GLOBAL || key->kind != V_STR || numel_v->kind != V_INT || numel_v->i < 0) {
    vm_err(v, "malformed storage persistent id");
    return NULL;
  }
  for (size_t i = 0; i < v->n_storages; i++)
    if (strcmp(v->storages[i]->s, key->s) == 0) return v->storages[i];
  const storage_type *st = NULL;
  for (size_t i = 0; i < sizeof storage_types / sizeof storage_types[0]; i++)
    if (strcmp(gname(type), storage_types[i].name) == 0) st = &storage_types[i];
  if (!st) {
    vm_err(v, "storage '%s' has unsupported type %s.%s", key->s, gmod(type), gname(type));
    return NULL;
  }
  int64_t numel = numel_v->i;
  if (numel > ((int64_t)1 << 40)) { vm_err(v, "storage '%s' is too large", key->s); return NULL; }
  char path[512];
  snprintf(path, sizeof path, "%sdata/%s", v->prefix, key->s);
  const fsvc_zip_entry *e = fsvc_zip_find(v->zip, path);
  if (!e) { vm_err(v, "storage '%s' is missing from the archive (no member %s)", key->s, path); return NULL; }
  uint64_t need = (uint64_t)numel * (uint64_t)st->size;
  if (e->size < need) {
    vm_err(v, "storage '%s' holds %llu bytes but %lld elements of %s need %llu (truncated?)",
           key->s, (unsigned long long)e->size, (long long)numel, st->name, (unsigned long long)need);
    return NULL;
  }
  int64_t shape[1] = {numel};
  fsvc_tensor *t;
  if (e->method == 0 && !st->widen && e->data_offset % (uint64_t)st->size == 0) {
    t = fsvc_mapping_wrap(v->map, (size_t)e->data_offset, 1, shape, st->dt);
  } else {
    int owned;
    const unsigned char *src = fsvc_zip_read(v->zip, e, &owned, OP, v->file);
    if (!src) { v->failed = 1; return NULL; }
    t = fsvc_empty(1, shape, st->dt);
    if (t && st->widen) {
      int64_t *dst = fsvc_data(t);
      for (int64_t j = 0; j < numel; j++) {
        dst[j] = fsvc_read_int_le(src + j * st->size, st->size, st->is_signed);
        if (st->is_bool) dst[j] = dst[j] != 0;
      }
    } else if (t) {
      memcpy(fsvc_data(t), src, (size_t)need);
    }
    if (owned) free((void *)src);
  }
  if (!t) { vm_err(v, "storage '%s': %s", key->s, fsvc_last_error()); return NULL; }
  if (own_tensor(v, t)) return NULL;
  pv *s = make_string(v, V_STORAGE, (const unsigned char *)key->s, strlen(key->s));
  if (!s) return NULL;
  s->t = t;
  if (grow(v, (void **)&v->storages, &v->cap_storages, v->n_storages + 1, sizeof *v->storages))
    return NULL;
  v->storages[v->n_storages++] = s;
  return s;
}

/* torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, ...) */
static pv *rebuild_tensor(vm *v, pv *args) {
  if (args->kind != V_TUPLE || args->n < 4 || args->items[0]->kind != V_STORAGE ||
      args->items[1]->kind != V_INT || args->items[2]->kind != V_TUPLE ||
      args->items[3]->kind != V_TUPLE) {
    vm_err(v, "_rebuild_tensor: expected (storage, offset, size, stride, ...)");
    return NULL;
  }
  pv *storage = args->items[0], *size = args->items[2], *stride = args->items[3];
  int64_t offset = args->items[1]->i, avail = fsvc_numel(storage->t);
  if (size->n > FSVC_MAX_DIMS || size->n != stride->n) {
    vm_err(v, "storage '%s': tensor with %zu sizes and %zu strides (at most %d dims)", storage->s,
           size->n, stride->n, FSVC_MAX_DIMS);
    return NULL;
  }
  int ndim = (int)size->n;
  int64_t shape[FSVC_MAX_DIMS], strides[FSVC_MAX_DIMS], last = offset, numel = 1;
  for (int i = 0; i < ndim; i++) {
    if (size->items[i]->kind != V_INT || stride->items[i]->kind != V_INT) {
      vm_err(v, "storage '%s': size and stride must be integers", storage->s);
      return NULL;
    }
    shape[i] = size->items[i]->i;
    strides[i] = stride->items[i]->i;
    if (shape[i] < 0 || shape[i] > ((int64_t)1 << 40) || strides[i] < 0 ||
        strides[i] > ((int64_t)1 << 40)) {
      vm_err(v, "storage '%s': invalid size %lld or stride %lld", storage->s, (long long)shape[i],
             (long long)strides[i]);
      return NULL;
    }
    if (shape[i] == 0) numel = 0;
    else last += (shape[i] - 1) * strides[i];
  }
  if (offset < 0 || (numel != 0 && last >= avail)) {
    char buf[160];
    vm_err(v, "storage '%s' of %lld elements is too small for a tensor of shape %s at offset %lld",
           storage->s, (long long)avail, fsvc_shape_str_n(ndim, shape, buf, sizeof buf),
           (long long)offset);
    return NULL;
  }
  fsvc_tensor *t = fsvc_view_raw(storage->t, ndim, shape, strides, storage->t->offset + offset);
  if (!t) { vm_err(v, "%s", fsvc_last_error()); return NULL; }
  if (own_tensor(v, t)) return NULL;
  pv *x = new_value(v, V_TENSOR);
  if (x) x->t = t;
  return x;
}

/* REDUCE: calls only what it recognises; anything else becomes an opaque object. */
static pv *call(vm *v, pv *fn, pv *args, int depth) {
  if (depth > 4) return new_value(v, V_OBJECT);
  if (fn->kind != V_GLOBAL || args->kind != V_TUPLE) return new_value(v, V_OBJECT);
  if (is_global(fn, "collections", "OrderedDict") || is_global(fn, "builtins", "dict"))
    return new_value(v, V_DICT); /* items follow with SETITEMS */
  if (is_global(fn, "torch._utils", "_rebuild_tensor_v2") ||
      is_global(fn, "torch._utils", "_rebuild_tensor"))
    return rebuild_tensor(v, args);
  if ((is_global(fn, "torch._utils", "_rebuild_parameter") ||
       is_global(fn, "torch._utils", "_rebuild_parameter_with_state")) && args->n >= 1)
    return args->items[0];
  if (is_global(fn, "torch._tensor", "_rebuild_from_type_v2") && args->n >= 3)
    return call(v, args->items[0], args->items[2], depth + 1);
  if (is_global(fn, "torch", "Size") && args->n == 1 && args->items[0]->kind == V_TUPLE)
    return args->items[0];
  return new_value(v, V_OBJECT);
}

/* ---- the machine ---------------------------------------------------------------------------- */
static int memo_put(vm *v, uint64_t idx, pv *x) {
  if (!x) return -1;
  /* a real pickle never has more memo entries than bytes */
  if (idx > (uint64_t)(v->end - v->start) + 16) return vm_err(v, "memo index %llu out of range", (unsigned long long)idx);
  if (idx >= v->cap_memo) {
    size_t old = v->cap_memo;
    if (grow(v, (void **)&v->memo, &v->cap_memo, (size_t)idx + 1, sizeof *v->memo)) return -1;
    memset(v->memo + old, 0, (v->cap_memo - old) * sizeof *v->memo);
  }
  if (!v->memo[idx]) v->memo_count++;
  v->memo[idx] = x;
  return 0;
}

static pv *memo_get(vm *v, uint64_t idx) {
  if (idx >= v->cap_memo || !v->memo[idx]) {
    vm_err(v, "memo key %llu was never stored", (unsigned long long)idx);
    return NULL;
  }
  return v->memo[idx];
}

static pv *make_int(vm *v, int64_t i) {
  pv *x = new_value(v, V_INT);
  if (x) x->i = i;
  return x;
}

static pv *make_long(vm *v, const unsigned char *b, size_t n) {
  if (n > 8) return new_value(v, V_OBJECT); /* beyond int64: not a value we use */
  if (n == 0) return make_int(v, 0);
  return make_int(v, fsvc_read_int_le(b, (int)n, 1));
}

static int set_items(vm *v, pv *d, pv **kv, size_t n) {
  if (d->kind == V_OBJECT) return 0; /* a dict subclass we do not know: ignore its items */
  if (d->kind != V_DICT) return vm_err(v, "SETITEM on a value that is not a dict");
  for (size_t i = 0; i + 1 < n; i += 2)
    if (add_item(v, d, kv[i]) || add_item(v, d, kv[i + 1])) return -1;
  return 0;
}

static int append_items(vm *v, pv *l, pv **items, size_t n) {
  if (l->kind == V_OBJECT) return 0;
  if (l->kind != V_LIST) return vm_err(v, "APPEND on a value that is not a list");
  for (size_t i = 0; i < n; i++)
    if (add_item(v, l, items[i])) return -1;
  return 0;
}

static pv *run(vm *v) {
  while (v->p < v->end) {
    unsigned char op = *v->p++;
    const unsigned char *b;
    pv *x, *y, *z;
    size_t len;
    switch (op) {
      case 0x80: /* PROTO */
        if (!take(v, 1)) return NULL;
        break;
      case 0x95: /* FRAME */
        if (!take(v, 8)) return NULL;
        break;
      case '.': /* STOP */
        return pop(v);
      case '(': /* MARK */
        if (grow(v, (void **)&v->marks, &v->cap_marks, v->n_marks + 1, sizeof *v->marks)) return NULL;
        v->marks[v->n_marks++] = v->sp;
        break;
      case '}': if (push(v, new_value(v, V_DICT))) return NULL; break;
      case ']': if (push(v, new_value(v, V_LIST))) return NULL; break;
      case 0x8f: if (push(v, new_value(v, V_LIST))) return NULL; break; /* EMPTY_SET */
      case ')': if (push(v, new_value(v, V_TUPLE))) return NULL; break;
      case 't': if (push(v, pop_mark(v, V_TUPLE))) return NULL; break;
      case 'l': if (push(v, pop_mark(v, V_LIST))) return NULL; break;
      case 0x91: if (push(v, pop_mark(v, V_LIST))) return NULL; break; /* FROZENSET */
      case 'd': /* DICT */
        if (!(x = pop_mark(v, V_DICT))) return NULL;
        if (x->n % 2) { vm_err(v, "DICT with an odd number of items"); return NULL; }
        if (push(v, x)) return NULL;
        break;
      case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
        size_t n = (size_t)(op - 0x84);
        pv *items[3];
        for (size_t i = n; i-- > 0;)
          if (!(items[i] = pop(v))) return NULL;
        if (!(x = new_value(v, V_TUPLE))) return NULL;
        for (size_t i = 0; i < n; i++)
          if (add_item(v, x, items[i])) return NULL;
        if (push(v, x)) return NULL;
        break;
      }
      case 'J': if (!(b = take(v, 4)) || push(v, make_int(v, fsvc_read_int_le(b, 4, 1)))) return NULL; break;
      case 'K': if (!(b = take(v, 1)) || push(v, make_int(v, b[0]))) return NULL; break;
      case 'M': if (!(b = take(v, 2)) || push(v, make_int(v, fsvc_read_int_le(b, 2, 0)))) return NULL; break;
      case 0x8a: /* LONG1 */
        if (!(b = take(v, 1))) return NULL;
        len = b[0];
        if (!(b = take(v, len)) || push(v, make_long(v, b, len))) return NULL;
        break;
      case 0x8b: /* LONG4 */
        if (!(b = take(v, 4))) return NULL;
        len = (size_t)(uint32_t)fsvc_read_int_le(b, 4, 0);
        if (!(b = take(v, len)) || push(v, make_long(v, b, len))) return NULL;
        break;
      case 'I': case 'L': { /* INT / LONG (text) */
        if (!(b = read_line(v, &len))) return NULL;
        char buf[32];
        if (len == 0 || len >= sizeof buf) { vm_err(v, "bad text integer"); return NULL; }
        memcpy(buf, b, len);
        buf[len] = '\0';
        if (buf[len - 1] == 'L') buf[len - 1] = '\0';
        if (op == 'I' && strcmp(buf, "00") == 0) { x = new_value(v, V_BOOL); }
        else if (op == 'I' && strcmp(buf, "01") == 0) { if ((x = new_value(v, V_BOOL))) x->i = 1; }
        else {
          char *e;
          long long i = strtoll(buf, &e, 10);
          if (*e) { vm_err(v, "bad text integer"); return NULL; }
          x = make_int(v, i);
        }
        if (push(v, x)) return NULL;
        break;
      }
      case 'G': { /* BINFLOAT: big-endian double */
        if (!(b = take(v, 8))) return NULL;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u = (u << 8) | b[i];
        if (!(x = new_value(v, V_FLOAT))) return NULL;
        memcpy(&x->f, &u, 8);
        if (push(v, x)) return NULL;
        break;
      }
      case 'F': { /* FLOAT (text) */
        if (!(b = read_line(v, &len))) return NULL;
        char buf[64];
        if (len == 0 || len >= sizeof buf) { vm_err(v, "bad text float"); return NULL; }
        memcpy(buf, b, len);
        buf[len] = '\0';
        if (!(x = new_value(v, V_FLOAT))) return NULL;
        x->f = strtod(buf, NULL);
        if (push(v, x)) return NULL;
        break;
      }
      case 'X': case 'T': case 'B': /* BINUNICODE, BINSTRING, BINBYTES: 4-byte length */
        if (!(b = take(v, 4))) return NULL;
        len = (size_t)(uint32_t)fsvc_read_int_le(b, 4, 0);
        if (!(b = take(v, len)) || push(v, make_string(v, op == 'B' ? V_BYTES : V_STR, b, len))) return NULL;
        break;
      case 0x8c: case 'U': case 'C': /* SHORT_BINUNICODE, SHORT_BINSTRING, SHORT_BINBYTES */
        if (!(b = take(v, 1))) return NULL;
        len = b[0];
        if (!(b = take(v, len)) || push(v, make_string(v, op == 'C' ? V_BYTES : V_STR, b, len))) return NULL;
        break;
      case 0x8d: case 0x8e: case 0x96: { /* BINUNICODE8, BINBYTES8, BYTEARRAY8 */
        if (!(b = take(v, 8))) return NULL;
        uint64_t l = (uint64_t)fsvc_read_int_le(b, 8, 0);
        if (l > (uint64_t)(v->end - v->p)) { vm_err(v, "truncated pickle"); return NULL; }
        if (!(b = take(v, (size_t)l)) || push(v, make_string(v, op == 0x8d ? V_STR : V_BYTES, b, (size_t)l))) return NULL;
        break;
      }
      case 'N': if (push(v, new_value(v, V_NONE))) return NULL; break;
      case 0x88: if (!(x = new_value(v, V_BOOL)) || (x->i = 1, push(v, x))) return NULL; break;
      case 0x89: if (push(v, new_value(v, V_BOOL))) return NULL; break;
      case 'Q': /* BINPERSID */
        if (!(x = pop(v)) || push(v, persistent_load(v, x))) return NULL;
        break;
      case 'c': { /* GLOBAL module\nname\n */
        size_t ml, nl;
        const unsigned char *m = read_line(v, &ml), *n = m ? read_line(v, &nl) : NULL;
        if (!n || push(v, make_global(v, (const char *)m, ml, (const char *)n, nl))) return NULL;
        break;
      }
      case 0x93: /* STACK_GLOBAL */
        if (!(y = pop(v)) || !(x = pop(v))) return NULL;
        if (x->kind != V_STR || y->kind != V_STR) { vm_err(v, "STACK_GLOBAL needs two strings"); return NULL; }
        if (push(v, make_global(v, x->s, x->slen, y->s, y->slen))) return NULL;
        break;
      case 'R': /* REDUCE */
        if (!(y = pop(v)) || !(x = pop(v))) return NULL;
        if (push(v, call(v, x, y, 0))) return NULL;
        break;
      case 0x81: /* NEWOBJ: cls.__new__(cls, *args) */
        if (!(y = pop(v)) || !(x = pop(v))) return NULL;
        if (push(v, is_global(x, "collections", "OrderedDict") ? new_value(v, V_DICT)
                                                               : new_value(v, V_OBJECT))) return NULL;
        break;
      case 0x92: /* NEWOBJ_EX */
        if (!pop(v) || !pop(v) || !pop(v) || push(v, new_value(v, V_OBJECT))) return NULL;
        break;
      case 'b': /* BUILD: the state of objects (e.g. a state_dict's _metadata) is not needed */
        if (!pop(v) || !top(v)) return NULL;
        break;
      case 's': /* SETITEM */
        if (!(z = pop(v)) || !(y = pop(v)) || !(x = top(v))) return NULL;
        { pv *kv[2] = {y, z}; if (set_items(v, x, kv, 2)) return NULL; }
        break;
      case 'u': /* SETITEMS */
        if (!(y = pop_mark(v, V_TUPLE)) || !(x = top(v))) return NULL;
        if (y->n % 2) { vm_err(v, "SETITEMS with an odd number of items"); return NULL; }
        if (set_items(v, x, y->items, y->n)) return NULL;
        break;
      case 'a': /* APPEND */
        if (!(y = pop(v)) || !(x = top(v)) || append_items(v, x, &y, 1)) return NULL;
        break;
      case 'e': case 0x90: /* APPENDS, ADDITEMS */
        if (!(y = pop_mark(v, V_TUPLE)) || !(x = top(v)) || append_items(v, x, y->items, y->n)) return NULL;
        break;
      case 'q': if (!(b = take(v, 1)) || memo_put(v, b[0], top(v))) return NULL; break;
      case 'r': if (!(b = take(v, 4)) || memo_put(v, (uint64_t)fsvc_read_int_le(b, 4, 0), top(v))) return NULL; break;
      case 0x94: if (memo_put(v, v->memo_count, top(v))) return NULL; break; /* MEMOIZE */
      case 'h': if (!(b = take(v, 1)) || push(v, memo_get(v, b[0]))) return NULL; break;
      case 'j': if (!(b = take(v, 4)) || push(v, memo_get(v, (uint64_t)fsvc_read_int_le(b, 4, 0)))) return NULL; break;
      case 'p': case 'g': { /* PUT / GET (text) */
        if (!(b = read_line(v, &len))) return NULL;
        char buf[24];
        if (len == 0 || len >= sizeof buf) { vm_err(v, "bad memo key"); return NULL; }
        memcpy(buf, b, len);
        buf[len] = '\0';
        char *e;
        unsigned long long idx = strtoull(buf, &e, 10);
        if (*e) { vm_err(v, "bad memo key"); return NULL; }
        if (op == 'p' ? memo_put(v, idx, top(v)) : push(v, memo_get(v, idx))) return NULL;
        break;
      }
      case '0': if (!pop(v)) return NULL; break; /* POP */
      case '1': if (!pop_mark(v, V_TUPLE)) return NULL; break; /* POP_MARK */
      case '2': if (push(v, top(v))) return NULL; break; /* DUP */
      default:
        v->p--;
        vm_err(v, "unsupported pickle opcode 0x%02x", op);
        return NULL;
    }
  }
  vm_err(v, "truncated pickle (no STOP)");
  return NULL;
}

static void vm_free(vm *v) {
  for (size_t i = 0; i < v->n_nodes; i++) {
    free(v->nodes[i]->s);
    free(v->nodes[i]->items);
    free(v->nodes[i]);
  }
  for (size_t i = 0; i < v->n_tensors; i++) fsvc_tensor_release(v->tensors[i]);
  free(v->nodes);
  free(v->stack);
  free(v->marks);
  free(v->memo);
  free(v->tensors);
  free(v->storages);
}

/* ---- flattening into the dict --------------------------------------------------------------- */
static int flatten(vm *v, const pv *x, char *name, size_t len, size_t cap, fsvc_tensor_dict *d,
                   int depth) {
  if (depth > MAX_FLATTEN_DEPTH) {
    fsvc_set_error("%s: %s: '%s': objects nested too deeply (or a cycle)", OP, v->file, name);
    return -1;
  }
  fsvc_value val = {FSVC_VALUE_NONE, 0, 0, NULL};
  switch (x->kind) {
    case V_TENSOR: return fsvc_tensor_dict_set(d, name, x->t);
    case V_DICT: case V_LIST: case V_TUPLE: {
      int is_dict = x->kind == V_DICT;
      size_t n = is_dict ? x->n / 2 : x->n;
      for (size_t i = 0; i < n; i++) {
        const pv *key = is_dict ? x->items[2 * i] : NULL, *item = x->items[is_dict ? 2 * i + 1 : i];
        char part[64];
        const char *k = part;
        if (!is_dict) snprintf(part, sizeof part, "%zu", i);
        else if (key->kind == V_STR) k = key->s;
        else if (key->kind == V_INT) snprintf(part, sizeof part, "%lld", (long long)key->i);
        else continue; /* keys that are not names (tuples, objects) */
        size_t kl = strlen(k), nl = len + (len ? 1 : 0) + kl;
        if (nl + 1 > cap) {
          fsvc_set_error("%s: %s: key '%.200s...' is too long", OP, v->file, name);
          return -1;
        }
        if (len) name[len] = '.';
        memcpy(name + len + (len ? 1 : 0), k, kl + 1);
        if (flatten(v, item, name, nl, cap, d, depth + 1)) return -1;
        name[len] = '\0';
      }
      return 0;
    }
    case V_NONE: break;
    case V_BOOL: val.kind = FSVC_VALUE_BOOL; val.i = x->i; break;
    case V_INT: val.kind = FSVC_VALUE_INT; val.i = x->i; break;
    case V_FLOAT: val.kind = FSVC_VALUE_FLOAT; val.f = x->f; break;
    case V_STR:
      if (strlen(x->s) != x->slen) return 0; /* embedded NUL: not a simple string */
      val.kind = FSVC_VALUE_STRING;
      val.s = x->s;
      break;
    default: return 0; /* bytes, globals, opaque objects */
  }
  if (!len) return 0;
  return fsvc_tensor_dict_set_value(d, name, val);
}

/* ---- entry points --------------------------------------------------------------------------- */
static fsvc_tensor_dict *load_mapping(fsvc_mapping *m, const char *file) {
  if (m->size >= 2 && m->base[0] == 0x80 && m->base[1] <= 5) {
    fsvc_set_error("%s: %s: legacy (pre-1.6, non-zip) torch.save format is not supported; re-save "
                   "it with torch >= 1.6: torch.save(torch.load(f), f2)", OP, file);
    return NULL;
  }
  if (m->size < 4 || memcmp(m->base, "PK\x03\x04", 4) != 0) {
    fsvc_set_error("%s: %s: not a torch.save file (no zip signature)", OP, file);
    return NULL;
  }
  fsvc_zip zip;
  if (fsvc_zip_open(&zip, m->base, m->size, OP, file)) return NULL;
  const fsvc_zip_entry *pkl = NULL;
  for (size_t i = 0; i < zip.n_entries && !pkl; i++) {
    const char *n = zip.entries[i].name, *slash = strchr(n, '/');
    if (slash && strcmp(slash + 1, "data.pkl") == 0) pkl = &zip.entries[i];
  }
  if (!pkl) {
    fsvc_set_error("%s: %s: zip archive without <archive>/data.pkl (not a torch.save file)", OP, file);
    fsvc_zip_close(&zip);
    return NULL;
  }
  char prefix[256];
  size_t plen = strlen(pkl->name) - strlen("data.pkl");
  if (plen >= sizeof prefix) plen = sizeof prefix - 1;
  memcpy(prefix, pkl->name, plen);
  prefix[plen] = '\0';

  char bo_name[300];
  snprintf(bo_name, sizeof bo_name, "%sbyteorder", prefix);
  const fsvc_zip_entry *bo = fsvc_zip_find(&zip, bo_name);
  if (bo) {
    int owned;
    const unsigned char *s = fsvc_zip_read(&zip, bo, &owned, OP, file);
    int big = s && bo->size == 3 && memcmp(s, "big", 3) == 0;
    if (owned) free((void *)s);
    if (!s) { fsvc_zip_close(&zip); return NULL; }
    if (big) {
      fsvc_set_error("%s: %s: big-endian checkpoints are not supported", OP, file);
      fsvc_zip_close(&zip);
      return NULL;
    }
  }

  int owned = 0;
  const unsigned char *pickle = fsvc_zip_read(&zip, pkl, &owned, OP, file);
  if (!pickle) { fsvc_zip_close(&zip); return NULL; }
  vm v;
  memset(&v, 0, sizeof v);
  v.file = file;
  v.start = v.p = pickle;
  v.end = pickle + pkl->size;
  v.map = m;
  v.zip = &zip;
  v.prefix = prefix;
  fsvc_tensor_dict *d = NULL;
  pv *result = run(&v);
  if (result) {
    d = fsvc_tensor_dict_new();
    char *name = malloc(4096);
    if (!d || !name) fsvc_set_error("%s: %s: out of memory", OP, file);
    else {
      name[0] = '\0';
      if (result->kind == V_TENSOR) {
        if (fsvc_tensor_dict_set(d, "tensor", result->t)) { fsvc_tensor_dict_free(d); d = NULL; }
      } else if (flatten(&v, result, name, 0, 4096, d, 0)) {
        fsvc_tensor_dict_free(d);
        d = NULL;
      }
    }
    free(name);
  }
  vm_free(&v);
  if (owned) free((void *)pickle);
  fsvc_zip_close(&zip);
  return d;
}

fsvc_tensor_dict *fsvc_torch_load(const char *path) {
  if (!path) { fsvc_set_error("%s: NULL path", OP); return NULL; }
  fsvc_mapping *m = fsvc_mapping_open(path, OP);
  if (!m) return NULL;
  fsvc_tensor_dict *d = load_mapping(m, path);
  fsvc_mapping_release(m);
  if (!d) fsvc_io_error_oneline();
  return d;
}

fsvc_tensor_dict *fsvc_torch_load_memory(const void *data, size_t size, const char *name) {
  if (!name) name = "<memory>";
  if (!data && size) { fsvc_set_error("%s: %s: NULL buffer", OP, name); return NULL; }
  fsvc_mapping *m = fsvc_mapping_copy(data, size, OP, name);
  if (!m) return NULL;
  fsvc_tensor_dict *d = load_mapping(m, name);
  fsvc_mapping_release(m);
  if (!d) fsvc_io_error_oneline();
  return d;
}

fsvc_tensor_dict *fsvc_checkpoint_load(const char *path) {
  if (!path) { fsvc_set_error("load_checkpoint: NULL path"); return NULL; }
  FILE *f = fopen(path, "rb");
  if (!f) {
    fsvc_set_error("load_checkpoint: %s: cannot open (%s)", path, strerror(errno));
    return NULL;
  }
  unsigned char magic[4] = {0};
  size_t n = fread(magic, 1, 4, f);
  fclose(f);
  if ((n == 4 && memcmp(magic, "PK\x03\x04", 4) == 0) || (n >= 2 && magic[0] == 0x80 && magic[1] <= 5))
    return fsvc_torch_load(path);
  return fsvc_safetensors_load(path);
}
