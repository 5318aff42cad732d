-- Wrong arguments to the elementwise ops; each must raise a Lua error, never crash.
local function freed()
  local t = fsvc.zeros(3)
  t:free()
  return t
end
local x = function() return fsvc.randn(2, 3) end

return {
  { name = "add: shapes do not broadcast", fn = function() return fsvc.add(x(), fsvc.zeros(4)) end },
  { name = "mul: shapes do not broadcast (3-d)", fn = function() return fsvc.mul(fsvc.zeros(2, 3, 4), fsvc.zeros(3, 3)) end },
  { name = "add: two numbers", fn = function() return fsvc.add(1, 2) end },
  { name = "add: a string", fn = function() return fsvc.add(x(), "1") end },
  { name = "sub: a table", fn = function() return fsvc.sub({ 1, 2 }, x()) end },
  { name = "div: nil operand", fn = function() return fsvc.div(x()) end },
  { name = "pow: freed tensor", fn = function() return fsvc.pow(freed(), 2) end },
  { name = "eq: freed second operand", fn = function() return fsvc.eq(fsvc.zeros(3), freed()) end },
  { name = "maximum: float16 and a freed tensor", fn = function() return fsvc.maximum(fsvc.zeros(3, { dtype = "float16" }), freed()) end },
  { name = "exp: not a tensor", fn = function() return fsvc.exp(3) end },
  { name = "relu: freed", fn = function() return fsvc.relu(freed()) end },
  { name = "add: float16 and bfloat16 that do not broadcast", fn = function()
      return fsvc.zeros(2, { dtype = "float16" }) + fsvc.zeros(3, { dtype = "bfloat16" })
    end },
  { name = "linear: float16 input, float32 weight outside autocast", fn = function()
      return fsvc.zeros(2, 3, { dtype = "float16" }):linear(fsvc.zeros(4, 3))
    end },
  { name = "leaky_relu: slope a string", fn = function() return x():leaky_relu("a") end },
  { name = "leaky_relu: NaN slope", fn = function() return x():leaky_relu(0 / 0) end },
  { name = "clamp: NaN bound", fn = function() return x():clamp(0 / 0, 1) end },
  { name = "clamp: bound a string", fn = function() return x():clamp("0") end },
  { name = "clamp: option not a number", fn = function() return x():clamp { min = "a" } end },
  { name = "where: condition a number", fn = function() return fsvc.where(1, x(), x()) end },
  { name = "where: shapes do not broadcast", fn = function() return fsvc.where(fsvc.ones(4), x(), 0) end },
  { name = "where: value a string", fn = function() return fsvc.where(fsvc.ones(3), x(), "b") end },
  { name = "masked_fill: mask does not broadcast", fn = function() return x():masked_fill(fsvc.ones(2), 0) end },
  { name = "masked_fill: value missing", fn = function() return x():masked_fill(fsvc.ones(3)) end },
  { name = "masked_fill: value a tensor of many", fn = function() return x():masked_fill(fsvc.ones(3), fsvc.ones(2)) end },
  { name = "add_: other larger than self", fn = function() return fsvc.zeros(3):add_(fsvc.zeros(2, 3)) end },
  { name = "add_: on a leaf requiring grad", fn = function()
      local p = fsvc.zeros(3, { requires_grad = true })
      return p:add_(fsvc.ones(3))
    end },
  { name = "mul_: on a leaf requiring grad", fn = function()
      return fsvc.zeros(3, { requires_grad = true }):mul_(2)
    end },
  { name = "mul_: on an expanded tensor", fn = function() return fsvc.zeros(1, 3):expand(4, 3):mul_(2) end },
  { name = "mul_: factor a string", fn = function() return fsvc.zeros(3):mul_("2") end },
  { name = "add_: alpha a string", fn = function() return fsvc.zeros(3):add_(fsvc.ones(3), "x") end },
}
