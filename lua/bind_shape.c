/* Lua bindings of the shape, view and indexing ops (core/include/fsvc/ops_shape.h).
 *
 *   x:view(2, -1) or x:view{2, -1}          x:reshape(...)          x:expand(...)
 *   x:permute(2, 0, 1) or x:permute{2, 0, 1} x:transpose(0, 1)       x:t() (2-d)
 *   x:narrow(dim, start, length)             x:slice(dim, start, end_exclusive, step)
 *   x:select(dim, i)                         x:squeeze(dim?)         x:unsqueeze(dim)
 *   x:contiguous()  x:clone()  x:to("float64")  x:float()  x:double()  x:long()
 *   x:half()  x:bfloat16()                   (the 16-bit dtypes of mixed precision)
 *   fsvc.cat({a, b}, dim)   fsvc.stack({a, b}, dim)   (dim defaults to 0)
 *   x:split(size or {sizes...}, dim) and x:chunk(n, dim) -> a Lua list of tensors
 *   x:flip(dims)  (a dim, a list of dims, or several dims)
 *   x:pad({left, right, ...}, {mode="constant"|"reflect"|"replicate", value=0})
 *   x:index_select(dim, index)  x:gather(dim, index)  x:scatter_add(dim, index, src)
 * Dims and indices are 0-based, negative from the end; index tensors are int64. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fsvc_lua.h"

/* A dim or small count that must fit an int; the core range-checks it against the tensor. */
static int int_arg(lua_State *L, int idx, const char *op, const char *name) {
  int64_t v = fsvc_lua_check_int(L, idx, op, name);
  if (v < -(1 << 24) || v > (1 << 24))
    luaL_error(L, "%s: argument #%d (%s) = %I is out of range", op, idx, name, (lua_Integer)v);
  return (int)v;
}

/* A shape from a list at idx or integers from idx on; raises when something else is there. */
static int shape_arg(lua_State *L, int idx, int64_t *shape, const char *op) {
  if (!lua_isnoneornil(L, idx) && !lua_istable(L, idx) && lua_type(L, idx) != LUA_TNUMBER)
    luaL_error(L, "%s: argument #%d (shape) must be integers or a list, got %s", op, idx,
               luaL_typename(L, idx));
  int n = fsvc_lua_check_shape(L, idx, shape, op);
  int after = lua_istable(L, idx) ? idx + 1 : idx + n;
  if (!lua_isnone(L, after) && !lua_isnil(L, after))
    luaL_error(L, "%s: argument #%d: unexpected %s after the shape", op, after, luaL_typename(L, after));
  return n;
}

/* A list of ints from a table at idx or from the integers from idx to the top. */
static int int_list_arg(lua_State *L, int idx, int *out, int max, const char *op, const char *name) {
  int n = 0;
  if (lua_istable(L, idx)) {
    n = (int)lua_rawlen(L, idx);
    if (n > max) luaL_error(L, "%s: %s has %d entries, at most %d allowed", op, name, n, max);
    for (int i = 0; i < n; i++) {
      lua_rawgeti(L, idx, i + 1);
      out[i] = int_arg(L, lua_gettop(L), op, name);
      lua_pop(L, 1);
    }
    return n;
  }
  int top = lua_gettop(L);
  for (int i = idx; i <= top; i++) {
    if (n >= max) luaL_error(L, "%s: %s has more than %d entries", op, name, max);
    out[n++] = int_arg(L, i, op, name);
  }
  return n;
}

/* ---- views --------------------------------------------------------------------------------- */
/* x:view(shape), x:reshape(shape), x:expand(shape): a tensor and a shape. */
static int shape_op(lua_State *L, const char *op,
                    fsvc_tensor *(*fn)(const fsvc_tensor *, int, const int64_t *)) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, op, "input");
  int64_t shape[FSVC_MAX_DIMS];
  int n = shape_arg(L, 2, shape, op);
  return fsvc_lua_push_tensor(L, fn(x, n, shape));
}
static int l_view(lua_State *L) { return shape_op(L, "view", fsvc_view); }
static int l_reshape(lua_State *L) { return shape_op(L, "reshape", fsvc_reshape); }
static int l_expand(lua_State *L) { return shape_op(L, "expand", fsvc_expand); }

