/* fsvc.cuda and the device methods of tensors.
 *
 *   fsvc.cuda.is_available()  is_built()  device_count()  get_device_name(i=0)
 *   fsvc.cuda.unavailable_reason()   why is_available() is false ("" when it is true)
 *   fsvc.cuda.synchronize()  manual_seed(n)  initial_seed()  set_allow_tf32(bool)
 *   fsvc.cuda.memory_allocated()  memory_reserved()  max_memory_allocated()  memory_stats()
 *   fsvc.cuda.reset_peak_memory_stats()  empty_cache()
 *   fsvc.cuda.launch_counts() -> {kernels=, library_calls=} since start (host launches; graph
 *     replays not counted); on the CPU emulation also by_kernel = {name = count}
 *   fsvc.cuda.profiler_start() / profiler_stop(): cudaProfilerStart/Stop, so that a profiler run
 *     with collection off at start (ncu --profile-from-start off) records only what lies between
 *   fsvc.cuda.clip_grad_norm_(grads, max_norm [, {sync = true}]) -> total norm (CUDA gradients,
 *     one launch each); sync = false returns it as a 0-d CUDA tensor without waiting (capturable)
 *   fsvc.cuda.event()  -> an opaque event recorded on the current stream;
 *   fsvc.cuda.elapsed_ms(e0, e1) -> milliseconds between two events
 *   fsvc.cuda.stream() -> a new stream; set_stream(s | nil) makes it current; s:synchronize()
 *   fsvc.cuda._adam_step_multi(params, grads, exp_avgs, exp_avg_sqs, max_sqs | nil, h): AdamW
 *     over a whole list in one Adam launch (h as fsvc._adam_step's table)
 *   fsvc.cuda._adam_plan() -> plan; fsvc.cuda._adam_plan_step(plan, params, grads, exp_avgs,
 *     exp_avg_sqs, max_sqs|nil, steps|nil, lr|nil, h): the same through a device-cached table,
 *     capturable with device step counters and rate (fsvc.optim's Adam/AdamW on CUDA)
 *   fsvc.cuda.CUDAGraph() -> g; g:capture(fn [, {warmup = 1}]) -> fn's results (static outputs);
 *     g:replay(); g:reset(); g:is_captured(); fsvc.cuda.graph(fn [, opts]) -> g, results...
 *   x:cuda(i=0)  x:cpu()  x:to("cuda" | "cuda:1" | "cpu" | dtype [, dtype])  x.device  x.is_cuda
 *
 * Moves are differentiable (the gradient goes back to the source device). Element access (item,
 * tolist, get, __tostring, ...) on a CUDA tensor copies it to the host first; writes through
 * set/_set_flat are refused (write on the CPU and move, or use fill_/copy_). Without a GPU, or in
 * a build without the backend, is_available() is false and x:cuda() raises an error that says
 * why. */
#include <stdio.h>
#include <string.h>

#include "fsvc/device.h"
#include "fsvc_lua.h"

#ifdef FSVC_HAVE_CUDA
#include "../gpu/gpu_internal.h"
int fsvc_gpu_clip_grad_norm_(int n, fsvc_tensor **grads, double max_norm, double *total,
                             fsvc_tensor **total_dev);
void *fsvc_gpu_stream_create(void);
void fsvc_gpu_stream_destroy(void *s);
int fsvc_gpu_stream_synchronize(void *s);
int fsvc_gpu_adam_step_list(int n, fsvc_tensor **params, const fsvc_tensor **grads, fsvc_tensor **exp_avg,
                            fsvc_tensor **exp_avg_sq, fsvc_tensor **max_exp_avg_sq, const fsvc_adam_params *h);
#endif

/* the binding's userdata holds the tensor pointer as its first field (lua/bind_tensor.c) */
static fsvc_tensor *peek_tensor(lua_State *L, int idx) {
  fsvc_tensor **ud = luaL_testudata(L, idx, FSVC_TENSOR_MT);
  return ud ? *ud : NULL;
}

