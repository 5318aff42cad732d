-- optim.SGD(params, {lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=false,
-- maximize=false}), with PyTorch's update:
--   g = grad (+ weight_decay * p); buf = g on the first step, else momentum * buf + (1 - dampening) * g
--   g = nesterov and g + momentum * buf or buf (when momentum ~= 0);  p = p - lr * g
local fsvc = require "fsvc"
local Optimizer = require("fsvc.optim.optimizer").Optimizer

local SGD = Optimizer:extend("SGD", { lr = 1e-3, momentum = 0, dampening = 0, weight_decay = 0,
  nesterov = false, maximize = false, fused = true })

function SGD:check_group(g)
  if g.lr < 0 then error("SGD: invalid learning rate " .. g.lr, 3) end
  if g.momentum < 0 then error("SGD: invalid momentum " .. g.momentum, 3) end
  if g.weight_decay < 0 then error("SGD: invalid weight_decay " .. g.weight_decay, 3) end
  if g.nesterov and (g.momentum <= 0 or g.dampening ~= 0) then
    error("SGD: Nesterov momentum requires a momentum and zero dampening", 3)
  end
end

function SGD:update_group(group)
  local fused = group.fused and rawget(fsvc, "_sgd_step")
  for _, p in ipairs(group.params) do
    local grad = p.grad
    if grad then
      local state = self.state[p]
      if not state then state = {} self.state[p] = state end
      local buf = state.momentum_buffer
      local first = buf == nil
      if group.momentum ~= 0 and first then
        buf = fsvc.zeros_like(p)
        state.momentum_buffer = buf
      end
      if fused then
        fused(p, grad, group.momentum ~= 0 and buf or nil, { lr = group.lr, momentum = group.momentum,
          dampening = group.dampening, weight_decay = group.weight_decay, nesterov = group.nesterov,
          maximize = group.maximize, first_step = first })
      else
        local d = group.maximize and -grad or grad
        if group.weight_decay ~= 0 then d = d + p * group.weight_decay end
        if group.momentum ~= 0 then
          if first then buf:copy_(d)
          else buf:mul_(group.momentum):add_(d, 1 - group.dampening) end
          if group.nesterov then d = d + buf * group.momentum else d = buf end
        end
        p:add_(d, -group.lr)
      end
    end
  end
end

return SGD
