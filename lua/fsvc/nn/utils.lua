-- fsvc.nn.utils: weight reparametrisations and gradient helpers, as torch.nn.utils.
--
--   nn.utils.weight_norm(m, {name="weight", dim=0, style="legacy"|"parametrizations"})
--       legacy: parameters weight_g, weight_v (torch.nn.utils.weight_norm);
--       parametrizations: parametrizations.weight.original0 (g) and .original1 (v)
--       (torch.nn.utils.parametrizations.weight_norm). Either module loads a state dict of
--       either style, and also a plain `weight` (g and v are derived from it).
--       m.weight = g * v / ||v|| is recomputed on every read.
--   nn.utils.remove_weight_norm(m, name)
--   nn.utils.spectral_norm(m, {name="weight", n_power_iterations=1, eps=1e-12, dim=0})
--       parameter weight_orig, buffers weight_u, weight_v (torch.nn.utils.spectral_norm): before
--       each forward, in training mode one power iteration updates u and v in place; in eval
--       mode the stored u, v are used; weight = weight_orig / (u . W v).
--   nn.utils.remove_spectral_norm(m, name)
--   nn.utils.clip_grad_norm_(params, max_norm, norm_type=2) -> total norm (a number)
--   nn.utils.clip_grad_value_(params, clip_value)
--   nn.utils.parameters_to_vector(params), nn.utils.vector_to_parameters(vec, params)
local fsvc = require "fsvc"
local module = require "fsvc.nn.module"
local F = require "fsvc.nn.functional"

local utils = {}
local Module, Parameter = module.Module, module.Parameter

-- ||v|| over every dim except `dim` (keepdim), or over everything when dim is -1/nil
local function norm_except_dim(v, dim)
  if dim == nil or dim == -1 then return v:norm(2) end
  local dims = {}
  for d = 0, v.ndim - 1 do if d ~= dim then dims[#dims + 1] = d end end
  if #dims == 0 then return v:abs() end
  return v:norm(2, dims, true)
end

local function weight_from(g, v, dim)
  return v * (g / norm_except_dim(v, dim))
end

local function param_of(m, name, fn)
  local p = rawget(m, "_parameters").map[name]
  if not p then
    error(string.format("%s: %s has no parameter '%s'", fn, Module.type_name(m), name), 3)
  end
  return p
end

local function rename(sd, from, to)
  if sd[from] ~= nil and sd[to] == nil then
    sd[to], sd[from] = sd[from], nil
  end
end

-- A module holding the parametrisation's tensors (PyTorch's ParametrizationList).
local ParametrizationList = Module:extend("ParametrizationList")
local ParametrizationsDict = Module:extend("ModuleDict")

