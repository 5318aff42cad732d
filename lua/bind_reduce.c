/* Lua bindings of the reductions (core/include/fsvc/ops_reduce.h).
 *
 * Argument convention (each is both fsvc.op(x, ...) and x:op(...)):
 *   dims     nil (every dim), one integer, or a list of integers; 0-based, negative from the end
 *   keepdim  a boolean after the dims (default false); reduced dims stay with size 1
 *   options  a trailing table, for the ops that have named options
 *
 *   x:sum(dims?, keepdim?)          x:sum() -> 0-d;  x:sum(1);  x:sum({1, 2}, true)
 *   x:mean(dims?, keepdim?)
 *   x:var(dims?, {unbiased=true, keepdim=false})    (unbiased = Bessel's N-1, PyTorch's default)
 *   x:std(dims?, {unbiased=true, keepdim=false})    x:std({1, 2}) as the reference LayerNorm
 *   x:norm(p?, dims?, keepdim?)     p = 2 by default; a number >= 0, math.huge, -math.huge or "fro"
 *   x:max()  x:min()                -> the 0-d extremum of every element
 *   x:max(dim, keepdim?)            -> values, indices (int64) of the first extremum along dim
 *   x:max(other_tensor)             -> elementwise maximum (as torch.max(a, b)); min likewise
 *   x:argmax(dim?, keepdim?)        -> int64 indices; no dim: the flat index over every element
 *   x:topk(k, dim?, {largest=true, sorted=true})  -> values, indices; dim defaults to -1; always
 *                                    sorted, ties by the lower index
 *   x:softmax(dim)  x:log_softmax(dim)             (dim is required, as in modern PyTorch)
 *   x:logsumexp(dim, keepdim?)
 *   x:cumsum(dim)
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fsvc_lua.h"

/* keepdim at idx: nil/none -> false, else must be a boolean. */
static int keepdim_arg(lua_State *L, int idx, const char *op) {
  if (lua_isnoneornil(L, idx)) return 0;
  if (!lua_isboolean(L, idx))
    luaL_error(L, "%s: argument #%d (keepdim) must be a boolean, got %s", op, idx, luaL_typename(L, idx));
  return lua_toboolean(L, idx);
}

/* dims at idx: nil, an integer or a list (validated against x). Returns the count (0 = all). */
static int dims_arg(lua_State *L, int idx, const fsvc_tensor *x, int *dims, const char *op) {
  if (!lua_isnoneornil(L, idx) && !lua_istable(L, idx) && lua_type(L, idx) != LUA_TNUMBER)
    luaL_error(L, "%s: argument #%d (dims) must be an integer or a list of integers, got %s", op,
               idx, luaL_typename(L, idx));
  if (lua_istable(L, idx) && lua_rawlen(L, idx) == 0)
    luaL_error(L, "%s: argument #%d (dims) is an empty list; pass nil to reduce every dim", op, idx);
  return fsvc_lua_check_dims(L, idx, x, dims, op);
}

/* The last argument must be at most `last`: catches x:sum(1, true, "junk"). */
static void no_extra_args(lua_State *L, int last, const char *op) {
  int top = lua_gettop(L);
  for (int i = last + 1; i <= top; i++)
    if (!lua_isnil(L, i))
      luaL_error(L, "%s: unexpected argument #%d (%s)", op, i, luaL_typename(L, i));
}

/* ---- sum / mean ----------------------------------------------------------------------------- */
typedef fsvc_tensor *(*dims_fn)(const fsvc_tensor *, int, const int *, int);

static int reduce_dims_keepdim(lua_State *L, const char *op, dims_fn fn) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, op, "input");
  int dims[FSVC_MAX_DIMS];
  int n = dims_arg(L, 2, x, dims, op);
  int keepdim = keepdim_arg(L, 3, op);
  no_extra_args(L, 3, op);
  return fsvc_lua_push_tensor(L, fn(x, n, dims, keepdim));
}

static int l_sum(lua_State *L) { return reduce_dims_keepdim(L, "sum", fsvc_sum); }
static int l_mean(lua_State *L) { return reduce_dims_keepdim(L, "mean", fsvc_mean); }

