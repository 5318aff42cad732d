/* Custom autograd functions whose backward is written in Lua (fsvc.Function in lua/fsvc/autograd.lua
 * builds on fsvc._attach_custom), and the gradient-mode switch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsvc_lua.h"

typedef struct {
  lua_State *L; /* the main thread: backward may run from any coroutine */
  int ref;      /* registry ref to {backward = fn, ctx = table, name = string} */
  char name[64];
} custom_ctx;

static void custom_ctx_free(void *p) {
  custom_ctx *c = p;
  luaL_unref(c->L, LUA_REGISTRYINDEX, c->ref);
  free(c);
}

static int custom_backward(fsvc_node *node, const fsvc_tensor *grad_out, fsvc_tensor **grad_in) {
  custom_ctx *c = node->ctx;
  lua_State *L = c->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
  lua_getfield(L, -1, "backward");
  lua_getfield(L, -2, "ctx");
  fsvc_tensor *g = fsvc_detach(grad_out);
  if (!g) { lua_settop(L, top); return -1; }
  fsvc_lua_push_tensor(L, g);
  if (lua_pcall(L, 2, node->n_inputs, 0) != LUA_OK) {
    fsvc_set_error("backward of custom function %s: %s", c->name, lua_tostring(L, -1));
    lua_settop(L, top);
    return -1;
  }
  int base = lua_gettop(L) - node->n_inputs + 1;
  for (int i = 0; i < node->n_inputs; i++) {
    int idx = base + i;
    if (lua_isnil(L, idx) || !node->edges[i].needs_grad) continue;
    if (!fsvc_lua_is_tensor(L, idx)) {
      fsvc_set_error("backward of custom function %s: result %d must be a tensor or nil, got %s",
                     c->name, i + 1, luaL_typename(L, idx));
      lua_settop(L, top);
      return -1;
    }
    fsvc_tensor *t = *(fsvc_tensor **)lua_touserdata(L, idx);
    if (!t || !t->storage) {
      fsvc_set_error("backward of custom function %s: result %d was freed", c->name, i + 1);
      lua_settop(L, top);
      return -1;
    }
    grad_in[i] = fsvc_detach(t);
  }
  lua_settop(L, top);
  return 0;
}

/* fsvc._attach_custom(output, record, input1, input2, ...) -> output' with a grad_fn whose
 * backward calls record.backward(record.ctx, grad) and expects one gradient per input. */
static int l_attach_custom(lua_State *L) {
  fsvc_tensor *out = fsvc_lua_check_tensor(L, 1, "Function", "output");
  luaL_checktype(L, 2, LUA_TTABLE);
  int n = lua_gettop(L) - 2;
  if (n > 64) return luaL_error(L, "Function: at most 64 inputs");
  fsvc_tensor *inputs[64];
  for (int i = 0; i < n; i++)
    inputs[i] = fsvc_lua_is_tensor(L, 3 + i) ? fsvc_lua_check_tensor(L, 3 + i, "Function", "input") : NULL;
  fsvc_tensor *result = fsvc_detach(out);
  if (!result) return fsvc_lua_error(L);
  fsvc_node *node = fsvc_node_new("custom", n, inputs, custom_backward);
  if (node) {
    custom_ctx *c = calloc(1, sizeof *c);
    if (!c) { fsvc_node_release(node); fsvc_tensor_release(result); return luaL_error(L, "Function: out of memory"); }
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    c->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 2, "name");
    snprintf(c->name, sizeof c->name, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_pop(L, 1);
    lua_pushvalue(L, 2);
    c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    node->ctx = c;
    node->ctx_free = custom_ctx_free;
    fsvc_node_attach(node, result);
  }
  return fsvc_lua_push_tensor(L, result);
}

void fsvc_bind_autograd(lua_State *L) {
  static const luaL_Reg functions[] = {{"_attach_custom", l_attach_custom}, {NULL, NULL}};
  fsvc_lua_register(L, functions, FSVC_LUA_FUNCTION_ONLY);
}