/* ---- fsvc.cuda ---------------------------------------------------------------------------------- */
static int l_is_available(lua_State *L) { lua_pushboolean(L, fsvc_cuda_available()); return 1; }
static int l_is_built(lua_State *L) { lua_pushboolean(L, fsvc_cuda_built()); return 1; }
static int l_device_count(lua_State *L) { lua_pushinteger(L, fsvc_cuda_device_count()); return 1; }
static int l_unavailable_reason(lua_State *L) {
  lua_pushstring(L, fsvc_cuda_available() ? "" : fsvc_cuda_unavailable_reason());
  return 1;
}
#ifdef FSVC_HAVE_CUDA
static int l_profiler(lua_State *L, int on) {
  if (!fsvc_cuda_available()) return 0; /* nothing to profile */
  if (fsvc_gpu_profiler(on) != 0) return fsvc_lua_error(L);
  return 0;
}
static int l_profiler_start(lua_State *L) { return l_profiler(L, 1); }
static int l_profiler_stop(lua_State *L) { return l_profiler(L, 0); }
#endif
static int l_get_device_name(lua_State *L) {
  int i = (int)fsvc_lua_opt_int(L, 1, 0, "cuda.get_device_name", "device");
  const char *name = fsvc_cuda_device_name(i);
  if (!name) return fsvc_lua_error(L);
  lua_pushstring(L, name);
  return 1;
}
static int l_synchronize(lua_State *L) {
  if (fsvc_device_synchronize() != 0) return fsvc_lua_error(L);
  return 0;
}

#ifdef FSVC_HAVE_CUDA
static int need_cuda(lua_State *L, const char *op) {
  if (fsvc_cuda_available()) return 0;
  return luaL_error(L, "cuda.%s: CUDA is unavailable: %s", op, fsvc_cuda_unavailable_reason());
}

static int l_manual_seed(lua_State *L) {
  fsvc_gpu_manual_seed((uint64_t)fsvc_lua_check_int(L, 1, "cuda.manual_seed", "seed"));
  return 0;
}
static int l_initial_seed(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)fsvc_gpu_initial_seed());
  return 1;
}
static int l_set_allow_tf32(lua_State *L) {
  fsvc_gpu_allow_tf32 = lua_toboolean(L, 1);
  return 0;
}
static fsvc_gpu_memory_stats stats_now(void) {
  fsvc_gpu_memory_stats s;
  fsvc_gpu_memory_stats_get(&s);
  return s;
}
static int l_memory_allocated(lua_State *L) { lua_pushinteger(L, stats_now().allocated); return 1; }
static int l_memory_reserved(lua_State *L) { lua_pushinteger(L, stats_now().reserved); return 1; }
static int l_max_memory_allocated(lua_State *L) { lua_pushinteger(L, stats_now().peak_allocated); return 1; }
static int l_memory_stats(lua_State *L) {
  fsvc_gpu_memory_stats s = stats_now();
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, s.allocated); lua_setfield(L, -2, "allocated");
  lua_pushinteger(L, s.reserved); lua_setfield(L, -2, "reserved");
  lua_pushinteger(L, s.peak_allocated); lua_setfield(L, -2, "peak_allocated");
  lua_pushinteger(L, s.n_cuda_malloc); lua_setfield(L, -2, "num_cuda_malloc");
  lua_pushinteger(L, s.n_alloc); lua_setfield(L, -2, "num_alloc");
  lua_pushinteger(L, s.n_cache_hits); lua_setfield(L, -2, "num_cache_hits");
  return 1;
}
/* the CPU emulation's launches per kernel name (gpu/emu/emu_runtime.cpp); absent in a real build */
int fsvc_emu_kernel_count(int i, const char **name, int64_t *count) __attribute__((weak));
static int l_launch_counts(lua_State *L) {
  int64_t kernels, library;
  fsvc_gpu_launch_counts(&kernels, &library);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, kernels); lua_setfield(L, -2, "kernels");
  lua_pushinteger(L, library); lua_setfield(L, -2, "library_calls");
  if (fsvc_emu_kernel_count) {
    const char *name;
    int64_t n;
    lua_newtable(L);
    for (int i = 0; fsvc_emu_kernel_count(i, &name, &n); i++) {
      lua_pushinteger(L, n);
      lua_setfield(L, -2, name);
    }
    lua_setfield(L, -2, "by_kernel");
  }
  return 1;
}
static int l_reset_peak(lua_State *L) { (void)L; fsvc_gpu_memory_reset_peak(); return 0; }
static int l_empty_cache(lua_State *L) { (void)L; fsvc_gpu_empty_cache(); return 0; }

