-- nn.ConvTranspose1d(in_channels, out_channels, kernel_size, {stride=1, padding=0,
--   output_padding=0, groups=1, bias=true, dilation=1}), as torch.nn.ConvTranspose1d.
--   input [B, in_channels, T] -> [B, out_channels, (T-1)*stride - 2*padding + dilation*(k-1)
--   + output_padding + 1]; weight [in_channels, out_channels / groups, kernel_size]
local fsvc = require "fsvc"
local module = require "fsvc.nn.module"
local init = require "fsvc.nn.init_weights"
local U = require "fsvc.nn.util_internal"

local ConvTranspose1d = module.Module:extend("ConvTranspose1d")

function ConvTranspose1d:init(in_channels, out_channels, kernel_size, opts)
  opts = opts or {}
  local L = "ConvTranspose1d"
  self.in_channels = U.check_int(L, "in_channels", in_channels, 1)
  self.out_channels = U.check_int(L, "out_channels", out_channels, 1)
  self.kernel_size = U.int1(L, "kernel_size", kernel_size, 1)
  self.stride = U.int1(L, "stride", opts.stride or 1, 1)
  self.padding = U.int1(L, "padding", opts.padding or 0, 0)
  self.output_padding = U.int1(L, "output_padding", opts.output_padding or 0, 0)
  self.dilation = U.int1(L, "dilation", opts.dilation or 1, 1)
  self.groups = U.check_int(L, "groups", opts.groups or 1, 1)
  U.check_groups(L, self.in_channels, self.out_channels, self.groups)
  U.weight_and_bias(self, { self.in_channels, self.out_channels // self.groups,
    self.kernel_size }, self.out_channels, opts)
  self:reset_parameters()
end

function ConvTranspose1d:reset_parameters()
  init.default_layer_init(self.weight, self.bias)
end

function ConvTranspose1d:forward(x)
  local unbatched = fsvc.is_tensor(x) and x.ndim == 2
  if unbatched then x = x:unsqueeze(0) end
  if not fsvc.is_tensor(x) or x.ndim ~= 3 or x.shape[2] ~= self.in_channels then
    error(string.format("ConvTranspose1d(%d, %d, kernel_size=%d): expected input of shape [B, %d, T], got %s",
      self.in_channels, self.out_channels, self.kernel_size, self.in_channels, U.shape_str(x)), 2)
  end
  local y = fsvc.conv_transpose1d(x, self.weight, self.bias, { stride = self.stride,
    padding = self.padding, output_padding = self.output_padding, groups = self.groups,
    dilation = self.dilation })
  if unbatched then y = y:squeeze(0) end
  return y
end

function ConvTranspose1d:extra_repr()
  local s = string.format("%d, %d, kernel_size=%s, stride=%s", self.in_channels, self.out_channels,
    U.tuple1(self.kernel_size), U.tuple1(self.stride))
  if self.padding ~= 0 then s = s .. ", padding=" .. U.tuple1(self.padding) end
  if self.dilation ~= 1 then s = s .. ", dilation=" .. U.tuple1(self.dilation) end
  if self.output_padding ~= 0 then s = s .. ", output_padding=" .. U.tuple1(self.output_padding) end
  if self.groups ~= 1 then s = s .. ", groups=" .. self.groups end
  if self.bias == nil then s = s .. ", bias=False" end
  return s
end

return ConvTranspose1d
