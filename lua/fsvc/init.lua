-- The fsvc library as Lua sees it: the C core (fsvc_core) plus the parts written in Lua
-- (operators, no_grad, custom autograd functions, gradcheck, help). Sub-libraries load lazily:
-- fsvc.nn, fsvc.optim, ... are required on first access.
local core = require "fsvc_core"
local fsvc = core

fsvc.version = rawget(_G, "fsvc_host_version") or "0.1.0"

-- Operators on tensors. Either side may be a number (fsvc.add(2, x) works); == keeps identity
-- (use x:eq(y) or fsvc.equal for values), as Lua requires __eq to return a boolean.
local Tensor_mt = getmetatable(core.zeros(1))
-- The C functions themselves, so that an error names the op without a Lua frame in between.
Tensor_mt.__add = core.add
Tensor_mt.__sub = core.sub
Tensor_mt.__mul = core.mul
Tensor_mt.__div = core.div
Tensor_mt.__pow = core.pow
Tensor_mt.__unm = function(a) return fsvc.neg(a) end
Tensor_mt.__concat = function(a, b) return tostring(a) .. tostring(b) end
fsvc.Tensor_mt = Tensor_mt

--- Runs fn(...) with gradient recording off and returns its results; the previous mode is
--- restored even when fn raises.
function fsvc.no_grad(fn, ...)
  local prev = core.set_grad_enabled(false)
  local results = table.pack(pcall(fn, ...))
  core.set_grad_enabled(prev)
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

--- fsvc.enable_grad(fn, ...) is the opposite of no_grad.
function fsvc.enable_grad(fn, ...)
  local prev = core.set_grad_enabled(true)
  local results = table.pack(pcall(fn, ...))
  core.set_grad_enabled(prev)
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

--- fsvc.autocast(opts, fn, ...) runs fn(...) with autocast set and returns its results; the
--- previous state comes back afterwards, also when fn raises. opts: nil (float16), a dtype
--- string ("float16", "half", "bfloat16") or {dtype = ..., enabled = true|false,
--- cache_enabled = true|false}. While autocast is on, matmul, bmm, linear, conv1d and
--- conv_transpose1d cast their float32 arguments to the dtype (differentiably: gradients reach
--- float32 weights as float32), each parameter once per outermost region (the weight-cast
--- cache, cleared when that region ends); see docs/amp.md.
local autocast_keys = { dtype = true, enabled = true, cache_enabled = true }
local autocast_dtypes = { float16 = true, half = true, bfloat16 = true }
function fsvc.autocast(opts, fn, ...)
  local enabled, dtype, cache_enabled = true, nil, true
  if type(opts) == "string" then
    dtype = opts
  elseif type(opts) == "table" then
    for k in pairs(opts) do
      if not autocast_keys[k] then error("autocast: unknown option '" .. tostring(k) .. "'", 2) end
    end
    dtype = opts.dtype
    if opts.enabled ~= nil then enabled = opts.enabled and true or false end
    if opts.cache_enabled ~= nil then cache_enabled = opts.cache_enabled and true or false end
  elseif opts ~= nil then
    error("autocast: expected a dtype string or an options table, got " .. type(opts), 2)
  end
  if type(fn) ~= "function" then error("autocast: argument #2 must be a function, got " .. type(fn), 2) end
  if enabled and dtype == nil then dtype = "float16" end
  if dtype ~= nil and not autocast_dtypes[dtype] then
    error("autocast: dtype must be float16 or bfloat16, got " .. tostring(dtype), 2)
  end
  -- closed when fn returns or raises (or its coroutine is closed): the state comes back and the
  -- outermost region drops its cached weight casts
  local region <close> = core._autocast_enter(enabled, dtype, cache_enabled)
  return fn(...)
end

--- A custom differentiable function written in Lua:
---   local Square = fsvc.Function{ name = "square",
---     forward = function(ctx, x) ctx:save_for_backward(x); return x * x end,
---     backward = function(ctx, grad) local x = ctx.saved[1]; return grad * x * 2 end }
---   local y = Square(x)
--- forward runs without recording; backward returns one gradient (or nil) per argument.
function fsvc.Function(def)
  assert(type(def) == "table" and type(def.forward) == "function" and type(def.backward) == "function",
    "Function: expects {forward = function(ctx, ...), backward = function(ctx, grad)}")
  local F = { name = def.name or "Function" }
  function F.apply(...)
    local ctx = { saved = {} }
    function ctx:save_for_backward(...) self.saved = { ... } end
    local out = fsvc.no_grad(def.forward, ctx, ...)
    if not core.is_tensor(out) then
      error(F.name .. ": forward must return one tensor, got " .. type(out), 2)
    end
    return core._attach_custom(out, { backward = def.backward, ctx = ctx, name = F.name }, ...)
  end
  return setmetatable(F, { __call = function(_, ...) return F.apply(...) end })
