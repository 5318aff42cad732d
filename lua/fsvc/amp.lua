-- fsvc.amp: mixed-precision training. fsvc.autocast (in fsvc itself, also fsvc.amp.autocast)
-- runs the matrix ops in float16/bfloat16; GradScaler is dynamic loss scaling with PyTorch's API
-- and semantics (torch.cuda.amp.GradScaler), so that float16 gradients neither underflow nor,
-- when they overflow, reach the weights:
--
--   local scaler = fsvc.amp.GradScaler()        -- { init_scale = 2^16, growth_factor = 2,
--                                               --   backoff_factor = 0.5, growth_interval = 2000,
--                                               --   enabled = true }
--   local loss = fsvc.autocast("float16", function() return loss_fn(net(x), y) end)
--   opt:zero_grad()
--   scaler:scale(loss):backward()               -- gradients are scale times too large
--   scaler:unscale_(opt)                        -- optional: true gradients now (for clipping)
--   scaler:step(opt)                            -- opt:step() unless a gradient held Inf/NaN
--   scaler:update()                             -- halve the scale after an overflow, double it
--                                               -- after growth_interval clean steps
--
-- The scale is a Lua number (the found-Inf flag is read back once per step anyway, to decide
-- whether to step). state_dict()/load_state_dict() carry scale and growth tracker for resuming.
local fsvc = require "fsvc"

local READY, UNSCALED, STEPPED = "ready", "unscaled", "stepped"

local GradScaler = {}
GradScaler.__index = GradScaler
GradScaler.__name = "GradScaler"

local defaults = { init_scale = 2.0 ^ 16, growth_factor = 2.0, backoff_factor = 0.5,
  growth_interval = 2000, enabled = true }

local function check_options(o)
  if not (type(o.init_scale) == "number" and o.init_scale > 0 and o.init_scale < math.huge) then
    error("GradScaler: init_scale must be a finite number > 0", 3)
  end
  if not (type(o.growth_factor) == "number" and o.growth_factor > 1) then
    error("GradScaler: growth_factor must be a number > 1", 3)
  end
  if not (type(o.backoff_factor) == "number" and o.backoff_factor > 0 and o.backoff_factor < 1) then
    error("GradScaler: backoff_factor must be a number in (0, 1)", 3)
  end
  if math.type(o.growth_interval) ~= "integer" or o.growth_interval < 1 then
    error("GradScaler: growth_interval must be an integer >= 1", 3)
  end
  if type(o.enabled) ~= "boolean" then error("GradScaler: enabled must be a boolean", 3) end
end

--- GradScaler(opts): see the top of this file for the options.
function GradScaler.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("GradScaler: options must be a table, got " .. type(opts), 2)
  end
  local o = {}
  for k, v in pairs(defaults) do o[k] = v end
  for k, v in pairs(opts or {}) do
    if defaults[k] == nil then error("GradScaler: unknown option '" .. tostring(k) .. "'", 2) end
    o[k] = v
  end
  check_options(o)
  return setmetatable({
    _enabled = o.enabled,
    _scale = o.init_scale,
    _growth_factor = o.growth_factor,
    _backoff_factor = o.backoff_factor,
    _growth_interval = o.growth_interval,
    _growth_tracker = 0,
    -- per optimizer, for the current iteration: { stage = READY|UNSCALED|STEPPED, found_inf = bool }
    _per_optimizer = setmetatable({}, { __mode = "k" }),
  }, GradScaler)
end
setmetatable(GradScaler, { __call = function(_, opts) return GradScaler.new(opts) end })

function GradScaler:is_enabled() return self._enabled end

--- get_scale(): the current scale (1.0 when disabled).
function GradScaler:get_scale() return self._enabled and self._scale or 1.0 end
function GradScaler:get_growth_factor() return self._growth_factor end
function GradScaler:set_growth_factor(v) self._growth_factor = v end
function GradScaler:get_backoff_factor() return self._backoff_factor end
function GradScaler:set_backoff_factor(v) self._backoff_factor = v end
function GradScaler:get_growth_interval() return self._growth_interval end
function GradScaler:set_growth_interval(v) self._growth_interval = v end

local function scale_one(t, s)
  if not fsvc.is_tensor(t) then
    error("GradScaler:scale: expects a tensor or a list of tensors, got " .. type(t), 3)
  end
  -- a 16-bit loss goes to float32 first: 65536 * loss would overflow float16 from loss >= 1
  if t.dtype == "float16" or t.dtype == "bfloat16" then t = t:float() end
  return t * s
end

--- scale(outputs): outputs * scale (a tensor, or a list of tensors: a list back). Disabled: the
--- outputs unchanged.
function GradScaler:scale(outputs)
  if not self._enabled then return outputs end
  if type(outputs) == "table" and not fsvc.is_tensor(outputs) then
    local out = {}
    for i, t in ipairs(outputs) do out[i] = scale_one(t, self._scale) end
    return out
  end
  return scale_one(outputs, self._scale)
end

local function state_of(self, optimizer)
  if type(optimizer) ~= "table" or type(optimizer.param_groups) ~= "table" then
    error("GradScaler: expects an optimizer (a table with param_groups), got " .. type(optimizer), 3)
  end
  local st = self._per_optimizer[optimizer]
  if not st then
    st = { stage = READY, found_inf = false }
    self._per_optimizer[optimizer] = st
  end
  return st