static int l_permute(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "permute", "input");
  int perm[FSVC_MAX_DIMS];
  int n = int_list_arg(L, 2, perm, FSVC_MAX_DIMS, "permute", "dims");
  if (n != x->ndim)
    return luaL_error(L, "permute: got %d dims for a tensor of %d dims", n, x->ndim);
  return fsvc_lua_push_tensor(L, fsvc_permute(x, perm));
}

static int l_transpose(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "transpose", "input");
  int d0 = int_arg(L, 2, "transpose", "dim0"), d1 = int_arg(L, 3, "transpose", "dim1");
  return fsvc_lua_push_tensor(L, fsvc_transpose(x, d0, d1));
}

/* x:t(): transpose of a tensor of at most 2 dims */
static int l_t(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "t", "input");
  if (x->ndim > 2) return luaL_error(L, "t: expects a tensor of at most 2 dims, got %d", x->ndim);
  if (x->ndim < 2) return fsvc_lua_push_tensor(L, fsvc_transpose(x, 0, 0));
  return fsvc_lua_push_tensor(L, fsvc_transpose(x, 0, 1));
}

static int l_narrow(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "narrow", "input");
  int dim = int_arg(L, 2, "narrow", "dim");
  int64_t start = fsvc_lua_check_int(L, 3, "narrow", "start");
  int64_t length = fsvc_lua_check_int(L, 4, "narrow", "length");
  return fsvc_lua_push_tensor(L, fsvc_narrow(x, dim, start, length));
}

static int l_slice(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "slice", "input");
  int dim = int_arg(L, 2, "slice", "dim");
  int64_t start = fsvc_lua_opt_int(L, 3, 0, "slice", "start");
  int64_t end = fsvc_lua_opt_int(L, 4, INT64_MAX, "slice", "end");
  int64_t step = fsvc_lua_opt_int(L, 5, 1, "slice", "step");
  return fsvc_lua_push_tensor(L, fsvc_slice(x, dim, start, end, step));
}

static int l_select(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "select", "input");
  int dim = int_arg(L, 2, "select", "dim");
  int64_t i = fsvc_lua_check_int(L, 3, "select", "index");
  return fsvc_lua_push_tensor(L, fsvc_select(x, dim, i));
}

static int l_squeeze(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "squeeze", "input");
  if (lua_isnoneornil(L, 2)) return fsvc_lua_push_tensor(L, fsvc_squeeze_all(x));
  return fsvc_lua_push_tensor(L, fsvc_squeeze(x, int_arg(L, 2, "squeeze", "dim")));
}

static int l_unsqueeze(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "unsqueeze", "input");
  return fsvc_lua_push_tensor(L, fsvc_unsqueeze(x, int_arg(L, 2, "unsqueeze", "dim")));
}

static int l_contiguous(lua_State *L) {
  return fsvc_lua_push_tensor(L, fsvc_contiguous(fsvc_lua_check_tensor(L, 1, "contiguous", "input")));
}

static int l_clone(lua_State *L) {
  return fsvc_lua_push_tensor(L, fsvc_clone(fsvc_lua_check_tensor(L, 1, "clone", "input")));
}

static int l_to(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "to", "input");
  if (lua_type(L, 2) != LUA_TSTRING)
    return luaL_error(L, "to: argument #2 (dtype) must be a string such as \"float32\", got %s",
                      luaL_typename(L, 2));
  fsvc_dtype dt = fsvc_lua_opt_dtype(L, 2, x->dtype, "to");
  return fsvc_lua_push_tensor(L, fsvc_to_dtype(x, dt));
}

static int cast_to(lua_State *L, fsvc_dtype dt, const char *op) {
  return fsvc_lua_push_tensor(L, fsvc_to_dtype(fsvc_lua_check_tensor(L, 1, op, "input"), dt));
}
static int l_float(lua_State *L) { return cast_to(L, FSVC_FLOAT32, "float"); }
static int l_double(lua_State *L) { return cast_to(L, FSVC_FLOAT64, "double"); }
static int l_long(lua_State *L) { return cast_to(L, FSVC_INT64, "long"); }
static int l_half(lua_State *L) { return cast_to(L, FSVC_FLOAT16, "half"); }
static int l_bfloat16(lua_State *L) { return cast_to(L, FSVC_BFLOAT16, "bfloat16"); }

