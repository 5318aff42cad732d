-- nn.ModuleList{m1, m2, ...}: holds submodules in a list, named "0", "1", ... in state dicts
-- (as PyTorch). list[i] is the i-th module (1-based, as Lua), #list the count, ipairs(list)
-- iterates; list:append(m), list:extend{...}.
local module = require "fsvc.nn.module"

local ModuleList = module.Module:extend("ModuleList")

function ModuleList:init(list)
  for _, m in ipairs(list or {}) do self:append(m) end
end

function ModuleList:append(m)
  if not module.is_module(m) then
    error("ModuleList: append expects a module, got " .. type(m), 2)
  end
  self:add_module(tostring(#self), m)
  return self
end

function ModuleList:extend(list)
  for _, m in ipairs(list) do self:append(m) end
  return self
end

function ModuleList:forward()
  error("ModuleList: has no forward(); iterate over it", 2)
end

ModuleList.__len = function(self) return #self:children() end

return ModuleList
