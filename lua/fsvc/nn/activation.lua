-- Activation layers: nn.ReLU(), nn.GELU{approximate="none"|"tanh"}, nn.LeakyReLU(slope=0.01),
-- nn.Tanh(), nn.Sigmoid(), nn.SiLU(), nn.Softmax(dim), nn.Identity().
local fsvc = require "fsvc"
local module = require "fsvc.nn.module"
local F = require "fsvc.nn.functional"
local U = require "fsvc.nn.util_internal"
local Module = module.Module

local function simple(name, fn)
  local cls = Module:extend(name)
  cls.forward = function(_, x) return fn(x) end
  return cls
end

local A = {
  ReLU = simple("ReLU", fsvc.relu),
  Tanh = simple("Tanh", fsvc.tanh),
  Sigmoid = simple("Sigmoid", fsvc.sigmoid),
  SiLU = simple("SiLU", F.silu),
  Identity = simple("Identity", function(x) return x end),
}

local GELU = Module:extend("GELU")
function GELU:init(opts)
  local approximate = type(opts) == "table" and opts.approximate or opts or "none"
  if approximate ~= "none" and approximate ~= "tanh" then
    error("GELU: approximate must be \"none\" or \"tanh\", got " .. tostring(approximate), 2)
  end
  self.approximate = approximate
end
function GELU:forward(x) return F.gelu(x, self.approximate) end
function GELU:extra_repr() return "approximate='" .. self.approximate .. "'" end
A.GELU = GELU

local LeakyReLU = Module:extend("LeakyReLU")
function LeakyReLU:init(slope)
  if type(slope) == "table" then slope = slope.negative_slope end
  self.negative_slope = slope or 0.01
end
function LeakyReLU:forward(x) return fsvc.leaky_relu(x, self.negative_slope) end
function LeakyReLU:extra_repr() return "negative_slope=" .. U.pyfloat(self.negative_slope) end
A.LeakyReLU = LeakyReLU

local Softmax = Module:extend("Softmax")
function Softmax:init(dim)
  if type(dim) == "table" then dim = dim.dim end
  self.dim = dim or -1
end
function Softmax:forward(x) return fsvc.softmax(x, self.dim) end
function Softmax:extra_repr() return "dim=" .. self.dim end
A.Softmax = Softmax

return A
