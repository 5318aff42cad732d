-- nn.AvgPool1d(kernel_size, {stride=kernel_size, padding=0}) and nn.MaxPool1d(...), over the
-- last dim of [B, C, T].
local fsvc = require "fsvc"
local module = require "fsvc.nn.module"
local U = require "fsvc.nn.util_internal"

local P = {}

local function pool(name, fn)
  local cls = module.Module:extend(name)
  function cls:init(kernel_size, opts)
    opts = opts or {}
    self.kernel_size = U.int1(name, "kernel_size", kernel_size, 1)
    self.stride = U.int1(name, "stride", opts.stride or self.kernel_size, 1)
    self.padding = U.int1(name, "padding", opts.padding or 0, 0)
  end
  function cls:forward(x)
    return fn(x, self.kernel_size, { stride = self.stride, padding = self.padding })
  end
  function cls:extra_repr()
    return string.format("kernel_size=%s, stride=%s, padding=%s", U.tuple1(self.kernel_size),
      U.tuple1(self.stride), U.tuple1(self.padding))
  end
  return cls
end

P.AvgPool1d = pool("AvgPool1d", fsvc.avg_pool1d)
P.MaxPool1d = pool("MaxPool1d", fsvc.max_pool1d)

return P
