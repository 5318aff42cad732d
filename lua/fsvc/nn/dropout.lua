-- nn.Dropout(p=0.5): in training mode zeroes each element with probability p (the mask comes
-- from fsvc.rand, so fsvc.manual_seed makes it reproducible) and scales the rest by 1/(1-p);
-- the identity in eval mode.
local module = require "fsvc.nn.module"
local F = require "fsvc.nn.functional"
local U = require "fsvc.nn.util_internal"

local Dropout = module.Module:extend("Dropout")

function Dropout:init(p)
  if type(p) == "table" then p = p.p end
  p = p or 0.5
  if type(p) ~= "number" or p < 0 or p > 1 then
    error("Dropout: probability must be in [0, 1], got " .. tostring(p), 2)
  end
  self.p = p
end

function Dropout:forward(x) return F.dropout(x, self.p, self.training) end

function Dropout:extra_repr() return "p=" .. U.pyfloat(self.p) .. ", inplace=False" end

return Dropout