--- weight_norm(module, opts): see the header. Returns the module.
function utils.weight_norm(m, opts)
  if type(opts) == "string" then opts = { name = opts } end
  opts = opts or {}
  local name = opts.name or "weight"
  local dim = opts.dim
  if dim == nil then dim = 0 end
  local style = opts.style or "legacy"
  if style ~= "legacy" and style ~= "parametrizations" then
    error("weight_norm: style must be \"legacy\" or \"parametrizations\", got " .. tostring(style), 2)
  end
  local weight_norm_state = rawget(m, "_weight_norm") or {}
  if weight_norm_state[name] then
    error("weight_norm: " .. Module.type_name(m) .. "." .. name .. " is already weight-normed", 2)
  end
  local w = param_of(m, name, "weight_norm")
  if dim < -1 or dim >= w.ndim then
    error(string.format("weight_norm: dim %d out of range for weight of %d dims", dim, w.ndim), 2)
  end
  local g = fsvc.no_grad(function() return norm_except_dim(w, dim):contiguous():clone() end)
  local v = fsvc.no_grad(function() return w:clone() end)
  rawget(m, "_parameters").map[name] = nil
  local params = rawget(m, "_parameters")
  -- drop the slot so the new names follow the other parameters, as PyTorch's `del`
  for i, k in ipairs(params.keys) do if k == name then table.remove(params.keys, i) break end end
  params.slot[name] = nil
  local gname, vname
  if style == "legacy" then
    m:register_parameter(name .. "_g", Parameter(g))
    m:register_parameter(name .. "_v", Parameter(v))
    gname, vname = name .. "_g", name .. "_v"
    m:register_property(name, function(self)
      local pm = rawget(self, "_parameters").map
      return weight_from(pm[gname], pm[vname], dim)
    end)
  else
    local dict = m.parametrizations
    if not dict then
      dict = ParametrizationsDict()
      m:add_module("parametrizations", dict)
    end
    local plist = ParametrizationList()
    plist:register_parameter("original0", Parameter(g))
    plist:register_parameter("original1", Parameter(v))
    dict:add_module(name, plist)
    m:register_property(name, function(self)
      local pl = self.parametrizations[name]
      return weight_from(pl.original0, pl.original1, dim)
    end)
  end
  weight_norm_state[name] = { dim = dim, style = style }
  rawset(m, "_weight_norm", weight_norm_state)
  -- accept the other style, or a plain weight, when loading
  weight_norm_state[name].load_hook = m:register_load_state_dict_pre_hook(function(_, sd, prefix)
    local lg, lv = prefix .. name .. "_g", prefix .. name .. "_v"
    local pg = prefix .. "parametrizations." .. name .. ".original0"
    local pv = prefix .. "parametrizations." .. name .. ".original1"
    local plain = prefix .. name
    if sd[plain] ~= nil and sd[lg] == nil and sd[pg] == nil and fsvc.is_tensor(sd[plain]) then
      local wt = sd[plain]
      sd[plain] = nil
      sd[lg] = fsvc.no_grad(function() return norm_except_dim(wt, dim) end)
      sd[lv] = wt
    end
    if style == "legacy" then
      rename(sd, pg, lg); rename(sd, pv, lv)
    else
      rename(sd, lg, pg); rename(sd, lv, pv)
    end
  end)
  return m
end

--- remove_weight_norm(module, name="weight"): folds g and v back into a plain parameter.
function utils.remove_weight_norm(m, name)
  name = name or "weight"
  local state = rawget(m, "_weight_norm")
  if not state or not state[name] then
    error("remove_weight_norm: weight_norm of '" .. name .. "' not found in " .. Module.type_name(m), 2)
  end
  local w = fsvc.no_grad(function() return m[name]:contiguous():clone() end)
  m:register_property(name, nil)
  if state[name].style == "legacy" then
    for _, suffix in ipairs({ "_g", "_v" }) do
      local params = rawget(m, "_parameters")
      params.map[name .. suffix] = nil
      for i, k in ipairs(params.keys) do
        if k == name .. suffix then table.remove(params.keys, i) break end
      end
      params.slot[name .. suffix] = nil
    end
  else
    local dict = m.parametrizations
    local mods = rawget(dict, "_modules")
    mods.map[name] = nil
    for i, k in ipairs(mods.keys) do if k == name then table.remove(mods.keys, i) break end end
    mods.slot[name] = nil
    if #dict:children() == 0 then
      local own = rawget(m, "_modules")
      own.map.parametrizations = nil
      for i, k in ipairs(own.keys) do
        if k == "parametrizations" then table.remove(own.keys, i) break end
      end
      own.slot.parametrizations = nil
    end
  end
  state[name].load_hook.remove()
  state[name] = nil
  m:register_parameter(name, Parameter(w))
  return m
end