static int l_clip_grad_norm(lua_State *L) {
  need_cuda(L, "clip_grad_norm_");
  lua_settop(L, 3); /* the options (or nil) stay at 3, below the scratch userdata */
  luaL_checktype(L, 1, LUA_TTABLE);
  double max_norm = fsvc_lua_check_number(L, 2, "cuda.clip_grad_norm_", "max_norm");
  int n = (int)luaL_len(L, 1);
  fsvc_tensor **gs = lua_newuserdatauv(L, sizeof *gs * (size_t)(n > 0 ? n : 1), 0); /* freed by Lua */
  for (int i = 0; i < n; i++) {
    lua_geti(L, 1, i + 1);
    gs[i] = fsvc_lua_check_tensor(L, -1, "cuda.clip_grad_norm_", "grads[i]");
    lua_pop(L, 1); /* the table keeps it alive */
  }
  int sync = 1;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    fsvc_lua_check_option_keys(L, 3, "cuda.clip_grad_norm_", (const char *const[]){"sync", NULL});
    sync = fsvc_lua_opt_field_bool(L, 3, "sync", 1, "cuda.clip_grad_norm_");
  }
  if (!sync) { /* the norm as a 0-d CUDA tensor: nothing waits for the device */
    fsvc_tensor *t = NULL;
    if (fsvc_gpu_clip_grad_norm_(n, gs, max_norm, NULL, &t) != 0) return fsvc_lua_error(L);
    return fsvc_lua_push_tensor(L, t);
  }
  double total = 0;
  if (fsvc_gpu_clip_grad_norm_(n, gs, max_norm, &total, NULL) != 0) return fsvc_lua_error(L);
  lua_pushnumber(L, total);
  return 1;
}

#define EVENT_MT "fsvc.cuda.Event"
static int l_event_gc(lua_State *L) {
  void **e = luaL_checkudata(L, 1, EVENT_MT);
  fsvc_gpu_event_destroy(*e);
  *e = NULL;
  return 0;
}
static int l_event(lua_State *L) {
  need_cuda(L, "event");
  void **e = lua_newuserdatauv(L, sizeof *e, 0);
  *e = NULL;
  luaL_setmetatable(L, EVENT_MT);
  *e = fsvc_gpu_event_record();
  if (!*e) return fsvc_lua_error(L);
  return 1;
}
static int l_elapsed_ms(lua_State *L) {
  void **a = luaL_checkudata(L, 1, EVENT_MT), **b = luaL_checkudata(L, 2, EVENT_MT);
  lua_pushnumber(L, fsvc_gpu_event_elapsed_ms(*a, *b));
  return 1;
}

/* Streams: fsvc.cuda.stream() creates one; set_stream(s) makes it current for this thread (nil:
 * back to the default stream); s:synchronize(). Blocks freed on a stream are reused on it only. */
#define STREAM_MT "fsvc.cuda.Stream"
static int l_stream_gc(lua_State *L) {
  void **s = luaL_checkudata(L, 1, STREAM_MT);
  if (*s && fsvc_gpu_stream() == *s) fsvc_gpu_set_stream(NULL);
  fsvc_gpu_stream_destroy(*s);
  *s = NULL;
  return 0;
}
static int l_stream(lua_State *L) {
  need_cuda(L, "stream");
  void **s = lua_newuserdatauv(L, sizeof *s, 0);
  *s = NULL;
  luaL_setmetatable(L, STREAM_MT);
  *s = fsvc_gpu_stream_create();
  if (!*s) return fsvc_lua_error(L);
  return 1;
}
static int l_set_stream(lua_State *L) {
  if (lua_isnoneornil(L, 1)) { fsvc_gpu_set_stream(NULL); return 0; }
  void **s = luaL_checkudata(L, 1, STREAM_MT);
  fsvc_gpu_set_stream(*s);
  return 0;
}
static int l_stream_synchronize(lua_State *L) {
  void **s = luaL_checkudata(L, 1, STREAM_MT);
  if (fsvc_gpu_stream_synchronize(*s) != 0) return fsvc_lua_error(L);
  return 0;
}

/* fsvc.cuda._adam_step_multi(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs|nil, h): one
 * launch for a whole list (h as fsvc._adam_step's table) */
