-- Gradient checks of autograd machinery itself: custom Lua functions.
local Cube = fsvc.Function {
  name = "cube",
  forward = function(ctx, x)
    ctx:save_for_backward(x)
    return x * x * x
  end,
  backward = function(ctx, grad)
    local x = ctx.saved[1]
    return grad * x * x * 3
  end,
}

return {
  { op = "custom", fn = function(x) return Cube(x) end,
    inputs = function() return { fsvc.randn({ 3, 4 }, { dtype = "float64", requires_grad = true }) } end },
  { op = "custom", fn = function(x, y) return Cube(x) * y end,
    inputs = function()
      return { fsvc.randn({ 5 }, { dtype = "float64", requires_grad = true }),
               fsvc.randn({ 5 }, { dtype = "float64", requires_grad = true }) }
    end },
}
