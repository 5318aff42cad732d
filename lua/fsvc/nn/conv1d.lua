-- nn.Conv1d(in_channels, out_channels, kernel_size, {stride=1, padding=0, dilation=1, groups=1,
--           bias=true, padding_mode="zeros", dtype="float32"}), as torch.nn.Conv1d.
--   input [B, in_channels, T] (or [in_channels, T]) -> [B, out_channels, T_out]
--   padding: an integer, "valid" (0) or "same" (stride 1; extra padding goes right, as PyTorch)
--   padding_mode: "zeros", "reflect" or "replicate"
--   weight [out_channels, in_channels / groups, kernel_size], bias [out_channels]
local fsvc = require "fsvc"
local module = require "fsvc.nn.module"
local init = require "fsvc.nn.init_weights"
local U = require "fsvc.nn.util_internal"

local Conv1d = module.Module:extend("Conv1d")

function Conv1d:init(in_channels, out_channels, kernel_size, opts)
  opts = opts or {}
  local L = "Conv1d"
  self.in_channels = U.check_int(L, "in_channels", in_channels, 1)
  self.out_channels = U.check_int(L, "out_channels", out_channels, 1)
  self.kernel_size = U.int1(L, "kernel_size", kernel_size, 1)
  self.stride = U.int1(L, "stride", opts.stride or 1, 1)
  self.dilation = U.int1(L, "dilation", opts.dilation or 1, 1)
  self.groups = U.check_int(L, "groups", opts.groups or 1, 1)
  local padding = opts.padding or 0
  if padding == "valid" then padding = 0 end
  if padding == "same" then
    if self.stride ~= 1 then error("Conv1d: padding=\"same\" needs stride 1", 2) end
  else
    padding = U.int1(L, "padding", padding, 0)
  end
  self.padding = padding
  self.padding_mode = opts.padding_mode or "zeros"
  local modes = { zeros = true, reflect = true, replicate = true }
  if not modes[self.padding_mode] then
    error("Conv1d: padding_mode must be \"zeros\", \"reflect\" or \"replicate\", got "
      .. tostring(self.padding_mode), 2)
  end
  U.check_groups(L, self.in_channels, self.out_channels, self.groups)
  U.weight_and_bias(self, { self.out_channels, self.in_channels // self.groups,
    self.kernel_size }, self.out_channels, opts)
  self:reset_parameters()
end

function Conv1d:reset_parameters()
  init.default_layer_init(self.weight, self.bias)
end

-- left and right padding of the input
function Conv1d:_pads()
  if self.padding == "same" then
    local total = self.dilation * (self.kernel_size - 1)
    return total // 2, total - total // 2
  end
  return self.padding, self.padding
end

function Conv1d:forward(x)
  if not fsvc.is_tensor(x) then
    error(string.format("%s: expected an input tensor [B, %d, T], got %s", tostring(self), self.in_channels, type(x)), 2)
  end
  local unbatched = x.ndim == 2
  if unbatched then x = x:unsqueeze(0) end
  if x.ndim ~= 3 or x.shape[2] ~= self.in_channels then
    error(string.format("Conv1d(%d, %d, kernel_size=%d): expected input of shape [B, %d, T], got %s",
      self.in_channels, self.out_channels, self.kernel_size, self.in_channels,
      U.shape_str(unbatched and x:squeeze(0) or x)), 2)
  end
  local left, right = self:_pads()
  local pad = 0
  if self.padding_mode ~= "zeros" and (left > 0 or right > 0) then
    x = x:pad({ left, right }, { mode = self.padding_mode })
  elseif left == right then
    pad = left
  else
    x = x:pad({ left, right })
  end
  local y = fsvc.conv1d(x, self.weight, self.bias,
    { stride = self.stride, padding = pad, dilation = self.dilation, groups = self.groups })
  if unbatched then y = y:squeeze(0) end
  return y
end

function Conv1d:extra_repr()
  local s = string.format("%d, %d, kernel_size=%s, stride=%s", self.in_channels, self.out_channels,
    U.tuple1(self.kernel_size), U.tuple1(self.stride))
  if self.padding == "same" then s = s .. ", padding=same"
  elseif self.padding ~= 0 then s = s .. ", padding=" .. U.tuple1(self.padding) end
  if self.dilation ~= 1 then s = s .. ", dilation=" .. U.tuple1(self.dilation) end
  if self.groups ~= 1 then s = s .. ", groups=" .. self.groups end
  if self.bias == nil then s = s .. ", bias=False" end
  if self.padding_mode ~= "zeros" then s = s .. ", padding_mode=" .. self.padding_mode end
  return s
end

return Conv1d
