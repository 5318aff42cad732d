-- nn.Linear(in_features, out_features, {bias=true, dtype="float32"}), as torch.nn.Linear:
--   input [..., in_features] -> [..., out_features]; weight [out, in], bias [out]
local fsvc = require "fsvc"
local module = require "fsvc.nn.module"
local init = require "fsvc.nn.init_weights"
local U = require "fsvc.nn.util_internal"

local Linear = module.Module:extend("Linear")

function Linear:init(in_features, out_features, opts)
  opts = opts or {}
  self.in_features = U.check_int("Linear", "in_features", in_features, 0)
  self.out_features = U.check_int("Linear", "out_features", out_features, 0)
  U.weight_and_bias(self, { self.out_features, self.in_features }, self.out_features, opts)
  self:reset_parameters()
end

function Linear:reset_parameters()
  init.default_layer_init(self.weight, self.bias)
end

function Linear:forward(x)
  if not fsvc.is_tensor(x) or x.ndim < 1 or x.shape[x.ndim] ~= self.in_features then
    error(string.format("Linear(in_features=%d, out_features=%d): expected input of shape [..., %d], got %s",
      self.in_features, self.out_features, self.in_features, U.shape_str(x)), 2)
  end
  return fsvc.linear(x, self.weight, self.bias)
end

function Linear:extra_repr()
  return string.format("in_features=%d, out_features=%d, bias=%s", self.in_features,
    self.out_features, self.bias ~= nil and "True" or "False")
end

return Linear