-- ---- spectral norm -------------------------------------------------------------------------
local function reshape_to_matrix(w, dim)
  if dim ~= 0 then
    local perm = { dim }
    for d = 0, w.ndim - 1 do if d ~= dim then perm[#perm + 1] = d end end
    w = w:permute(perm)
  end
  return w:reshape(w.shape[1], -1)
end

local function normalize_vec(x, eps)
  return F.normalize(x, { dim = 0, eps = eps })
end

--- spectral_norm(module, opts): see the header. dim defaults to 1 for ConvTranspose1d (as
--- PyTorch), 0 otherwise. Returns the module.
function utils.spectral_norm(m, opts)
  if type(opts) == "string" then opts = { name = opts } end
  opts = opts or {}
  local name = opts.name or "weight"
  local n_iter = opts.n_power_iterations or 1
  local eps = opts.eps or 1e-12
  local dim = opts.dim
  if dim == nil then dim = Module.type_name(m) == "ConvTranspose1d" and 1 or 0 end
  local state = rawget(m, "_spectral_norm") or {}
  if state[name] then
    error("spectral_norm: " .. Module.type_name(m) .. "." .. name .. " is already spectral-normed", 2)
  end
  local w = param_of(m, name, "spectral_norm")
  local u, v = fsvc.no_grad(function()
    local mat = reshape_to_matrix(w, dim)
    local h, wd = mat.shape[1], mat.shape[2]
    return normalize_vec(fsvc.randn({ h }, { dtype = w.dtype }), eps),
        normalize_vec(fsvc.randn({ wd }, { dtype = w.dtype }), eps)
  end)
  local params = rawget(m, "_parameters")
  params.map[name] = nil
  for i, k in ipairs(params.keys) do if k == name then table.remove(params.keys, i) break end end
  params.slot[name] = nil
  m:register_parameter(name .. "_orig", w)
  rawget(m, "_attrs")[name] = fsvc.no_grad(function() return w:detach() end)
  m:register_buffer(name .. "_u", u)
  m:register_buffer(name .. "_v", v)
  local hook = function(self)
    local worig = rawget(self, "_parameters").map[name .. "_orig"]
    local bufs = rawget(self, "_buffers").map
    local bu, bv = bufs[name .. "_u"], bufs[name .. "_v"]
    local mat = reshape_to_matrix(worig, dim)
    if rawget(self, "training") then
      fsvc.no_grad(function()
        local md = mat:detach()
        for _ = 1, n_iter do
          bv:copy_(normalize_vec(fsvc.matmul(md:t(), bu), eps))
          bu:copy_(normalize_vec(fsvc.matmul(md, bv), eps))
        end
      end)
      if n_iter > 0 then bu, bv = bu:clone(), bv:clone() end
    end
    local sigma = (bu * fsvc.matmul(mat, bv)):sum()
    rawget(self, "_attrs")[name] = worig / sigma
  end
  local handle = m:register_forward_pre_hook(hook)
  state[name] = { handle = handle, dim = dim, eps = eps }
  rawset(m, "_spectral_norm", state)
  -- m.weight is cached until the next forward: after m:to(...) it follows weight_orig to its new
  -- device and dtype (Module:to calls _convert) instead of staying on the old one
  if not m._convert then
    rawget(m, "_attrs")._convert = function(self)
      for n in pairs(rawget(self, "_spectral_norm") or {}) do
        rawget(self, "_attrs")[n] = rawget(self, "_parameters").map[n .. "_orig"]:detach()
      end
    end
  end
  return m
end

--- remove_spectral_norm(module, name="weight"): keeps the current normalised weight as a plain
--- parameter.
function utils.remove_spectral_norm(m, name)
  name = name or "weight"
  local state = rawget(m, "_spectral_norm")
  if not state or not state[name] then
    error("remove_spectral_norm: spectral_norm of '" .. name .. "' not found in " .. Module.type_name(m), 2)
  end
  local training = rawget(m, "training")
  rawset(m, "training", false)
  -- the eval-mode weight from the stored u, v (PyTorch's remove uses compute_weight without
  -- power iteration)
  local hook_state = state[name]
  local worig = rawget(m, "_parameters").map[name .. "_orig"]
  local bufs = rawget(m, "_buffers").map
  local w = fsvc.no_grad(function()
    local mat = reshape_to_matrix(worig, hook_state.dim)
    local sigma = (bufs[name .. "_u"] * fsvc.matmul(mat, bufs[name .. "_v"])):sum()
    return (worig / sigma):contiguous()
  end)
  rawset(m, "training", training)
  hook_state.handle.remove()
  for _, k in ipairs({ name .. "_orig" }) do
    local params = rawget(m, "_parameters")
    params.map[k] = nil
    for i, key in ipairs(params.keys) do if key == k then table.remove(params.keys, i) break end end
    params.slot[k] = nil
  end
  for _, k in ipairs({ name .. "_u", name .. "_v" }) do
    local b = rawget(m, "_buffers")
    b.map[k] = nil
    for i, key in ipairs(b.keys) do if key == k then table.remove(b.keys, i) break end end
    b.slot[k] = nil
  end
  rawget(m, "_attrs")[name] = nil
  state[name] = nil
  m:register_parameter(name, Parameter(w))
  return m
end

-- ---- gradients -----------------------------------------------------------------------------
local function param_list(params)
  if fsvc.is_tensor(params) then return { params } end
  if module.is_module(params) then return params:parameters() end
  if type(params) ~= "table" then error("expected a list of parameters, a tensor or a module", 3) end
  return params
end

-- every gradient contiguous, on the same CUDA device, all float32 or all float64: what
-- fsvc.cuda.clip_grad_norm_ takes (same rule: coef = max_norm / (total + 1e-6) when below 1)
local function fused_cuda_clip_ok(grads)
  local first = grads[1]
  if not (first.is_cuda and (first.dtype == "float32" or first.dtype == "float64")) then return false end
  for _, g in ipairs(grads) do
    if g.device ~= first.device or g.dtype ~= first.dtype or not g:is_contiguous() then return false end
  end
  return true
end

--- clip_grad_norm_(params, max_norm, norm_type=2, {error_if_nonfinite=false, sync=true}): scales
--- every gradient by min(1, max_norm / (total + 1e-6)) where total is the norm of all gradients
--- taken together (PyTorch's semantics). Returns the total norm as a number. norm_type may be
--- math.huge ("inf"). sync = false, for CUDA gradients (2-norm, one dtype, contiguous): returns
--- the norm as a 0-d CUDA tensor without waiting for the device, so a CUDA graph can capture it.
function utils.clip_grad_norm_(params, max_norm, norm_type, opts)
  params = param_list(params)
  norm_type = norm_type or 2
  if norm_type == "inf" then norm_type = math.huge end
  opts = opts or {}
  local grads = {}
  for _, p in ipairs(params) do
    local g = p.grad
    if g then grads[#grads + 1] = g end
  end
  if #grads == 0 then return 0 end
  local total
  if opts.sync == false then
    if not (norm_type == 2 and fused_cuda_clip_ok(grads)) then
      error("clip_grad_norm_: sync = false needs CUDA gradients of one float dtype, contiguous, and norm_type 2", 2)
    end
    if opts.error_if_nonfinite then
      error("clip_grad_norm_: error_if_nonfinite needs the norm on the host (sync = true)", 2)
    end
    return fsvc.cuda.clip_grad_norm_(grads, max_norm, { sync = false })
  end
  if norm_type == 2 and fused_cuda_clip_ok(grads) then
    -- one launch per gradient and one host sync, instead of a sync per gradient for :item()
    total = fsvc.cuda.clip_grad_norm_(grads, max_norm)
    if opts.error_if_nonfinite and (total ~= total or total == math.huge) then
      error("clip_grad_norm_: the total norm of order 2 of the gradients is non-finite", 2)
    end
    return total
  end
  if norm_type == math.huge then
    total = 0
    for _, g in ipairs(grads) do
      local m = g:abs():max():item()
      if m > total or m ~= m then total = m end
    end
  else
    local acc = 0
    for _, g in ipairs(grads) do acc = acc + g:norm(norm_type):item() ^ norm_type end
    total = acc ^ (1 / norm_type)
  end
  if opts.error_if_nonfinite and (total ~= total or total == math.huge) then
    error(string.format("clip_grad_norm_: the total norm of order %s of the gradients is non-finite", tostring(norm_type)), 2)
  end
  local coef = max_norm / (total + 1e-6)
  if coef < 1 then
    for _, g in ipairs(grads) do g:mul_(coef) end
  end
  return total
end

--- clip_grad_value_(params, clip_value): clamps every gradient element to [-v, v] in place.
function utils.clip_grad_value_(params, clip_value)
  for _, p in ipairs(param_list(params)) do
    local g = p.grad
    if g then g:copy_(g:clamp(-clip_value, clip_value)) end
  end
end

--- parameters_to_vector(params): one flat tensor of every parameter (a copy).
function utils.parameters_to_vector(params)
  local flat = {}
  for i, p in ipairs(param_list(params)) do flat[i] = p:detach():reshape(-1) end
  return fsvc.cat(flat, 0)
end

--- vector_to_parameters(vec, params): copies consecutive slices of vec into the parameters.
function utils.vector_to_parameters(vec, params)
  local offset = 0
  fsvc.no_grad(function()
    for _, p in ipairs(param_list(params)) do
      local n = p:numel()
      p:copy_(vec:narrow(0, offset, n):view(p.shape))
      offset = offset + n
    end
  end)
end

return utils
