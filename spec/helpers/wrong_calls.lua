-- The random wrong-call sweep of spec/badinput_spec.lua (CPU tensors) and spec/cuda_errors_spec.lua
-- (CUDA tensors): every C function of fsvc and every Tensor method is called, round after round,
-- with random arguments drawn from a list of wrong values and a list of tensors (the first
-- argument is a tensor two rounds in three, so that methods get past their first check). A call
-- may raise or return; it must not crash.
local M = {}

-- functions that would do real work with valid-looking random arguments, or change state
-- (_autocast_enter opens a region that only its returned value's __close ends)
local SKIP = { set_num_threads = true, manual_seed = true, set_grad_enabled = true,
               set_autocast = true, _autocast_enter = true, help = true, free = true,
               backward = true, gradcheck = true }

-- wrong values that are not tensors
M.VALUES = {
  function() return nil end, function() return 0 end, function() return -1 end,
  function() return 2 ^ 62 end, function() return 0 / 0 end, function() return math.huge end,
  function() return 1.5 end, function() return 3 end, function() return "float64" end,
  function() return "nonsense" end, function() return {} end, function() return { 2, -3 } end,
  function() return { dim = 99, stride = 0, padding = -5, groups = 7 } end,
  function() return print end,
}

local function targets()
  local list = {}
  for name, f in pairs(fsvc) do
    if type(f) == "function" and debug.getinfo(f, "S").what == "C" and not SKIP[name] then
      list[#list + 1] = { name, f }
    end
  end
  for name, f in pairs(fsvc.Tensor) do
    if type(f) == "function" and not SKIP[name] then list[#list + 1] = { "Tensor." .. name, f } end
  end
  table.sort(list, function(a, b) return a[1] < b[1] end)
  return list
end

-- tensors: a list of functions making tensors; after_round (optional) runs after each round.
-- Returns the number of calls, of raised errors and of functions called.
function M.run(tensors, rounds, after_round)
  local list = targets()
  local function any()
    local i = math.random(#M.VALUES + #tensors)
    if i <= #M.VALUES then return M.VALUES[i]() end
    return tensors[i - #M.VALUES]()
  end
  local calls, errors = 0, 0
  for round = 1, rounds do
    for _, target in ipairs(list) do
      local nargs = (round + #target[1]) % 5
      local args = {}
      for i = 1, nargs do args[i] = any() end
      if round % 3 ~= 0 then args[1] = tensors[math.random(#tensors)]() end
      local ok = pcall(target[2], table.unpack(args, 1, math.max(nargs, 1)))
      calls = calls + 1
      if not ok then errors = errors + 1 end
    end
    if after_round then after_round() end
  end
  return calls, errors, #list
end

return M
