-- Small helpers shared by the layer files (not part of the public API).
local fsvc = require "fsvc"
local module = require "fsvc.nn.module"
local M = {}

function M.shape_str(t)
  if not fsvc.is_tensor(t) then return type(t) end
  return "[" .. table.concat(t.shape, ", ") .. "]"
end

-- PyTorch prints 1-tuples as "(3,)"
function M.tuple1(v) return "(" .. tostring(v) .. ",)" end

-- Python-like float formatting for reprs (1e-05, 0.1, 0.0001)
function M.pyfloat(v)
  if v == math.floor(v) and math.abs(v) < 1e15 then return string.format("%.1f", v) end
  local s = string.format("%.17g", v)
  for prec = 1, 17 do
    local c = string.format("%." .. prec .. "g", v)
    if tonumber(c) == v then s = c break end
  end
  -- Python switches to exponent notation below 1e-4 with two-digit exponents
  return s
end

function M.check_int(layer, name, v, min)
  if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)) then
    error(string.format("%s: %s must be an integer, got %s", layer, name, tostring(v)), 3)
  end
  v = math.tointeger(v)
  if min and v < min then
    error(string.format("%s: %s must be >= %d, got %d", layer, name, min, v), 3)
  end
  return v
end

-- a number or a 1-element list (PyTorch accepts kernel_size=(3,))
function M.int1(layer, name, v, min)
  if type(v) == "table" then
    if #v ~= 1 then error(string.format("%s: %s must be one integer, got a list of %d", layer, name, #v), 3) end
    v = v[1]
  end
  return M.check_int(layer, name, v, min)
end

function M.dtype_opts(opts) return { dtype = opts and opts.dtype or "float32" } end


-- Conv layers: groups must divide both channel counts (errors blame the layer's caller).
function M.check_groups(layer, in_channels, out_channels, groups)
  if in_channels % groups ~= 0 or out_channels % groups ~= 0 then
    error(string.format("%s: in_channels (%d) and out_channels (%d) must be divisible by groups (%d)",
      layer, in_channels, out_channels, groups), 3)
  end
end

-- Creates self.weight (weight_shape) and self.bias [bias_size] in opts.dtype, or registers no bias
-- when opts.bias == false; the layer's reset_parameters() then fills them.
function M.weight_and_bias(self, weight_shape, bias_size, opts)
  local dt = M.dtype_opts(opts)
  self.weight = module.Parameter(fsvc.empty(weight_shape, dt))
  if opts.bias == false then
    self:register_parameter("bias", nil)
  else
    self.bias = module.Parameter(fsvc.empty({ bias_size }, dt))
  end
end

return M
