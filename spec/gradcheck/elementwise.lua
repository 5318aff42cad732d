-- Gradient checks of the elementwise ops: broadcasting in every direction, 0-d operands,
-- strided (transposed / expanded) inputs, and each op's options. Inputs are random float64;
-- ops with kinks (relu, abs, clamp, maximum, ...) are smooth almost surely at random points.
local function r(shape, opts)
  opts = opts or {}
  local t = fsvc.randn(shape, { dtype = "float64" })
  if opts.positive then t = fsvc.add(fsvc.abs(t), 0.5) end
  if opts.scale then t = fsvc.mul(t, opts.scale) end
  t.requires_grad = true
  return t
end
local function inputs(...)
  local specs = { ... }
  return function()
    local list = {}
    for i, s in ipairs(specs) do list[i] = r(s[1], s[2]) end
    return list
  end
end

local cases = {}
local function add(op, fn, make, opts) cases[#cases + 1] = { op = op, fn = fn, inputs = make, opts = opts } end

-- binary ops: same shape, broadcasting both ways, a 0-d operand, a Lua number, strided inputs
local binary = {
  add = { {} , {} }, sub = { {}, {} }, mul = { {}, {} },
  div = { {}, { positive = true } },
  pow = { { positive = true }, {} },
  maximum = { {}, {} }, minimum = { {}, {} },
}
for _, op in ipairs({ "add", "sub", "mul", "div", "pow", "maximum", "minimum" }) do
  local oa, ob = binary[op][1], binary[op][2]
  local f = function(a, b) return fsvc[op](a, b) end
  add(op, f, inputs({ { 3, 4 }, oa }, { { 3, 4 }, ob }))
  add(op, f, inputs({ { 2, 3, 4 }, oa }, { { 3, 1 }, ob }))         -- b broadcast
  add(op, f, inputs({ { 4, 1, 3 }, oa }, { { 2, 3 }, ob }))         -- both broadcast
  add(op, f, inputs({ {}, oa }, { { 2, 3 }, ob }))                  -- 0-d a
  add(op, f, inputs({ { 3, 2 }, oa }, { {}, ob }))                  -- 0-d b
  add(op, function(a, b) return fsvc[op](a:transpose(0, 1), b) end, -- strided a
      inputs({ { 4, 3 }, oa }, { { 3, 4 }, ob }))
  add(op, function(a, b) return fsvc[op](a:expand(3, 4), b) end,    -- expanded a (stride 0)
      inputs({ { 1, 4 }, oa }, { { 3, 4 }, ob }))
end
-- a Lua number on either side
add("add", function(a) return fsvc.add(2.5, a) end, inputs({ { 5 } }))
add("sub", function(a) return fsvc.sub(1, a) end, inputs({ { 5 } }))
add("mul", function(a) return fsvc.mul(a, -3) end, inputs({ { 5 } }))
add("div", function(a) return fsvc.div(1, a) end, inputs({ { 5 }, { positive = true } }))
add("pow", function(a) return fsvc.pow(a, 3) end, inputs({ { 5 } }))
add("pow", function(a) return fsvc.pow(a, 0.5) end, inputs({ { 5 }, { positive = true } }))
add("pow", function(b) return fsvc.pow(2, b) end, inputs({ { 5 } }))
-- only the exponent requires grad
add("pow", function(a, b) return fsvc.pow(a, b) end, function()
  local a = fsvc.add(fsvc.rand({ 4 }, { dtype = "float64" }), 0.5) -- no grad wanted for the base
  return { a, r({ 4 }) }
end)
add("maximum", function(a) return fsvc.maximum(a, 0.1) end, inputs({ { 6 } }))
add("minimum", function(a) return fsvc.minimum(-0.1, a) end, inputs({ { 6 } }))
-- the same tensor on both sides
add("mul", function(a) return fsvc.mul(a, a) end, inputs({ { 3, 3 } }))
add("div", function(a) return fsvc.div(a, a) end, inputs({ { 3 }, { positive = true } }))

-- unary ops on a [3, 4] and on a strided view
local unary = {
  neg = {}, abs = {}, exp = {}, log = { positive = true }, sqrt = { positive = true },
  sin = {}, cos = {}, tanh = {}, sigmoid = {}, relu = {}, gelu = { scale = 2 },
}
for _, op in ipairs({ "neg", "abs", "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "gelu" }) do
  add(op, function(x) return fsvc[op](x) end, inputs({ { 3, 4 }, unary[op] }))
  add(op, function(x) return fsvc[op](x:transpose(0, 1)) end, inputs({ { 2, 3 }, unary[op] }))
  add(op, function(x) return fsvc[op](x) end, inputs({ {}, unary[op] })) -- 0-d
end
add("leaky_relu", function(x) return fsvc.leaky_relu(x) end, inputs({ { 3, 4 } }))
add("leaky_relu", function(x) return fsvc.leaky_relu(x, 0.1) end, inputs({ { 2, 5 } }))
add("leaky_relu", function(x) return x:transpose(0, 1):leaky_relu(0.3) end, inputs({ { 2, 5 } }))
add("clamp", function(x) return fsvc.clamp(x, -0.5, 0.5) end, inputs({ { 4, 5 } }))
add("clamp", function(x) return x:clamp { min = 0 } end, inputs({ { 4, 5 } }))
add("clamp", function(x) return x:clamp(nil, 0.3) end, inputs({ { 4, 5 } }))

-- selection
add("where", function(a, b) return fsvc.where(fsvc.gt(a, b), a, b) end, inputs({ { 3, 4 } }, { { 3, 4 } }))
add("where", function(a, b)                       -- condition, a and b all broadcast
  local cond = fsvc.tensor({ 1, 0, 1, 0 })
  return fsvc.where(cond, a, b)
end, inputs({ { 3, 1 } }, { { 2, 1, 1 } }))
add("where", function(a) return fsvc.where(fsvc.gt(a, 0), a, 0) end, inputs({ { 6 } }))
add("where", function(b) return fsvc.where(fsvc.gt(b, 0), 1.5, b) end, inputs({ { 6 } }))
add("masked_fill", function(a) return a:masked_fill(fsvc.lt(a, 0), 2) end, inputs({ { 3, 4 } }))
add("masked_fill", function(a)                    -- mask broadcast over a
  return a:masked_fill(fsvc.tensor({ 0, 1, 1, 0 }), -1)
end, inputs({ { 3, 4 } }))
add("masked_fill", function(a)                    -- a broadcast by the mask
  return a:masked_fill(fsvc.tensor({ { 0, 1, 1, 0 }, { 1, 0, 0, 0 } }), 0)
end, inputs({ { 4 } }))

return cases
