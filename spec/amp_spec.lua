-- Mixed precision: fsvc.autocast (state, scoping, which ops it casts, accuracy and gradients of
-- the cast ops against float32), float16/bfloat16 tensors on the CPU (computed through float32),
-- mixed-dtype arithmetic, the fused unscale pass, and fsvc.amp.GradScaler (PyTorch's semantics:
-- overflow skips the step and backs off, growth after growth_interval clean steps, misuse errors,
-- state dicts, a small float16 training loop). The device checks run on the CPU and, when one is
-- available (a GPU, or the FSVC_CUDA=EMULATE build), on CUDA.
local nn, optim, amp = fsvc.nn, fsvc.optim, fsvc.amp

local devices = { "cpu" }
if fsvc.cuda.is_available() then devices[#devices + 1] = "cuda" end
local low_dtypes = { "float16", "bfloat16" }

-- normwise relative difference: max |a - b| / max |b| (elementwise ratios blow up near zero)
local function rel(a, b)
  local ref = b:double():abs():max():item()
  return fsvc.max_abs_diff(a:cpu(), b:cpu()) / (ref > 0 and ref or 1)
end

local function leaf(shape, dev, scale)
  return (fsvc.randn(shape) * (scale or 1)):to(dev):requires_grad_(true)
end

local function error_of(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

-- the autocast-eligible ops, each on float32 inputs built for one device
local eligible = {
  matmul = function(dev)
    local a, b = leaf({ 3, 5, 8 }, dev), leaf({ 8, 6 }, dev)
    return function() return a:matmul(b) end, { a, b }
  end,
  bmm = function(dev)
    local a, b = leaf({ 2, 5, 8 }, dev), leaf({ 2, 8, 3 }, dev)
    return function() return a:bmm(b) end, { a, b }
  end,
  linear = function(dev)
    local x, w, b = leaf({ 4, 7, 16 }, dev), leaf({ 9, 16 }, dev, 0.25), leaf({ 9 }, dev)
    return function() return x:linear(w, b) end, { x, w, b }
  end,
  conv1d = function(dev)
    local x, w, b = leaf({ 2, 6, 40 }, dev), leaf({ 8, 3, 3 }, dev, 0.3), leaf({ 8 }, dev)
    return function() return x:conv1d(w, b, { padding = 2, dilation = 2, groups = 2 }) end, { x, w, b }
  end,
  conv_transpose1d = function(dev)
    local x, w, b = leaf({ 2, 6, 20 }, dev), leaf({ 6, 4, 4 }, dev, 0.3), leaf({ 4 }, dev)
    return function() return x:conv_transpose1d(w, b, { stride = 2, padding = 1 }) end, { x, w, b }
  end,
}

local eligible_names = {}
for name in pairs(eligible) do eligible_names[#eligible_names + 1] = name end
table.sort(eligible_names)

describe("autocast state", function()
  it("is off by default, and fsvc.autocast scopes it and returns fn's results", function()
    assert.is_false(fsvc.autocast_enabled())
    local a, b, c = fsvc.autocast("bfloat16", function(x, y)
      return fsvc.autocast_enabled(), fsvc.autocast_dtype(), x + y
    end, 1, 2)
    assert.are.same({ true, "bfloat16", 3 }, { a, b, c })
    assert.is_false(fsvc.autocast_enabled())
    assert.are.equal("float16", fsvc.autocast(nil, fsvc.autocast_dtype))
    assert.are.equal("float16", fsvc.autocast({ dtype = "half" }, fsvc.autocast_dtype))
  end)

  it("nests, and enabled = false turns it off inside", function()
    fsvc.autocast("float16", function()
      fsvc.autocast({ dtype = "bfloat16" }, function()
        assert.are.equal("bfloat16", fsvc.autocast_dtype())
        fsvc.autocast({ enabled = false }, function()
          assert.is_false(fsvc.autocast_enabled())
          assert.are.equal("bfloat16", fsvc.autocast_dtype())
        end)
        assert.is_true(fsvc.autocast_enabled())
      end)
      assert.is_true(fsvc.autocast_enabled())
      assert.are.equal("float16", fsvc.autocast_dtype())
    end)
    assert.is_false(fsvc.autocast_enabled())
  end)

  it("restores the previous state when fn raises", function()
    local err = error_of(fsvc.autocast, "bfloat16", function()
      fsvc.autocast("float16", function() error("inner failure") end)
    end)
    assert.truthy(err:find("inner failure", 1, true), err)
    assert.is_false(fsvc.autocast_enabled())
    assert.are.equal("float16", fsvc.autocast_dtype())
    -- and a failing op inside: the op's error, then the state back
    err = error_of(fsvc.autocast, "float16", function() return fsvc.randn(2, 3):matmul(fsvc.randn(4, 5)) end)
    assert.truthy(err:find("matmul", 1, true), err)
    assert.is_false(fsvc.autocast_enabled())
  end)

  it("set_autocast returns the previous state; bad arguments are errors naming the function", function()
    local e, d = fsvc.set_autocast(true, "bfloat16")
    assert.are.same({ false, "float16" }, { e, d })
    e, d = fsvc.set_autocast(false) -- dtype kept
    assert.are.same({ true, "bfloat16" }, { e, d })
    assert.are.equal("bfloat16", fsvc.autocast_dtype())
    fsvc.set_autocast(false, "float16")
    assert.truthy(error_of(fsvc.set_autocast, true, "float32"):find("set_autocast: dtype must be float16 or bfloat16", 1, true))
    assert.truthy(error_of(fsvc.autocast, "float64", function() end):find("autocast: dtype must be float16 or bfloat16, got float64", 1, true))
    assert.truthy(error_of(fsvc.autocast, { dtyp = "float16" }, function() end):find("autocast: unknown option 'dtyp'", 1, true))
    assert.truthy(error_of(fsvc.autocast, "float16", 42):find("autocast: argument #2 must be a function", 1, true))
    assert.truthy(error_of(fsvc.autocast, 5, function() end):find("autocast: expected a dtype string", 1, true))
    assert.is_false(fsvc.autocast_enabled())
  end)

  it("is off inside backward (backward ops follow the forward's dtypes)", function()
    local w = leaf({ 4, 4 }, "cpu")
    local seen
    local Probe = fsvc.Function { name = "probe",
      forward = function(_, x) return x * 1 end,
      backward = function(_, g) seen = fsvc.autocast_enabled(); return g end }
    fsvc.autocast("float16", function() Probe(w):sum():backward() end)
    assert.is_false(seen)
    assert.is_true(fsvc.autocast_enabled() == false)
  end)
end)

for _, dev in ipairs(devices) do
  describe("autocast on " .. dev, function()
    for di, dt in ipairs(low_dtypes) do
      for ni, name in ipairs(eligible_names) do
        local make = eligible[name]
        it(name .. " computes in " .. dt .. " and matches float32 within 1e-2", function()
          -- seeded: the data must not depend on which specs ran before (a bfloat16 bias gradient
          -- can come near the bound)
          fsvc.manual_seed(100 * di + ni)
          local f, inputs = make(dev)
          local y = fsvc.autocast(dt, f)
          assert.are.equal(dt, y.dtype)
          assert.are.equal(dev == "cpu" and "cpu" or "cuda:0", y.device)
          local ref = f()
          assert.are.equal("float32", ref.dtype)
          local r = rel(y, ref)
          assert.is_true(r < 1e-2, name .. " " .. dt .. " relative error " .. r)
          -- gradients reach the float32 leaves as float32 and match the float32 ones
          local gy = fsvc.randn(ref:size()):to(dev)
          ref:backward(gy)
          local want = {}
          for i, t in ipairs(inputs) do want[i] = t.grad; t.grad = nil end
          y:backward(gy)
          for i, t in ipairs(inputs) do
            assert.are.equal("float32", t.grad.dtype)
            local gr = rel(t.grad, want[i])
            assert.is_true(gr < 1e-2, name .. " " .. dt .. " gradient " .. i .. " relative error " .. gr)
          end
        end)
      end
    end

    it("leaves other ops in the dtype they get, and float64 alone", function()
      local x = fsvc.randn(3, 4):to(dev)
      local w = fsvc.randn(5, 4):to(dev)
      fsvc.autocast("float16", function()
        assert.are.equal("float32", (x + 1).dtype)
        assert.are.equal("float32", x:tanh().dtype)
        assert.are.equal("float32", x:sum().dtype)
        assert.are.equal("float32", x:softmax(-1).dtype)
        assert.are.equal("float32", x:leaky_relu(0.1).dtype)
        local y = x:linear(w)
        assert.are.equal("float16", y.dtype)
        assert.are.equal("float16", y:leaky_relu(0.1).dtype) -- runs in what it gets
        assert.are.equal("float32", (y + x:linear(w):float()).dtype) -- promotes to the wider dtype
        assert.are.equal("float64", x:double():matmul(w:double():t()).dtype)
      end)
    end)

    it("pools, interpolates and reduces a 16-bit conv output, with gradients", function()
      local x = leaf({ 2, 4, 24 }, dev)
      local w = leaf({ 6, 4, 3 }, dev, 0.3)
      local function f()
        local y = x:conv1d(w, nil, { padding = 1 })
        local p = y:avg_pool1d(2):interpolate { size = 30, mode = "linear" }
        local m = y:max_pool1d(3, { stride = 3 })
        return p:softmax(-1), m:cumsum(-1), y
      end
      local p, m, y = fsvc.autocast("float16", f)
      assert.are.same({ "float16", "float16", "float16" }, { p.dtype, m.dtype, y.dtype })
      local p32, m32 = f()
      assert.is_true(rel(p, p32) < 1e-2 and rel(m, m32) < 1e-2)
      ;(p:float():sum() + m:float():sum()):backward()
      assert.are.equal("float32", w.grad.dtype)
    end)

    it("casts 16-bit arguments of the other kind too (bfloat16 under float16)", function()
      local a, b = fsvc.randn(3, 4):bfloat16():to(dev), fsvc.randn(4, 2):to(dev)
      local y = fsvc.autocast("float16", function() return a:matmul(b) end)
      assert.are.equal("float16", y.dtype)
    end)

    it("trains an nn.Linear + nn.Conv1d stack: float32 weights, 16-bit activations", function()
      fsvc.manual_seed(3)
      local net = nn.Sequential(nn.Conv1d(4, 8, 3, { padding = 1 }), nn.LeakyReLU(0.1), nn.Conv1d(8, 4, 1))
      if dev ~= "cpu" then net:to(dev) end
      local x = fsvc.randn(2, 4, 16):to(dev)
      local y = fsvc.autocast("float16", function() return net(x) end)
      assert.are.equal("float16", y.dtype)
      y:float():pow(2):mean():backward()
      for _, p in ipairs(net:parameters()) do
        assert.are.equal("float32", p.dtype)
        assert.are.equal("float32", p.grad.dtype)
      end
    end)
  end)
end

-- The weight-cast cache (PyTorch's autocast cache): inside the outermost fsvc.autocast region a
-- float32 leaf that requires grad is cast to a dtype once; every use gets its own "to" node.
local function live_bytes(dev)
  collectgarbage()
  collectgarbage()
  return dev == "cpu" and fsvc.memory_allocated() or fsvc.cuda.memory_allocated()
end

-- counters since the last reset_autocast_stats()
local function stats() return fsvc.autocast_stats() end

for _, dev in ipairs(devices) do
  describe("the autocast weight-cast cache on " .. dev, function()
    before_each(function() fsvc.reset_autocast_stats() end)

    it("casts a weight used twice in a region once (x is cast at each use)", function()
      local w, b = leaf({ 6, 8 }, dev), leaf({ 6 }, dev)
      local x1, x2 = fsvc.randn(3, 8):to(dev), fsvc.randn(3, 8):to(dev)
      local inside
      local y1, y2 = fsvc.autocast("float16", function()
        local a, c = x1:linear(w, b), x2:linear(w, b)
        inside = stats()
        return a, c
      end)
      -- x1, w, b, x2: four conversions; the second linear found w and b cached
      assert.are.same({ casts = 4, cache_hits = 2, cached = 2, depth = 1 }, inside)
      assert.are.same({ casts = 4, cache_hits = 2, cached = 0, depth = 0 }, stats())
      assert.are.equal("float16", y1.dtype)
      assert.are.equal("float16", y2.dtype)
      assert.are.equal(0, fsvc.max_abs_diff(y1:cpu(), x1:half():linear(w:half(), b:half()):cpu()))
    end)

    it("gives the gradients of the uncached path exactly (cache_enabled = false, manual casts)", function()
      fsvc.manual_seed(21)
      local lin = nn.Linear(12, 12)
      if dev ~= "cpu" then lin:to(dev) end
      local x = fsvc.randn(5, 12):to(dev)
      local gy = fsvc.randn(5, 12):to(dev)
      -- the weight is used three times: its gradient is the sum of three float16 products
      local function loss_of(opts)
        return fsvc.autocast(opts, function() return lin(lin(lin(x))) end):float()
      end
      local function grads(f)
        lin:zero_grad(true)
        fsvc.reset_autocast_stats()
        f():backward(gy)
        return lin.weight.grad:clone(), lin.bias.grad:clone(), stats()
      end
      local gw, gb, s = grads(function() return loss_of("float16") end)
      assert.are.same({ 3, 4 }, { s.casts, s.cache_hits }) -- x, weight, bias; then 2 x 2 hits
      local gw0, gb0, s0 = grads(function() return loss_of({ dtype = "float16", cache_enabled = false }) end)
      assert.are.same({ 7, 0 }, { s0.casts, s0.cache_hits }) -- x, then weight and bias at each use
      local wh, bh
      local gw1, gb1 = grads(function()
        return fsvc.autocast({ enabled = false }, function()
          local h = x:half()
          for _ = 1, 3 do
            wh, bh = lin.weight:half(), lin.bias:half()
            h = h:linear(wh, bh)
          end
          return h:float()
        end)
      end)
      assert.are.equal("float32", gw.dtype)
      assert.are.equal(0, fsvc.max_abs_diff(gw:cpu(), gw0:cpu()))
      assert.are.equal(0, fsvc.max_abs_diff(gb:cpu(), gb0:cpu()))
      assert.are.equal(0, fsvc.max_abs_diff(gw:cpu(), gw1:cpu()))
      assert.are.equal(0, fsvc.max_abs_diff(gb:cpu(), gb1:cpu()))
      -- a gradient accumulated over two backward passes, as without the cache
      lin:zero_grad(true)
      loss_of("float16"):backward(gy)
      loss_of("float16"):backward(gy)
      assert.is_true(fsvc.max_abs_diff(lin.weight.grad:cpu(), (gw * 2):cpu()) <= 1e-6 * gw:abs():max():item())
    end)

    it("serves a cached weight with its own graph node per use (a first use under no_grad too)", function()
      local w = leaf({ 4, 4 }, dev)
      local x = fsvc.randn(2, 4):to(dev)
      local y = fsvc.autocast("float16", function()
        local first = fsvc.no_grad(function() return x:matmul(w) end)
        assert.is_nil(first.grad_fn)
        return x:matmul(w) -- cached, and still differentiable
      end)
      assert.are.same({ 1, 3 }, { stats().cache_hits, stats().casts }) -- x twice, w once
      y:float():sum():backward()
      assert.are.equal("float32", w.grad.dtype)
      local ref = x:t():matmul(fsvc.ones(2, 4):to(dev))
      assert.is_true(rel(w.grad, ref) < 1e-2)
    end)

    it("does not cache activations, non-leaf weights, float64 or plain set_autocast", function()
      local w = leaf({ 4, 4 }, dev)
      local x = fsvc.randn(3, 4):to(dev)
      fsvc.autocast("float16", function()
        local wn = w * 1 -- computed from a parameter (as weight_norm's weight): has a grad_fn
        x:matmul(wn); x:matmul(wn)
        local d = leaf({ 4, 4 }, dev):double()
        x:double():matmul(d)
      end)
      assert.are.same({ 4, 0 }, { stats().casts, stats().cache_hits }) -- x and wn, twice each
      -- the low-level toggle opens no region: nothing is cached, nothing to clear
      fsvc.reset_autocast_stats()
      fsvc.set_autocast(true, "float16")
      local ok, err = pcall(function() x:matmul(w); x:matmul(w) end)
      fsvc.set_autocast(false)
      assert.is_true(ok, err)
      assert.are.same({ casts = 4, cache_hits = 0, cached = 0, depth = 0 }, stats())
    end)

    it("is empty after the region, after an error inside it, and after coroutine.close", function()
      local w = leaf({ 256, 256 }, dev)
      local x = fsvc.randn(2, 256):to(dev)
      local base = live_bytes(dev)
      fsvc.autocast("bfloat16", function() x:matmul(w); x:matmul(w) end)
      assert.are.same({ cached = 0, depth = 0 }, { cached = stats().cached, depth = stats().depth })
      assert.are.equal(base, live_bytes(dev)) -- the cached bfloat16 copy is released
      local err = error_of(fsvc.autocast, "float16", function()
        fsvc.autocast("float16", function()
          x:matmul(w)
          assert.are.equal(1, stats().cached)
          error("failure inside the region")
        end)
      end)
      assert.truthy(err:find("failure inside the region", 1, true), err)
      assert.are.same({ cached = 0, depth = 0 }, { cached = stats().cached, depth = stats().depth })
      assert.is_false(fsvc.autocast_enabled())
      assert.are.equal(base, live_bytes(dev))
      -- a coroutine suspended inside a region and then closed ends the region too
      local co = coroutine.create(function()
        fsvc.autocast("float16", function() x:matmul(w); coroutine.yield() end)
      end)
      assert.is_true(coroutine.resume(co))
      assert.are.same({ 1, 1 }, { stats().cached, stats().depth })
      assert.is_true(coroutine.close(co))
      assert.are.same({ 0, 0 }, { stats().cached, stats().depth })
      assert.is_false(fsvc.autocast_enabled())
      assert.are.equal(base, live_bytes(dev))
    end)

    it("is shared by nested regions and kept until the outermost one ends", function()
      local w = leaf({ 4, 4 }, dev)
      local x = fsvc.randn(3, 4):to(dev)
      fsvc.autocast("float16", function()
        x:matmul(w)
        fsvc.autocast("float16", function()
          x:matmul(w) -- the outer region's cast
          assert.are.same({ 1, 1, 2 }, { stats().cache_hits, stats().cached, stats().depth })
          fsvc.autocast("bfloat16", function() x:matmul(w) end) -- another dtype: a second entry
          assert.are.equal(2, stats().cached)
          fsvc.autocast({ dtype = "float16", cache_enabled = false }, function() x:matmul(w) end)
          assert.are.equal(1, stats().cache_hits) -- not looked up with the cache disabled
        end)
        assert.are.same({ 2, 1 }, { stats().cached, stats().depth })
        x:matmul(w)
        assert.are.equal(2, stats().cache_hits)
      end)
      -- x: 5 times; w: float16 once, bfloat16 once, once uncached
      assert.are.same({ casts = 8, cache_hits = 2, cached = 0, depth = 0 }, stats())
    end)

    it("is cleared by an optimiser step, so weights changed inside a region are cast again", function()
      fsvc.manual_seed(22)
      local lin = nn.Linear(6, 3)
      if dev ~= "cpu" then lin:to(dev) end
      local opt = optim.SGD(lin:parameters(), { lr = 0.5 })
      local x = fsvc.randn(4, 6):to(dev)
      local after
      fsvc.autocast("float16", function()
        lin(x):float():sum():backward()
        assert.are.equal(2, stats().cached)
        opt:step()
        assert.are.equal(0, stats().cached)
        after = lin(x)
      end)
      local want = x:linear(lin.weight, lin.bias) -- the stepped weights
      assert.is_true(rel(after, want) < 1e-2)
      assert.are.equal(0, fsvc.max_abs_diff(after:cpu(),
        fsvc.autocast({ dtype = "float16", cache_enabled = false }, function() return lin(x) end):cpu()))
      -- fsvc.clear_autocast_cache() after other in-place writes
      fsvc.autocast("float16", function()
        lin(x)
        fsvc.clear_autocast_cache()
        assert.are.equal(0, stats().cached)
        lin(x)
        assert.are.equal(2, stats().cached)
      end)
    end)
  end)
end

describe("float16 and bfloat16 tensors on the CPU", function()
  -- each op on a 16-bit tensor equals the float32 op on the same values, rounded: the CPU
  -- computes 16-bit through the float32 kernels
  local ops = {
    add = function(x) return x + x * 0.5 end,
    mul = function(x) return x * x end,
    sub = function(x) return x - 1.25 end,
    div = function(x) return x / 3 end,
    pow = function(x) return x:abs() ^ 1.5 end,
    abs = function(x) return x:abs() end,
    exp = function(x) return x:exp() end,
    log = function(x) return x:abs():log() end,
    tanh = function(x) return x:tanh() end,
    leaky_relu = function(x) return x:leaky_relu(0.1) end,
    sum = function(x) return x:sum(1) end,
    mean = function(x) return x:mean() end,
    softmax = function(x) return x:softmax(-1) end,
    max = function(x) return x:max(1) end,
    where = function(x) return fsvc.where(x:gt(0), x, x * 0.25) end,
    pad = function(x) return x:pad({ 1, 2 }) end,
    cat = function(x) return fsvc.cat({ x, x }, 0) end,
  }
  for _, dt in ipairs(low_dtypes) do
    for name, op in pairs(ops) do
      it(name .. " on " .. dt .. " is the float32 op rounded to " .. dt, function()
        local x = fsvc.randn(3, 5):to(dt)
        local y = op(x)
        assert.are.equal(dt, y.dtype)
        local want = op(x:float()):to(dt)
        assert.are.equal(0, fsvc.max_abs_diff(y, want), name)
      end)
    end
    it(dt .. ": gradients come back in the input's dtype", function()
      local x = fsvc.randn(4, 6):to(dt):requires_grad_(true)
      local w = fsvc.randn(3, 6):to(dt):requires_grad_(true)
      local y = x:linear(w):tanh():sum()
      assert.are.equal(dt, y.dtype)
      y:backward()
      assert.are.equal(dt, x.grad.dtype)
      assert.are.equal(dt, w.grad.dtype)
      local x32, w32 = x:detach():float():requires_grad_(true), w:detach():float():requires_grad_(true)
      x32:linear(w32):tanh():sum():backward()
      assert.is_true(rel(x.grad, x32.grad) < 1e-2 and rel(w.grad, w32.grad) < 1e-2)
    end)
    it(dt .. ": in-place add_ and mul_ round back to " .. dt, function()
      local x = fsvc.tensor({ 1, 2, 3 }):to(dt)
      x:add_(fsvc.tensor({ 0.5, 0.5, 0.5 }), 2):mul_(0.5)
      assert.are.equal(dt, x.dtype)
      assert.are.same({ 1, 1.5, 2 }, x:float():tolist())
    end)
  end

  it("refuses 16-bit operands of different dtypes in the matrix ops, naming the fix", function()
    local err = error_of(function() return fsvc.randn(2, 3):half():linear(fsvc.randn(4, 3)) end)
    assert.truthy(err:find("linear: dtypes differ (float16 and float32)", 1, true), err)
    assert.truthy(err:find("autocast", 1, true), err)
  end)
end)

describe("mixed float dtypes", function()
  it("float16 + float32 gives float32, with each gradient in its operand's dtype", function()
    local a = fsvc.randn(3, 4):half():requires_grad_(true)
    local b = fsvc.randn(3, 4, { requires_grad = true })
    local c = a + b
    assert.are.equal("float32", c.dtype)
    assert.are.equal(0, fsvc.max_abs_diff(c, a:float() + b))
    local w = fsvc.randn(3, 4)
    ;(c * w):sum():backward()
    assert.are.equal("float16", a.grad.dtype)
    assert.are.equal("float32", b.grad.dtype)
    assert.are.equal(0, fsvc.max_abs_diff(b.grad, w))
    assert.are.equal(0, fsvc.max_abs_diff(a.grad, w:half()))
  end)

  it("follows PyTorch's promotion: 16-bit with a bias row, a number, int64, the other 16-bit dtype", function()
    local h = fsvc.randn(2, 3):half()
    assert.are.equal("float32", (h + fsvc.randn(3)).dtype)        -- a float32 [3] bias broadcast
    assert.are.equal("float16", (h * 2).dtype)                    -- a number keeps the tensor's dtype
    assert.are.equal("float16", (h + fsvc.tensor(1.5)).dtype)     -- as does a 0-d float32 tensor
    assert.are.equal("float16", (h + fsvc.tensor({ 1, 2, 3 })).dtype) -- int64
    assert.are.equal("float32", (h + fsvc.randn(2, 3):bfloat16()).dtype)
    assert.are.equal("float64", (h * fsvc.randn(2, 3):double()).dtype)
    assert.are.equal("float16", (h:gt(0)).dtype)
  end)

  it("keeps a number next to a 16-bit tensor in float32 (x * 65536 does not overflow the number)", function()
    local h = fsvc.tensor({ 1e-3, -2e-3 }):half()
    local y = h * 65536
    assert.are.equal("float16", y.dtype)
    assert.is_true(math.abs(y:float():tolist()[1] - 65.5) < 0.1, tostring(y))
    local b = fsvc.tensor({ 1 }):bfloat16() + 0.001 -- 1.001 rounds to 1 in bfloat16
    assert.are.equal(1, b:float():item())
  end)
end)

describe("gradient checks of the 16-bit and autocast paths", function()
  -- Inputs and finite-difference steps are small dyadic numbers, so that every value the 16-bit
  -- ops see and produce is exact: the float16/bfloat16 forward is then exact, and only the
  -- analytic gradient (rounded to 16 bits on its way back) differs from the finite differences.
  local function dyadic(shape, denominator, range)
    local t = fsvc.randint(-range, range + 1, shape):double() / denominator
    return t:requires_grad_(true)
  end

  it("mixed float16 * float16 + float64 (lowp mul, promotion, dtype casts)", function()
    fsvc.manual_seed(11)
    local a, b = dyadic({ 2, 3 }, 16, 16), dyadic({ 2, 3 }, 16, 16)
    local ok, report = fsvc.gradcheck(function(x, y) return x:half() * y:half() + y end, { a, b },
      { eps = 2 ^ -6, atol = 1e-4, rtol = 2e-3 })
    assert.is_true(ok, report)
  end)

  it("bfloat16 unary and reduction ops", function()
    fsvc.manual_seed(12)
    local a = dyadic({ 3, 2 }, 4, 4)
    local ok, report = fsvc.gradcheck(function(x)
      local h = x:bfloat16()
      return (h * 2 - h:abs()):sum(0):double()
    end, { a }, { eps = 2 ^ -3, atol = 1e-4, rtol = 1e-2 })
    assert.is_true(ok, report)
  end)

  it("autocast linear and conv1d on float32 leaves", function()
    fsvc.manual_seed(13)
    local x, w, b = dyadic({ 2, 4 }, 8, 8), dyadic({ 3, 4 }, 8, 8), dyadic({ 3 }, 8, 8)
    local ok, report = fsvc.gradcheck(function(xx, ww, bb)
      return fsvc.autocast("float16", function() return xx:float():linear(ww:float(), bb:float()) end):double()
    end, { x, w, b }, { eps = 2 ^ -5, atol = 1e-4, rtol = 2e-3 })
    assert.is_true(ok, report)
    local xc, wc = dyadic({ 1, 2, 6 }, 8, 8), dyadic({ 3, 2, 2 }, 8, 8)
    ok, report = fsvc.gradcheck(function(xx, ww)
      return fsvc.autocast("float16", function() return xx:float():conv1d(ww:float(), nil, { padding = 1 }) end):double()
    end, { xc, wc }, { eps = 2 ^ -5, atol = 1e-4, rtol = 2e-3 })
    assert.is_true(ok, report)
  end)
end)

describe("the fused unscale pass (fsvc._amp_unscale_and_check)", function()
  for _, dev in ipairs(devices) do
    it("divides every gradient in place and reports Inf/NaN on " .. dev, function()
      local a = fsvc.tensor({ { 2, 4 }, { 6, 8 } }):float():to(dev)
      local b = fsvc.tensor({ 1, 2, 3, 4, 5, 6 }):double():to(dev)
      local h = fsvc.tensor({ 8, 16 }):half():to(dev)
      local strided = fsvc.tensor({ { 2, 4 }, { 6, 8 } }):float():to(dev):t() -- not contiguous
      assert.is_false(fsvc._amp_unscale_and_check({ a, b, h, strided }, 0.5))
      assert.are.same({ { 1, 2 }, { 3, 4 } }, a:cpu():tolist())
      assert.are.same({ 0.5, 1, 1.5, 2, 2.5, 3 }, b:cpu():tolist())
      assert.are.same({ 4, 8 }, h:cpu():float():tolist())
      assert.are.same({ { 1, 3 }, { 2, 4 } }, strided:cpu():tolist())
      local bad = fsvc.tensor({ 1, math.huge, 3 }):float():to(dev)
      assert.is_true(fsvc._amp_unscale_and_check({ a, bad }, 1.0))
      local nan = fsvc.tensor({ 0 / 0 }):float():to(dev)
      assert.is_true(fsvc._amp_unscale_and_check({ nan }, 1.0))
      -- a finite gradient that overflows when scaled up counts too
      assert.is_true(fsvc._amp_unscale_and_check({ fsvc.tensor({ 60000 }):half():to(dev) }, 4.0))
      assert.is_false(fsvc._amp_unscale_and_check({}, 1.0))
    end)
  end
  it("rejects what is not a list of float tensors", function()
    assert.truthy(error_of(fsvc._amp_unscale_and_check, { 1 }, 1.0):find("grads[1] is a number", 1, true))
    assert.truthy(error_of(fsvc._amp_unscale_and_check, { fsvc.tensor({ 1, 2 }) }, 1.0):find("not a float tensor", 1, true))
  end)
end)

describe("GradScaler", function()
  local function model_and_opt(lr)
    local p = nn.Parameter(fsvc.tensor({ 1, 2, 3 }):float())
    return p, optim.SGD({ p }, { lr = lr or 0.1 })
  end

  it("has PyTorch's defaults and checks its options", function()
    local s = amp.GradScaler()
    assert.are.equal(65536, s:get_scale())
    assert.are.equal(2, s:get_growth_factor())
    assert.are.equal(0.5, s:get_backoff_factor())
    assert.are.equal(2000, s:get_growth_interval())
    assert.is_true(s:is_enabled())
    assert.truthy(error_of(amp.GradScaler, { init_scal = 1 }):find("GradScaler: unknown option 'init_scal'", 1, true))
    assert.truthy(error_of(amp.GradScaler, { growth_factor = 0.5 }):find("growth_factor", 1, true))
    assert.truthy(error_of(amp.GradScaler, { backoff_factor = 1 }):find("backoff_factor", 1, true))
    assert.truthy(error_of(amp.GradScaler, { growth_interval = 1.5 }):find("growth_interval", 1, true))
    assert.truthy(error_of(amp.GradScaler, { init_scale = -1 }):find("init_scale", 1, true))
  end)

  it("scales a loss (a 16-bit loss in float32, so the scale cannot overflow it)", function()
    local s = amp.GradScaler { init_scale = 1024 }
    local loss = fsvc.tensor(3.0):float()
    assert.are.equal(3072, s:scale(loss):item())
    local h = s:scale(fsvc.tensor(100.0):half())
    assert.are.equal("float32", h.dtype)
    assert.are.equal(102400, h:item())
    local list = s:scale({ loss, loss * 2 })
    assert.are.equal(6144, list[2]:item())
  end)

  it("unscales, steps, and grows the scale after growth_interval clean steps", function()
    local p, opt = model_and_opt(0.1)
    local s = amp.GradScaler { init_scale = 8, growth_interval = 3 }
    local scales = {}
    for _ = 1, 7 do
      opt:zero_grad()
      s:scale((p * p):sum()):backward() -- grad = 2p * scale
      local g_scaled = p.grad:clone()
      s:unscale_(opt)
      assert.is_true(fsvc.max_abs_diff(p.grad, g_scaled / s:get_scale()) < 1e-6)
      local before = p:detach():clone()
      local stepped = s:step(opt)
      assert.is_true(stepped)
      assert.is_true(fsvc.max_abs_diff(p, before - p.grad * 0.1) < 1e-6)
      s:update()
      scales[#scales + 1] = s:get_scale()
    end
    assert.are.same({ 8, 8, 16, 16, 16, 32, 32 }, scales)
  end)

  it("skips the step when a gradient holds Inf or NaN, and backs off", function()
    local p, opt = model_and_opt(0.1)
    local s = amp.GradScaler { init_scale = 64, growth_interval = 2 }
    -- one clean step first: the growth tracker counts it
    opt:zero_grad(); s:scale(p:sum()):backward(); s:step(opt); s:update()
    assert.are.equal(64, s:get_scale())
    for _, bad in ipairs({ math.huge, 0 / 0 }) do
      opt:zero_grad()
      s:scale(p:sum()):backward()
      p.grad = fsvc.tensor({ 1, bad, 1 }):float() -- an overflowed gradient
      local before = p:detach():clone()
      assert.is_false(s:step(opt))
      assert.are.equal(0, fsvc.max_abs_diff(p, before)) -- untouched
      s:update()
    end
    assert.are.equal(16, s:get_scale()) -- halved twice
    -- the tracker restarted: two clean steps to grow again
    for _ = 1, 2 do opt:zero_grad(); s:scale(p:sum()):backward(); s:step(opt); s:update() end
    assert.are.equal(32, s:get_scale())
  end)

  it("reports misuse as PyTorch does", function()
    local p, opt = model_and_opt()
    local s = amp.GradScaler()
    assert.truthy(error_of(s.update, s):find("no inf checks were recorded", 1, true))
    s:scale(p:sum()):backward()
    s:unscale_(opt)
    assert.truthy(error_of(s.unscale_, s, opt):find("unscale_() has already been called on this optimizer since the last update()", 1, true))
    s:step(opt)
    assert.truthy(error_of(s.unscale_, s, opt):find("unscale_() is being called after step()", 1, true))
    assert.truthy(error_of(s.step, s, opt):find("step() has already been called since the last update()", 1, true))
    s:update()
    assert.truthy(error_of(s.step, s, opt, function() end):find("closures are not supported", 1, true))
    assert.truthy(error_of(s.step, s, {}):find("expects an optimizer", 1, true))
    -- 16-bit gradients: the parameters should have stayed float32
    local q = nn.Parameter(fsvc.tensor({ 1, 2 }):half())
    local o2 = optim.SGD({ q }, { lr = 0.1 })
    q.grad = fsvc.tensor({ 1, 1 }):half()
    assert.truthy(error_of(s.unscale_, s, o2):find("attempting to unscale float16 gradients", 1, true))
  end)

  it("update(new_scale) sets the scale", function()
    local s = amp.GradScaler()
    s:update(128)
    assert.are.equal(128, s:get_scale())
    s:update(fsvc.tensor(4.0))
    assert.are.equal(4, s:get_scale())
    assert.has_error(function() s:update(-1) end)
  end)

  it("round-trips its state dict, and resumes identically", function()
    local s = amp.GradScaler { init_scale = 256, growth_interval = 5 }
    local p, opt = model_and_opt()
    for _ = 1, 3 do opt:zero_grad(); s:scale(p:sum()):backward(); s:step(opt); s:update() end
    opt:zero_grad(); s:scale(p:sum()):backward(); p.grad = fsvc.tensor({ 0 / 0, 0, 0 }):float(); s:step(opt); s:update()
    local sd = s:state_dict()
    assert.are.same({ scale = 128, growth_factor = 2, backoff_factor = 0.5, growth_interval = 5, _growth_tracker = 0 }, sd)
    local r = amp.GradScaler()
    r:load_state_dict(sd)
    assert.are.same(sd, r:state_dict())
    -- through the flat form a checkpoint holds (numbers as float64 tensors)
    local flat = {}
    for k, v in pairs(sd) do flat[k] = fsvc.tensor(v, { dtype = "float64" }) end
    local r2 = amp.GradScaler()
    r2:load_state_dict(flat)
    assert.are.same(sd, r2:state_dict())
    for _ = 1, 5 do
      for _, sc in ipairs({ s, r }) do opt:zero_grad(); sc:scale(p:sum()):backward(); sc:step(opt); sc:update() end
    end
    assert.are.equal(256, r:get_scale())
    assert.are.equal(s:get_scale(), r:get_scale())
    assert.truthy(error_of(r.load_state_dict, r, {}):find("state dict is empty", 1, true))
    assert.truthy(error_of(r.load_state_dict, r, { scale = 1, growth_factor = 2, backoff_factor = 0.5,
      growth_interval = 5 }):find("_growth_tracker", 1, true))
  end)

  it("does nothing but step when disabled", function()
    local p, opt = model_and_opt(0.5)
    local s = amp.GradScaler { enabled = false }
    local loss = p:sum()
    assert.are.equal(loss, s:scale(loss))
    loss:backward()
    s:unscale_(opt)
    assert.is_true(s:step(opt))
    s:update()
    assert.are.same({ 0.5, 1.5, 2.5 }, p:tolist())
    assert.are.equal(1, s:get_scale())
    assert.are.same({}, s:state_dict())
    s:load_state_dict({})
  end)

  for _, dev in ipairs(devices) do
    it("trains a small float16 conv stack on " .. dev .. " (overflowing scale backs off, the loss falls)", function()
      fsvc.manual_seed(7)
      local net = nn.Sequential(nn.Conv1d(2, 16, 5, { padding = 2 }), nn.LeakyReLU(0.1),
        nn.Conv1d(16, 16, 3, { padding = 1 }), nn.Tanh(), nn.Conv1d(16, 1, 1))
      if dev ~= "cpu" then net:to(dev) end
      local opt = optim.Adam(net:parameters(), { lr = 3e-3 })
      -- 2^24 makes the float16 gradients overflow at first: the scaler must back off and go on
      local scaler = amp.GradScaler { init_scale = 2 ^ 24, growth_interval = 50 }
      local t = fsvc.linspace(0, 6.283, 64)
      local x = fsvc.stack({ t:sin(), t:cos() }, 0):unsqueeze(0):to(dev)
      local target = (t * 2):sin():view(1, 1, 64):to(dev)
      local losses, skipped = {}, 0
      for _ = 1, 60 do
        opt:zero_grad()
        local loss = fsvc.autocast("float16", function()
          local y = net(x)
          assert(y.dtype == "float16")
          return (y:float() - target):pow(2):mean()
        end)
        scaler:scale(loss):backward()
        scaler:unscale_(opt)
        nn.utils.clip_grad_norm_(net:parameters(), 1.0)
        if not scaler:step(opt) then skipped = skipped + 1 end
        scaler:update()
        losses[#losses + 1] = loss:item()
      end
      assert.is_true(skipped >= 1, "expected the first steps to overflow")
      assert.is_true(scaler:get_scale() < 2 ^ 24)
      for _, p in ipairs(net:parameters()) do
        assert.are.equal("float32", p.dtype)
        assert.is_false(p:has_nonfinite(), "parameters stay finite")
      end
      assert.is_true(losses[#losses] < 0.5 * losses[1],
        string.format("loss %.4f -> %.4f", losses[1], losses[#losses]))
    end)
  end
end)
