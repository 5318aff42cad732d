-- fsvc.optim: optimisers and learning-rate schedulers in PyTorch's style.
--
--   local opt = fsvc.optim.AdamW(net:parameters(), { lr = 1e-4, betas = { 0.8, 0.99 } })
--   opt:zero_grad(); loss:backward(); fsvc.nn.utils.clip_grad_norm_(net:parameters(), 1.0); opt:step()
--   local sched = fsvc.optim.lr_scheduler.StepLR(opt, { step_size = 10, gamma = 0.5 })
--   sched:step()
--
-- Optimisers: SGD, Adam, AdamW (param groups, state_dict/load_state_dict in PyTorch's layout).
-- Schedulers: optim.lr_scheduler.{StepLR, ExponentialLR, CosineAnnealingLR, LambdaLR, LinearLR}.
local base = require "fsvc.optim.optimizer"
local adam = require "fsvc.optim.adam"

return {
  Optimizer = base.Optimizer,
  SGD = require "fsvc.optim.sgd",
  Adam = adam.Adam,
  AdamW = adam.AdamW,
  lr_scheduler = require "fsvc.optim.lr_scheduler",
  flatten_state_dict = base.flatten_state_dict,
  unflatten_state_dict = base.unflatten_state_dict,
}