/* ---- cat / stack / split / chunk ----------------------------------------------------------- */
/* The tensors of the list at idx, borrowed (the list keeps them alive); *n is set. */
static fsvc_tensor **tensor_list_arg(lua_State *L, int idx, int *n, const char *op) {
  if (!lua_istable(L, idx))
    luaL_error(L, "%s: argument #%d must be a list of tensors, got %s", op, idx, luaL_typename(L, idx));
  int len = (int)lua_rawlen(L, idx);
  if (len == 0) luaL_error(L, "%s: expected a non-empty list of tensors", op);
  fsvc_tensor **ts = lua_newuserdatauv(L, (size_t)len * sizeof *ts, 0); /* freed by the GC */
  for (int i = 0; i < len; i++) {
    lua_rawgeti(L, idx, i + 1);
    if (!fsvc_lua_is_tensor(L, -1))
      luaL_error(L, "%s: entry %d of the list must be a tensor, got %s", op, i + 1, luaL_typename(L, -1));
    ts[i] = fsvc_lua_check_tensor(L, lua_gettop(L), op, "list entry");
    lua_pop(L, 1);
  }
  *n = len;
  return ts;
}

static int l_cat(lua_State *L) {
  int n;
  int dim = lua_isnoneornil(L, 2) ? 0 : int_arg(L, 2, "cat", "dim");
  fsvc_tensor **ts = tensor_list_arg(L, 1, &n, "cat");
  return fsvc_lua_push_tensor(L, fsvc_cat(n, ts, dim));
}

static int l_stack(lua_State *L) {
  int n;
  int dim = lua_isnoneornil(L, 2) ? 0 : int_arg(L, 2, "stack", "dim");
  fsvc_tensor **ts = tensor_list_arg(L, 1, &n, "stack");
  return fsvc_lua_push_tensor(L, fsvc_stack(n, ts, dim));
}

/* Pushes a Lua list of the n tensors (taking their references) and frees the array. */
static int push_list(lua_State *L, fsvc_tensor **parts, int n) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    fsvc_lua_push_tensor(L, parts[i]);
    lua_rawseti(L, -2, i + 1);
  }
  free(parts);
  return 1;
}

static int l_split(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "split", "input");
  int dim = lua_isnoneornil(L, 3) ? 0 : int_arg(L, 3, "split", "dim");
  fsvc_tensor **parts = NULL;
  int n = 0;
  if (lua_istable(L, 2)) { /* explicit sizes, which must add up to the dim's size */
    if (x->ndim == 0) return luaL_error(L, "split: cannot split a 0-d tensor");
    int d = dim < 0 ? dim + x->ndim : dim;
    if (d < 0 || d >= x->ndim)
      return luaL_error(L, "split: dim %d out of range for a tensor of %d dims", dim, x->ndim);
    int len = (int)lua_rawlen(L, 2);
    int64_t total = 0;
    for (int i = 0; i < len; i++) {
      lua_rawgeti(L, 2, i + 1);
      int64_t s = fsvc_lua_check_int(L, lua_gettop(L), "split", "size");
      lua_pop(L, 1);
      if (s < 0) return luaL_error(L, "split: size %d of the list is negative", i + 1);
      total += s;
    }
    if (total != x->shape[d])
      return luaL_error(L, "split: sizes add up to %I but dim %d has size %I", (lua_Integer)total,
                        dim, (lua_Integer)x->shape[d]);
    lua_createtable(L, len, 0);
    int64_t start = 0;
    for (int i = 0; i < len; i++) {
      lua_rawgeti(L, 2, i + 1);
      int64_t s = lua_tointeger(L, -1);
      lua_pop(L, 1);
      fsvc_lua_push_tensor(L, fsvc_narrow(x, d, start, s));
      lua_rawseti(L, -2, i + 1);
      start += s;
    }
    return 1;
  }
  int64_t size = fsvc_lua_check_int(L, 2, "split", "split_size");
  if (fsvc_split(x, size, dim, &parts, &n) != 0) return fsvc_lua_error(L);
  return push_list(L, parts, n);
}

static int l_chunk(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "chunk", "input");
  int chunks = int_arg(L, 2, "chunk", "chunks");
  int dim = lua_isnoneornil(L, 3) ? 0 : int_arg(L, 3, "chunk", "dim");
  fsvc_tensor **parts = NULL;
  int n = 0;
  if (fsvc_chunk(x, chunks, dim, &parts, &n) != 0) return fsvc_lua_error(L);
  return push_list(L, parts, n);
}