/* ---- var / std ------------------------------------------------------------------------------ */
typedef fsvc_tensor *(*var_fn)(const fsvc_tensor *, int, const int *, int, int);

static int var_like(lua_State *L, const char *op, var_fn fn) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, op, "input");
  int dims[FSVC_MAX_DIMS];
  int n = dims_arg(L, 2, x, dims, op);
  if (!lua_isnoneornil(L, 3) && !lua_istable(L, 3))
    luaL_error(L, "%s: argument #3 must be an options table {unbiased=true, keepdim=false}, got %s",
               op, luaL_typename(L, 3));
  int unbiased = fsvc_lua_opt_field_bool(L, 3, "unbiased", 1, op);
  int keepdim = fsvc_lua_opt_field_bool(L, 3, "keepdim", 0, op);
  no_extra_args(L, 3, op);
  return fsvc_lua_push_tensor(L, fn(x, n, dims, unbiased, keepdim));
}

static int l_var(lua_State *L) { return var_like(L, "var", fsvc_var); }
static int l_std(lua_State *L) { return var_like(L, "std", fsvc_std); }

/* ---- norm ----------------------------------------------------------------------------------- */
static int l_norm(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "norm", "input");
  double p = 2;
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char *s = lua_tostring(L, 2);
    if (strcmp(s, "fro") == 0) p = 2;
    else if (strcmp(s, "inf") == 0) p = INFINITY;
    else if (strcmp(s, "-inf") == 0) p = -INFINITY;
    else luaL_error(L, "norm: argument #2 (p) must be a number, \"fro\", \"inf\" or \"-inf\", got \"%s\"", s);
  } else if (!lua_isnoneornil(L, 2)) {
    p = fsvc_lua_check_number(L, 2, "norm", "p");
  }
  int dims[FSVC_MAX_DIMS];
  int n = dims_arg(L, 3, x, dims, "norm");
  int keepdim = keepdim_arg(L, 4, "norm");
  no_extra_args(L, 4, "norm");
  return fsvc_lua_push_tensor(L, fsvc_norm(x, p, n, dims, keepdim));
}

/* ---- max / min ------------------------------------------------------------------------------ */
static int extremum(lua_State *L, int want_max) {
  const char *op = want_max ? "max" : "min";
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, op, "input");
  if (lua_isnoneornil(L, 2)) {
    no_extra_args(L, 2, op);
    return fsvc_lua_push_tensor(L, want_max ? fsvc_max_all(x) : fsvc_min_all(x));
  }
  if (fsvc_lua_is_tensor(L, 2)) { /* torch.max(a, b): elementwise */
    fsvc_tensor *y = fsvc_lua_check_tensor(L, 2, op, "other");
    no_extra_args(L, 2, op);
    return fsvc_lua_push_tensor(L, want_max ? fsvc_maximum(x, y) : fsvc_minimum(x, y));
  }
  int dim = fsvc_lua_check_dim(L, 2, x, op);
  int keepdim = keepdim_arg(L, 3, op);
  no_extra_args(L, 3, op);
  fsvc_tensor *idx = NULL;
  fsvc_tensor *vals = want_max ? fsvc_max_dim(x, dim, keepdim, &idx) : fsvc_min_dim(x, dim, keepdim, &idx);
  if (!vals) return fsvc_lua_error(L);
  fsvc_lua_push_tensor(L, vals);
  fsvc_lua_push_tensor(L, idx);
  return 2;
}

static int l_max(lua_State *L) { return extremum(L, 1); }
static int l_min(lua_State *L) { return extremum(L, 0); }

