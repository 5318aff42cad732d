-- fsvc.nn.Module: the base class of every layer and network, in the style of torch.nn.Module.
--
--   local MyNet = nn.Module:extend("MyNet")
--   function MyNet:init(cfg)
--     self.conv = nn.Conv1d(cfg.c, cfg.c, 3, { padding = 1 })   -- a submodule
--     self.scale = nn.Parameter(fsvc.ones({ cfg.c, 1 }))          -- a parameter
--     self:register_buffer("running", fsvc.zeros({ cfg.c }))     -- a buffer
--     self.slope = 0.1                                            -- a plain attribute
--   end
--   function MyNet:forward(x) return self.conv(x):leaky_relu(self.slope) * self.scale end
--   local net = MyNet{ c = 8 }          -- or MyNet.new{ c = 8 }; net(x) calls net:forward(x)
--
-- Assignment registers: a module becomes a child, a tensor made with nn.Parameter a parameter, a
-- tensor assigned to a buffer's name replaces the buffer, anything else is a plain attribute.
-- Each kind is kept in insertion order, so named_parameters() and state_dict() list names in
-- definition order with PyTorch's dotted names ("ups.0.c1.conv.weight"; children of a ModuleList
-- or Sequential are named 0, 1, 2, ...). The instance table itself holds only the bookkeeping
-- fields (_parameters, _buffers, _modules, _attrs, training, ...): every user field goes through
-- __newindex so that re-assignments are always seen.
local fsvc = require "fsvc"

local Module = {}

