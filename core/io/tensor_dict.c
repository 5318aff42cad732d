/* fsvc_tensor_dict: an insertion-ordered list of named tensors and named plain values. Lookups are
 * linear: checkpoints hold hundreds of entries and are looked up once each. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "fsvc/checkpoint.h"
#include "fsvc/error.h"

typedef struct {
  char *name;
  fsvc_tensor *t;
} tensor_entry;

typedef struct {
  char *key;
  fsvc_value v; /* v.s owned */
} value_entry;

struct fsvc_tensor_dict {
  tensor_entry *tensors;
  int64_t n_tensors, cap_tensors;
  value_entry *values;
  int64_t n_values, cap_values;
};

fsvc_tensor_dict *fsvc_tensor_dict_new(void) {
  fsvc_tensor_dict *d = calloc(1, sizeof *d);
  if (!d) fsvc_set_error("tensor_dict: out of memory");
  return d;
}

void fsvc_tensor_dict_free(fsvc_tensor_dict *d) {
  if (!d) return;
  for (int64_t i = 0; i < d->n_tensors; i++) {
    free(d->tensors[i].name);
    fsvc_tensor_release(d->tensors[i].t);
  }
  for (int64_t i = 0; i < d->n_values; i++) {
    free(d->values[i].key);
    free((char *)d->values[i].v.s);
  }
  free(d->tensors);
  free(d->values);
  free(d);
}

static int grow(void **arr, int64_t *cap, int64_t need, size_t elem) {
  if (need <= *cap) return 0;
  int64_t nc = *cap ? *cap * 2 : 16;
  while (nc < need) nc *= 2;
  void *p = realloc(*arr, (size_t)nc * elem);
  if (!p) { fsvc_set_error("tensor_dict: out of memory"); return -1; }
  *arr = p;
  *cap = nc;
  return 0;
}

int fsvc_tensor_dict_set(fsvc_tensor_dict *d, const char *name, fsvc_tensor *t) {
  if (!d || !name || !t) { fsvc_set_error("tensor_dict_set: NULL argument"); return -1; }
  for (int64_t i = 0; i < d->n_tensors; i++)
    if (strcmp(d->tensors[i].name, name) == 0) {
      fsvc_tensor_retain(t);
      fsvc_tensor_release(d->tensors[i].t);
      d->tensors[i].t = t;
      return 0;
    }
  if (grow((void **)&d->tensors, &d->cap_tensors, d->n_tensors + 1, sizeof *d->tensors)) return -1;
  char *copy = strdup(name);
  if (!copy) { fsvc_set_error("tensor_dict: out of memory"); return -1; }
  d->tensors[d->n_tensors].name = copy;
  d->tensors[d->n_tensors].t = fsvc_tensor_retain(t);
  d->n_tensors++;
  return 0;
}

fsvc_tensor *fsvc_tensor_dict_get(const fsvc_tensor_dict *d, const char *name) {
  if (!d || !name) return NULL;
  for (int64_t i = 0; i < d->n_tensors; i++)
    if (strcmp(d->tensors[i].name, name) == 0) return d->tensors[i].t;
  return NULL;
}

int64_t fsvc_tensor_dict_count(const fsvc_tensor_dict *d) { return d ? d->n_tensors : 0; }
const char *fsvc_tensor_dict_name(const fsvc_tensor_dict *d, int64_t i) {
  return d && i >= 0 && i < d->n_tensors ? d->tensors[i].name : NULL;
}
fsvc_tensor *fsvc_tensor_dict_at(const fsvc_tensor_dict *d, int64_t i) {
  return d && i >= 0 && i < d->n_tensors ? d->tensors[i].t : NULL;
}

int fsvc_tensor_dict_set_value(fsvc_tensor_dict *d, const char *key, fsvc_value v) {
  if (!d || !key || (v.kind == FSVC_VALUE_STRING && !v.s)) {
    fsvc_set_error("tensor_dict_set_value: NULL argument");
    return -1;
  }
  char *s = NULL;
  if (v.kind == FSVC_VALUE_STRING && !(s = strdup(v.s))) {
    fsvc_set_error("tensor_dict: out of memory");
    return -1;
  }
  v.s = s;
  for (int64_t i = 0; i < d->n_values; i++)
    if (strcmp(d->values[i].key, key) == 0) {
      free((char *)d->values[i].v.s);
      d->values[i].v = v;
      return 0;
    }
  char *k = strdup(key);
  if (!k || grow((void **)&d->values, &d->cap_values, d->n_values + 1, sizeof *d->values)) {
    free(k);
    free(s);
    fsvc_set_error("tensor_dict: out of memory");
    return -1;
  }
  d->values[d->n_values].key = k;
  d->values[d->n_values].v = v;
  d->n_values++;
  return 0;
}

int fsvc_tensor_dict_set_meta(fsvc_tensor_dict *d, const char *key, const char *value) {
  fsvc_value v = {FSVC_VALUE_STRING, 0, 0, value};
  return fsvc_tensor_dict_set_value(d, key, v);
}

const fsvc_value *fsvc_tensor_dict_get_value(const fsvc_tensor_dict *d, const char *key) {
  if (!d || !key) return NULL;
  for (int64_t i = 0; i < d->n_values; i++)
    if (strcmp(d->values[i].key, key) == 0) return &d->values[i].v;
  return NULL;
}

const char *fsvc_tensor_dict_get_meta(const fsvc_tensor_dict *d, const char *key) {
  const fsvc_value *v = fsvc_tensor_dict_get_value(d, key);
  return v && v->kind == FSVC_VALUE_STRING ? v->s : NULL;
}

int64_t fsvc_tensor_dict_value_count(const fsvc_tensor_dict *d) { return d ? d->n_values : 0; }
const char *fsvc_tensor_dict_value_key(const fsvc_tensor_dict *d, int64_t i) {
  return d && i >= 0 && i < d->n_values ? d->values[i].key : NULL;
}
const fsvc_value *fsvc_tensor_dict_value_at(const fsvc_tensor_dict *d, int64_t i) {
  return d && i >= 0 && i < d->n_values ? &d->values[i].v : NULL;
}
