describe("autograd", function()
  it("accumulates gradients into leaves and computes chain rule", function()
    local x = fsvc.tensor({ 1, 2, 3 }, { dtype = "float64", requires_grad = true })
    local y = (x * x):sum()
    y:backward()
    assert.are.same({ 2, 4, 6 }, x.grad:tolist())
    local z = (x * 3):sum()
    z:backward()
    assert.are.same({ 5, 7, 9 }, x.grad:tolist()) -- accumulated
    x.grad = nil
    assert.is_nil(x.grad)
  end)

  it("takes an explicit gradient for non-scalar outputs", function()
    local x = fsvc.tensor({ 1, 2 }, { dtype = "float64", requires_grad = true })
    local y = x * 2
    assert.has_error(function() y:backward() end)
    y:backward(fsvc.tensor({ 1, 10 }, { dtype = "float64" }))
    assert.are.same({ 2, 20 }, x.grad:tolist())
  end)

  it("frees the graph after backward unless retain_graph", function()
    local x = fsvc.tensor({ 1, 2 }, { dtype = "float64", requires_grad = true })
    local y = (x * x):sum()
    y:backward({ retain_graph = true })
    y:backward()
    assert.are.same({ 4, 8 }, x.grad:tolist())
    local ok, err = pcall(function() y:backward() end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("second time"))
  end)

  it("records nothing under no_grad and after detach", function()
    local x = fsvc.ones(3, { requires_grad = true })
    local y = fsvc.no_grad(function() return x * 2 end)
    assert.is_false(y.requires_grad)
    assert.is_nil(y.grad_fn)
    assert.is_true(fsvc.is_grad_enabled())
    local d = (x * 2):detach()
    assert.is_false(d.requires_grad)
    assert.are.equal("mul", (x * 2).grad_fn)
  end)

  it("restores grad mode when no_grad's function raises", function()
    assert.has_error(function() fsvc.no_grad(function() error("boom") end) end)
    assert.is_true(fsvc.is_grad_enabled())
  end)

  it("runs custom functions with a Lua backward", function()
    local Square = fsvc.Function {
      name = "square",
      forward = function(ctx, x) ctx:save_for_backward(x); return x * x end,
      backward = function(ctx, grad) return grad * ctx.saved[1] * 2 end,
    }
    local x = fsvc.tensor({ 3, -1 }, { dtype = "float64", requires_grad = true })
    local y = Square(x):sum()
    y:backward()
    assert.are.same({ 6, -2 }, x.grad:tolist())
  end)

  it("reports an error raised in a custom backward", function()
    local Bad = fsvc.Function {
      name = "bad",
      forward = function(ctx, x) return x * 1 end,
      backward = function() error("no backward here") end,
    }
    local x = fsvc.ones(2, { requires_grad = true })
    local ok, err = pcall(function() Bad(x):sum():backward() end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("no backward here"))
  end)

  it("handles a long chain without overflowing the stack", function()
    local x = fsvc.ones(4, { dtype = "float64", requires_grad = true })
    local y = x
    for _ = 1, 20000 do y = y * 1 end
    y:sum():backward()
    assert.are.same({ 1, 1, 1, 1 }, x.grad:tolist())
  end)

  it("shares a node's gradient among several consumers (diamond)", function()
    local x = fsvc.tensor({ 2 }, { dtype = "float64", requires_grad = true })
    local a = x * 3
    local y = (a * a + a):sum() -- d/dx = (2a + 1) * 3 = 39
    y:backward()
    assert.are.same({ 39 }, x.grad:tolist())
  end)
end)
