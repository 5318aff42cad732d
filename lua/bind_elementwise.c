/* Lua bindings of the elementwise ops (core/include/fsvc/ops_elementwise.h).
 *
 *   fsvc.add(a, b) sub mul div pow maximum minimum     either operand may be a Lua number
 *   fsvc.eq(a, b) ne lt le gt ge                        0/1 in the promoted dtype, no gradient
 *   x:neg() abs exp log sqrt sin cos tanh sigmoid relu gelu
 *   x:leaky_relu(slope)                                 slope defaults to 0.01
 *   x:clamp(min, max) or x:clamp{min=0, max=1}          nil / absent = no bound
 *   fsvc.where(cond, a, b)                              a, b tensors or numbers; cond nonzero = a
 *   x:masked_fill(mask, value)
 *   x:add_(y, alpha)  x:mul_(s)                         in place, no autograd, return x
 *
 * A Lua number next to a tensor becomes a 0-d tensor of the tensor's dtype (a non-integer number
 * next to an int64 tensor becomes float32, as in PyTorch; float32 next to float16/bfloat16, where
 * the result keeps the 16-bit dtype), so 2 * x keeps x's dtype.
 * `where` is a function only: PyTorch's x:where(cond, y) means where(cond, x, y), and a method
 * with the condition first would mislead.
 */
#include <math.h>

#include "fsvc_lua.h"

/* Raises unless the argument is a number, a boolean or a live tensor; allocates nothing, so
 * every operand can be checked before any reference is taken (a later raise would leak it). */
static void check_operand(lua_State *L, int idx, const char *op, const char *name) {
  int t = lua_type(L, idx);
  if (t == LUA_TNUMBER || t == LUA_TBOOLEAN) return;
  fsvc_lua_check_tensor(L, idx, op, name);
}

/* Operands at 1 and 2: at least one a tensor; numbers take the tensor's dtype. */
static int binary(lua_State *L, const char *op,
                  fsvc_tensor *(*f)(const fsvc_tensor *, const fsvc_tensor *)) {
  check_operand(L, 1, op, "input");
  check_operand(L, 2, op, "other");
  int a_is = fsvc_lua_is_tensor(L, 1), b_is = fsvc_lua_is_tensor(L, 2);
  if (!a_is && !b_is)
    return luaL_error(L, "%s: at least one argument must be a tensor (got %s and %s)", op,
                      luaL_typename(L, 1), luaL_typename(L, 2));
  fsvc_dtype like = fsvc_lua_check_tensor(L, a_is ? 1 : 2, op, a_is ? "input" : "other")->dtype;
  fsvc_tensor *a = fsvc_lua_check_tensor_or_scalar(L, 1, like, op, "input");
  fsvc_tensor *b = b_is || a ? fsvc_lua_check_tensor_or_scalar(L, 2, like, op, "other") : NULL;
  fsvc_tensor *r = a && b ? f(a, b) : NULL;
  fsvc_tensor_release(a);
  fsvc_tensor_release(b);
  return fsvc_lua_push_tensor(L, r);
}

#define BINARY(name)                                                                               \
  static int l_##name(lua_State *L) { return binary(L, #name, fsvc_##name); }
BINARY(add)
BINARY(sub)
BINARY(mul)
BINARY(div)
BINARY(pow)
BINARY(maximum)
BINARY(minimum)
BINARY(eq)
BINARY(ne)
BINARY(lt)
BINARY(le)
BINARY(gt)
BINARY(ge)

#define UNARY(name)                                                                                \
  static int l_##name(lua_State *L) {                                                              \
    fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, #name, "input");                                  \
    return fsvc_lua_push_tensor(L, fsvc_##name(x));                                                \
  }
UNARY(neg)
UNARY(abs)
UNARY(exp)
UNARY(log)
UNARY(sqrt)
UNARY(sin)
UNARY(cos)
UNARY(tanh)
UNARY(sigmoid)
UNARY(relu)
UNARY(gelu)

/* x:leaky_relu(slope) or x:leaky_relu{negative_slope=0.1} */
static int l_leaky_relu(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "leaky_relu", "input");
  double slope = 0.01;
  if (lua_istable(L, 2))
    slope = fsvc_lua_opt_field_number(L, 2, "negative_slope", 0.01, "leaky_relu");
  else if (!lua_isnoneornil(L, 2))
    slope = fsvc_lua_check_number(L, 2, "leaky_relu", "negative_slope");
  return fsvc_lua_push_tensor(L, fsvc_leaky_relu(x, slope));
}

/* A clamp bound: a number, or nil for none. */
static double bound_arg(lua_State *L, int idx, double none, const char *name) {
  if (lua_isnoneornil(L, idx)) return none;
  return fsvc_lua_check_number(L, idx, "clamp", name);
}