static int l_adam_multi(lua_State *L) {
  const char *op = "cuda._adam_step_multi";
  need_cuda(L, "_adam_step_multi");
  for (int i = 1; i <= 4; i++) luaL_checktype(L, i, LUA_TTABLE);
  luaL_checktype(L, 6, LUA_TTABLE);
  int n = (int)luaL_len(L, 1), has_max = lua_istable(L, 5);
  fsvc_tensor **ts = lua_newuserdatauv(L, sizeof *ts * (size_t)(5 * (n > 0 ? n : 1)), 0);
  for (int k = 0; k < (has_max ? 5 : 4); k++) {
    if ((int)luaL_len(L, k + 1) != n) return luaL_error(L, "%s: lists of different lengths", op);
    for (int i = 0; i < n; i++) {
      lua_geti(L, k + 1, i + 1);
      ts[k * n + i] = fsvc_lua_check_tensor(L, -1, op, "list element");
      lua_pop(L, 1);
    }
  }
  fsvc_adam_params h;
  h.lr = fsvc_lua_opt_field_number(L, 6, "lr", 1e-3, op);
  h.beta1 = fsvc_lua_opt_field_number(L, 6, "beta1", 0.9, op);
  h.beta2 = fsvc_lua_opt_field_number(L, 6, "beta2", 0.999, op);
  h.eps = fsvc_lua_opt_field_number(L, 6, "eps", 1e-8, op);
  h.weight_decay = fsvc_lua_opt_field_number(L, 6, "weight_decay", 0, op);
  h.step = fsvc_lua_opt_field_int(L, 6, "step", 1, op);
  h.maximize = fsvc_lua_opt_field_bool(L, 6, "maximize", 0, op);
  h.decoupled = fsvc_lua_opt_field_bool(L, 6, "decoupled", 0, op);
  if (fsvc_gpu_adam_step_list(n, ts, (const fsvc_tensor **)(ts + n), ts + 2 * n, ts + 3 * n,
                              has_max ? ts + 4 * n : NULL, &h) != 0)
    return fsvc_lua_error(L);
  return 0;
}
/* fsvc.cuda._adam_plan() -> plan: the device-cached chunk table of one parameter list (released
 * with the plan, or by plan:free()); plan:uploads() counts its (re)builds.
 * fsvc.cuda._adam_plan_step(plan, params, grads, exp_avgs, exp_avg_sqs, max_sqs|nil, steps|nil,
 * lr|nil, h): Adam/AdamW over the list in one launch through the plan; steps (one 0-d float64 CUDA
 * counter per parameter, incremented on the device) and lr (a 0-d float64 CUDA tensor) make the
 * step capturable: the bias corrections and the rate are then read on the device. */
