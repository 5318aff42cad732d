-- nn.Sequential(m1, m2, ...) or nn.Sequential{m1, m2, ...}: applies the modules in order.
-- Children are named "0", "1", ... (as PyTorch); seq[1] is the first (Lua's 1-based indexing),
-- #seq the count, and seq:append(m) adds one.
local module = require "fsvc.nn.module"

local Sequential = module.Module:extend("Sequential")

function Sequential:init(...)
  local list = { ... }
  if #list == 1 and not module.is_module(list[1]) and type(list[1]) == "table" then list = list[1] end
  for i, m in ipairs(list) do
    if not module.is_module(m) then
      error(string.format("Sequential: argument %d is not a module (%s)", i, type(m)), 3)
    end
    self:add_module(tostring(i - 1), m)
  end
end

function Sequential:append(m)
  self:add_module(tostring(#self), m)
  return self
end

function Sequential:forward(x, ...)
  for _, m in ipairs(self:children()) do x = m(x, ...) end
  return x
end

Sequential.__len = function(self) return #self:children() end

return Sequential
