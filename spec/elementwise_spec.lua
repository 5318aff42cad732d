-- Elementwise ops against values computed with PyTorch 1.13 (float64 unless said otherwise):
-- broadcasting, dtype promotion, Lua numbers as operands, unary values, selection, gradients,
-- in-place updates and errors.
local function f64(v) return fsvc.tensor(v, { dtype = "float64" }) end
local function leaf(v) return fsvc.tensor(v, { dtype = "float64", requires_grad = true }) end

-- nested lists equal within tol
local function near(want, got, tol, path)
  tol, path = tol or 1e-12, path or "value"
  if type(want) == "table" then
    assert(type(got) == "table", path .. ": expected a list, got " .. tostring(got))
    assert(#want == #got, string.format("%s: length %d, expected %d", path, #got, #want))
    for i = 1, #want do near(want[i], got[i], tol, path .. "[" .. i .. "]") end
  else
    assert(math.abs(want - got) <= tol * math.max(1, math.abs(want)),
      string.format("%s: got %.17g, expected %.17g", path, got, want))
  end
end

local A = { { -1.5, 0.25, 2.0 }, { 3.0, -0.75, 0.5 } }
local B = { 0.5, -2.0, 1.5 }
local C = { { 2.0 }, { -0.5 } }
local X = { -3.0, -1.0, -0.1, 0.0, 0.2, 1.0, 2.5 }

describe("elementwise binary ops", function()
  it("broadcast like PyTorch", function()
    local a, b, c = f64(A), f64(B), f64(C)
    near({ { -1.0, -1.75, 3.5 }, { 3.5, -2.75, 2.0 } }, fsvc.add(a, b):tolist())
    near({ { 1.5, 4.0, 0.5 }, { -1.0, 1.5, -2.0 } }, fsvc.sub(c, b):tolist())
    near({ { -3.0, 0.5, 4.0 }, { -1.5, 0.375, -0.25 } }, fsvc.mul(a, c):tolist())
    near({ { -3.0, -0.125, 1.3333333333333333 }, { 6.0, 0.375, 0.3333333333333333 } }, fsvc.div(a, b):tolist())
    near({ { 1.224744871391589, 16.0, 2.8284271247461903 }, { 1.7320508075688772, 1.7777777777777777, 0.3535533905932738 } },
      fsvc.pow(fsvc.abs(a), b):tolist())
    near({ { 0.5, 0.25, 2.0 }, { 3.0, -0.75, 1.5 } }, fsvc.maximum(a, b):tolist())
    near({ { -1.5, 0.25, 2.0 }, { -0.5, -0.75, -0.5 } }, fsvc.minimum(a, c):tolist())
    assert.are.same({ 4, 2, 3 }, fsvc.add(fsvc.zeros(4, 1, 3), fsvc.zeros(2, 1)):size())
    assert.are.same({ 0, 3 }, fsvc.mul(fsvc.zeros(0, 3), fsvc.ones(3)):size())
  end)

  it("work on strided and expanded views", function()
    local a = f64(A)
    near({ { -3.0, 6.0 }, { 0.5, -1.5 }, { 4.0, 1.0 } }, fsvc.mul(a:transpose(0, 1), 2):tolist())
    near({ { 2, 2, 2 }, { -0.5, -0.5, -0.5 } }, fsvc.add(f64(C):expand(2, 3), 0):tolist())
  end)

  it("take Lua numbers on either side, in the tensor's dtype", function()
    local x = fsvc.tensor({ 1, 2, 3 }, { dtype = "float32" })
    assert.are.equal("float32", fsvc.add(x, 1).dtype)
    assert.are.equal("float32", fsvc.mul(0.5, x).dtype)
    near({ 1, 0, -1 }, fsvc.sub(2, x):tolist())
    near({ 6, 3, 2 }, fsvc.div(6, x):tolist())
    near({ 2, 4, 8 }, fsvc.pow(2, x):tolist())
    near({ 1, 4, 9 }, fsvc.pow(x, 2):tolist())
    local i = fsvc.tensor({ 7, -7, 9 })
    assert.are.equal("int64", fsvc.add(i, 2).dtype)
    assert.are.equal("float32", fsvc.mul(i, 0.5).dtype) -- torch: int * 0.5 is float32
    near({ 3.5, -3.5, 4.5 }, fsvc.mul(i, 0.5):tolist())
  end)

  it("promote dtypes as PyTorch does", function()
    local x32, x64 = fsvc.ones(3), fsvc.ones(3, { dtype = "float64" })
    assert.are.equal("float64", fsvc.add(x32, x64).dtype)
    -- a 0-d tensor does not promote a dimensioned one of the same category
    assert.are.equal("float32", fsvc.add(x32, fsvc.tensor(1.0, { dtype = "float64" })).dtype)
    local i, j = fsvc.tensor({ 7, -7, 9 }), fsvc.tensor({ 2, 2, 4 })
    assert.are.equal("float32", fsvc.div(i, j).dtype)
    near({ 3.5, -3.5, 2.25 }, fsvc.div(i, j):tolist())
    assert.are.equal("int64", fsvc.maximum(i, j).dtype)
    assert.are.equal("float32", fsvc.exp(i).dtype)
  end)

  it("compare without gradient, 0/1 in the promoted dtype", function()
    local a = leaf({ 1, 2, 3 })
    local lt = fsvc.lt(a, 2)
    assert.are.equal("float64", lt.dtype)
    assert.is_false(lt.requires_grad)
    assert.are.same({ 1, 0, 0 }, lt:tolist())
    assert.are.same({ 0, 1, 0 }, fsvc.eq(a, 2):tolist())
    assert.are.same({ 1, 0, 1 }, fsvc.ne(a, 2):tolist())
    assert.are.same({ 1, 1, 0 }, fsvc.le(a, 2):tolist())
    assert.are.same({ 0, 0, 1 }, fsvc.gt(a, 2):tolist())
    assert.are.same({ 0, 1, 1 }, fsvc.ge(a, 2):tolist())
    assert.are.same({ 0, 1 }, fsvc.gt(fsvc.tensor({ 1, 5 }), fsvc.tensor({ 3, 3 })):tolist())
  end)
end)

describe("elementwise unary ops", function()
  local want = {
    exp = { 0.049787068367863944, 0.36787944117144233, 0.9048374180359595, 1.0, 1.2214027581601699, 2.718281828459045, 12.182493960703473 },
    sin = { -0.1411200080598672, -0.8414709848078965, -0.09983341664682815, 0.0, 0.19866933079506122, 0.8414709848078965, 0.5984721441039564 },
    cos = { -0.9899924966004454, 0.5403023058681398, 0.9950041652780257, 1.0, 0.9800665778412416, 0.5403023058681398, -0.8011436155469337 },
    tanh = { -0.9950547536867305, -0.7615941559557649, -0.09966799462495582, 0.0, 0.197375320224904, 0.7615941559557649, 0.9866142981514303 },
    sigmoid = { 0.04742587317756678, 0.2689414213699951, 0.47502081252106, 0.5, 0.549833997312478, 0.7310585786300049, 0.9241418199787566 },
    relu = { 0.0, 0.0, 0.0, 0.0, 0.2, 1.0, 2.5 },
    gelu = { -0.00404969409489031, -0.15865525393145702, -0.0460172162722971, 0.0, 0.11585194188782061, 0.841344746068543, 2.4844758366855597 },
    abs = { 3.0, 1.0, 0.1, 0.0, 0.2, 1.0, 2.5 },
    neg = { 3.0, 1.0, 0.1, -0.0, -0.2, -1.0, -2.5 },
  }
  for name, values in pairs(want) do
    it(name .. " matches PyTorch in float64 and float32", function()
      near(values, fsvc[name](f64(X)):tolist())
      near(values, fsvc.tensor(X, { dtype = "float32" })[name](fsvc.tensor(X, { dtype = "float32" })):tolist(), 1e-6)
    end)
  end

  it("leaky_relu (default slope 0.01), clamp, log, sqrt", function()
    local x = f64(X)
    near({ -0.30000000000000004, -0.1, -0.010000000000000002, 0.0, 0.2, 1.0, 2.5 }, x:leaky_relu(0.1):tolist())
    near({ -0.03, -0.01, -0.001, 0.0, 0.2, 1.0, 2.5 }, x:leaky_relu():tolist())
    near({ -0.03, -0.01, -0.001, 0.0, 0.2, 1.0, 2.5 }, x:leaky_relu { negative_slope = 0.01 }:tolist())
    near({ -1.0, -1.0, -0.1, 0.0, 0.2, 1.0, 1.0 }, x:clamp(-1, 1):tolist())
    near({ 0, 0, 0, 0, 0.2, 1.0, 2.5 }, x:clamp { min = 0 }:tolist())
    near({ -3.0, -1.0, -0.1, 0.0, 0.2, 0.5, 0.5 }, x:clamp(nil, 0.5):tolist())
    near({ -3.0, -1.0, -0.1, 0.0, 0.2, 0.5, 0.5 }, fsvc.clamp(x, { max = 0.5 }):tolist())
    local p = f64({ 0.5, 1.0, 4.0, 9.0 })
    near({ -0.6931471805599453, 0.0, 1.3862943611198906, 2.1972245773362196 }, p:log():tolist())
    near({ 0.7071067811865476, 1.0, 2.0, 3.0 }, p:sqrt():tolist())
  end)
end)

describe("selection", function()
  it("where broadcasts condition, a and b; numbers allowed", function()
    local cond = fsvc.tensor({ { 1 }, { 0 } })
    local r = fsvc.where(cond, f64({ 1, 2, 3 }), -1)
    assert.are.equal("float64", r.dtype)
    assert.are.same({ { 1, 2, 3 }, { -1, -1, -1 } }, r:tolist())
    assert.are.same({ 5, 0 }, fsvc.where(fsvc.tensor({ 1, 0 }), 5, 0):tolist())
    assert.are.equal("int64", fsvc.where(fsvc.tensor({ 1, 0 }), 5, 0).dtype)
  end)

  it("masked_fill keeps the tensor's dtype", function()
    local x = fsvc.tensor({ 1, 2, 3 }, { dtype = "float32" })
    local r = x:masked_fill(fsvc.gt(x, 1.5), -math.huge)
    assert.are.equal("float32", r.dtype)
    assert.are.same({ 1, -math.huge, -math.huge }, r:tolist())
  end)
end)

describe("elementwise gradients match PyTorch", function()
  local W = { { 1.0, 2.0, 3.0 }, { 4.0, 5.0, 6.0 } }
  it("mul and div with broadcasting", function()
    local a, c = leaf(A), leaf(C)
    fsvc.mul(a, c):backward(f64(W))
    near({ { 2.0, 4.0, 6.0 }, { -2.0, -2.5, -3.0 } }, a.grad:tolist())
    near({ { 5.0 }, { 11.25 } }, c.grad:tolist())
    local a2, b = leaf(A), leaf(B)
    fsvc.div(a2, b):backward(f64(W))
    near({ { 2.0, -1.0, 2.0 }, { 8.0, -2.5, 4.0 } }, a2.grad:tolist())
    near({ -42.0, 0.8125, -4.0 }, b.grad:tolist())
  end)

  it("pow in base and exponent, and at a zero base", function()
    local pa, pb = leaf({ { 1.5, 0.25, 2.0 }, { 3.0, 0.75, 0.5 } }), leaf(B)
    fsvc.pow(pa, pb):backward(f64(W))
    near({ { 0.408248290463863, -256.0, 6.3639610306789285 }, { 1.1547005383792515, -23.703703703703702, 6.3639610306789285 } },
      pa.grad:tolist(), 1e-12)
    near({ 8.108000518854478, -46.918593533185664, 4.411161645608463 }, pb.grad:tolist(), 1e-12)
    -- torch: pow(0, 0) has zero base grad; exponent grad 0 where base == 0 and exponent >= 0
    local x, e = leaf({ 0, 0, 2 }), leaf({ 0, 2, 3 })
    fsvc.pow(x, e):backward(f64({ 1, 1, 1 }))
    near({ 0, 0, 12 }, x.grad:tolist())
    near({ 0, 0, 8 * math.log(2) }, e.grad:tolist())
  end)

  it("maximum and minimum split ties", function()
    local p, q = leaf({ 1, 2, 3 }), leaf({ 3, 2, 1 })
    fsvc.maximum(p, q):backward(f64({ 1, 1, 1 }))
    assert.are.same({ 0, 0.5, 1 }, p.grad:tolist())
    assert.are.same({ 1, 0.5, 0 }, q.grad:tolist())
  end)

  it("gelu, sigmoid and tanh", function()
    local want = {
      gelu = { -0.01194564720418392, -0.08331547058768635, 0.4204769079752698, 0.5, 0.6574682482341941, 1.0833154705876864, 1.037611085908145 },
      sigmoid = { 0.04517665973091214, 0.19661193324148185, 0.24937604019289197, 0.25, 0.24751657271185995, 0.19661193324148185, 0.07010371654510807 },
      tanh = { 0.009866037165440166, 0.41997434161402614, 0.9900662908474398, 1.0, 0.9610429829661166, 0.41997434161402614, 0.02659222668316057 },
    }
    for name, g in pairs(want) do
      local x = leaf(X)
      fsvc[name](x):backward(fsvc.ones(7, { dtype = "float64" }))
      near(g, x.grad:tolist())
    end
  end)

  it("where and masked_fill route the gradient", function()
    local a, b = leaf({ 1, 2, 3, 4 }), leaf({ { 5 }, { 6 } })
    fsvc.where(fsvc.tensor({ 1, 0, 1, 0 }), a, b):backward(f64({ { 1, 2, 3, 4 }, { 5, 6, 7, 8 } }))
    assert.are.same({ 6, 0, 10, 0 }, a.grad:tolist())
    assert.are.same({ { 6 }, { 14 } }, b.grad:tolist())
    local x = leaf({ 1, 2, 3, 4 })
    x:masked_fill(fsvc.tensor({ 1, 0, 1, 0 }), 0):backward(f64({ 1, 2, 3, 4 }))
    assert.are.same({ 0, 2, 0, 4 }, x.grad:tolist())
  end)

  it("a number operand gets no gradient, the tensor keeps its dtype", function()
    local x = fsvc.tensor({ 1, 2 }, { dtype = "float32", requires_grad = true })
    local y = fsvc.mul(3, x)
    assert.are.equal("float32", y.dtype)
    y:backward(fsvc.ones(2))
    assert.are.same({ 3, 3 }, x.grad:tolist())
  end)
end)

describe("in-place updates", function()
  it("add_ broadcasts and scales; mul_ scales; both return self", function()
    local x = fsvc.tensor({ { 1, 2 }, { 3, 4 } }, { dtype = "float32" })
    local r = x:add_(fsvc.tensor({ 1, 2 }, { dtype = "float64" }), 0.5)
    assert.are.equal(x, r)
    assert.are.same({ { 1.5, 3 }, { 3.5, 5 } }, x:tolist())
    x:add_(1)
    x:mul_(2)
    assert.are.same({ { 5, 8 }, { 9, 12 } }, x:tolist())
    x:transpose(0, 1):mul_(0.5) -- writes through a view
    assert.are.same({ { 2.5, 4 }, { 4.5, 6 } }, x:tolist())
  end)

  it("refuses a tensor that requires grad unless grad mode is off", function()
    local p = fsvc.zeros(2, { requires_grad = true })
    assert.has_error(function() p:add_(fsvc.ones(2)) end)
    assert.has_error(function() p:mul_(2) end)
    fsvc.no_grad(function() p:add_(fsvc.ones(2), -0.1) end)
    near({ -0.1, -0.1 }, p:tolist(), 1e-7)
  end)
end)

describe("elementwise errors", function()
  it("name the op and the shapes", function()
    local ok, err = pcall(fsvc.add, fsvc.zeros(2, 3), fsvc.zeros(4))
    assert.is_false(ok)
    assert.truthy(err:find("add", 1, true) and err:find("[2, 3]", 1, true) and err:find("[4]", 1, true))
    ok, err = pcall(fsvc.where, fsvc.ones(5), fsvc.zeros(2, 3), 0)
    assert.is_false(ok)
    assert.truthy(err:find("where", 1, true))
  end)
end)
