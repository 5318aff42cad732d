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
    -- functions that would do real work with valid-looking random arguments, or change state
    -- (_autocast_enter opens a region that only its returned value's __close ends)
    local skip = { set_num_threads = true, manual_seed = true, set_grad_enabled = true,
                   set_autocast = true, _autocast_enter = true, help = true, free = true,
                   backward = true, gradcheck = true }
    local targets = {}
    for name, f in pairs(fsvc) do
      if type(f) == "function" and debug.getinfo(f, "S").what == "C" and not skip[name] then
        targets[#targets + 1] = { name, f }
      end
    end
    for name, f in pairs(fsvc.Tensor) do
      if type(f) == "function" and not skip[name] then targets[#targets + 1] = { "Tensor." .. name, f } end
    end
    table.sort(targets, function(a, b) return a[1] < b[1] end)
    local freed = fsvc.zeros(2)
    freed:free()
    local pool = {
      function() return nil end,
      function() return 0 end,
      function() return -1 end,
      function() return 2 ^ 62 end,
      function() return 0 / 0 end,
      function() return math.huge end,
      function() return 1.5 end,
      function() return 3 end,
      function() return "float64" end,
      function() return "nonsense" end,
      function() return {} end,
      function() return { 2, -3 } end,
      function() return { dim = 99, stride = 0, padding = -5, groups = 7 } end,
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
      function() return fsvc.scalar_tensor ~= nil and fsvc.scalar_tensor(1) or fsvc.ones({}) end,
      function() return print end,
    }
    local calls, errors = 0, 0
    for round = 1, 12 do
      for _, target in ipairs(targets) do
        local nargs = (round + #target[1]) % 5
        local args = {}
        for i = 1, nargs do args[i] = pool[math.random(#pool)]() end
        -- keep the first argument a tensor most of the time so methods get past their first check
        if round % 3 ~= 0 then args[1] = pool[14 + math.random(9)]() end
        local ok = pcall(target[2], table.unpack(args, 1, math.max(nargs, 1)))
        calls = calls + 1
        if not ok then errors = errors + 1 end
      end
    end
    print(string.format("\n    %d random calls over %d functions, %d raised errors, no crash",
      calls, #targets, errors))
    assert.is_true(calls > 1000)
    assert.is_true(errors > 0)
  end)
end)
