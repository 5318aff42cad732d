-- optim.Adam(params, {lr=1e-3, betas={0.9, 0.999}, eps=1e-8, weight_decay=0, amsgrad=false,
-- maximize=false}) and optim.AdamW (the same with decoupled weight decay, default 1e-2), with
-- PyTorch's exact update (bias corrections; amsgrad keeps the running max of exp_avg_sq):
--   AdamW: p = p * (1 - lr * wd)          Adam: g = g + wd * p
--   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
--   p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
-- The step runs in one fused C pass per parameter when the core has it (fsvc._adam_step),
-- else through in-place tensor ops.
local fsvc = require "fsvc"
local Optimizer = require("fsvc.optim.optimizer").Optimizer

local function make(name, default_wd, decoupled)
  local cls = Optimizer:extend(name, { lr = 1e-3, betas = { 0.9, 0.999 }, eps = 1e-8,
    weight_decay = default_wd, amsgrad = false, maximize = false, fused = true })

  function cls:check_group(g)
    local b = g.betas
    if g.lr < 0 then error(name .. ": invalid learning rate " .. g.lr, 3) end
    if g.eps < 0 then error(name .. ": invalid epsilon " .. g.eps, 3) end
    if type(b) ~= "table" or not (b[1] >= 0 and b[1] < 1) or not (b[2] >= 0 and b[2] < 1) then
      error(name .. ": betas must be two numbers in [0, 1)", 3)
    end
    if g.weight_decay < 0 then error(name .. ": invalid weight_decay " .. g.weight_decay, 3) end
  end

  function cls:update_group(group)
    local lr, b1, b2, eps, wd = group.lr, group.betas[1], group.betas[2], group.eps, group.weight_decay
    local fused = group.fused and rawget(fsvc, "_adam_step")
    for _, p in ipairs(group.params) do
      local grad = p.grad
      if grad then
        local state = self.state[p]
        if not state then
          state = { step = 0, exp_avg = fsvc.zeros_like(p), exp_avg_sq = fsvc.zeros_like(p) }
          if group.amsgrad then state.max_exp_avg_sq = fsvc.zeros_like(p) end
          self.state[p] = state
        end
        if group.amsgrad and not state.max_exp_avg_sq then state.max_exp_avg_sq = fsvc.zeros_like(p) end
        state.step = state.step + 1
        local step = state.step
        if fused then
          fused(p, grad, state.exp_avg, state.exp_avg_sq, group.amsgrad and state.max_exp_avg_sq or nil,
            { lr = lr, beta1 = b1, beta2 = b2, eps = eps, weight_decay = wd, step = step,
              maximize = group.maximize, decoupled = decoupled })
        else
          local g = group.maximize and -grad or grad
          if decoupled then
            p:mul_(1 - lr * wd)
          elseif wd ~= 0 then
            g = g + p * wd
          end
          local m, v = state.exp_avg, state.exp_avg_sq
          m:mul_(b1):add_(g, 1 - b1)
          v:mul_(b2):add_(g * g, 1 - b2)
          local bc1 = 1 - b1 ^ step
          local bc2_sqrt = math.sqrt(1 - b2 ^ step)
          local second = v
          if group.amsgrad then
            state.max_exp_avg_sq:copy_(fsvc.maximum(state.max_exp_avg_sq, v))
            second = state.max_exp_avg_sq
          end
          local denom = fsvc.sqrt(second) / bc2_sqrt + eps
          p:add_(m / denom, -lr / bc1)
        end
      end
    end
  end
  return cls
end

return { Adam = make("Adam", 0, false), AdamW = make("AdamW", 1e-2, true) }
