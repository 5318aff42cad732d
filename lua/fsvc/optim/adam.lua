-- optim.Adam(params, {lr=1e-3, betas={0.9, 0.999}, eps=1e-8, weight_decay=0, amsgrad=false,
-- maximize=false}) and optim.AdamW (the same with decoupled weight decay, default 1e-2), with
-- PyTorch's exact update (bias corrections; amsgrad keeps the running max of exp_avg_sq):
--   AdamW: p = p * (1 - lr * wd)          Adam: g = g + wd * p
--   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
--   p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
-- The step runs in one fused C pass per parameter when the core has it (fsvc._adam_step),
-- else through in-place tensor ops. On CUDA (fused, one dtype, one step count) a group is updated
-- in one launch through a chunk table cached on the device (fsvc.cuda._adam_plan_step), uploaded
-- again only when the parameters or their state change.
--
-- capturable = true (CUDA parameters, fused): the step count of each parameter is a 0-d float64
-- device tensor incremented by the kernel, the bias corrections are computed on the device and the
-- rate is read from a device tensor (opt:lr_tensor(i)), so that a CUDA graph that captured
-- opt:step() advances the counts and follows the rate at each replay. A new group.lr reaches the
-- device at the next eager step() or scheduler step (both fill the tensor); between replays write
-- it with opt:lr_tensor(i):fill_(lr) or let a scheduler do it, outside the graph.
local fsvc = require "fsvc"
local Optimizer = require("fsvc.optim.optimizer").Optimizer

local function new_state(p, group)
  local state = { step = 0, exp_avg = fsvc.zeros_like(p), exp_avg_sq = fsvc.zeros_like(p) }
  if group.amsgrad then state.max_exp_avg_sq = fsvc.zeros_like(p) end
  return state
end

-- a 0-d float64 tensor holding v on `device` (made outside any capture: by the warm-up)
local function device_scalar(v, device) return fsvc.full({}, v, { dtype = "float64" }):to(device) end