static int l_clamp(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "clamp", "input");
  double lo, hi;
  if (lua_istable(L, 2)) {
    lo = fsvc_lua_opt_field_number(L, 2, "min", -INFINITY, "clamp");
    hi = fsvc_lua_opt_field_number(L, 2, "max", INFINITY, "clamp");
  } else {
    lo = bound_arg(L, 2, -INFINITY, "min");
    hi = bound_arg(L, 3, INFINITY, "max");
  }
  return fsvc_lua_push_tensor(L, fsvc_clamp(x, lo, hi));
}

static int l_where(lua_State *L) {
  fsvc_tensor *cond = fsvc_lua_check_tensor(L, 1, "where", "condition");
  check_operand(L, 2, "where", "input");
  check_operand(L, 3, "where", "other");
  /* numbers take the dtype of the tensor operand; two numbers: int64 if both are integers */
  fsvc_dtype like;
  if (fsvc_lua_is_tensor(L, 2)) like = fsvc_lua_check_tensor(L, 2, "where", "input")->dtype;
  else if (fsvc_lua_is_tensor(L, 3)) like = fsvc_lua_check_tensor(L, 3, "where", "other")->dtype;
  else like = lua_isinteger(L, 2) && lua_isinteger(L, 3) ? FSVC_INT64 : FSVC_FLOAT32;
  fsvc_tensor *a = fsvc_lua_check_tensor_or_scalar(L, 2, like, "where", "input");
  fsvc_tensor *b = a ? fsvc_lua_check_tensor_or_scalar(L, 3, like, "where", "other") : NULL;
  fsvc_tensor *r = a && b ? fsvc_where(cond, a, b) : NULL;
  fsvc_tensor_release(a);
  fsvc_tensor_release(b);
  return fsvc_lua_push_tensor(L, r);
}

/* A scalar value: a number, a boolean, or a one-element tensor (as PyTorch accepts). */
static double value_arg(lua_State *L, int idx, const char *op) {
  if (lua_type(L, idx) == LUA_TBOOLEAN) return lua_toboolean(L, idx);
  if (fsvc_lua_is_tensor(L, idx)) {
    fsvc_tensor *v = fsvc_lua_check_tensor(L, idx, op, "value");
    if (fsvc_numel(v) != 1) {
      char buf[128];
      luaL_error(L, "%s: value must be a number or a one-element tensor, got shape %s", op,
                 fsvc_shape_str(v, buf, sizeof buf));
    }
    return fsvc_get_flat(v, 0);
  }
  return fsvc_lua_check_number(L, idx, op, "value");
}

static int l_masked_fill(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "masked_fill", "input");
  fsvc_tensor *mask = fsvc_lua_check_tensor(L, 2, "masked_fill", "mask");
  double value = value_arg(L, 3, "masked_fill");
  return fsvc_lua_push_tensor(L, fsvc_masked_fill(x, mask, value));
}

/* x:add_(y, alpha): y a tensor (broadcast to x) or a number; returns x */
static int l_add_(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "add_", "self");
  check_operand(L, 2, "add_", "other");
  double alpha = lua_isnoneornil(L, 3) ? 1.0 : fsvc_lua_check_number(L, 3, "add_", "alpha");
  fsvc_tensor *y = fsvc_lua_check_tensor_or_scalar(L, 2, x->dtype, "add_", "other");
  int rc = y ? fsvc_add_(x, y, alpha) : -1;
  fsvc_tensor_release(y);
  if (rc != 0) return fsvc_lua_error(L);
  lua_settop(L, 1);
  return 1;
}

/* x:mul_(s): s a number or a one-element tensor; returns x */
static int l_mul_(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "mul_", "self");
  double s = value_arg(L, 2, "mul_");
  if (fsvc_mul_scalar_(x, s) != 0) return fsvc_lua_error(L);
  lua_settop(L, 1);
  return 1;
}

void fsvc_bind_elementwise(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"add", l_add},         {"sub", l_sub},       {"mul", l_mul},
      {"div", l_div},         {"pow", l_pow},       {"maximum", l_maximum},
      {"minimum", l_minimum}, {"eq", l_eq},         {"ne", l_ne},
      {"lt", l_lt},           {"le", l_le},         {"gt", l_gt},
      {"ge", l_ge},           {"neg", l_neg},       {"abs", l_abs},
      {"exp", l_exp},         {"log", l_log},       {"sqrt", l_sqrt},
      {"sin", l_sin},         {"cos", l_cos},       {"tanh", l_tanh},
      {"sigmoid", l_sigmoid}, {"relu", l_relu},     {"gelu", l_gelu},
      {"leaky_relu", l_leaky_relu}, {"clamp", l_clamp}, {"masked_fill", l_masked_fill},
      {"add_", l_add_},       {"mul_", l_mul_},     {NULL, NULL},
  };
  static const luaL_Reg functions_only[] = {{"where", l_where}, {NULL, NULL}};
  fsvc_lua_register(L, funcs, FSVC_LUA_METHOD_AND_FUNCTION);
  fsvc_lua_register(L, functions_only, FSVC_LUA_FUNCTION_ONLY);
}
