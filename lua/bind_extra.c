/* Lua bindings of core/include/fsvc/ops_extra.h (used by fsvc.optim; private names):
 *
 *   fsvc._adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq_or_nil,
 *                   {lr, beta1, beta2, eps, weight_decay, step, maximize, decoupled})
 *   fsvc._sgd_step(param, grad, momentum_buffer_or_nil,
 *                  {lr, momentum, dampening, weight_decay, nesterov, maximize, first_step})
 *
 * Both update their tensors in place and return nothing. */
#include "fsvc/ops_extra.h"
#include "fsvc_lua.h"

/* called from luaopen_fsvc_core (lua/bind_tensor.c) */
void fsvc_bind_extra(lua_State *L);

static int l_adam_step(lua_State *L) {
  const char *op = "_adam_step";
  fsvc_tensor *p = fsvc_lua_check_tensor(L, 1, op, "param");
  fsvc_tensor *g = fsvc_lua_check_tensor(L, 2, op, "grad");
  fsvc_tensor *m = fsvc_lua_check_tensor(L, 3, op, "exp_avg");
  fsvc_tensor *v = fsvc_lua_check_tensor(L, 4, op, "exp_avg_sq");
  fsvc_tensor *vmax = fsvc_lua_opt_tensor(L, 5, op, "max_exp_avg_sq");
  luaL_checktype(L, 6, LUA_TTABLE);
  fsvc_adam_params h;
  h.lr = fsvc_lua_opt_field_number(L, 6, "lr", 1e-3, op);
  h.beta1 = fsvc_lua_opt_field_number(L, 6, "beta1", 0.9, op);
  h.beta2 = fsvc_lua_opt_field_number(L, 6, "beta2", 0.999, op);
  h.eps = fsvc_lua_opt_field_number(L, 6, "eps", 1e-8, op);
  h.weight_decay = fsvc_lua_opt_field_number(L, 6, "weight_decay", 0, op);
  h.step = fsvc_lua_opt_field_int(L, 6, "step", 1, op);
  h.maximize = fsvc_lua_opt_field_bool(L, 6, "maximize", 0, op);
  h.decoupled = fsvc_lua_opt_field_bool(L, 6, "decoupled", 0, op);
  if (fsvc_adam_step_(p, g, m, v, vmax, &h) != 0) return fsvc_lua_error(L);
  return 0;
}

static int l_sgd_step(lua_State *L) {
  const char *op = "_sgd_step";
  fsvc_tensor *p = fsvc_lua_check_tensor(L, 1, op, "param");
  fsvc_tensor *g = fsvc_lua_check_tensor(L, 2, op, "grad");
  fsvc_tensor *buf = fsvc_lua_opt_tensor(L, 3, op, "momentum_buffer");
  luaL_checktype(L, 4, LUA_TTABLE);
  fsvc_sgd_params h;
  h.lr = fsvc_lua_opt_field_number(L, 4, "lr", 1e-3, op);
  h.momentum = fsvc_lua_opt_field_number(L, 4, "momentum", 0, op);
  h.dampening = fsvc_lua_opt_field_number(L, 4, "dampening", 0, op);
  h.weight_decay = fsvc_lua_opt_field_number(L, 4, "weight_decay", 0, op);
  h.nesterov = fsvc_lua_opt_field_bool(L, 4, "nesterov", 0, op);
  h.maximize = fsvc_lua_opt_field_bool(L, 4, "maximize", 0, op);
  h.first_step = fsvc_lua_opt_field_bool(L, 4, "first_step", 0, op);
  if (fsvc_sgd_step_(p, g, buf, &h) != 0) return fsvc_lua_error(L);
  return 0;
}

void fsvc_bind_extra(lua_State *L) {
  static const luaL_Reg funcs[] = {{"_adam_step", l_adam_step}, {"_sgd_step", l_sgd_step}, {NULL, NULL}};
  fsvc_lua_register(L, funcs, FSVC_LUA_FUNCTION_ONLY);
}
