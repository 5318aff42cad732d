-- Every differentiable op against central finite differences in float64. The cases live in
-- spec/gradcheck/<area>.lua; this spec runs them all and checks that every op registered as
-- differentiable in the core (fsvc.differentiable_ops) is covered by at least one case.
local areas = { "elementwise", "reduce", "shape", "nn", "autograd", "dsp" }

local function load_cases()
  local all = {}
  for _, area in ipairs(areas) do
    local path = "spec/gradcheck/" .. area .. ".lua"
    local f = io.open(path)
    if f then
      f:close()
      for _, case in ipairs(dofile(path)) do
        case.area = area
        all[#all + 1] = case
      end
    end
  end
  return all
end

describe("gradcheck", function()
  local cases = load_cases()
  local covered = {}
  for i, case in ipairs(cases) do
    covered[case.op] = true
    it(string.format("%s: %s #%d", case.area, case.op, i), function()
      fsvc.manual_seed(1000 + i)
      local inputs = case.inputs()
      local ok, report = fsvc.gradcheck(case.fn, inputs, case.opts)
      assert(ok, case.op .. ": " .. report)
    end)
  end

  it("covers every differentiable op of the core", function()
    -- the registry fills at startup (each op file registers its names); "custom" registers on
    -- first use, which the autograd cases above have done
    local missing = {}
    for _, op in ipairs(fsvc.differentiable_ops()) do
      if not covered[op] then missing[#missing + 1] = op end
    end
    table.sort(missing)
    assert(#missing == 0, "ops without a gradient check: " .. table.concat(missing, ", "))
    assert(#cases > 0, "no gradient-check cases found")
  end)
end)