#define ADAM_PLAN_MT "fsvc.cuda.AdamPlan"
static int l_adam_plan_gc(lua_State *L) {
  fsvc_gpu_adam_plan **p = luaL_checkudata(L, 1, ADAM_PLAN_MT);
  fsvc_gpu_adam_plan_free(*p);
  *p = NULL;
  return 0;
}
static int l_adam_plan_uploads(lua_State *L) {
  fsvc_gpu_adam_plan **p = luaL_checkudata(L, 1, ADAM_PLAN_MT);
  lua_pushinteger(L, (lua_Integer)fsvc_gpu_adam_plan_uploads(*p));
  return 1;
}
static int l_adam_plan(lua_State *L) {
  need_cuda(L, "_adam_plan");
  fsvc_gpu_adam_plan **p = lua_newuserdatauv(L, sizeof *p, 0);
  *p = NULL;
  luaL_setmetatable(L, ADAM_PLAN_MT);
  *p = fsvc_gpu_adam_plan_new();
  if (!*p) return fsvc_lua_error(L);
  return 1;
}
static int l_adam_plan_step(lua_State *L) {
  const char *op = "cuda._adam_plan_step";
  fsvc_gpu_adam_plan **plan = luaL_checkudata(L, 1, ADAM_PLAN_MT);
  if (!*plan) return luaL_error(L, "%s: the plan was freed", op);
  for (int i = 2; i <= 5; i++) luaL_checktype(L, i, LUA_TTABLE);
  luaL_checktype(L, 9, LUA_TTABLE);
  int n = (int)luaL_len(L, 2), has_max = lua_istable(L, 6), has_steps = lua_istable(L, 7);
  fsvc_tensor *lr = lua_isnoneornil(L, 8) ? NULL : fsvc_lua_check_tensor(L, 8, op, "lr");
  fsvc_tensor **ts = lua_newuserdatauv(L, sizeof *ts * (size_t)(6 * (n > 0 ? n : 1)), 0);
  for (int k = 0; k < 6; k++) {
    if ((k == 4 && !has_max) || (k == 5 && !has_steps)) continue;
    if ((int)luaL_len(L, k + 2) != n) return luaL_error(L, "%s: lists of different lengths", op);
    for (int i = 0; i < n; i++) {
      lua_geti(L, k + 2, i + 1);
      ts[k * n + i] = fsvc_lua_check_tensor(L, -1, op, "list element");
      lua_pop(L, 1);
    }
  }
  fsvc_adam_params h;
  h.lr = fsvc_lua_opt_field_number(L, 9, "lr", 1e-3, op);
  h.beta1 = fsvc_lua_opt_field_number(L, 9, "beta1", 0.9, op);
  h.beta2 = fsvc_lua_opt_field_number(L, 9, "beta2", 0.999, op);
  h.eps = fsvc_lua_opt_field_number(L, 9, "eps", 1e-8, op);
  h.weight_decay = fsvc_lua_opt_field_number(L, 9, "weight_decay", 0, op);
  h.step = fsvc_lua_opt_field_int(L, 9, "step", has_steps ? 0 : 1, op);
  h.maximize = fsvc_lua_opt_field_bool(L, 9, "maximize", 0, op);
  h.decoupled = fsvc_lua_opt_field_bool(L, 9, "decoupled", 0, op);
  if (fsvc_gpu_adam_plan_step(*plan, n, ts, (const fsvc_tensor **)(ts + n), ts + 2 * n, ts + 3 * n,
                              has_max ? ts + 4 * n : NULL, has_steps ? ts + 5 * n : NULL, lr, &h) != 0)
    return fsvc_lua_error(L);
  return 0;
}
static void register_adam_plan_type(lua_State *L) {
  luaL_newmetatable(L, ADAM_PLAN_MT);
  lua_pushcfunction(L, l_adam_plan_gc);
  lua_setfield(L, -2, "__gc");
  lua_newtable(L);
  lua_pushcfunction(L, l_adam_plan_uploads);
  lua_setfield(L, -2, "uploads");
  lua_pushcfunction(L, l_adam_plan_gc);
  lua_setfield(L, -2, "free");
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* ---- CUDA graphs --------------------------------------------------------------------------------
 * g:capture(fn, opts) runs fn `warmup` times (default 1) on the graph's stream, then once under
 * capture, with Lua's collector stopped throughout: the warm-up then allocates every block the
 * capture needs (memory cannot be allocated during a capture; see gpu/graph.c), and a full
 * collection between them hands those blocks back to the cache. Returns the captured call's
 * results: tensors whose memory the replays rewrite. */
#define GRAPH_MT "fsvc.cuda.CUDAGraph"
static fsvc_gpu_graph **check_graph(lua_State *L, int idx) {
  fsvc_gpu_graph **g = luaL_checkudata(L, idx, GRAPH_MT);
  if (!*g) luaL_error(L, "cuda graph: used after free");
  return g;
}
static int l_graph_gc(lua_State *L) {
  fsvc_gpu_graph **g = luaL_checkudata(L, 1, GRAPH_MT);
  fsvc_gpu_graph_free(*g);
  *g = NULL;
  return 0;
}
static int l_graph_new(lua_State *L) {
  need_cuda(L, "CUDAGraph");
  fsvc_gpu_graph **g = lua_newuserdatauv(L, sizeof *g, 0);
  *g = NULL;
  luaL_setmetatable(L, GRAPH_MT);
  *g = fsvc_gpu_graph_new();
  if (!*g) return fsvc_lua_error(L);
  return 1;
}
/* restores the collector and raises the error message at the top of the stack */
static int graph_fail(lua_State *L, int gc_was_running) {
  if (gc_was_running) lua_gc(L, LUA_GCRESTART);
  return lua_error(L);
}
static int l_graph_capture(lua_State *L) {
  fsvc_gpu_graph **g = check_graph(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  int warmup = 1;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    fsvc_lua_check_option_keys(L, 3, "cuda graph capture", (const char *const[]){"warmup", NULL});
    warmup = (int)fsvc_lua_opt_field_int(L, 3, "warmup", 1, "cuda graph capture");
    if (warmup < 1) return luaL_error(L, "cuda graph capture: warmup must be >= 1 (it sizes the memory), got %d", warmup);
  }
  if (fsvc_gpu_graph_is_captured(*g))
    return luaL_error(L, "cuda graph capture: this graph is already captured (g:reset() first)");
  lua_settop(L, 2);
  int gc_was_running = lua_gc(L, LUA_GCISRUNNING);
  lua_gc(L, LUA_GCSTOP);
  for (int i = 0; i < warmup; i++) {
    if (fsvc_gpu_graph_warmup_begin(*g) != 0) { lua_pushstring(L, fsvc_last_error()); return graph_fail(L, gc_was_running); }
    lua_pushvalue(L, 2);
    int rc = lua_pcall(L, 0, 0, 0);
    if (fsvc_gpu_graph_warmup_end(*g) != 0 && rc == LUA_OK) lua_pushstring(L, fsvc_last_error()), rc = LUA_ERRRUN;
    if (rc != LUA_OK) return graph_fail(L, gc_was_running);
  }
  lua_gc(L, LUA_GCCOLLECT); /* the warm-up's temporaries go back to the cache */
  lua_gc(L, LUA_GCSTOP);
  if (fsvc_gpu_graph_capture_begin(*g) != 0) { lua_pushstring(L, fsvc_last_error()); return graph_fail(L, gc_was_running); }
  lua_pushvalue(L, 2);
  int rc = lua_pcall(L, 0, LUA_MULTRET, 0);
  int end_rc = fsvc_gpu_graph_capture_end(*g);
  if (rc != LUA_OK) return graph_fail(L, gc_was_running); /* fn's own error comes first */
  if (end_rc != 0) { lua_pushstring(L, fsvc_last_error()); return graph_fail(L, gc_was_running); }
  if (gc_was_running) lua_gc(L, LUA_GCRESTART);
  return lua_gettop(L) - 2;
}
static int l_graph_replay(lua_State *L) {
  fsvc_gpu_graph **g = check_graph(L, 1);
  if (fsvc_gpu_graph_replay(*g) != 0) return fsvc_lua_error(L);
  return 0;
}
static int l_graph_is_captured(lua_State *L) {
  fsvc_gpu_graph **g = check_graph(L, 1);
  lua_pushboolean(L, fsvc_gpu_graph_is_captured(*g));
  return 1;
}
/* drops the captured graph and its memory; the object can capture again */
static int l_graph_reset(lua_State *L) {
  fsvc_gpu_graph **g = check_graph(L, 1);
  fsvc_gpu_graph_free(*g);
  *g = fsvc_gpu_graph_new();
  if (!*g) return fsvc_lua_error(L);
  return 0;
}
/* fsvc.cuda.graph(fn, opts) -> g, fn's captured results */
static int l_graph(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 2); /* fn, opts | nil */
  l_graph_new(L);   /* fn, opts, g */
  lua_pushcfunction(L, l_graph_capture);
  lua_pushvalue(L, 3);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_call(L, 3, LUA_MULTRET); /* fn, opts, g, results... */
  return lua_gettop(L) - 2;
}
static void register_graph_type(lua_State *L) {
  static const luaL_Reg methods[] = {{"capture", l_graph_capture}, {"replay", l_graph_replay},
                                     {"reset", l_graph_reset},     {"is_captured", l_graph_is_captured},
                                     {"free", l_graph_gc},         {NULL, NULL}};
  luaL_newmetatable(L, GRAPH_MT);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_graph_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
}
#else
/* a build without the backend: the same names, answering "no CUDA" */
static int l_no_backend(lua_State *L) {
  return luaL_error(L, "cuda: this build has no CUDA backend (rebuild with -DFSVC_CUDA=ON)");
}
static int l_zero(lua_State *L) { lua_pushinteger(L, 0); return 1; }
static int l_nothing(lua_State *L) { (void)L; return 0; }
#define l_manual_seed l_nothing
#define l_profiler_start l_nothing
#define l_profiler_stop l_nothing
#define l_initial_seed l_zero
#define l_set_allow_tf32 l_nothing
#define l_memory_allocated l_zero
#define l_memory_reserved l_zero
#define l_max_memory_allocated l_zero
#define l_reset_peak l_nothing
#define l_empty_cache l_nothing
#define l_clip_grad_norm l_no_backend
#define l_event l_no_backend
#define l_elapsed_ms l_no_backend
#define l_stream l_no_backend
#define l_set_stream l_nothing
#define l_adam_multi l_no_backend
#define l_adam_plan l_no_backend
#define l_adam_plan_step l_no_backend
static void register_adam_plan_type(lua_State *L) { (void)L; }
#define l_graph_new l_no_backend
#define l_graph l_no_backend
static void register_graph_type(lua_State *L) { (void)L; }
static int l_memory_stats(lua_State *L) {
  lua_createtable(L, 0, 0);
  return 1;
}
static int l_launch_counts(lua_State *L) {
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, 0); lua_setfield(L, -2, "kernels");
  lua_pushinteger(L, 0); lua_setfield(L, -2, "library_calls");
  return 1;
}
#endif

