-- nn.ModuleDict(): holds named submodules (md.name = m or md:add("name", m)), in insertion order.
-- A list of {name, module} pairs may be given: nn.ModuleDict{ {"enc", enc}, {"dec", dec} }.
local module = require "fsvc.nn.module"

local ModuleDict = module.Module:extend("ModuleDict")

function ModuleDict:init(pairs_list)
  for _, e in ipairs(pairs_list or {}) do self:add_module(e[1], e[2]) end
end

function ModuleDict:add(name, m) return self:add_module(name, m) end

function ModuleDict:keys()
  local out = {}
  for name in self:named_children() do out[#out + 1] = name end
  return out
end

return ModuleDict