-- ---- ordered dictionaries ------------------------------------------------------------------
-- keys: names in first-insertion order; map: name -> value. Setting nil keeps the slot (as
-- PyTorch's register_parameter(name, None)), so a later value returns to the same position.
local function odict() return { keys = {}, map = {}, slot = {} } end

local function oset(d, k, v)
  if not d.slot[k] then
    d.keys[#d.keys + 1] = k
    d.slot[k] = true
  end
  d.map[k] = v
end

local function odel(d, k)
  if not d.slot[k] then return end
  d.slot[k], d.map[k] = nil, nil
  for i, key in ipairs(d.keys) do
    if key == k then table.remove(d.keys, i) break end
  end
end

-- iterator over (name, value) with non-nil values, in order
local function oiter(d)
  local i = 0
  return function()
    while true do
      i = i + 1
      local k = d.keys[i]
      if k == nil then return nil end
      local v = d.map[k]
      if v ~= nil then return k, v end
    end
  end
end

-- ---- parameters ----------------------------------------------------------------------------
-- A parameter is an ordinary tensor (a leaf that requires grad) marked in a weak set.
local parameter_set = setmetatable({}, { __mode = "k" })

--- nn.Parameter(tensor, requires_grad=true): marks a leaf tensor as a parameter and returns it.
--- A tensor with history is detached first (the parameter is a new leaf over the same data).
local function Parameter(t, requires_grad)
  if not fsvc.is_tensor(t) then
    error("Parameter: expects a tensor, got " .. type(t), 2)
  end
  if t.grad_fn then t = t:detach() end
  if requires_grad == nil then requires_grad = true end
  if t.dtype ~= "int64" then t:requires_grad_(requires_grad) end
  parameter_set[t] = true
  return t
end

local function is_parameter(v) return parameter_set[v] == true end

local function is_module(v)
  return type(v) == "table" and rawget(v, "_modules") ~= nil and getmetatable(v) ~= nil
end

-- ---- classes -------------------------------------------------------------------------------
local INTERNAL = {
  _parameters = true, _buffers = true, _modules = true, _attrs = true, _non_persistent = true,
  _forward_pre_hooks = true, _forward_hooks = true, _load_hooks = true, _properties = true,
  training = true,
}

-- The internal tables are raw fields of every instance (construct sets them before the
-- metatable), so self._attrs and the like are plain field reads that never reach this __index:
-- cheaper than a rawget call each, and a module's forward reads many attributes per call.
local function instance_index(self, k)
  local v = self._attrs[k]
  if v ~= nil then return v end
  if type(k) == "number" then -- list-like containers: m[1] is the child named "0"
    return self._modules.map[tostring(k - 1)]
  end
  local prop = self._properties[k]
  if prop then return prop(self) end
  v = self._parameters.map[k]
  if v ~= nil then return v end
  v = self._buffers.map[k]
  if v ~= nil then return v end
  v = self._modules.map[k]
  if v ~= nil then return v end
  return getmetatable(self)[k]
end

local function remove_from(self, k, except)
  for _, field in ipairs({ "_parameters", "_buffers", "_modules" }) do
    if field ~= except then
      local d = rawget(self, field)
      if d.slot[k] then odel(d, k) end
    end
  end
  if except ~= "_attrs" then rawget(self, "_attrs")[k] = nil end
end

local function instance_newindex(self, k, v)
  if INTERNAL[k] then rawset(self, k, v) return end
  local params, buffers, modules = rawget(self, "_parameters"), rawget(self, "_buffers"),
      rawget(self, "_modules")
  if is_parameter(v) then
    remove_from(self, k, "_parameters")
    oset(params, k, v)
  elseif is_module(v) then
    remove_from(self, k, "_modules")
    oset(modules, k, v)
  elseif v == nil then
    -- a registered slot stays (value nil), as PyTorch keeps `bias = None`
    if params.slot[k] then params.map[k] = nil
    elseif buffers.slot[k] then buffers.map[k] = nil
    elseif modules.slot[k] then modules.map[k] = nil
    else rawget(self, "_attrs")[k] = nil end
  elseif buffers.slot[k] and fsvc.is_tensor(v) then
    buffers.map[k] = v
  elseif params.slot[k] and fsvc.is_tensor(v) then
    error(string.format("%s: cannot assign a plain tensor to parameter '%s'; wrap it in "
      .. "nn.Parameter or assign nil first", Module.type_name(self), tostring(k)), 2)
  else
    remove_from(self, k, "_attrs")
    rawget(self, "_attrs")[k] = v
  end
end

local function instance_call(self, ...)
  local pre, post = self._forward_pre_hooks, self._forward_hooks
  if pre[1] == nil and post[1] == nil then return self:forward(...) end -- no hooks: no repacking
  for _, hook in ipairs(pre) do hook(self, ...) end
  local out = table.pack(self:forward(...))
  for _, hook in ipairs(post) do
    local r = hook(self, out[1])
    if r ~= nil then out[1] = r end
  end
  return table.unpack(out, 1, out.n)
end

local function construct(cls, ...)
  local self = {
    _parameters = odict(), _buffers = odict(), _modules = odict(), _attrs = {},
    _non_persistent = {}, _forward_pre_hooks = {}, _forward_hooks = {}, _load_hooks = {},
    _properties = {}, training = true,
  }
  setmetatable(self, cls)
  if cls.init then cls.init(self, ...) end
  return self
end

local METAMETHODS = { "__index", "__newindex", "__call", "__tostring", "__len", "__close" }

--- Module:extend(name): a subclass. The class is callable: Cls(...) == Cls.new(...), which makes
--- an instance and calls Cls.init(self, ...). A subclass's init may call Parent.init(self, ...).
function Module:extend(name)
  local parent = self
  local cls = { __name = name or "Module", super = parent }
  for _, m in ipairs(METAMETHODS) do cls[m] = rawget(parent, m) end
  cls.new = function(...) return construct(cls, ...) end
  return setmetatable(cls, {
    __index = parent,
    __call = function(c, ...) return construct(c, ...) end,
    __tostring = function(c) return "class " .. rawget(c, "__name") end,
  })
end

Module.__name = "Module"
Module.__index = instance_index
Module.__newindex = instance_newindex
Module.__call = instance_call
Module.new = function(...) return construct(Module, ...) end
setmetatable(Module, { __call = function(c, ...) return construct(c, ...) end })

function Module:init() end

function Module:forward()
  error(Module.type_name(self) .. ": forward() is not implemented", 2)
end

--- The class name of a module ("Conv1d").
function Module.type_name(self)
  local mt = getmetatable(self)
  return mt and rawget(mt, "__name") or "Module"
end

--- Is `cls` the class of self or one of its ancestors?
function Module:is_instance_of(cls)
  local c = getmetatable(self)
  while c do
    if c == cls then return true end
    c = rawget(c, "super")
  end
  return false
end

-- ---- registration --------------------------------------------------------------------------
function Module:register_parameter(name, p)
  if p ~= nil and not is_parameter(p) then p = Parameter(p) end
  remove_from(self, name, "_parameters")
  oset(rawget(self, "_parameters"), name, p)
  return p
end

--- register_buffer(name, tensor_or_nil, persistent=true): a tensor that is part of the module's
--- state but not a parameter (saved in state_dict unless persistent is false).
function Module:register_buffer(name, t, persistent)
  if t ~= nil and not fsvc.is_tensor(t) then
    error(string.format("%s: register_buffer('%s') expects a tensor or nil, got %s",
      Module.type_name(self), name, type(t)), 2)
  end
  remove_from(self, name, "_buffers")
  oset(rawget(self, "_buffers"), name, t)
  rawget(self, "_non_persistent")[name] = (persistent == false) or nil
  return t
end

function Module:add_module(name, m)
  if not is_module(m) and m ~= nil then
    error(string.format("%s: add_module('%s') expects a module", Module.type_name(self), name), 2)
  end
  remove_from(self, name, "_modules")
  oset(rawget(self, "_modules"), name, m)
  return m
end

--- register_property(name, getter): self[name] is computed by getter(self) on every read (as
--- PyTorch's parametrizations); nil removes it.
function Module:register_property(name, getter)
  remove_from(self, name, nil)
  rawget(self, "_properties")[name] = getter
end

--- Hooks: fn(module, ...inputs) runs before forward; fn(module, output) after it (a non-nil
--- return replaces the output). Each returns a handle with :remove().
local function add_hook(list, fn)
  list[#list + 1] = fn
  return { remove = function()
    for i, f in ipairs(list) do if f == fn then table.remove(list, i) return end end
  end }
end
function Module:register_forward_pre_hook(fn) return add_hook(rawget(self, "_forward_pre_hooks"), fn) end
function Module:register_forward_hook(fn) return add_hook(rawget(self, "_forward_hooks"), fn) end
--- fn(module, state_dict, prefix): may rename or convert entries of the (copied) state dict
--- before this module's keys are matched (used by weight_norm to accept either key style).
function Module:register_load_state_dict_pre_hook(fn) return add_hook(rawget(self, "_load_hooks"), fn) end

-- ---- traversal -----------------------------------------------------------------------------
--- Iterator over (name, child) of direct children.
function Module:named_children() return oiter(rawget(self, "_modules")) end

--- List of direct children.
function Module:children()
  local out = {}
  for _, m in oiter(rawget(self, "_modules")) do out[#out + 1] = m end
  return out
end

-- (prefix, module) pairs of the tree in pre-order, each module once
local function walk(m, prefix, out, seen)
  if seen[m] then return out end
  seen[m] = true
  out[#out + 1] = { prefix, m }
  for name, child in oiter(rawget(m, "_modules")) do
    walk(child, prefix == "" and name or prefix .. "." .. name, out, seen)
  end
  return out
end

local function list_iter(list)
  local i = 0
  return function()
    i = i + 1
    local e = list[i]
    if e then return e[1], e[2] end
  end
end

--- Iterator over (dotted name, module), this module first with name "".
function Module:named_modules() return list_iter(walk(self, "", {}, {})) end

--- List of every module of the tree (this one first).
function Module:modules()
  local out = {}
  for _, e in ipairs(walk(self, "", {}, {})) do out[#out + 1] = e[2] end
  return out
end

local function named_tensors(self, field, prefix, recurse)
  local out, seen = {}, {}
  local mods = recurse == false and { { "", self } } or walk(self, "", {}, {})
  for _, e in ipairs(mods) do
    local p = e[1]
    for name, t in oiter(rawget(e[2], field)) do
      if not seen[t] then
        seen[t] = true
        local full = p == "" and name or p .. "." .. name
        if prefix and prefix ~= "" then full = prefix .. "." .. full end
        out[#out + 1] = { full, t }
      end
    end
  end
  return out
end

--- Iterator over (dotted name, parameter), each parameter once, in definition order.
function Module:named_parameters(prefix, recurse)
  return list_iter(named_tensors(self, "_parameters", prefix, recurse))
end

--- List of parameters (for optimisers).
function Module:parameters(recurse)
  local out = {}
  for _, e in ipairs(named_tensors(self, "_parameters", nil, recurse)) do out[#out + 1] = e[2] end
  return out
end

function Module:named_buffers(prefix, recurse)
  return list_iter(named_tensors(self, "_buffers", prefix, recurse))
end

function Module:buffers(recurse)
  local out = {}
  for _, e in ipairs(named_tensors(self, "_buffers", nil, recurse)) do out[#out + 1] = e[2] end
  return out
end

--- Total number of parameter elements (only those requiring grad when trainable_only).
function Module:num_parameters(trainable_only)
  local n = 0
  for _, p in ipairs(self:parameters()) do
    if not trainable_only or p.requires_grad then n = n + p:numel() end
  end
  return n
end

--- apply(fn): fn(m) for every module, children first (as PyTorch); returns self.
function Module:apply(fn)
  for _, child in oiter(rawget(self, "_modules")) do child:apply(fn) end
  fn(self)
  return self
end

-- ---- modes ---------------------------------------------------------------------------------
function Module:train(mode)
  if mode == nil then mode = true end
  for _, m in ipairs(self:modules()) do rawset(m, "training", mode and true or false) end
  return self
end

function Module:eval() return self:train(false) end

--- zero_grad(set_to_none=true): drops (or zeroes) every parameter's gradient.
function Module:zero_grad(set_to_none)
  for _, p in ipairs(self:parameters()) do
    if set_to_none == false then
      local g = p.grad
      if g then g:zero_() end
    else
      p.grad = nil
    end
  end
  return self
end

--- requires_grad_(flag): freezes (false) or unfreezes every parameter.
function Module:requires_grad_(flag)
  if flag == nil then flag = true end
  for _, p in ipairs(self:parameters()) do p:requires_grad_(flag) end
  return self
end

-- ---- devices and dtypes ----------------------------------------------------------------------
local FLOAT_DTYPES = { float32 = true, float64 = true, float16 = true, bfloat16 = true }

local function is_device_name(s)
  return s == "cpu" or s == "cuda" or (type(s) == "string" and s:match("^cuda:%d+$") ~= nil)
end

-- "cuda" is the current device, cuda:0 (what x.device reports)
local function canonical_device(d)
  if d == "cuda" then return "cuda:0" end
  return d
end

-- to(...)'s arguments -> device or nil, dtype or nil; errors name the module and the argument
local function parse_to_args(self, a, b)
  local where = Module.type_name(self) .. ":to"
  local device, dtype
  local function take(v, pos)
    if fsvc.is_tensor(v) then -- m:to(other): other's device and (floating) dtype, as PyTorch
      device = v.device
      if FLOAT_DTYPES[v.dtype] then dtype = v.dtype end
    elseif is_device_name(v) then
      if device then error(string.format("%s: two devices given (%s and %s)", where, device, v), 4) end
      device = v
    elseif FLOAT_DTYPES[v] then
      if dtype then error(string.format("%s: two dtypes given (%s and %s)", where, dtype, v), 4) end
      dtype = v
    elseif v == "int64" then
      error(where .. ": modules convert only to floating dtypes (float32, float64, float16, "
        .. "bfloat16), got int64", 4)
    else
      error(string.format("%s: argument #%d must be a device (\"cpu\", \"cuda\", \"cuda:N\") or a "
        .. "floating dtype (\"float32\", \"float64\", ...), got %s", where, pos,
        type(v) == "string" and ("'" .. v .. "'") or type(v)), 4)
    end
  end
  if type(a) == "table" and not fsvc.is_tensor(a) then
    if b ~= nil then error(where .. ": an options table is the only argument", 3) end
    for k in pairs(a) do
      if k ~= "device" and k ~= "dtype" then
        error(string.format("%s: unknown option '%s' (expected device, dtype)", where, tostring(k)), 3)
      end
    end
    if a.device == nil and a.dtype == nil then error(where .. ": options need a device or a dtype", 3) end
    if a.device ~= nil then
      if not is_device_name(a.device) then
        error(string.format("%s: device must be \"cpu\", \"cuda\" or \"cuda:N\", got %s", where,
          tostring(a.device)), 3)
      end
      device = a.device
    end
    if a.dtype ~= nil then
      if not FLOAT_DTYPES[a.dtype] then
        error(string.format("%s: dtype must be a floating dtype (float32, float64, float16, "
          .. "bfloat16), got %s", where, tostring(a.dtype)), 3)
      end
      dtype = a.dtype
    end
  else
    if a == nil then error(where .. " expects a device, a dtype, or both", 3) end
    take(a, 1)
    if b ~= nil then take(b, 2) end
  end
  return canonical_device(device), dtype
end

-- t moved to device and/or cast to dtype (int64 keeps its dtype); t itself when nothing changes
local function convert_tensor(t, device, dtype)
  local dt = (dtype and FLOAT_DTYPES[t.dtype]) and dtype or t.dtype
  local dev = device or t.device
  if dt == t.dtype and dev == t.device then return t end
  return fsvc.no_grad(function()
    if dev ~= t.device then return t:to(dev, dt) end
    return t:to(dt)
  end)
end

--- to(device), to(dtype), to(device, dtype), to{device = ..., dtype = ...}, to(tensor): moves
--- every parameter and buffer to the device ("cpu", "cuda", "cuda:N") and casts the floating
--- ones to the dtype (int64 buffers change device, never dtype). A converted parameter is a new
--- leaf Parameter with the same requires_grad, its .grad converted too; a tensor shared by
--- several modules stays shared. Everything is converted before anything is replaced, so a
--- failed move (no CUDA device, out of memory) leaves the module unchanged. Modules with a
--- `_convert(self, dtype, device)` method are told afterwards. Make the optimiser after moving
--- the model (its parameter list holds the old tensors), as in PyTorch. Returns self.
function Module:to(a, b)
  local device, dtype = parse_to_args(self, a, b)
  local mods = self:modules()
  local converted = {} -- old tensor -> new; shared tensors are converted once and stay shared
  local ok, err = pcall(function()
    for _, m in ipairs(mods) do
      for field, is_param in pairs({ _parameters = true, _buffers = false }) do
        for _, t in oiter(rawget(m, field)) do
          if not converted[t] then
            local new = convert_tensor(t, device, dtype)
            if new ~= t and is_param then
              new = Parameter(new, t.requires_grad)
              local g = t.grad
              if g then new.grad = convert_tensor(g, device, dtype) end
            end
            converted[t] = new
          end
        end
      end
    end
  end)
  if not ok then -- the tensor layer's message, without the position inside this file
    local msg = tostring(err):gsub("^[^\n]-:%d+: ", ""):gsub("^to: ", "")
    error(Module.type_name(self) .. ":to: " .. msg, 2)
  end
  for _, m in ipairs(mods) do
    for _, field in ipairs({ "_parameters", "_buffers" }) do
      local d = rawget(m, field)
      for name, t in oiter(d) do d.map[name] = converted[t] end
    end
    if m._convert then m:_convert(dtype, device) end
  end
  return self
end

--- cuda(i=0): to("cuda:i"); cpu(): to("cpu").
function Module:cuda(index)
  if index ~= nil and math.type(index) ~= "integer" then
    error(Module.type_name(self) .. ":cuda expects a device index (an integer), got " .. type(index), 2)
  end
  return self:to("cuda:" .. (index or 0))
end
function Module:cpu() return self:to("cpu") end

function Module:double() return self:to("float64") end
function Module:float() return self:to("float32") end

-- ---- state dicts ---------------------------------------------------------------------------
-- A state dict is a table name -> tensor whose pairs() follows definition order; the order is
-- also available as nn.state_dict_keys(sd).
local function ordered_pairs(sd)
  local keys, i = getmetatable(sd).__keys, 0
  return function()
    while true do
      i = i + 1
      local k = keys[i]
      if k == nil then return nil end
      if rawget(sd, k) ~= nil then return k, rawget(sd, k) end
    end
  end, sd, nil
end

local function new_state_dict(keys)
  return setmetatable({}, { __keys = keys or {}, __pairs = ordered_pairs, __name = "state_dict" })
end

local function state_dict_add(sd, k, v)
  local keys = getmetatable(sd).__keys
  if rawget(sd, k) == nil then keys[#keys + 1] = k end
  rawset(sd, k, v)
end

--- Keys of a state dict in order (its definition order, or sorted for a plain table).
local function state_dict_keys(sd)
  local mt = getmetatable(sd)
  local out = {}
  if mt and mt.__keys then
    for _, k in ipairs(mt.__keys) do if rawget(sd, k) ~= nil then out[#out + 1] = k end end
  else
    for k in pairs(sd) do out[#out + 1] = k end
    table.sort(out)
  end
  return out
end

--- state_dict(): parameters and persistent buffers under PyTorch's names, as detached tensors
--- that share the module's storage.
function Module:state_dict(prefix)
  local sd = new_state_dict()
  for _, e in ipairs(walk(self, "", {}, {})) do
    local p, m = e[1], e[2]
    if prefix and prefix ~= "" then p = p == "" and prefix or prefix .. "." .. p end
    for name, t in oiter(rawget(m, "_parameters")) do
      state_dict_add(sd, p == "" and name or p .. "." .. name, t:detach())
    end
    local np = rawget(m, "_non_persistent")
    for name, t in oiter(rawget(m, "_buffers")) do
      if not np[name] then state_dict_add(sd, p == "" and name or p .. "." .. name, t:detach()) end
    end
  end
  return sd
end

local function shape_str(t) return "[" .. table.concat(t.shape, ", ") .. "]" end

--- load_state_dict(sd, {strict=true}): copies the values of sd into this module's parameters and
--- buffers (converting dtypes). Every key and shape is checked before anything is copied, so a
--- failed load leaves the module unchanged. A shape mismatch is always an error (naming the key
--- and both shapes); with strict, so are missing and unexpected keys. Returns
--- {missing_keys = {...}, unexpected_keys = {...}}.
function Module:load_state_dict(sd, opts)
  opts = opts or {}
  local strict = opts.strict ~= false
  if type(sd) ~= "table" then
    error(Module.type_name(self) .. ":load_state_dict expects a table of tensors, got " .. type(sd), 2)
  end
  -- a private copy that the modules' pre-hooks may rewrite
  local src, order = {}, state_dict_keys(sd)
  for _, k in ipairs(order) do src[k] = sd[k] end
  local mods = walk(self, "", {}, {})
  for _, e in ipairs(mods) do
    local p = e[1] == "" and "" or e[1] .. "."
    for _, hook in ipairs(rawget(e[2], "_load_hooks")) do hook(e[2], src, p) end
  end
  local own = self:state_dict()
  local own_keys = state_dict_keys(own)
  local missing, unexpected, mismatch = {}, {}, {}
  local expected = {}
  for _, k in ipairs(own_keys) do
    expected[k] = true
    local v = src[k]
    if v == nil then
      missing[#missing + 1] = k
    elseif not fsvc.is_tensor(v) then
      mismatch[#mismatch + 1] = string.format("for %s: expected a tensor, got %s", k, type(v))
    else
      local a, b = v.shape, own[k].shape
      local same = #a == #b
      for i = 1, #a do same = same and a[i] == b[i] end
      if not same then
        mismatch[#mismatch + 1] = string.format(
          "size mismatch for %s: copying a param with shape %s from checkpoint, the shape in "
          .. "current model is %s", k, shape_str(v), shape_str(own[k]))
      end
    end
  end
  local src_keys = {}
  for k in pairs(src) do src_keys[#src_keys + 1] = k end
  table.sort(src_keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(src_keys) do
    if not expected[k] then unexpected[#unexpected + 1] = tostring(k) end
  end
  local errors = {}
  if strict and #missing > 0 then
    errors[#errors + 1] = "Missing key(s) in state_dict: " .. table.concat(missing, ", ")
  end
  if strict and #unexpected > 0 then
    errors[#errors + 1] = "Unexpected key(s) in state_dict: " .. table.concat(unexpected, ", ")
  end
  for _, m in ipairs(mismatch) do errors[#errors + 1] = m end
  if #errors > 0 then
    error(string.format("Error(s) in loading state_dict for %s:\n\t%s", Module.type_name(self),
      table.concat(errors, "\n\t")), 2)
  end
  fsvc.no_grad(function()
    for _, k in ipairs(own_keys) do
      if src[k] ~= nil then own[k]:copy_(src[k]) end
    end
  end)
  return { missing_keys = missing, unexpected_keys = unexpected }
end

-- ---- printing ------------------------------------------------------------------------------
--- One-line description of the module's own configuration (layers override it, as PyTorch's
--- extra_repr).
function Module:extra_repr() return "" end

local function repr(m, indent)
  local name = Module.type_name(m)
  local extra = m:extra_repr()
  local lines = {}
  for cname, child in oiter(rawget(m, "_modules")) do
    local sub = repr(child, indent .. "  ")
    lines[#lines + 1] = indent .. "  (" .. cname .. "): " .. sub
  end
  if #lines == 0 then return name .. "(" .. extra .. ")" end
  local head = name .. "("
  if extra ~= "" then head = head .. "\n" .. indent .. "  " .. extra end
  return head .. "\n" .. table.concat(lines, "\n") .. "\n" .. indent .. ")"
end

Module.__tostring = function(self) return repr(self, "") end

return {
  Module = Module,
  Parameter = Parameter,
  is_parameter = is_parameter,
  is_module = is_module,
  state_dict_keys = state_dict_keys,
  new_state_dict = new_state_dict,
  state_dict_add = state_dict_add,
  odict_iter = oiter,
}