/* ---- tensor methods ------------------------------------------------------------------------------ */
static int move_to(lua_State *L, fsvc_tensor *x, fsvc_device d) {
  return fsvc_lua_push_tensor(L, fsvc_to_device(x, d));
}

static int l_cuda(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "cuda", "self");
  fsvc_device d = {FSVC_CUDA, (int)fsvc_lua_opt_int(L, 2, 0, "cuda", "device")};
  return move_to(L, x, d);
}

static int l_cpu(lua_State *L) {
  return move_to(L, fsvc_lua_check_tensor(L, 1, "cpu", "self"), fsvc_cpu());
}

static int is_device_name(const char *s) {
  return strcmp(s, "cpu") == 0 || strncmp(s, "cuda", 4) == 0;
}

/* x:to(device [, dtype]) here; x:to(dtype) goes to the original method (upvalue 1) */
static int l_to(lua_State *L) {
  const char *s = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  if (!s || !is_device_name(s)) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
  }
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "to", "self");
  fsvc_device d;
  if (fsvc_device_parse(s, &d) != 0) return fsvc_lua_error(L);
  fsvc_tensor *moved = fsvc_to_device(x, d);
  if (!moved) return fsvc_lua_error(L);
  if (lua_type(L, 3) == LUA_TSTRING) { /* then the dtype */
    fsvc_dtype dt = fsvc_lua_opt_dtype(L, 3, moved->dtype, "to");
    fsvc_tensor *cast = moved->dtype == dt ? fsvc_tensor_retain(moved) : fsvc_to_dtype(moved, dt);
    fsvc_tensor_release(moved);
    moved = cast;
  }
  return fsvc_lua_push_tensor(L, moved);
}