static int arg_extremum(lua_State *L, int want_max) {
  const char *op = want_max ? "argmax" : "argmin";
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, op, "input");
  if (lua_isnoneornil(L, 2)) {
    /* keepdim without a dim keeps every dim with size 1, as torch.argmax(x, keepdim=True) */
    int keepdim = keepdim_arg(L, 3, op);
    no_extra_args(L, 3, op);
    fsvc_tensor *t = want_max ? fsvc_argmax_all(x) : fsvc_argmin_all(x);
    if (t && keepdim) {
      int64_t ones[FSVC_MAX_DIMS], strides[FSVC_MAX_DIMS];
      for (int i = 0; i < x->ndim; i++) ones[i] = 1, strides[i] = 1;
      fsvc_tensor *v = fsvc_view_raw(t, x->ndim, ones, strides, t->offset);
      fsvc_tensor_release(t);
      t = v;
    }
    return fsvc_lua_push_tensor(L, t);
  }
  int dim = fsvc_lua_check_dim(L, 2, x, op);
  int keepdim = keepdim_arg(L, 3, op);
  no_extra_args(L, 3, op);
  return fsvc_lua_push_tensor(L, want_max ? fsvc_argmax(x, dim, keepdim) : fsvc_argmin(x, dim, keepdim));
}

static int l_argmax(lua_State *L) { return arg_extremum(L, 1); }
static int l_argmin(lua_State *L) { return arg_extremum(L, 0); }

/* ---- topk ----------------------------------------------------------------------------------- */
static int l_topk(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "topk", "input");
  int64_t k = fsvc_lua_check_int(L, 2, "topk", "k");
  int opt = 4, dim = -1;
  if (lua_istable(L, 3)) {
    opt = 3; /* x:topk(k, {largest=false}) */
  } else if (!lua_isnoneornil(L, 3)) {
    dim = fsvc_lua_check_dim(L, 3, x, "topk");
  }
  if (!lua_isnoneornil(L, opt) && !lua_istable(L, opt))
    luaL_error(L, "topk: argument #%d must be an options table {largest=true, sorted=true}, got %s",
               opt, luaL_typename(L, opt));
  int largest = fsvc_lua_opt_field_bool(L, opt, "largest", 1, "topk");
  int sorted = fsvc_lua_opt_field_bool(L, opt, "sorted", 1, "topk");
  no_extra_args(L, opt, "topk");
  fsvc_tensor *idx = NULL;
  fsvc_tensor *vals = fsvc_topk(x, k, dim, largest, sorted, &idx);
  if (!vals) return fsvc_lua_error(L);
  fsvc_lua_push_tensor(L, vals);
  fsvc_lua_push_tensor(L, idx);
  return 2;
}

/* ---- along one dim -------------------------------------------------------------------------- */
typedef fsvc_tensor *(*dim_fn)(const fsvc_tensor *, int);

static int along_dim(lua_State *L, const char *op, dim_fn fn) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, op, "input");
  if (lua_isnoneornil(L, 2)) luaL_error(L, "%s: argument #2 (dim) is required", op);
  int dim = fsvc_lua_check_dim(L, 2, x, op);
  no_extra_args(L, 2, op);
  return fsvc_lua_push_tensor(L, fn(x, dim));
}

static int l_softmax(lua_State *L) { return along_dim(L, "softmax", fsvc_softmax); }
static int l_log_softmax(lua_State *L) { return along_dim(L, "log_softmax", fsvc_log_softmax); }
static int l_cumsum(lua_State *L) { return along_dim(L, "cumsum", fsvc_cumsum); }

static int l_logsumexp(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "logsumexp", "input");
  if (lua_isnoneornil(L, 2)) luaL_error(L, "logsumexp: argument #2 (dim) is required");
  int dim = fsvc_lua_check_dim(L, 2, x, "logsumexp");
  int keepdim = keepdim_arg(L, 3, "logsumexp");
  no_extra_args(L, 3, "logsumexp");
  return fsvc_lua_push_tensor(L, fsvc_logsumexp(x, dim, keepdim));
}

void fsvc_bind_reduce(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"sum", l_sum},         {"mean", l_mean},       {"var", l_var},
      {"std", l_std},         {"norm", l_norm},       {"max", l_max},
      {"min", l_min},         {"argmax", l_argmax},   {"argmin", l_argmin},
      {"topk", l_topk},       {"softmax", l_softmax}, {"log_softmax", l_log_softmax},
      {"logsumexp", l_logsumexp}, {"cumsum", l_cumsum}, {NULL, NULL},
  };
  fsvc_lua_register(L, funcs, FSVC_LUA_METHOD_AND_FUNCTION);
}