end

--- unscale_(optimizer): divides the gradients of the optimizer's parameters by the scale, in
--- place, once per iteration, and records whether any of them holds Inf or NaN. Call it before
--- clipping gradients; step() calls it when you did not.
function GradScaler:unscale_(optimizer)
  if not self._enabled then return end
  local st = state_of(self, optimizer)
  if st.stage == UNSCALED then
    error("GradScaler:unscale_: unscale_() has already been called on this optimizer since the last update()", 2)
  elseif st.stage == STEPPED then
    error("GradScaler:unscale_: unscale_() is being called after step()", 2)
  end
  local grads = {}
  for _, group in ipairs(optimizer.param_groups) do
    for _, p in ipairs(group.params) do
      local g = p.grad
      if g then
        if g.dtype == "float16" or g.dtype == "bfloat16" then
          error("GradScaler:unscale_: attempting to unscale " .. g.dtype .. " gradients; keep the "
            .. "parameters in float32 (autocast casts them for the matrix ops)", 2)
        end
        grads[#grads + 1] = g
      end
    end
  end
  st.found_inf = fsvc._amp_unscale_and_check(grads, 1.0 / self._scale)
  st.stage = UNSCALED
end

--- step(optimizer, ...): unscales (unless unscale_ was called) and runs optimizer:step(...)
--- when every gradient is finite. Returns whether it stepped, and optimizer:step's result.
function GradScaler:step(optimizer, ...)
  if not self._enabled then return true, optimizer:step(...) end
  if select("#", ...) > 0 then
    error("GradScaler:step: closures are not supported (recompute the loss and call backward first)", 2)
  end
  local st = state_of(self, optimizer)
  if st.stage == STEPPED then
    error("GradScaler:step: step() has already been called since the last update()", 2)
  end
  if st.stage == READY then self:unscale_(optimizer) end
  st.stage = STEPPED
  if st.found_inf then return false end
  return true, optimizer:step()
end

--- update(new_scale?): after an iteration's step() calls: halves (backoff_factor) the scale when
--- a gradient overflowed, else grows it (growth_factor) after growth_interval clean iterations
--- in a row. new_scale (a number or a one-element tensor) sets the scale instead.
function GradScaler:update(new_scale)
  if not self._enabled then return end
  if new_scale ~= nil then
    if fsvc.is_tensor(new_scale) then new_scale = new_scale:item() end
    if type(new_scale) ~= "number" or not (new_scale > 0) then
      error("GradScaler:update: new_scale must be a number > 0", 2)
    end
    self._scale = new_scale
  else
    local recorded, found = false, false
    for _, st in pairs(self._per_optimizer) do
      if st.stage ~= READY then
        recorded = true
        found = found or st.found_inf
      end
    end
    if not recorded then
      error("GradScaler:update: no inf checks were recorded prior to update() (call step or unscale_ first)", 2)
    end
    if found then
      self._scale = self._scale * self._backoff_factor
      self._growth_tracker = 0
    else
      local clean = self._growth_tracker + 1
      if clean == self._growth_interval then
        local grown = self._scale * self._growth_factor
        if grown < math.huge then self._scale = grown end
        self._growth_tracker = 0
      else
        self._growth_tracker = clean
      end
    end
  end
  self._per_optimizer = setmetatable({}, { __mode = "k" })
end

--- state_dict(): {scale, growth_factor, backoff_factor, growth_interval, _growth_tracker}
--- (PyTorch's keys); empty when disabled.
function GradScaler:state_dict()
  if not self._enabled then return {} end
  return { scale = self._scale, growth_factor = self._growth_factor,
    backoff_factor = self._backoff_factor, growth_interval = self._growth_interval,
    _growth_tracker = self._growth_tracker }
end

function GradScaler:load_state_dict(sd)
  if not self._enabled then return end
  if type(sd) ~= "table" then error("GradScaler:load_state_dict: expects a table", 2) end
  if next(sd) == nil then
    error("GradScaler:load_state_dict: the state dict is empty, possibly because it was saved "
      .. "from a disabled GradScaler", 2)
  end
  local function num(k)
    local v = sd[k]
    if fsvc.is_tensor(v) then v = v:item() end
    if type(v) ~= "number" then error("GradScaler:load_state_dict: '" .. k .. "' must be a number", 3) end
    return v
  end
  local o = { init_scale = num("scale"), growth_factor = num("growth_factor"),
    backoff_factor = num("backoff_factor"), growth_interval = math.tointeger(num("growth_interval")),
    enabled = true }
  check_options(o)
  local tracker = math.tointeger(num("_growth_tracker"))
  if not tracker or tracker < 0 then
    error("GradScaler:load_state_dict: '_growth_tracker' must be an integer >= 0", 2)
  end
  self._scale, self._growth_factor, self._backoff_factor = o.init_scale, o.growth_factor, o.backoff_factor
  self._growth_interval, self._growth_tracker = o.growth_interval, tracker
end

GradScaler.__tostring = function(self)
  return string.format("GradScaler(scale=%g, growth_tracker=%d, enabled=%s)", self:get_scale(),
    self._growth_tracker, tostring(self._enabled))
end

return {
  GradScaler = GradScaler,
  autocast = fsvc.autocast,
}