/* Wrapper of a reading method (upvalue 1): a CUDA self is replaced by its host copy first. */
static int host_first(lua_State *L) {
  fsvc_tensor *t = peek_tensor(L, 1);
  if (t && fsvc_tensor_is_cuda(t)) {
    fsvc_tensor *h = fsvc_to_device_raw(t, fsvc_cpu());
    if (!h) return fsvc_lua_error(L);
    fsvc_lua_push_tensor(L, h);
    lua_replace(L, 1);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* __tostring: the host copy's text, with its device named */
static int tostring_host_first(lua_State *L) {
  fsvc_tensor *t = peek_tensor(L, 1);
  int cuda = t && t->storage && fsvc_tensor_is_cuda(t);
  char dev[32];
  if (cuda) fsvc_device_str(t->storage->device, dev, sizeof dev);
  host_first(L);
  if (cuda && lua_type(L, -1) == LUA_TSTRING) {
    /* the replacement is built first: as an argument of luaL_gsub it could be pushed before
     * lua_tostring(L, -1) is evaluated, which would then read the replacement itself */
    char repl[48];
    snprintf(repl, sizeof repl, "device=%s", dev);
    luaL_gsub(L, lua_tostring(L, -1), "device=cpu", repl);
  }
  return 1;
}

/* Wrapper of a writing method: refused on CUDA tensors. */
static int refuse_on_cuda(lua_State *L) {
  fsvc_tensor *t = peek_tensor(L, 1);
  if (t && fsvc_tensor_is_cuda(t))
    return luaL_error(L, "element writes on a CUDA tensor are not supported; write on the CPU and "
                         "move with :cuda(), or use fill_/copy_");
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* __index: device properties, then the original (upvalue 1) */
static int index_device(lua_State *L) {
  fsvc_tensor *t = peek_tensor(L, 1);
  const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  if (t && t->storage && key) {
    if (strcmp(key, "device") == 0) {
      char buf[32];
      lua_pushstring(L, fsvc_device_str(t->storage->device, buf, sizeof buf));
      return 1;
    }
    if (strcmp(key, "is_cuda") == 0) {
      lua_pushboolean(L, fsvc_tensor_is_cuda(t));
      return 1;
    }
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

/* replaces table[name] (at index tbl) by closure(fn, original) when the original exists */
static void wrap_field(lua_State *L, int tbl, const char *name, lua_CFunction fn) {
  lua_getfield(L, tbl, name);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return; }
  lua_pushcclosure(L, fn, 1);
  lua_setfield(L, tbl, name);
}

void fsvc_bind_cuda(lua_State *L) {
  static const luaL_Reg cuda_funcs[] = {
      {"is_available", l_is_available}, {"is_built", l_is_built},
      {"device_count", l_device_count}, {"get_device_name", l_get_device_name},
      {"unavailable_reason", l_unavailable_reason}, {"synchronize", l_synchronize},
      {"manual_seed", l_manual_seed}, {"initial_seed", l_initial_seed},
      {"set_allow_tf32", l_set_allow_tf32}, {"memory_allocated", l_memory_allocated},
      {"memory_reserved", l_memory_reserved}, {"max_memory_allocated", l_max_memory_allocated},
      {"memory_stats", l_memory_stats}, {"reset_peak_memory_stats", l_reset_peak},
      {"launch_counts", l_launch_counts}, {"profiler_start", l_profiler_start},
      {"profiler_stop", l_profiler_stop},
      {"empty_cache", l_empty_cache}, {"clip_grad_norm_", l_clip_grad_norm},
      {"event", l_event}, {"elapsed_ms", l_elapsed_ms}, {"stream", l_stream},
      {"set_stream", l_set_stream}, {"_adam_step_multi", l_adam_multi},
      {"_adam_plan", l_adam_plan}, {"_adam_plan_step", l_adam_plan_step},
      {"CUDAGraph", l_graph_new}, {"graph", l_graph}, {NULL, NULL}};
  register_graph_type(L);
  register_adam_plan_type(L);
#ifdef FSVC_HAVE_CUDA
  luaL_newmetatable(L, EVENT_MT);
  lua_pushcfunction(L, l_event_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, STREAM_MT);
  lua_pushcfunction(L, l_stream_gc);
  lua_setfield(L, -2, "__gc");
  lua_newtable(L);
  lua_pushcfunction(L, l_stream_synchronize);
  lua_setfield(L, -2, "synchronize");
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
#endif
  /* fsvc.cuda: the module table is on the stack top during luaopen_fsvc_core */
  lua_newtable(L);
  luaL_setfuncs(L, cuda_funcs, 0);
  fsvc_bind_cuda_conv(L); /* set_conv_backend, conv_choices, cudnn_* (lua/bind_cuda_conv.c) */
  lua_setfield(L, -2, "cuda");

  static const luaL_Reg methods[] = {{"cuda", l_cuda}, {"cpu", l_cpu}, {NULL, NULL}};
  fsvc_lua_register(L, methods, FSVC_LUA_METHOD_ONLY); /* fsvc.cuda is the table above */

  wrap_field(L, lua_gettop(L), "to", l_to); /* fsvc.to(x, ...) */
  /* wrap the existing methods: find the method table through the Tensor field of the module */
  lua_getfield(L, -1, "Tensor");
  int mt = lua_gettop(L);
  wrap_field(L, mt, "to", l_to);
  static const char *const readers[] = {"item", "get", "tolist", "totable", "flat", "_get_flat", NULL};
  for (int i = 0; readers[i]; i++) wrap_field(L, mt, readers[i], host_first);
  static const char *const writers[] = {"set", "_set_flat", NULL};
  for (int i = 0; writers[i]; i++) wrap_field(L, mt, writers[i], refuse_on_cuda);
  lua_pop(L, 1);

  luaL_getmetatable(L, FSVC_TENSOR_MT);
  int meta = lua_gettop(L);
  wrap_field(L, meta, "__index", index_device);
  wrap_field(L, meta, "__tostring", tostring_host_first);
  lua_pop(L, 1);
}
