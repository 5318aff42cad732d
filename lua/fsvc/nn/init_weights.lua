-- fsvc.nn.init: weight initialisers as torch.nn.init (in place, without recording gradients).
--
--   nn.init.kaiming_uniform_(w, { a = math.sqrt(5), mode = "fan_in", nonlinearity = "leaky_relu" })
--   nn.init.xavier_uniform_(w, gain)   nn.init.normal_(w, mean, std)   nn.init.zeros_(b)
--
-- fan_in / fan_out follow PyTorch: for a weight [out, in, k...], fan_in = in * prod(k) and
-- fan_out = out * prod(k). PyTorch's default Conv1d/Linear initialisation is
-- kaiming_uniform_(a = sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for
-- the bias (default_conv_init below).
local fsvc = require "fsvc"

local init = {}

local function no_grad(fn) return fsvc.no_grad(fn) end

function init.calculate_fan_in_and_fan_out(t)
  local shape = t.shape
  if #shape < 2 then
    error("init: fan in and fan out need a tensor of at least 2 dims, got shape ["
      .. table.concat(shape, ", ") .. "]", 2)
  end
  local receptive = 1
  for i = 3, #shape do receptive = receptive * shape[i] end
  return shape[2] * receptive, shape[1] * receptive
end

--- calculate_gain(nonlinearity, param): as torch.nn.init.calculate_gain.
function init.calculate_gain(nonlinearity, param)
  local linear = { linear = 1, conv1d = 1, conv2d = 1, conv3d = 1, conv_transpose1d = 1,
    conv_transpose2d = 1, conv_transpose3d = 1, sigmoid = 1 }
  if linear[nonlinearity] then return 1 end
  if nonlinearity == "tanh" then return 5 / 3 end
  if nonlinearity == "relu" then return math.sqrt(2) end
  if nonlinearity == "leaky_relu" then
    local slope = param or 0.01
    return math.sqrt(2 / (1 + slope * slope))
  end
  if nonlinearity == "selu" then return 3 / 4 end
  error("init.calculate_gain: unsupported nonlinearity '" .. tostring(nonlinearity) .. "'", 2)
end

function init.uniform_(t, a, b)
  no_grad(function() t:uniform_(a or 0, b or 1) end)
  return t
end

function init.normal_(t, mean, std)
  no_grad(function() t:normal_(mean or 0, std or 1) end)
  return t
end

function init.constant_(t, v)
  no_grad(function() t:fill_(v) end)
  return t
end

function init.zeros_(t) return init.constant_(t, 0) end
function init.ones_(t) return init.constant_(t, 1) end

function init.xavier_uniform_(t, gain)
  local fan_in, fan_out = init.calculate_fan_in_and_fan_out(t)
  local std = (gain or 1) * math.sqrt(2 / (fan_in + fan_out))
  local a = math.sqrt(3) * std
  return init.uniform_(t, -a, a)
end

function init.xavier_normal_(t, gain)
  local fan_in, fan_out = init.calculate_fan_in_and_fan_out(t)
  return init.normal_(t, 0, (gain or 1) * math.sqrt(2 / (fan_in + fan_out)))
end

local function kaiming_std(t, opts)
  opts = opts or {}
  local fan_in, fan_out = init.calculate_fan_in_and_fan_out(t)
  local mode = opts.mode or "fan_in"
  if mode ~= "fan_in" and mode ~= "fan_out" then
    error("init.kaiming: mode must be \"fan_in\" or \"fan_out\", got " .. tostring(mode), 3)
  end
  local fan = mode == "fan_in" and fan_in or fan_out
  local gain = init.calculate_gain(opts.nonlinearity or "leaky_relu", opts.a or 0)
  return gain / math.sqrt(fan)
end

--- kaiming_uniform_(t, {a=0, mode="fan_in", nonlinearity="leaky_relu"})
function init.kaiming_uniform_(t, opts)
  local bound = math.sqrt(3) * kaiming_std(t, opts)
  return init.uniform_(t, -bound, bound)
end

function init.kaiming_normal_(t, opts)
  return init.normal_(t, 0, kaiming_std(t, opts))
end

--- trunc_normal_(t, mean, std, a, b): normal values redrawn until inside [a, b].
function init.trunc_normal_(t, mean, std, a, b)
  mean, std, a, b = mean or 0, std or 1, a or -2, b or 2
  no_grad(function()
    local n = t:numel()
    local src = fsvc.randn({ n }, { dtype = "float64" })
    local vals = {}
    for i = 0, n - 1 do
      local v = mean + std * src:_get_flat(i)
      while v < a or v > b do v = mean + std * fsvc.randn({ 1 }, { dtype = "float64" }):item() end
      vals[i + 1] = v
    end
    t:copy_(fsvc.tensor(vals, { dtype = "float64" }):view(t.shape))
  end)
  return t
end

--- PyTorch's reset_parameters() of Conv1d, ConvTranspose1d and Linear: kaiming_uniform_ with
--- a = sqrt(5) for the weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias.
function init.default_layer_init(weight, bias)
  init.kaiming_uniform_(weight, { a = math.sqrt(5) })
  if bias then
    local fan_in = init.calculate_fan_in_and_fan_out(weight)
    local bound = fan_in > 0 and 1 / math.sqrt(fan_in) or 0
    init.uniform_(bias, -bound, bound)
  end
end

return init
