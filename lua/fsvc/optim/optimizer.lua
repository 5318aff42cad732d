-- The base of fsvc.optim's optimisers: parameter groups, per-parameter state, zero_grad and
-- state dicts in PyTorch's layout.
--
--   opt.param_groups  list of groups {params = {tensors...}, lr = ..., <hyperparameters>}
--   opt.state[p]      per-parameter state (keyed by the parameter tensor)
--   opt:state_dict()  {state = {[0] = {step = n, exp_avg = t, ...}, ...},
--                      param_groups = {{lr = ..., params = {0, 1, ...}}, ...}}
--                     parameters are numbered 0, 1, ... across groups in order, as PyTorch; the
--                     tensors are the live state (not copies).
--   opt:load_state_dict(sd) copies the state (cast to each parameter's dtype) and the groups'
--                     hyperparameters, after checking that the groups and sizes match.
--   optim.flatten_state_dict(sd) / optim.unflatten_state_dict(flat, opt) turn a state dict into a
--                     flat name -> tensor table (numbers as 0-d float64, lists as 1-d) that a
--                     safetensors file can hold, and back.
local fsvc = require "fsvc"

local Optimizer = {}
Optimizer.__index = Optimizer
Optimizer.__name = "Optimizer"

--- Optimizer:extend(name, defaults): a subclass with the given default hyperparameters.
function Optimizer:extend(name, defaults)
  local cls = setmetatable({ __name = name, defaults = defaults, super = self }, { __index = self,
    __call = function(c, ...) return c.new(...) end })
  cls.__index = cls
  cls.__tostring = self.__tostring
  cls.new = function(params, opts) return Optimizer._construct(cls, params, opts) end
  return cls
end

local function is_module(v) return type(v) == "table" and rawget(v, "_modules") ~= nil end

function Optimizer._construct(cls, params, opts)
  local self = setmetatable({ param_groups = {}, state = {} }, cls)
  opts = opts or {}
  local defaults = {}
  for k, v in pairs(cls.defaults) do defaults[k] = v end
  for k, v in pairs(opts) do
    if cls.defaults[k] == nil then
      error(string.format("%s: unknown option '%s'", cls.__name, tostring(k)), 3)
    end
    defaults[k] = v
  end
  self.defaults = defaults
  if is_module(params) then params = params:parameters() end
  if fsvc.is_tensor(params) then params = { params } end
  if type(params) ~= "table" or #params == 0 then
    error(cls.__name .. ": got an empty parameter list", 3)
  end
  if fsvc.is_tensor(params[1]) then
    self:add_param_group({ params = params })
  else
    for _, g in ipairs(params) do self:add_param_group(g) end
  end
  return self
end

--- add_param_group{params = {...}, lr = ..., ...}: missing hyperparameters take the defaults.
function Optimizer:add_param_group(group)
  local g = {}
  for k, v in pairs(group) do g[k] = v end
  if is_module(g.params) then g.params = g.params:parameters() end
  if fsvc.is_tensor(g.params) then g.params = { g.params } end
  if type(g.params) ~= "table" then
    error(self.__name .. ": a parameter group needs a list of tensors in 'params'", 2)
  end
  local seen = {}
  for _, grp in ipairs(self.param_groups) do for _, p in ipairs(grp.params) do seen[p] = true end end
  for i, p in ipairs(g.params) do
    if not fsvc.is_tensor(p) then
      error(string.format("%s: parameter %d is not a tensor (%s)", self.__name, i, type(p)), 2)
    end
    if seen[p] then error(self.__name .. ": some parameters appear in more than one group", 2) end
    seen[p] = true
  end
  for k, v in pairs(self.defaults) do
    if g[k] == nil then g[k] = v end
  end
  if self.check_group then self:check_group(g) end
  self.param_groups[#self.param_groups + 1] = g
end

--- zero_grad(set_to_none=true)
function Optimizer:zero_grad(set_to_none)
  for _, g in ipairs(self.param_groups) do
    for _, p in ipairs(g.params) do
      if set_to_none == false then
        local grad = p.grad
        if grad then grad:zero_() end
      else
        p.grad = nil
      end
    end
  end
end

--- step(closure?): one update of every parameter that has a gradient; with a closure (which
--- recomputes and returns the loss, with gradients) its loss is returned.
function Optimizer:step(closure)
  local loss
  if closure then loss = fsvc.enable_grad(closure) end
  fsvc.no_grad(function()
    for _, group in ipairs(self.param_groups) do self:update_group(group) end
  end)
  -- a step inside an autocast region changed weights whose 16-bit casts may be cached
  fsvc.clear_autocast_cache()
  return loss
end

local function copy_value(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for i, x in ipairs(v) do out[i] = x end
  return out
end

function Optimizer:state_dict()
  local index, n = {}, 0
  local groups = {}
  for gi, g in ipairs(self.param_groups) do
    local packed = { params = {} }
    for k, v in pairs(g) do if k ~= "params" then packed[k] = copy_value(v) end end
    for _, p in ipairs(g.params) do
      index[p] = n
      packed.params[#packed.params + 1] = n
      n = n + 1
    end
    groups[gi] = packed
  end
  local state = {}
  for p, s in pairs(self.state) do
    if index[p] then
      local entry = {}
      for k, v in pairs(s) do entry[k] = v end
      state[index[p]] = entry
    end
  end
  return { state = state, param_groups = groups }
end

function Optimizer:load_state_dict(sd)
  local name = self.__name
  if type(sd) ~= "table" or type(sd.param_groups) ~= "table" or type(sd.state) ~= "table" then
    error(name .. ":load_state_dict: expects {state = ..., param_groups = ...}", 2)
  end
  if #sd.param_groups ~= #self.param_groups then
    error(string.format("%s:load_state_dict: the state dict has %d parameter groups, the optimizer %d",
      name, #sd.param_groups, #self.param_groups), 2)
  end
  local by_index = {}
  for gi, g in ipairs(self.param_groups) do
    local saved = sd.param_groups[gi]
    if #saved.params ~= #g.params then
      error(string.format("%s:load_state_dict: group %d has %d parameters in the state dict, %d in the optimizer",
        name, gi, #saved.params, #g.params), 2)
    end
    for i, p in ipairs(g.params) do by_index[saved.params[i]] = p end
  end
  -- check every state tensor's size before changing anything
  for idx, entry in pairs(sd.state) do
    local p = by_index[idx]
    if not p then error(string.format("%s:load_state_dict: state for unknown parameter %s", name, tostring(idx)), 2) end
    for k, v in pairs(entry) do
      if fsvc.is_tensor(v) and v:numel() > 1 and v:numel() ~= p:numel() then
        error(string.format("%s:load_state_dict: state '%s' of parameter %d has shape [%s], the parameter [%s]",
          name, k, idx, table.concat(v.shape, ", "), table.concat(p.shape, ", ")), 2)
      end
    end
  end
  for gi, g in ipairs(self.param_groups) do
    for k, v in pairs(sd.param_groups[gi]) do
      if k ~= "params" then g[k] = copy_value(v) end
    end
  end
  self.state = {}
  for idx, entry in pairs(sd.state) do
    local p = by_index[idx]
    local s = {}
    for k, v in pairs(entry) do
      if fsvc.is_tensor(v) then
        if k == "step" then
          s[k] = v:item()
        else
          local c = fsvc.no_grad(function() return v:to(p.dtype):clone():view(p.shape) end)
          s[k] = c
        end
      else
        s[k] = v
      end
    end
    self.state[p] = s
  end
end

Optimizer.__tostring = function(self)
  local lines = { self.__name .. " (" }
  for gi, g in ipairs(self.param_groups) do
    lines[#lines + 1] = "Parameter Group " .. (gi - 1)
    local keys = {}
    for k in pairs(g) do if k ~= "params" then keys[#keys + 1] = k end end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local v = g[k]
      if type(v) == "table" then v = "(" .. table.concat(v, ", ") .. ")" end
      lines[#lines + 1] = "    " .. k .. ": " .. tostring(v)
    end
  end
  lines[#lines + 1] = ")"
  return table.concat(lines, "\n")
end

-- ---- flat form -----------------------------------------------------------------------------
local function flatten_state_dict(sd)
  local flat = {}
  for idx, entry in pairs(sd.state) do
    for k, v in pairs(entry) do
      local key = string.format("state.%d.%s", idx, k)
      if fsvc.is_tensor(v) then flat[key] = v
      elseif type(v) == "number" then flat[key] = fsvc.tensor(v, { dtype = "float64" }) end
    end
  end
  for gi, g in ipairs(sd.param_groups) do
    for k, v in pairs(g) do
      local key = string.format("param_groups.%d.%s", gi - 1, k)
      if k == "params" then flat[key] = fsvc.tensor(v, { dtype = "int64" })
      elseif type(v) == "number" then flat[key] = fsvc.tensor(v, { dtype = "float64" })
      elseif type(v) == "boolean" then flat[key] = fsvc.tensor(v and 1 or 0, { dtype = "int64" })
      elseif type(v) == "table" then flat[key] = fsvc.tensor(v, { dtype = "float64" }) end
    end
  end
  return flat
end

-- opt gives the types of the hyperparameters (its defaults)
local function unflatten_state_dict(flat, opt)
  local sd = { state = {}, param_groups = {} }
  for key, t in pairs(flat) do
    local idx, k = key:match("^state%.(%d+)%.(.+)$")
    if idx then
      idx = tonumber(idx)
      sd.state[idx] = sd.state[idx] or {}
      sd.state[idx][k] = k == "step" and t:item() or t
    else
      local gi, gk = key:match("^param_groups%.(%d+)%.(.+)$")
      if gi then
        gi = tonumber(gi) + 1
        sd.param_groups[gi] = sd.param_groups[gi] or {}
        local default = opt and opt.defaults[gk]
        local v
        if gk == "params" then
          v = t:numel() > 0 and t:reshape(-1):tolist() or {}
          for i = 1, #v do v[i] = math.tointeger(v[i]) or v[i] end
        elseif type(default) == "boolean" then v = t:item() ~= 0
        elseif type(default) == "table" or t.ndim == 1 then v = t:tolist()
        else v = t:item() end
        sd.param_groups[gi][gk] = v
      end
    end
  end
  return sd
end

return {
  Optimizer = Optimizer,
  flatten_state_dict = flatten_state_dict,
  unflatten_state_dict = unflatten_state_dict,
}
