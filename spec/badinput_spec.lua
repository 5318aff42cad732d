-- Bad input must raise a Lua error naming the op, never crash. Two parts: hand-written cases
-- from spec/badinput/<area>.lua (each a function that must raise), and a random sweep that calls
-- every C function of fsvc and every Tensor method with random wrong arguments thousands of times.
local areas = { "elementwise", "reduce", "shape", "nn", "tensor", "audio", "dsp", "checkpoint" }

describe("bad input", function()
  for _, area in ipairs(areas) do
    local path = "spec/badinput/" .. area .. ".lua"
    local f = io.open(path)
    if f then
      f:close()
      for i, case in ipairs(dofile(path)) do
        local name = type(case) == "table" and case.name or ("case " .. i)
        local fn = type(case) == "table" and case.fn or case
        it(area .. ": " .. name, function()
          local ok, err = pcall(fn)
          assert(not ok, "expected an error")
          assert(type(err) == "string" and #err > 0, "the error must be a message")
        end)
      end
    end
  end

  it("survives thousands of random wrong calls", function()
    fsvc.manual_seed(3)
    local freed = fsvc.zeros(2)
    freed:free()
    local tensors = {
      function() return fsvc.zeros(0) end,
      function() return fsvc.zeros(0, 3) end,
      function() return fsvc.randn(2, 3) end,
      function() return fsvc.randn(3) end,
      function() return fsvc.randn(1, 2, 5) end,
      function() return fsvc.tensor({ 0 / 0, 1 }) end,
      function() return fsvc.tensor({ 5, -7, 100 }) end, -- int64, out-of-range indices
      function() return fsvc.randn(4, 4):transpose(0, 1) end,
      function() return fsvc.zeros(3, { requires_grad = true }) end,
      function() return freed end,
      function() return fsvc.ones({}) end,
    }
    local calls, errors, n_targets = dofile("spec/helpers/wrong_calls.lua").run(tensors, 12)
    print(string.format("\n    %d random calls over %d functions, %d raised errors, no crash",
      calls, n_targets, errors))
    assert.is_true(calls > 1000)
    assert.is_true(errors > 0)
  end)
end)