local function make(name, default_wd, decoupled)
  local cls = Optimizer:extend(name, { lr = 1e-3, betas = { 0.9, 0.999 }, eps = 1e-8,
    weight_decay = default_wd, amsgrad = false, maximize = false, fused = true, capturable = false })

  function cls:check_group(g)
    local b = g.betas
    if g.lr < 0 then error(name .. ": invalid learning rate " .. g.lr, 3) end
    if g.eps < 0 then error(name .. ": invalid epsilon " .. g.eps, 3) end
    if type(b) ~= "table" or not (b[1] >= 0 and b[1] < 1) or not (b[2] >= 0 and b[2] < 1) then
      error(name .. ": betas must be two numbers in [0, 1)", 3)
    end
    if g.weight_decay < 0 then error(name .. ": invalid weight_decay " .. g.weight_decay, 3) end
    if g.capturable then
      if not g.fused then error(name .. ": capturable = true needs fused = true", 3) end
      local dtype
      for i, p in ipairs(g.params) do
        if not p.is_cuda then
          error(string.format("%s: capturable = true needs CUDA parameters (parameter %d is on %s)",
            name, i, p.device), 3)
        end
        dtype = dtype or p.dtype
        if p.dtype ~= dtype then
          error(string.format("%s: capturable = true needs one dtype per group (parameter %d is %s, not %s)",
            name, i, p.dtype, dtype), 3)
        end
      end
    end
  end

  --- opt:lr_tensor(i = 1): the device tensor (0-d float64) that capturable group i reads its
  --- learning rate from; fill_ it between graph replays to change the rate.
  function cls:lr_tensor(i)
    local group = self.param_groups[i or 1]
    if not group then error(string.format("%s:lr_tensor: no parameter group %s", name, tostring(i)), 2) end
    if not group.capturable then
      error(string.format("%s:lr_tensor: group %d is not capturable (capturable = true)", name, i or 1), 2)
    end
    return self:_lr_changed(group)
  end

  -- makes the group's device rate equal group.lr when group.lr changed on the host (a fill
  -- kernel); returns the tensor. Schedulers call it after setting group.lr.
  function cls:_lr_changed(group)
    if not group.capturable then return nil end
    local all = rawget(self, "_lr_dev")
    if not all then all = {}; rawset(self, "_lr_dev", all) end
    local e = all[group]
    if not e then
      e = { t = device_scalar(group.lr, group.params[1].device), written = group.lr }
      all[group] = e
    elseif e.written ~= group.lr then
      e.t:fill_(group.lr)
      e.written = group.lr
    end
    return e.t
  end

  local function plan_of(self, group)
    local plans = rawget(self, "_plans")
    if not plans then plans = {}; rawset(self, "_plans", plans) end
    local plan = plans[group]
    if not plan then plan = fsvc.cuda._adam_plan(); plans[group] = plan end
    return plan
  end

  function cls:update_group(group)
    local lr, b1, b2, eps, wd = group.lr, group.betas[1], group.betas[2], group.eps, group.weight_decay
    local fused = group.fused and rawget(fsvc, "_adam_step")
    local capturable = group.capturable
    local h = { lr = lr, beta1 = b1, beta2 = b2, eps = eps, weight_decay = wd,
      maximize = group.maximize, decoupled = decoupled }
    local ps, gs, ms, vs, xs, steps = {}, {}, {}, {}, {}, {}
    -- one launch for the group: fused, every parameter on CUDA with one dtype and one step count
    local one_launch, dtype, common_step = fused, nil, nil
    for _, p in ipairs(group.params) do
      local grad = p.grad
      if grad then
        local state = self.state[p]
        if not state then
          state = new_state(p, group)
          self.state[p] = state
        end
        if group.amsgrad and not state.max_exp_avg_sq then state.max_exp_avg_sq = fsvc.zeros_like(p) end
        if capturable then
          if not fsvc.is_tensor(state.step) then state.step = device_scalar(state.step, p.device) end
        else
          if fsvc.is_tensor(state.step) then state.step = state.step:item() end
          state.step = state.step + 1
          common_step = common_step or state.step
          if state.step ~= common_step then one_launch = false end
        end
        dtype = dtype or p.dtype
        if not p.is_cuda or p.dtype ~= dtype then one_launch = false end
        local k = #ps + 1
        ps[k], gs[k], ms[k], vs[k], steps[k] = p, grad, state.exp_avg, state.exp_avg_sq, state.step
        xs[k] = state.max_exp_avg_sq
      end
    end
    if #ps == 0 then return end
    if capturable then
      fsvc.cuda._adam_plan_step(plan_of(self, group), ps, gs, ms, vs, group.amsgrad and xs or nil, steps,
        self:_lr_changed(group), h)
      return
    end
    if one_launch then
      h.step = common_step
      fsvc.cuda._adam_plan_step(plan_of(self, group), ps, gs, ms, vs, group.amsgrad and xs or nil, nil, nil, h)
      return
    end
    for k, p in ipairs(ps) do
      local grad, step, m, v = gs[k], steps[k], ms[k], vs[k]
      if fused then
        h.step = step
        fused(p, grad, m, v, group.amsgrad and xs[k] or nil, h)
      else
        local g = group.maximize and -grad or grad
        if decoupled then
          p:mul_(1 - lr * wd)
        elseif wd ~= 0 then
          g = g + p * wd
        end
        m:mul_(b1):add_(g, 1 - b1)
        v:mul_(b2):add_(g * g, 1 - b2)
        local bc1 = 1 - b1 ^ step
        local bc2_sqrt = math.sqrt(1 - b2 ^ step)
        local second = v
        if group.amsgrad then
          xs[k]:copy_(fsvc.maximum(xs[k], v))
          second = xs[k]
        end
        local denom = fsvc.sqrt(second) / bc2_sqrt + eps
        p:add_(m / denom, -lr / bc1)
      end
    end
  end
  return cls
end

return { Adam = make("Adam", 0, false), AdamW = make("AdamW", 1e-2, true) }
