-- fsvc.optim.lr_scheduler: learning-rate schedules, as torch.optim.lr_scheduler (the same
-- recursive "chainable" formulas, so the rates equal PyTorch's step by step).
--
--   StepLR(opt, {step_size, gamma=0.1})           lr * gamma every step_size steps
--   ExponentialLR(opt, {gamma})                   lr * gamma every step
--   CosineAnnealingLR(opt, {T_max, eta_min=0})    cosine from the base lr to eta_min over T_max
--   LambdaLR(opt, {lr_lambda = fn(epoch) | {fn per group}})   base_lr * fn(epoch)
--   LinearLR(opt, {start_factor=1/3, end_factor=1, total_iters=5})   linear warm-up factor
--
-- Creating a scheduler sets each group's lr to its value at epoch 0. Call sched:step() after
-- opt:step(); sched:get_last_lr() lists the current rates; state_dict()/load_state_dict() save
-- last_epoch and the base rates (not the lambda functions). With a capturable Adam/AdamW the new
-- rate is also written to the group's device tensor (opt:lr_tensor), which captured graphs read.
local LRScheduler = {}
LRScheduler.__index = LRScheduler

local function extend(name, defaults)
  local cls = setmetatable({ __name = name, defaults = defaults or {} }, { __index = LRScheduler,
    __call = function(c, ...) return c.new(...) end })
  cls.__index = cls
  cls.new = function(optimizer, opts)
    opts = opts or {}
    local self = setmetatable({ optimizer = optimizer }, cls)
    for k, v in pairs(cls.defaults) do self[k] = v end
    for k, v in pairs(opts) do
      if cls.defaults[k] == nil and k ~= "last_epoch" then
        error(string.format("%s: unknown option '%s'", name, tostring(k)), 2)
      end
      self[k] = v
    end
    if type(optimizer) ~= "table" or type(optimizer.param_groups) ~= "table" then
      error(name .. ": the first argument must be an optimizer", 2)
    end
    if self.check then self:check() end
    local last_epoch = opts.last_epoch or -1
    for _, g in ipairs(optimizer.param_groups) do
      if last_epoch == -1 then g.initial_lr = g.lr
      elseif g.initial_lr == nil then
        error(name .. ": resuming with last_epoch needs 'initial_lr' in every param group", 2)
      end
    end
    self.base_lrs = {}
    for i, g in ipairs(optimizer.param_groups) do self.base_lrs[i] = g.initial_lr end
    self.last_epoch = last_epoch
    self._step_count = 0
    self:step()
    return self
  end
  return cls
end

function LRScheduler:step()
  self._step_count = self._step_count + 1
  self.last_epoch = self.last_epoch + 1
  local lrs = self:get_lr()
  self._last_lr = {}
  local opt = self.optimizer
  for i, g in ipairs(opt.param_groups) do
    g.lr = lrs[i]
    self._last_lr[i] = lrs[i]
    -- a capturable optimiser's rate lives on the device too (read by its captured graphs)
    if opt._lr_changed then opt:_lr_changed(g) end
  end
end

function LRScheduler:get_last_lr()
  local out = {}
  for i, v in ipairs(self._last_lr) do out[i] = v end
  return out
end

-- v, or a copy of its list part when it is a table (the scheduler and a state dict share no lists)
local function copy_lists(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for i, x in ipairs(v) do c[i] = x end
  return c
end

-- every field but the optimizer and functions
function LRScheduler:state_dict()
  local sd = {}
  for k, v in pairs(self) do
    if k ~= "optimizer" and type(v) ~= "function" and not (k == "lr_lambda") then
      sd[k] = copy_lists(v)
    end
  end
  return sd
end

function LRScheduler:load_state_dict(sd)
  for k, v in pairs(sd) do
    if k ~= "optimizer" and k ~= "lr_lambda" then self[k] = copy_lists(v) end
  end
end

local function groups(self) return self.optimizer.param_groups end

local StepLR = extend("StepLR", { step_size = false, gamma = 0.1 })
function StepLR:check()
  if type(self.step_size) ~= "number" or self.step_size < 1 then
    error("StepLR: step_size must be a positive integer", 3)
  end
end
function StepLR:get_lr()
  local out = {}
  for i, g in ipairs(groups(self)) do
    if self.last_epoch == 0 or self.last_epoch % self.step_size ~= 0 then out[i] = g.lr
    else out[i] = g.lr * self.gamma end
  end
  return out
end

local ExponentialLR = extend("ExponentialLR", { gamma = false })
function ExponentialLR:check()
  if type(self.gamma) ~= "number" then error("ExponentialLR: gamma is required", 3) end
end
function ExponentialLR:get_lr()
  local out = {}
  for i, g in ipairs(groups(self)) do
    out[i] = self.last_epoch == 0 and g.lr or g.lr * self.gamma
  end
  return out
end

local CosineAnnealingLR = extend("CosineAnnealingLR", { T_max = false, eta_min = 0 })
function CosineAnnealingLR:check()
  if type(self.T_max) ~= "number" or self.T_max <= 0 then
    error("CosineAnnealingLR: T_max must be a positive number", 3)
  end
end
function CosineAnnealingLR:get_lr()
  local out, e, T, eta = {}, self.last_epoch, self.T_max, self.eta_min
  for i, g in ipairs(groups(self)) do
    local base = self.base_lrs[i]
    if e == 0 then
      out[i] = g.lr
    elseif self._step_count == 1 and e > 0 then
      out[i] = eta + (base - eta) * (1 + math.cos(e * math.pi / T)) / 2
    elseif (e - 1 - T) % (2 * T) == 0 then
      out[i] = g.lr + (base - eta) * (1 - math.cos(math.pi / T)) / 2
    else
      out[i] = (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T))
          * (g.lr - eta) + eta
    end
  end
  return out
end

local LambdaLR = extend("LambdaLR", { lr_lambda = false })
function LambdaLR:check()
  local f = self.lr_lambda
  local n = #self.optimizer.param_groups
  if type(f) == "function" then
    local list = {}
    for i = 1, n do list[i] = f end
    self.lr_lambdas = list
  elseif type(f) == "table" and #f == n then
    self.lr_lambdas = f
  else
    error("LambdaLR: lr_lambda must be a function or a list of one function per group", 3)
  end
end
function LambdaLR:get_lr()
  local out = {}
  for i = 1, #groups(self) do out[i] = self.base_lrs[i] * self.lr_lambdas[i](self.last_epoch) end
  return out
end
function LambdaLR:state_dict()
  local sd = LRScheduler.state_dict(self)
  sd.lr_lambdas = nil
  return sd
end

local LinearLR = extend("LinearLR", { start_factor = 1 / 3, end_factor = 1, total_iters = 5 })
function LinearLR:check()
  if self.start_factor <= 0 or self.start_factor > 1 then
    error("LinearLR: start_factor must be in (0, 1]", 3)
  end
  if self.end_factor < 0 or self.end_factor > 1 then
    error("LinearLR: end_factor must be in [0, 1]", 3)
  end
end
function LinearLR:get_lr()
  local out, e = {}, self.last_epoch
  local s, f, n = self.start_factor, self.end_factor, self.total_iters
  for i, g in ipairs(groups(self)) do
    if e == 0 then out[i] = g.lr * s
    elseif e > n then out[i] = g.lr
    else out[i] = g.lr * (1 + (f - s) / (n * s + (e - 1) * (f - s))) end
  end
  return out
end

return {
  LRScheduler = LRScheduler,
  StepLR = StepLR,
  ExponentialLR = ExponentialLR,
  CosineAnnealingLR = CosineAnnealingLR,
  LambdaLR = LambdaLR,
  LinearLR = LinearLR,
}