/* ---- flip / pad ---------------------------------------------------------------------------- */
static int l_flip(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "flip", "input");
  if (lua_isnoneornil(L, 2)) return luaL_error(L, "flip: argument #2 (dims) is required");
  int dims[FSVC_MAX_DIMS];
  int n = int_list_arg(L, 2, dims, FSVC_MAX_DIMS, "flip", "dims");
  return fsvc_lua_push_tensor(L, fsvc_flip(x, n, dims));
}

static int l_pad(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "pad", "input");
  if (!lua_istable(L, 2))
    return luaL_error(L, "pad: argument #2 (pads) must be a list {left, right, ...}, got %s",
                      luaL_typename(L, 2));
  int n = (int)lua_rawlen(L, 2);
  if (n > 2 * FSVC_MAX_DIMS) return luaL_error(L, "pad: %d pads given, at most %d", n, 2 * FSVC_MAX_DIMS);
  int64_t pads[2 * FSVC_MAX_DIMS];
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 2, i + 1);
    pads[i] = fsvc_lua_check_int(L, lua_gettop(L), "pad", "pad");
    lua_pop(L, 1);
  }
  const char *mode = fsvc_lua_opt_field_string(L, 3, "mode", "constant", "pad");
  double value = fsvc_lua_opt_field_number(L, 3, "value", 0.0, "pad");
  fsvc_pad_mode m;
  if (strcmp(mode, "constant") == 0) m = FSVC_PAD_CONSTANT;
  else if (strcmp(mode, "reflect") == 0) m = FSVC_PAD_REFLECT;
  else if (strcmp(mode, "replicate") == 0) m = FSVC_PAD_REPLICATE;
  else return luaL_error(L, "pad: unknown mode '%s' (constant, reflect or replicate)", mode);
  return fsvc_lua_push_tensor(L, fsvc_pad(x, n, pads, m, value));
}

/* ---- indexing ------------------------------------------------------------------------------ */
static int l_index_select(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "index_select", "input");
  int dim = int_arg(L, 2, "index_select", "dim");
  fsvc_tensor *index = fsvc_lua_check_tensor(L, 3, "index_select", "index");
  return fsvc_lua_push_tensor(L, fsvc_index_select(x, dim, index));
}

static int l_gather(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "gather", "input");
  int dim = int_arg(L, 2, "gather", "dim");
  fsvc_tensor *index = fsvc_lua_check_tensor(L, 3, "gather", "index");
  return fsvc_lua_push_tensor(L, fsvc_gather(x, dim, index));
}

static int l_scatter_add(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "scatter_add", "input");
  int dim = int_arg(L, 2, "scatter_add", "dim");
  fsvc_tensor *index = fsvc_lua_check_tensor(L, 3, "scatter_add", "index");
  fsvc_tensor *src = fsvc_lua_check_tensor(L, 4, "scatter_add", "src");
  return fsvc_lua_push_tensor(L, fsvc_scatter_add(x, dim, index, src));
}

void fsvc_bind_shape(lua_State *L) {
  static const luaL_Reg both[] = {
      {"view", l_view},           {"reshape", l_reshape},
      {"expand", l_expand},       {"permute", l_permute},
      {"transpose", l_transpose}, {"t", l_t},
      {"narrow", l_narrow},       {"slice", l_slice},
      {"select", l_select},       {"squeeze", l_squeeze},
      {"unsqueeze", l_unsqueeze}, {"contiguous", l_contiguous},
      {"clone", l_clone},         {"to", l_to},
      {"float", l_float},         {"double", l_double},
      {"long", l_long},           {"split", l_split},
      {"half", l_half},           {"bfloat16", l_bfloat16},
      {"chunk", l_chunk},         {"flip", l_flip},
      {"pad", l_pad},             {"index_select", l_index_select},
      {"gather", l_gather},       {"scatter_add", l_scatter_add},
      {NULL, NULL}};
  static const luaL_Reg functions[] = {{"cat", l_cat}, {"stack", l_stack}, {NULL, NULL}};
  fsvc_lua_register(L, both, FSVC_LUA_METHOD_AND_FUNCTION);
  fsvc_lua_register(L, functions, FSVC_LUA_FUNCTION_ONLY);
}
