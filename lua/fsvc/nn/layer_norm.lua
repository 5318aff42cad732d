-- nn.LayerNorm(normalized_shape, {eps=1e-5, elementwise_affine=true, bias=true}), as
-- torch.nn.LayerNorm: normalises over the last #normalized_shape dims (biased variance), then
-- y * weight + bias. normalized_shape is an integer or a list. Note: FasterSVC's own "LayerNorm"
-- (channels-and-time, unbiased std) is a different module, defined with the networks.
local fsvc = require "fsvc"
local module = require "fsvc.nn.module"
local F = require "fsvc.nn.functional"
local U = require "fsvc.nn.util_internal"

local LayerNorm = module.Module:extend("LayerNorm")

function LayerNorm:init(normalized_shape, opts)
  opts = opts or {}
  if type(normalized_shape) == "number" then normalized_shape = { normalized_shape } end
  local shape = {}
  for i, n in ipairs(normalized_shape) do shape[i] = U.check_int("LayerNorm", "normalized_shape", n, 1) end
  self.normalized_shape = shape
  self.eps = opts.eps or 1e-5
  self.elementwise_affine = opts.elementwise_affine ~= false
  if self.elementwise_affine then
    local dt = U.dtype_opts(opts)
    self.weight = module.Parameter(fsvc.ones(shape, dt))
    if opts.bias ~= false then
      self.bias = module.Parameter(fsvc.zeros(shape, dt))
    else
      self:register_parameter("bias", nil)
    end
  else
    self:register_parameter("weight", nil)
    self:register_parameter("bias", nil)
  end
end

function LayerNorm:forward(x)
  local n = #self.normalized_shape
  local ok = fsvc.is_tensor(x) and x.ndim >= n
  if ok then
    local s = x.shape
    for i = 1, n do ok = ok and s[#s - n + i] == self.normalized_shape[i] end
  end
  if not ok then
    error(string.format("LayerNorm(%s): expected input of shape [..., %s], got %s",
      table.concat(self.normalized_shape, ", "), table.concat(self.normalized_shape, ", "),
      U.shape_str(x)), 2)
  end
  return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
end

function LayerNorm:extra_repr()
  local shape = #self.normalized_shape == 1 and U.tuple1(self.normalized_shape[1])
      or "(" .. table.concat(self.normalized_shape, ", ") .. ")"
  return string.format("%s, eps=%s, elementwise_affine=%s", shape, U.pyfloat(self.eps),
    self.elementwise_affine and "True" or "False")
end

return LayerNorm