end

--- Compares the gradients of fn at `inputs` (float64 tensors; those with requires_grad are
--- checked) with central finite differences. fn may return a tensor or a list of tensors; the
--- scalar checked is sum(out * w) with fixed random weights w so that every output element counts.
--- Returns ok, report (report: max abs error and the worst element).
function fsvc.gradcheck(fn, inputs, opts)
  opts = opts or {}
  local eps, atol, rtol = opts.eps or 1e-6, opts.atol or 1e-5, opts.rtol or 1e-3
  local function outputs_of(res)
    if core.is_tensor(res) then return { res } end
    assert(type(res) == "table", "gradcheck: fn must return a tensor or a list of tensors")
    return res
  end
  local first = outputs_of(fn(table.unpack(inputs)))
  local weights = {}
  for i, o in ipairs(first) do
    weights[i] = core.randn(o:size(), { dtype = o.dtype == "int64" and "float64" or o.dtype })
  end
  local function objective(res)
    local total = nil
    for i, o in ipairs(outputs_of(res)) do
      if o.dtype ~= "int64" then
        local term = fsvc.sum(fsvc.mul(o, weights[i]))
        total = total and fsvc.add(total, term) or term
      end
    end
    return total
  end
  for _, x in ipairs(inputs) do
    if core.is_tensor(x) and x.requires_grad then x.grad = nil end
  end
  local loss = objective(first)
  if not loss then return false, "gradcheck: fn returned no float output" end
  loss:backward()
  local worst, report = 0, "ok"
  for k, x in ipairs(inputs) do
    if core.is_tensor(x) and x.requires_grad then
      local analytic = x.grad
      local n = x:numel()
      for i = 0, n - 1 do
        local orig = x:_get_flat(i)
        local plus, minus
        fsvc.no_grad(function()
          x:_set_flat(i, orig + eps)
          plus = objective(fn(table.unpack(inputs))):item()
          x:_set_flat(i, orig - eps)
          minus = objective(fn(table.unpack(inputs))):item()
          x:_set_flat(i, orig)
        end)
        local numeric = (plus - minus) / (2 * eps)
        local a = analytic and analytic:_get_flat(i) or 0
        local err = math.abs(a - numeric)
        if err > atol + rtol * math.abs(numeric) and err > worst then
          worst = err
          report = string.format("input %d element %d: analytic %.8g, numeric %.8g", k, i, a, numeric)
        end
      end
    end
  end
  return worst == 0, report
end

--- allclose(a, b, rtol, atol): |a - b| <= atol + rtol * |b| everywhere (shapes must match;
--- a NaN anywhere gives false).
function fsvc.allclose(a, b, rtol, atol)
  rtol, atol = rtol or 1e-5, atol or 1e-8
  local sa, sb = a:size(), b:size()
  if #sa ~= #sb then return false end
  for i = 1, #sa do if sa[i] ~= sb[i] then return false end end
  if a:numel() == 0 then return true end
  local x, y = a:double(), b:double()
  return ((x - y):abs() - (y:abs() * rtol + atol)):max():item() <= 0
end

--- Largest absolute elementwise difference of two tensors of the same number of elements
--- (NaN if either holds a NaN).
function fsvc.max_abs_diff(a, b)
  assert(a:numel() == b:numel(), "max_abs_diff: element counts differ")
  if a:numel() == 0 then return 0 end
  return (a:reshape(-1):double() - b:reshape(-1):double()):abs():max():item()
end

function fsvc.help()
  print("fsvc " .. fsvc.version .. ": voice conversion in C, driven by Lua.")
  print("Tensors:  fsvc.tensor{{1,2},{3,4}}, fsvc.zeros(2,3), fsvc.randn{2,3}, x:sum(1), a + b")
  print("Autograd: x.requires_grad = true; y:backward(); x.grad; fsvc.no_grad(fn)")
  print("Dims are 0-based as in PyTorch (negative from the end). Reference: docs/API.md")
  local names = {}
  for k in pairs(fsvc) do names[#names + 1] = k end
  table.sort(names)
  print("fsvc contains: " .. table.concat(names, " "))
end

-- Sub-libraries load on first use: fsvc.nn -> require "fsvc.nn".
setmetatable(fsvc, {
  __index = function(t, key)
    if type(key) ~= "string" or key:sub(1, 1) == "_" then return nil end
    local ok, mod = pcall(require, "fsvc." .. key)
    if ok then
      rawset(t, key, mod)
      return mod
    end
    if not tostring(mod):find("module 'fsvc." .. key .. "' not found", 1, true) then error(mod, 2) end
    return nil
  end,
})

return fsvc
