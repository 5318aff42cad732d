-- nn.GroupNorm(num_groups, num_channels, {eps=1e-5, affine=true}), as torch.nn.GroupNorm:
-- input [N, C, *] is normalised over each group of C/num_groups channels and all other dims
-- (biased variance), then scaled and shifted per channel.
local fsvc = require "fsvc"
local module = require "fsvc.nn.module"
local F = require "fsvc.nn.functional"
local U = require "fsvc.nn.util_internal"

local GroupNorm = module.Module:extend("GroupNorm")

function GroupNorm:init(num_groups, num_channels, opts)
  opts = opts or {}
  self.num_groups = U.check_int("GroupNorm", "num_groups", num_groups, 1)
  self.num_channels = U.check_int("GroupNorm", "num_channels", num_channels, 1)
  if self.num_channels % self.num_groups ~= 0 then
    error(string.format("GroupNorm: num_channels (%d) must be divisible by num_groups (%d)",
      self.num_channels, self.num_groups), 2)
  end
  self.eps = opts.eps or 1e-5
  self.affine = opts.affine ~= false
  if self.affine then
    local dt = U.dtype_opts(opts)
    self.weight = module.Parameter(fsvc.ones({ self.num_channels }, dt))
    self.bias = module.Parameter(fsvc.zeros({ self.num_channels }, dt))
  else
    self:register_parameter("weight", nil)
    self:register_parameter("bias", nil)
  end
end

function GroupNorm:forward(x)
  if not fsvc.is_tensor(x) or x.ndim < 2 or x.shape[2] ~= self.num_channels then
    error(string.format("GroupNorm(%d, %d): expected input of shape [N, %d, ...], got %s",
      self.num_groups, self.num_channels, self.num_channels, U.shape_str(x)), 2)
  end
  return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
end

function GroupNorm:extra_repr()
  return string.format("%d, %d, eps=%s, affine=%s", self.num_groups, self.num_channels,
    U.pyfloat(self.eps), self.affine and "True" or "False")
end

return GroupNorm
