-- The CUDA backend. Without a GPU: one pending test ("SKIP: no CUDA device") plus the no-GPU
-- behaviour (is_available false, clear errors). With a GPU: the op-parity table — every case of
-- spec/gradcheck/*.lua run on the CPU and on the GPU from the same inputs, values and gradients
-- compared (float64: 1e-9, float32: 1e-5 normwise relative; TF32 matmuls: 1e-3), then the
-- allocator, the RNG, the fused optimiser and device moves.
-- "dsp": the STFT family on cuFFT (more DSP parity in spec/cuda_dsp_spec.lua)
local areas = { "elementwise", "reduce", "shape", "nn", "autograd", "dsp" }

if not fsvc.cuda.is_available() then
  describe("cuda without a device", function()
    print("SKIP: no CUDA device (" .. fsvc.cuda.unavailable_reason() .. ")")
    pending("SKIP: no CUDA device")

    it("reports no device and says why", function()
      assert.is_false(fsvc.cuda.is_available())
      assert.are.equal(0, fsvc.cuda.device_count())
      assert.is_true(#fsvc.cuda.unavailable_reason() > 0)
      assert.has_error(function() fsvc.cuda.get_device_name(0) end)
    end)

    it("refuses to move tensors with a message naming the fix", function()
      local x = fsvc.randn({ 2, 3 })
      local ok, err = pcall(function() return x:cuda() end)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("cuda:0 requested but", 1, true), err)
      ok, err = pcall(function() return x:to("cuda") end)
      assert.is_false(ok)
      assert.has_error(function() x:to("tpu") end)
      assert.are.equal("cpu", x.device)
      assert.is_false(x.is_cuda)
      assert.are.equal(x, x:to("cpu"))        -- already there: the same tensor
      assert.are.equal(x, x:cpu())
      assert.are.equal("float64", x:to("float64").dtype) -- dtypes still go through :to
    end)

    it("refuses device = \"cuda\" in factories with the reason", function()
      for _, f in ipairs({ function() return fsvc.zeros({ 2 }, { device = "cuda" }) end,
                           function() return fsvc.randn({ 2 }, { device = "cuda:0" }) end,
                           function() return fsvc.tensor({ 1, 2 }, { device = "cuda" }) end }) do
        local ok, err = pcall(f)
        assert.is_false(ok)
        assert.truthy(tostring(err):find("cuda:0 requested but", 1, true), err)
      end
      assert.are.equal("cpu", fsvc.ones({ 2 }, { device = "cpu" }).device)
      assert.has_error(function() fsvc.zeros({ 2 }, { device = "tpu" }) end)
      assert.has_error(function() fsvc.zeros({ 2 }, { device = 0 }) end)
    end)

    it("keeps memory statistics at zero", function()
      assert.are.equal(0, fsvc.cuda.memory_allocated())
      assert.is_table(fsvc.cuda.memory_stats())
      fsvc.cuda.synchronize() -- a no-op without a device
    end)
  end)
  return
end

-- ---- with a GPU ---------------------------------------------------------------------------------
local function load_cases()
  local all = {}
  for _, area in ipairs(areas) do
    local path = "spec/gradcheck/" .. area .. ".lua"
    local f = io.open(path)
    if f then
      f:close()
      for i, case in ipairs(dofile(path)) do
        case.name = string.format("%s #%d (%s)", case.op, i, area)
        all[#all + 1] = case
      end
    end
  end
  return all
end

-- max |a - b| / max(max |b|, tiny) over the elements (normwise relative error)
local function rel_err(a, b)
  local ha, hb = a:cpu():double(), b:cpu():double()
  local num = (ha - hb):abs():max():item()
  local den = hb:abs():max():item()
  if num ~= num then return math.huge end
  return num / math.max(den, 1e-30)
end

local function outputs(r)
  if fsvc.is_tensor(r) then return { r } end
  return r
end

-- runs fn on copies of `inputs` on `device` in `dtype`; returns outputs and input gradients
local function run(case, inputs, device, dtype)
  local xs = {}
  for i, x in ipairs(inputs) do
    local y = x:detach()
    if fsvc.is_tensor(y) and y.dtype ~= "int64" then y = y:to(dtype) end
    y = y:to(device):detach()
    if x.requires_grad then y:requires_grad_(true) end
    xs[i] = y
  end
  local outs = outputs(case.fn(table.unpack(xs)))
  local loss
  for k, o in ipairs(outs) do
    if fsvc.is_tensor(o) and o.dtype ~= "int64" and o.requires_grad then
      -- a fixed pseudo-random weighting, the same on both devices
      local w = fsvc.linspace(-1, 1, math.max(o:numel(), 1), { dtype = o.dtype }):reshape(o.shape):to(device)
      local term = (o * w):sum()
      loss = loss and loss + term or term
    end
  end
  if loss then loss:backward() end
  local grads = {}
  for i, x in ipairs(xs) do grads[i] = x.grad end
  return outs, grads
end

describe("cuda op parity (every gradient-check case, CPU vs GPU)", function()
  print("CUDA: " .. fsvc.cuda.device_count() .. " device(s), " .. fsvc.cuda.get_device_name(0))
  for _, case in ipairs(load_cases()) do
    for _, dt in ipairs({ { "float64", 1e-9 }, { "float32", 1e-5 } }) do
      it(case.name .. " " .. dt[1], function()
        fsvc.manual_seed(1234)
        local inputs = case.inputs()
        local ok, co, cg = pcall(run, case, inputs, "cpu", dt[1])
        if not ok then return end -- the case itself is CPU-only in this dtype (checked elsewhere)
        local ok2, go, gg = pcall(run, case, inputs, "cuda", dt[1])
        assert(ok2, case.name .. " on cuda: " .. tostring(go))
        for k, o in ipairs(co) do
          if fsvc.is_tensor(o) then
            assert.are.equal("cuda:0", go[k].device)
            local e = rel_err(go[k], o)
            assert(e <= dt[2], string.format("%s output %d: relative error %g > %g", case.name, k, e, dt[2]))
          end
        end
        for i, g in pairs(cg) do
          assert(gg[i], case.name .. ": no gradient on cuda for input " .. i)
          assert.are.equal("cuda:0", gg[i].device)
          local e = rel_err(gg[i], g)
          assert(e <= dt[2], string.format("%s grad %d: relative error %g > %g", case.name, i, e, dt[2]))
        end
      end)
    end
  end
end)

-- Reduced precision: the same cases with float16 / bfloat16 tensors on the GPU, and float32
-- matrix products in TF32, each against the CPU's float64 result from the same (rounded) inputs:
-- the issue's bounds, bf16/fp16 1e-2 and TF32 1e-3 (normwise relative). The backward of a 16-bit
-- graph also runs in 16 bits, so gradients get the same bound only where the CPU computes them
-- in 16 bits too (an op whose CPU version refuses a dtype is skipped, as above).
local function rounded_inputs(inputs, dtype)
  local r = {}
  for i, x in ipairs(inputs) do
    if fsvc.is_tensor(x) and x.dtype ~= "int64" then
      local y = x:detach():to(dtype):to("float64")
      if x.requires_grad then y:requires_grad_(true) end
      r[i] = y
    else
      r[i] = x
    end
  end
  return r
end

describe("cuda op parity in reduced precision (float16, bfloat16, TF32)", function()
  local passes = { { "float16", 1e-2 }, { "bfloat16", 1e-2 }, { "tf32", 1e-3 } }
  for _, case in ipairs(load_cases()) do
    for _, pass in ipairs(passes) do
      local name, tol = pass[1], pass[2]
      local tf32 = name == "tf32"
      -- TF32 changes only matrix products: the nn cases
      if not tf32 or case.name:find("(nn)", 1, true) then
        it(case.name .. " " .. name, function()
          fsvc.manual_seed(1234)
          local inputs = rounded_inputs(case.inputs(), tf32 and "float32" or name)
          local ok, co, cg = pcall(run, case, inputs, "cpu", "float64")
          if not ok then return end
          -- the CPU must run the case in this dtype at all (else it is not defined for it)
          if not tf32 and not pcall(run, case, inputs, "cpu", name) then return end
          if tf32 then fsvc.cuda.set_allow_tf32(true) end
          local ok2, go, gg = pcall(run, case, inputs, "cuda", tf32 and "float32" or name)
          if tf32 then fsvc.cuda.set_allow_tf32(false) end
          assert(ok2, case.name .. " on cuda: " .. tostring(go))
          for k, o in ipairs(co) do
            if fsvc.is_tensor(o) and o.dtype ~= "int64" then
              local e = rel_err(go[k], o)
              assert(e <= tol, string.format("%s %s output %d: relative error %g > %g", case.name, name, k, e, tol))
            end
          end
          for i, g in pairs(cg) do
            assert(gg[i], case.name .. ": no gradient on cuda for input " .. i)
            local e = rel_err(gg[i], g)
            assert(e <= tol, string.format("%s %s grad %d: relative error %g > %g", case.name, name, i, e, tol))
          end
        end)
      end
    end
  end
end)

describe("cuda runtime", function()
  it("moves tensors both ways, differentiably", function()
    local x = fsvc.randn({ 3, 4 }, { requires_grad = true })
    local y = x:cuda()
    assert.are.equal("cuda:0", y.device)
    assert.is_true(y.is_cuda)
    local z = (y * y):sum()
    z:backward()
    assert.are.equal("cpu", x.grad.device)
    assert(rel_err(x.grad, x:detach() * 2) < 1e-6)
    assert.are.equal(x:detach():sum():item(), fsvc.sum(x:detach():to("cuda")):item())
    assert.truthy(tostring(y):find("device=cuda:0", 1, true))
    assert.truthy(tostring(y):find("^tensor%("), tostring(y)) -- the values, not only the device
  end)

  it("caches device memory: no cudaMalloc in steady state", function()
    local x = fsvc.randn({ 256, 256 }):cuda()
    -- the temporaries are garbage once step returns; collecting them each time hands their blocks
    -- back to the cache deterministically (otherwise the count depends on when Lua's collector runs)
    local function step()
      local y = (x * 2 + 1):exp():sum()
      collectgarbage("collect")
      return y
    end
    for _ = 1, 3 do step() end
    fsvc.cuda.synchronize()
    local before = fsvc.cuda.memory_stats().num_cuda_malloc
    for _ = 1, 50 do step() end
    fsvc.cuda.synchronize()
    assert.are.equal(before, fsvc.cuda.memory_stats().num_cuda_malloc)
    assert(fsvc.cuda.max_memory_allocated() >= fsvc.cuda.memory_allocated())
  end)

  it("draws reproducible random numbers from a seed", function()
    fsvc.cuda.manual_seed(7)
    local a = fsvc.empty({ 1000 }):cuda():normal_(0, 1)
    fsvc.cuda.manual_seed(7)
    local b = fsvc.empty({ 1000 }):cuda():normal_(0, 1)
    assert.are.equal(0, (a - b):abs():max():item())
    assert(math.abs(a:mean():item()) < 0.15 and math.abs(a:std():item() - 1) < 0.15)
    local u = fsvc.empty({ 1000 }):cuda():uniform_(0, 1)
    assert(u:min():item() >= 0 and u:max():item() < 1)
  end)

  it("steps AdamW like the CPU", function()
    local p = fsvc.randn({ 1000 }, { dtype = "float32" })
    local g = fsvc.randn({ 1000 }, { dtype = "float32" })
    local pc, gc = p:cuda(), g:cuda()
    local m, v = fsvc.zeros_like(p), fsvc.zeros_like(p)
    local mc, vc = m:cuda(), v:cuda()
    local h = { lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01, step = 1, decoupled = true }
    fsvc._adam_step(p, g, m, v, nil, h)
    fsvc._adam_step(pc, gc, mc, vc, nil, h)
    assert(rel_err(pc, p) < 1e-6)
    assert(rel_err(vc, v) < 1e-6)
  end)

  it("steps a list of parameters in one launch like one by one", function()
    local h = { lr = 1e-2, weight_decay = 0.1, step = 3, decoupled = true }
    local ps, gs, ms, vs, ref = {}, {}, {}, {}, {}
    for i = 1, 3 do
      ps[i] = fsvc.randn({ 100 * i }):cuda()
      gs[i] = fsvc.randn({ 100 * i }):cuda()
      ms[i], vs[i] = fsvc.zeros({ 100 * i }):cuda(), fsvc.zeros({ 100 * i }):cuda()
      ref[i] = { ps[i]:clone(), ms[i]:clone(), vs[i]:clone() }
      fsvc._adam_step(ref[i][1], gs[i], ref[i][2], ref[i][3], nil, h)
    end
    local c0 = fsvc.cuda.launch_counts()
    fsvc.cuda._adam_step_multi(ps, gs, ms, vs, nil, h)
    local c1 = fsvc.cuda.launch_counts()
    -- the chunk table's gradient pointers (one small launch per 128 tensors), then Adam itself
    assert.are.equal(2, c1.kernels - c0.kernels)
    for i = 1, 3 do assert.are.equal(0, (ps[i] - ref[i][1]):abs():max():item()) end
  end)

  it("multiplies over an empty inner dim as the CPU does (an empty sum is 0), with gradients", function()
    -- found by the CUDA wrong-call sweep: cuBLAS refused the empty operands' leading dimensions
    local cases = {
      { function(a, b) return fsvc.matmul(a, b) end, { 3, 0 }, { 0, 2 } },
      { function(a, b) return fsvc.bmm(a, b) end, { 2, 3, 0 }, { 2, 0, 4 } },
      { function(x, w, b) return fsvc.linear(x, w, b) end, { 2, 0 }, { 4, 0 }, { 4 } },
      { function(x, w) return fsvc.linear(x, w) end, { 5, 0 }, { 3, 0 } },
    }
    for i, c in ipairs(cases) do
      local function run(device)
        fsvc.manual_seed(i)
        local args = {}
        for k = 2, #c do args[k - 1] = fsvc.randn(c[k]):to(device):requires_grad_(true) end
        local y = c[1](table.unpack(args))
        ;(y * 2):sum():backward()
        local grads = {}
        for k, a in ipairs(args) do grads[k] = a.grad:cpu() end
        return y:cpu(), grads
      end
      local yc, gc = run("cpu")
      local yg, gg = run("cuda")
      assert.are.same(yc.shape, yg.shape)
      assert.are.equal(0, fsvc.max_abs_diff(yc, yg), "case " .. i)
      for k = 1, #gc do
        assert.are.same(gc[k].shape, gg[k].shape)
        if gc[k]:numel() > 0 then assert.are.equal(0, fsvc.max_abs_diff(gc[k], gg[k]), "case " .. i) end
      end
    end
  end)

  it("runs work on a side stream", function()
    local s = fsvc.cuda.stream()
    fsvc.cuda.set_stream(s)
    local x = fsvc.randn({ 64, 64 }):cuda()
    local y = x:matmul(x)
    s:synchronize()
    fsvc.cuda.set_stream(nil)
    assert(rel_err(y, x:cpu():matmul(x:cpu())) < 1e-5)
  end)

  it("clips gradient norms in one pass", function()
    local a, b = fsvc.full({ 3 }, 3):cuda(), fsvc.full({ 4 }, 4):cuda()
    local total = fsvc.cuda.clip_grad_norm_({ a, b }, 1.0)
    assert(math.abs(total - math.sqrt(27 + 64)) < 1e-5)
    local after = math.sqrt((a * a):sum():item() + (b * b):sum():item())
    assert(math.abs(after - 1) < 1e-4)
  end)

  it("times work with events", function()
    local e0 = fsvc.cuda.event()
    local x = fsvc.randn({ 512, 512 }):cuda()
    local _ = x:matmul(x)
    local e1 = fsvc.cuda.event()
    assert(fsvc.cuda.elapsed_ms(e0, e1) >= 0)
  end)
end)

describe("cuda graphs", function()
  local function close(a, b, tol) return fsvc.max_abs_diff(a:cpu(), b:cpu()) <= tol end

  it("replays a captured forward on new input written into the static input", function()
    local x = fsvc.randn({ 4, 8 }):cuda()
    local w = fsvc.randn({ 8, 3 }):cuda()
    local function f() return ((x:matmul(w) * 2 + 1):tanh()):sum(1) end
    local g = fsvc.cuda.CUDAGraph()
    local y = g:capture(f)
    assert.is_true(g:is_captured())
    for _ = 1, 3 do
      local xn = fsvc.randn({ 4, 8 })
      x:copy_(xn:cuda())
      g:replay()
      local want = ((xn:matmul(w:cpu()) * 2 + 1):tanh()):sum(1)
      assert(close(y, want, 1e-5), "replay differs from the eager result")
    end
  end)

  it("captures forward and backward of a training step", function()
    local x = fsvc.randn({ 4, 8 }):cuda()
    local p = fsvc.randn({ 8, 3 }):cuda():requires_grad_(true)
    local g, loss = fsvc.cuda.graph(function()
      p.grad = nil -- each replay writes the gradient afresh
      local l = x:matmul(p):pow(2):mean()
      l:backward()
      return l
    end)
    for _ = 1, 2 do
      x:copy_(fsvc.randn({ 4, 8 }):cuda())
      g:replay()
      local pc = p:detach():cpu():requires_grad_(true)
      local lc = x:cpu():matmul(pc):pow(2):mean()
      lc:backward()
      assert(close(loss, lc, 1e-5) and close(p.grad, pc.grad, 1e-5))
    end
  end)

  it("makes no cudaMalloc in replays and keeps its memory from others", function()
    local x = fsvc.randn({ 64, 64 }):cuda()
    local g, y = fsvc.cuda.graph(function() return (x:exp() + x):sum(0) end)
    collectgarbage("collect")
    local before = fsvc.cuda.memory_stats().num_cuda_malloc
    for _ = 1, 10 do g:replay() end
    assert.are.equal(before, fsvc.cuda.memory_stats().num_cuda_malloc)
    -- eager work of the same sizes must not land in the graph's blocks
    local want = (x:exp() + x):sum(0)
    local _ = (x * 3):exp() + 7
    g:replay()
    assert(close(y, want, 1e-4))
    g:reset()
    assert.is_false(g:is_captured())
  end)

  it("fails with a message when the function waits for the device, and recovers", function()
    local x = fsvc.randn({ 4 }):cuda()
    local g = fsvc.cuda.CUDAGraph()
    local ok, err = pcall(function() return g:capture(function() return (x * 2):sum():item() end) end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("capturing", 1, true), err)
    assert.is_false(g:is_captured())
    -- the allocator left capture mode: a size no warm-up made is allocated (fresh from cudaMalloc)
    local before = fsvc.cuda.memory_stats().num_cuda_malloc
    local fresh = fsvc.zeros({ 123457 }, { device = "cuda" })
    assert.are.equal("cuda:0", fresh.device)
    assert(fsvc.cuda.memory_stats().num_cuda_malloc > before)
    -- the default stream works again, and the same object captures
    assert(close(x * 2, x:cpu() * 2, 0))
    local y = g:capture(function() return x * 2 end)
    g:replay()
    assert(close(y, x:cpu() * 2, 0))
    assert.has_error(function() g:capture(function() end) end) -- already captured
    assert.has_error(function() g:capture(function() end, { warmup = 0 }) end)
    assert.has_error(function() fsvc.cuda.CUDAGraph():replay() end) -- nothing captured
  end)

  it("refuses allocations the warm-up did not make", function()
    local x = fsvc.randn({ 16 }):cuda()
    local n = 0
    local ok, err = pcall(fsvc.cuda.graph, function()
      n = n + 1
      return fsvc.zeros({ 1000 * n }):cuda() + x:sum() -- a new size at each call
    end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("warm-up", 1, true), err)
  end)
end)

describe("cuda indexing with device indices", function()
  it("checks CUDA indices on the device and reports a bad one at the next synchronisation", function()
    local a = fsvc.randn({ 4, 5 }):cuda()
    local good = fsvc.tensor({ 3, 0, 2 }):cuda()
    local y = a:index_select(0, good)
    assert.are.equal(0, fsvc.max_abs_diff(y:cpu(), a:cpu():index_select(0, fsvc.tensor({ 3, 0, 2 }))))
    local bad = fsvc.tensor({ 1, 7 }):cuda()
    local z = a:index_select(0, bad) -- no host copy of the indices: the kernel skips and records it
    local ok, err = pcall(function() return z:cpu() end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("index_select: an index was out of range", 1, true), err)
    assert.are.equal(0, fsvc.max_abs_diff(y:cpu(), a:cpu():index_select(0, fsvc.tensor({ 3, 0, 2 })))) -- reset
    local gi = fsvc.tensor({ { 0, 9 } }):cuda()
    local _ = a:gather(1, gi)
    ok, err = pcall(fsvc.cuda.synchronize)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("gather: an index was out of range", 1, true), err)
    local neg = fsvc.tensor({ { -1 } }):cuda()
    local _ = a:scatter_add(0, neg, fsvc.ones({ 1, 1 }):cuda())
    ok, err = pcall(fsvc.cuda.synchronize)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("scatter_add", 1, true), err)
    fsvc.cuda.synchronize() -- reported once
    -- CPU indices are still checked at once, on the host where they are
    assert.has_error(function() a:index_select(0, fsvc.tensor({ 9 })) end)
  end)

  it("captures a kNN-style topk + gather into a CUDA graph", function()
    local ref = fsvc.randn({ 50, 8 }):cuda()
    local q = fsvc.randn({ 6, 8 }):cuda()
    local g, picked = fsvc.cuda.graph(function()
      local _, idx = q:matmul(ref:t()):topk(4, 1)    -- [6, 4] indices into ref, on the device
      return ref:index_select(0, idx:reshape({ 24 })):reshape({ 6, 4, 8 }):mean(1)
    end)
    q:copy_(fsvc.randn({ 6, 8 }):cuda())
    g:replay()
    local qc, rc = q:cpu(), ref:cpu()
    local _, idx = qc:matmul(rc:t()):topk(4, 1)
    local want = rc:index_select(0, idx:reshape({ 24 })):reshape({ 6, 4, 8 }):mean(1)
    assert(fsvc.max_abs_diff(picked:cpu(), want) < 1e-5)
  end)
end)

-- topk on CUDA takes every k the CPU takes: an insertion list for k <= 64, a bitonic sort of the
-- line in shared memory up to 4096, a sort in a global scratch buffer beyond (gpu/topk.cu). Each
-- must give the CPU's result exactly: the same indices, the same values (copied, -0 and NaN
-- included), ties by index, NaN first for largest and last for smallest.
describe("cuda reductions of few outputs over long extents (split into segments)", function()
  -- gpu/reduce.cu splits these (a loss's mean, a bias gradient) into segments reduced by many
  -- blocks, then adds the partials in order; the op-parity table's tensors are too small for it
  local cases = {
    { { 2, 20000 }, { 1 } },     -- rows: 2 outputs of 20 000
    { { 30001 }, nil },          -- everything into one output
    { { 2, 1500, 5 }, { 1 } },   -- columns: 10 outputs of 1500, stride 5
    { { 4, 3, 3000 }, { 0, 2 } }, -- a bias gradient's dims of [B, C, T]
    { { 5, 3000 }, { 0 } },      -- columns over a short extent: not split
  }
  local ops = {
    { "sum", function(x, d) return d and fsvc.sum(x, d) or fsvc.sum(x) end },
    { "mean", function(x, d) return d and fsvc.mean(x, d) or fsvc.mean(x) end },
    { "var", function(x, d) return d and fsvc.var(x, d) or fsvc.var(x) end },
    { "std", function(x, d) return d and fsvc.std(x, d, { unbiased = false }) or fsvc.std(x) end },
    { "norm p=2", function(x, d) return fsvc.norm(x, 2, d) end },
    { "norm p=1", function(x, d) return fsvc.norm(x, 1, d) end },
    { "norm p=3", function(x, d) return fsvc.norm(x, 3, d) end },
  }
  for _, dt in ipairs({ "float32", "float64" }) do
    it("match the CPU, values and gradients, deterministically: " .. dt, function()
      fsvc.manual_seed(11)
      for _, c in ipairs(cases) do
        local x0 = (fsvc.randn(c[1], { dtype = "float64" }) + 0.5):to(dt)
        for _, o in ipairs(ops) do
          local what = o[1] .. " of " .. table.concat(c[1], "x") .. " " .. dt
          local xc = x0:clone():requires_grad_(true)
          local xg = x0:cuda():requires_grad_(true)
          local yc, yg = o[2](xc, c[2]), o[2](xg, c[2])
          local w = fsvc.linspace(-1, 1, math.max(yc:numel(), 1), { dtype = dt }):reshape(yc.shape)
          ;(yc * w):sum():backward()
          ;(yg * w:cuda()):sum():backward()
          local limit = dt == "float32" and 1e-5 or 1e-9
          assert(rel_err(yg, yc) <= limit, what .. ": value " .. rel_err(yg, yc))
          assert(rel_err(xg.grad, xc.grad) <= limit, what .. ": gradient " .. rel_err(xg.grad, xc.grad))
          local again = o[2](x0:cuda(), c[2])
          assert.are.equal(0, (again - yg:detach()):abs():max():item(), what .. ": not deterministic")
        end
      end
    end)
  end

  it("sums int64 exactly and 16-bit inputs in float", function()
    local n = fsvc.arange(0, 60000, 1, { dtype = "int64" }):reshape({ 2, 30000 })
    local s = fsvc.sum(n:cuda(), 1):cpu()
    assert.are.equal(449985000, s:_get_flat(0))
    assert.are.equal(1349985000, s:_get_flat(1))
    local h = fsvc.full({ 40000 }, 0.5):to("float16"):cuda()
    assert.are.equal(20000, fsvc.sum(h):float():item())
    assert.are.equal(0.5, fsvc.mean(h):float():item())
  end)
end)

describe("cuda topk for any k", function()
  -- values on [outer, r, inner] with many ties, signed zeros, infinities and (floats) NaN
  local function tie_values(outer, r, inner, dtype, seed)
    local rng, flat = seed, {}
    local function rand(n) -- a small LCG: the same values on every run and platform
      rng = (rng * 1103515245 + 12345) % 2147483648
      return rng % n
    end
    for i = 1, outer * r * inner do
      local c = rand(40)
      local v = (rand(9) - 4) / 2 -- -2 .. 2 in halves: ties everywhere
      if dtype ~= "int64" then
        if c == 0 then v = 0 / 0 elseif c == 1 then v = math.huge elseif c == 2 then v = -math.huge
        elseif c == 3 then v = -0.0 end
      else
        v = rand(9) - 4
      end
      flat[i] = v
    end
    return fsvc.tensor(flat, { dtype = dtype == "int64" and "int64" or "float64" }):reshape({ outer, r, inner }):to(dtype)
  end

  local function same_number(a, b)
    if a ~= a then return b ~= b end
    if a == 0 and b == 0 then return 1 / a == 1 / b end -- the sign of zero is copied too
    return a == b
  end

  local function assert_same(got, want, what)
    assert.are.equal(want.dtype, got.dtype, what)
    assert.are.same(want.shape, got.shape, what)
    local g, w = got:cpu():reshape({ -1 }):tolist(), want:reshape({ -1 }):tolist()
    for i = 1, #w do
      assert(same_number(g[i], w[i]), string.format("%s: element %d is %s, the CPU has %s", what, i,
                                                    tostring(g[i]), tostring(w[i])))
    end
  end

  local function ks_for(r)
    local ks, seen = {}, {}
    for _, k in ipairs({ 1, 64, 65, 200, r }) do
      if k <= r and not seen[k] then seen[k] = true; ks[#ks + 1] = k end
    end
    return ks
  end

  local function check(x, dim, ks, what)
    local xc = x:cuda()
    for _, k in ipairs(ks) do
      for _, largest in ipairs({ true, false }) do
        local label = string.format("%s k=%d largest=%s", what, k, tostring(largest))
        local v, i = x:topk(k, dim, { largest = largest })
        local vc, ic = xc:topk(k, dim, { largest = largest })
        assert.are.equal("cuda:0", vc.device)
        assert_same(ic, i, label .. " indices")
        assert_same(vc, v, label .. " values")
      end
    end
  end

  -- every method: insertion (k <= 64), shared-memory sort (r <= 4096), global sort (r > 4096).
  -- The emulation runs a sort's threads as fibers (slow): long lines are one line each, and the
  -- 16-bit and int64 passes take two of them (the kernels differ from float32/float64 only in
  -- their loads and keys).
  local short = { 1, 7, 64, 65, 100, 255, 300 }
  for _, dtype in ipairs({ "float64", "float32", "float16", "bfloat16", "int64" }) do
    it("matches the CPU exactly, values and indices, " .. dtype, function()
      for li, r in ipairs(short) do
        check(tie_values(2, r, 1, dtype, 17 * li):reshape({ 2, r }), 1, ks_for(r), dtype .. " [2, " .. r .. "]")
        if r == 7 or r == 100 or r == 300 then -- along a middle dim: strided lines
          check(tie_values(1, r, 2, dtype, 17 * li + 3), 1, ks_for(r), dtype .. " [1, " .. r .. ", 2]")
        end
      end
      local full = dtype == "float64" or dtype == "float32"
      for li, r in ipairs(full and { 1000, 4096, 4097, 5000 } or { 1000, 5000 }) do
        local ks = full and ks_for(r) or { 65, r }
        check(tie_values(1, r, 1, dtype, 5 * li):reshape({ 1, r }), 1, ks, dtype .. " [1, " .. r .. "]")
      end
    end)
  end

  it("takes the gradient to the picked elements, as on the CPU", function()
    for _, dtype in ipairs({ "float64", "float32", "float16", "bfloat16" }) do
      for _, r in ipairs({ 65, 300, 5000 }) do
        for _, k in ipairs(r < 5000 and ks_for(r) or { 200 }) do
          for _, largest in ipairs({ true, false }) do
            local lines = r < 5000 and 2 or 1
            local x = tie_values(lines, r, 1, "float64", r + k):reshape({ lines, r })
            x = x:masked_fill(x:ne(x), 1.5):clamp(-3, 3):to(dtype) -- finite values, ties kept
            local function grad_on(device)
              local xd = x:to(device):detach():requires_grad_(true)
              local v = xd:topk(k, 1, { largest = largest })
              local w = fsvc.linspace(-1, 1, v:numel(), { dtype = dtype }):reshape(v.shape):to(device)
              local loss = (v * w):sum()
              loss:backward()
              return xd.grad
            end
            local g, gc = grad_on("cpu"), grad_on("cuda")
            assert.are.equal("cuda:0", gc.device)
            assert_same(gc, g, string.format("%s r=%d k=%d largest=%s gradient", dtype, r, k, tostring(largest)))
          end
        end
      end
    end
  end)

  it("handles k = 0, a 0-d tensor and refuses k out of range", function()
    local x = fsvc.randn({ 3, 70 }):cuda()
    local v, i = x:topk(0, 1)
    assert.are.same({ 3, 0 }, v.shape)
    assert.are.same({ 3, 0 }, i.shape)
    local s = fsvc.tensor(2.5):cuda()
    local sv, si = s:topk(1)
    assert.are.equal(2.5, sv:item())
    assert.are.equal(0, si:item())
    assert.has_error(function() x:topk(71, 1) end)
    assert.has_error(function() x:topk(-1, 1) end)
  end)

  it("captures a large-k topk (its scratch buffer comes from the warm-up) into a CUDA graph", function()
    local x = fsvc.randn({ 1, 5000 }):cuda()
    local g, v, i = fsvc.cuda.graph(function() return x:topk(300, 1) end)
    local xn = fsvc.randn({ 1, 5000 })
    x:copy_(xn:cuda())
    g:replay()
    local wv, wi = xn:topk(300, 1)
    assert_same(i, wi, "indices after replay")
    assert_same(v, wv, "values after replay")
  end)
end)

-- Index accumulations in 16 bits (index_select's and gather's backward, scatter_add, pad's
-- backward): many adds land on one element, and a 16-bit atomicAdd rounds at every add, so the
-- sum would depend on the order the adds land in. They accumulate in float32 and round once.
-- The inputs are multiples of 2^-6 in [-2, 2] (exact in float16 and bfloat16) and at most ~700
-- of them add into one element, so every partial sum is a multiple of 2^-6 below 2^11: 17
-- significant bits, exact in float32 whatever the order. The result must therefore equal the
-- CPU's float64 result rounded once to the dtype, exactly, in the normal and in the reverse
-- thread order (CI runs this spec both ways: FSVC_EMU_ORDER=reverse); a 16-bit atomicAdd fails.
describe("cuda 16-bit index accumulations", function()
  local function grid_values(shape, seed)
    local n, flat, rng = 1, {}, seed
    for _, d in ipairs(shape) do n = n * d end
    for i = 1, n do
      rng = (rng * 1103515245 + 12345) % 2147483648
      flat[i] = (rng % 257 - 128) / 64
    end
    return fsvc.tensor(flat, { dtype = "float64" }):reshape(shape)
  end
  -- many duplicates: most entries pick 0 or 1
  local function crowded_index(n, bound, seed)
    local flat, rng = {}, seed
    for i = 1, n do
      rng = (rng * 1103515245 + 12345) % 2147483648
      flat[i] = rng % 10 < 8 and rng % 2 or rng % bound
    end
    return flat
  end

  local cases = {
    { "index_select backward", function(a, w, idx)
        local y = a:index_select(0, idx)
        local loss = (y * w):sum()
        loss:backward()
        return a.grad
      end, { 5, 8 }, { 600, 8 }, function() return fsvc.tensor(crowded_index(600, 5, 3)) end },
    { "gather backward", function(a, w, idx)
        local y = a:gather(1, idx)
        local loss = (y * w):sum()
        loss:backward()
        return a.grad
      end, { 4, 6 }, { 4, 500 }, function() return fsvc.tensor(crowded_index(2000, 6, 5)):reshape({ 4, 500 }) end },
    { "scatter_add", function(a, w, idx) return a:detach():scatter_add(0, idx, w) end,
      { 3, 7 }, { 700, 7 }, function() return fsvc.tensor(crowded_index(4900, 3, 7)):reshape({ 700, 7 }) end },
    { "pad backward (replicate)", function(a, w)
        local y = a:pad({ 300, 300 }, { mode = "replicate" })
        local loss = (y * w):sum()
        loss:backward()
        return a.grad
      end, { 2, 3 }, { 2, 603 }, function() return nil end },
  }
  for _, dtype in ipairs({ "float16", "bfloat16" }) do
    for ci, case in ipairs(cases) do
      local name, fn, ashape, wshape, index = case[1], case[2], case[3], case[4], case[5]
      it(name .. " in " .. dtype .. " accumulates in float32: the CPU's float64 sum, rounded once", function()
        local a64 = grid_values(ashape, 11 * ci):to(dtype):to("float64") -- exact: rounding changes nothing
        local w64 = grid_values(wshape, 13 * ci):to(dtype):to("float64")
        local idx = index()
        local want = fn(a64:clone():requires_grad_(true), w64, idx)
        local got = fn(a64:to(dtype):cuda():requires_grad_(true), w64:to(dtype):cuda(), idx and idx:cuda())
        assert.are.equal(dtype, got.dtype)
        assert.are.equal("cuda:0", got.device)
        assert(rel_err(got, want) <= 1e-2, string.format("%s %s: relative error %g", name, dtype, rel_err(got, want)))
        local g, w = got:cpu():to("float64"):reshape({ -1 }):tolist(), want:to(dtype):to("float64"):reshape({ -1 }):tolist()
        for i = 1, #w do
          assert(g[i] == w[i], string.format("%s %s: element %d is %s, the float64 sum rounded once is %s", name,
                                             dtype, i, tostring(g[i]), tostring(w[i])))
        end
      end)
    end
  end
end)

describe("cuda factories", function()
  it("create tensors on the device named by `device`", function()
    assert.are.equal("cuda:0", fsvc.zeros({ 2, 3 }, { device = "cuda" }).device)
    assert.are.equal("cuda:0", fsvc.empty({ 2 }, { device = "cuda:0" }).device)
    local f = fsvc.full({ 3 }, 2.5, { device = "cuda", dtype = "float64" })
    assert.are.equal("float64", f.dtype)
    assert.are.same({ 2.5, 2.5, 2.5 }, f:tolist())
    assert.are.same({ 1, 2, 3 }, fsvc.tensor({ 1, 2, 3 }, { device = "cuda" }):tolist())
    assert.are.same({ 0, 1, 2 }, fsvc.arange(3, { device = "cuda" }):tolist())
    assert.are.equal("cuda:0", fsvc.linspace(0, 1, 5, { device = "cuda" }).device)
    local r = fsvc.randn({ 4 }, { device = "cuda", requires_grad = true })
    assert.is_true(r.requires_grad and r.grad_fn == nil) -- a leaf
    -- random numbers come from the CPU generator: the same seed, the same values on every device
    fsvc.manual_seed(3)
    local a = fsvc.rand({ 5 }, { device = "cuda" })
    fsvc.manual_seed(3)
    assert.are.equal(0, fsvc.max_abs_diff(a:cpu(), fsvc.rand({ 5 })))
    assert.are.equal("cuda:0", fsvc.randn_like(a).device)
    assert.are.equal("cuda:0", fsvc.rand_like(a).device)
  end)
end)

describe("cuda graphs of DSP steps", function()
  it("captures the harmonic source and the log-mel loss (device constants, no value read-back)", function()
    local f0 = (fsvc.rand({ 1, 1, 10 }) * 200 + 100):cuda()
    local real = (fsvc.randn({ 1, 4800 }) * 0.1):cuda()
    local g, h, loss = fsvc.cuda.graph(function()
      local src = fsvc.dsp.oscillate_harmonics(f0, 480, 24000, 2)
      return src, fsvc.dsp.log_mel_loss(src:sum(1), real)
    end)
    for _ = 1, 2 do
      local f = fsvc.rand({ 1, 1, 10 }) * 200 + 100
      f0:copy_(f:cuda())
      g:replay()
      local want = fsvc.dsp.oscillate_harmonics(f, 480, 24000, 2)
      assert(fsvc.max_abs_diff(h:cpu(), want) < 1e-4)
      local wl = fsvc.dsp.log_mel_loss(want:sum(1), real:cpu()):item()
      assert(math.abs(loss:item() - wl) < 1e-3 * math.max(1, math.abs(wl)))
    end
  end)
end)

describe("cuda gradient clipping without a host read", function()
  it("returns the norm as a device tensor, equal to the synchronous one, and can be captured", function()
    local nn = fsvc.nn
    local function grads_of(seed)
      fsvc.manual_seed(seed)
      return { (fsvc.randn({ 5, 7 }) * 3):cuda(), (fsvc.randn({ 11 }) * 3):cuda() }
    end
    local a, b = grads_of(1), grads_of(1)
    local n_sync = fsvc.cuda.clip_grad_norm_(a, 1.0)
    local n_dev = fsvc.cuda.clip_grad_norm_(b, 1.0, { sync = false })
    assert.is_true(fsvc.is_tensor(n_dev) and n_dev.is_cuda and n_dev.ndim == 0)
    assert(math.abs(n_dev:item() - n_sync) < 1e-9 * n_sync)
    for i = 1, 2 do assert.are.equal(0, fsvc.max_abs_diff(a[i]:cpu(), b[i]:cpu())) end
    assert.has_error(function() fsvc.cuda.clip_grad_norm_(b, 1.0, { synch = false }) end)
    -- inside a graph, through nn.utils
    local x = fsvc.randn({ 3, 4 }):cuda()
    local w = (fsvc.randn({ 4, 2 }) * 5):cuda():requires_grad_(true)
    local g, total = fsvc.cuda.graph(function()
      w.grad = nil
      x:matmul(w):pow(2):sum():backward()
      return nn.utils.clip_grad_norm_({ w }, 0.5, 2, { sync = false })
    end)
    local xn = fsvc.randn({ 3, 4 })
    x:copy_(xn:cuda())
    g:replay()
    local wc = w:detach():cpu():requires_grad_(true)
    xn:matmul(wc):pow(2):sum():backward()
    local want = nn.utils.clip_grad_norm_({ wc }, 0.5)
    assert(math.abs(total:item() - want) < 1e-4 * want)
    assert(fsvc.max_abs_diff(w.grad:cpu(), wc.grad) < 1e-5)
    assert.has_error(function() nn.utils.clip_grad_norm_({ wc }, 0.5, 2, { sync = false }) end) -- CPU
  end)
end)

describe("fused clip_grad_norm over a gradient list", function()
  it("clips 150 gradients (empty ones, ones spanning several blocks) as the CPU does, in a few launches", function()
    fsvc.manual_seed(21)
    local shapes = {}
    for i = 1, 150 do shapes[i] = { (i * 37) % 101 } end -- sizes 0..100, one of them 0
    shapes[7], shapes[60], shapes[149] = { 40000 }, { 16384 }, { 16385 } -- chunk boundaries of 16384
    for _, dtype in ipairs({ "float32", "float64" }) do
      local cpu, dev = {}, {}
      for i, s in ipairs(shapes) do
        cpu[i] = fsvc.randn(s, { dtype = dtype })
        dev[i] = cpu[i]:cuda()
      end
      local c0 = fsvc.cuda.launch_counts()
      local n_dev = fsvc.cuda.clip_grad_norm_(dev, 1.0)
      local c1 = fsvc.cuda.launch_counts()
      -- 150 tensors in batches of 48: 4 sum-of-squares launches, 1 sum, 4 scaling launches
      assert.is_true(c1.kernels - c0.kernels <= 9, tostring(c1.kernels - c0.kernels))
      local params = {}
      for i, g in ipairs(cpu) do
        params[i] = fsvc.zeros(shapes[i], { dtype = dtype }):requires_grad_(true)
        params[i].grad = g
      end
      local n_cpu = fsvc.nn.utils.clip_grad_norm_(params, 1.0)
      -- the device sums in double; the CPU's float32 norm is within float32's rounding
      assert(math.abs(n_dev - n_cpu) <= (dtype == "float32" and 1e-6 or 1e-12) * n_cpu, dtype .. " " .. n_dev .. " " .. n_cpu)
      for i = 1, #shapes do
        assert(fsvc.max_abs_diff(dev[i]:cpu(), params[i].grad) <= (dtype == "float32" and 1e-6 or 1e-12), dtype .. " " .. i)
      end
      -- under the limit: nothing changes
      local before = dev[7]:cpu()
      local n2 = fsvc.cuda.clip_grad_norm_(dev, 10.0)
      assert(math.abs(n2 - 1) < 1e-5)
      assert.are.equal(0, fsvc.max_abs_diff(dev[7]:cpu(), before))
    end
  end)
end)
