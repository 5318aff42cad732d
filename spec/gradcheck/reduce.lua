-- Gradient checks of the reductions (run by spec/gradcheck_spec.lua in float64). Ops whose
-- gradient picks an element (max, min, topk, norm inf) get inputs without ties: a random
-- permutation scaled, so finite differences never cross a switch.
local function x(...)
  return fsvc.randn({ ... }, { dtype = "float64", requires_grad = true })
end

-- distinct values, shuffled: no ties, gaps of 0.1 >> the finite-difference step
local function distinct(...)
  local shape = { ... }
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  return (fsvc.randperm(n):double() * 0.1 - 1):reshape(shape):detach():requires_grad_()
end

local function one(f) return function() return { f() } end end

return {
  { op = "sum", fn = function(a) return a:sum() end, inputs = one(function() return x(3, 4) end) },
  { op = "sum", fn = function(a) return a:sum(1) end, inputs = one(function() return x(2, 3, 4) end) },
  { op = "sum", fn = function(a) return a:sum({ 0, 2 }, true) end, inputs = one(function() return x(2, 3, 4) end) },
  { op = "sum", fn = function(a) return a:transpose(0, 1):sum(-1) end, inputs = one(function() return x(3, 4) end) },
  { op = "mean", fn = function(a) return a:mean() end, inputs = one(function() return x(3, 4) end) },
  { op = "mean", fn = function(a) return a:mean(1, true) end, inputs = one(function() return x(2, 5, 3) end) },
  { op = "mean", fn = function(a) return a:mean({ 1, 2 }) end, inputs = one(function() return x(2, 3, 4) end) },
  { op = "var", fn = function(a) return a:var() end, inputs = one(function() return x(3, 4) end) },
  { op = "var", fn = function(a) return a:var(0, { unbiased = false, keepdim = true }) end,
    inputs = one(function() return x(4, 3) end) },
  { op = "std", fn = function(a) return a:std({ 1, 2 }, { keepdim = true }) end, inputs = one(function() return x(2, 3, 5) end) },
  { op = "std", fn = function(a) return a:std(1) end, inputs = one(function() return x(3, 4) end) },
  { op = "std", fn = function(a) return a:std({ 0, 2 }, { unbiased = false }) end, inputs = one(function() return x(2, 3, 4) end) },
  { op = "norm", fn = function(a) return a:norm() end, inputs = one(function() return x(3, 4) end) },
  { op = "norm", fn = function(a) return a:norm(2, 1, true) end, inputs = one(function() return x(3, 4) end) },
  { op = "norm", fn = function(a) return a:norm(3, { 0, 1 }) end, inputs = one(function() return x(2, 3, 2) end) },
  { op = "norm", fn = function(a) return a:norm(1, 1) end, inputs = one(function() return distinct(3, 4) end) },
  { op = "norm", fn = function(a) return a:norm(math.huge, 0) end, inputs = one(function() return distinct(4, 3) end) },
  { op = "logsumexp", fn = function(a) return a:logsumexp(1) end, inputs = one(function() return x(3, 4) end) },
  { op = "logsumexp", fn = function(a) return a:logsumexp(0, true) end, inputs = one(function() return x(3, 4, 2) end) },
  { op = "max", fn = function(a) return a:max() end, inputs = one(function() return distinct(3, 4) end) },
  { op = "max", fn = function(a) return (a:max(1)) end, inputs = one(function() return distinct(2, 5, 3) end) },
  { op = "max", fn = function(a) return (a:max(-1, true)) end, inputs = one(function() return distinct(3, 4) end) },
  { op = "min", fn = function(a) return a:min() end, inputs = one(function() return distinct(3, 4) end) },
  { op = "min", fn = function(a) return (a:min(0)) end, inputs = one(function() return distinct(3, 4) end) },
  { op = "topk", fn = function(a) return (a:topk(2)) end, inputs = one(function() return distinct(3, 5) end) },
  { op = "topk", fn = function(a) return (a:topk(4, 1)) end, inputs = one(function() return distinct(2, 20, 3) end) },
  { op = "topk", fn = function(a) return (a:topk(3, 0, { largest = false })) end, inputs = one(function() return distinct(5, 2) end) },
  { op = "softmax", fn = function(a) return a:softmax(-1) end, inputs = one(function() return x(3, 4) end) },
  { op = "softmax", fn = function(a) return a:softmax(1) end, inputs = one(function() return x(2, 5, 3) end) },
  { op = "log_softmax", fn = function(a) return a:log_softmax(-1) end, inputs = one(function() return x(3, 4) end) },
  { op = "log_softmax", fn = function(a) return a:log_softmax(1) end, inputs = one(function() return x(2, 5, 3) end) },
  { op = "cumsum", fn = function(a) return a:cumsum(0) end, inputs = one(function() return x(4, 3) end) },
  { op = "cumsum", fn = function(a) return a:cumsum(-1) end, inputs = one(function() return x(2, 3, 5) end) },
}
