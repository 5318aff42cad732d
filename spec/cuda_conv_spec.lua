-- conv1d / conv_transpose1d on CUDA through each implementation (docs/cuda.md "Convolutions"):
-- im2col + cuBLAS, cuDNN, and the per-shape autotuner ("auto"), against the CPU, values and all
-- three gradients; the recorded choices; capture in a CUDA graph. Runs on a GPU or the CPU
-- emulation (FSVC_CUDA=EMULATE, whose cuDNN is gpu/emu/emu_dnn.cpp); without a device only the
-- argument checks run.

describe("conv backend settings", function()
  it("names the three backends and refuses others", function()
    local before = fsvc.cuda.get_conv_backend()
    assert.truthy(before == "auto" or before == "im2col" or before == "cudnn", before)
    local ok, err = pcall(fsvc.cuda.set_conv_backend, "winograd")
    assert.is_false(ok)
    assert.truthy(tostring(err):find("invalid option 'winograd'", 1, true), err)
    assert.are.equal("table", type(fsvc.cuda.conv_choices()))
    assert.are.equal("boolean", type(fsvc.cuda.cudnn_is_available()))
    if not fsvc.cuda.cudnn_is_available() then
      assert.truthy(#fsvc.cuda.cudnn_unavailable_reason() > 0)
      assert.are.equal(0, fsvc.cuda.cudnn_version())
    end
  end)
end)

if not fsvc.cuda.is_available() then
  describe("cuda convolutions", function()
    print("SKIP: no CUDA device (" .. fsvc.cuda.unavailable_reason() .. ")")
    pending("SKIP: no CUDA device")
  end)
  return
end

local emulated = fsvc.cuda.get_device_name(0):find("emulation", 1, true) ~= nil

local function max_rel(a, b)
  a, b = a:cpu():to("float64"), b:cpu():to("float64")
  return (a - b):abs():max():item() / math.max(b:abs():max():item(), 1e-30)
end

-- shapes: {B, Cin, T, Cout, K, opts, transposed, output_padding}
local CASES = {
  { 2, 6, 40, 8, 3, { padding = 1 } },
  { 3, 8, 37, 12, 5, { stride = 2, padding = 2, dilation = 2, groups = 4 } },
  { 1, 8, 50, 8, 41, { stride = 2, padding = 20, groups = 8 } },       -- more groups than samples
  { 2, 4, 30, 6, 1, {} },                                               -- 1x1
  { 2, 6, 25, 6, 3, { dilation = 9, padding = 9 } },
  { 2, 8, 17, 4, 4, { stride = 3, padding = 1, groups = 2 }, true, 2 }, -- transposed, output_padding
  { 1, 4, 9, 6, 5, { stride = 5 }, true, 0 },
  { nil, 5, 33, 7, 3, { padding = 2 } },                                -- 2-D [C, T] input
}

local function case_name(c)
  return string.format("%s%s x%d k%d s%d p%d d%d g%d", c[7] and "transposed " or "",
    c[1] and ("B" .. c[1] .. " ") or "[C,T] ", c[2], c[5], c[6].stride or 1, c[6].padding or 0,
    c[6].dilation or 1, c[6].groups or 1)
end

-- values and gradients of the case on the CPU (float64) and on CUDA (dtype); max relative errors
local function compare(c, dtype, seed)
  fsvc.manual_seed(seed)
  local B, cin, T, cout, K, o, tr = c[1], c[2], c[3], c[4], c[5], c[6], c[7]
  local g = o.groups or 1
  local xs = B and { B, cin, T } or { cin, T }
  local ws = tr and { cin, cout // g, K } or { cout, cin // g, K }
  local x0, w0, b0 = fsvc.randn(xs), fsvc.randn(ws), fsvc.randn({ cout })
  -- the same rounded inputs on both sides
  x0, w0, b0 = x0:to(dtype):to("float64"), w0:to(dtype):to("float64"), b0:to(dtype):to("float64")
  local function run(x, w, b)
    x:requires_grad_(true); w:requires_grad_(true); b:requires_grad_(true)
    local opts = { stride = o.stride, padding = o.padding, dilation = o.dilation, groups = o.groups }
    if tr then opts.output_padding = c[8] end
    local y = tr and x:conv_transpose1d(w, b, opts) or x:conv1d(w, b, opts)
    return y, x, w, b
  end
  local y, x, w, b = run(x0:clone(), w0:clone(), b0:clone())
  local gy = fsvc.randn(y.shape):to(dtype):to("float64")
  y:backward(gy)
  local yc, xc, wc, bc = run(x0:to(dtype):cuda(), w0:to(dtype):cuda(), b0:to(dtype):cuda())
  yc:backward(gy:to(dtype):cuda())
  assert.are.same(y.shape, yc.shape)
  return { y = max_rel(yc, y), x = max_rel(xc.grad, x.grad), w = max_rel(wc.grad, w.grad), b = max_rel(bc.grad, b.grad) }
end

local BOUND = { float64 = 1e-10, float32 = 1e-5, float16 = 1e-2, bfloat16 = 1e-2 }

for _, backend in ipairs({ "im2col", "cudnn", "auto" }) do
  describe("conv on cuda, backend " .. backend, function()
    setup(function() fsvc.cuda.set_conv_backend(backend) end)
    teardown(function() fsvc.cuda.set_conv_backend("auto") end)
    for _, dtype in ipairs({ "float64", "float32", "float16", "bfloat16" }) do
      for i, c in ipairs(CASES) do
        it(dtype .. " " .. case_name(c), function()
          local e = compare(c, dtype, 100 + i)
          for k, v in pairs(e) do
            assert.is_true(v <= BOUND[dtype], string.format("%s: %s error %.3g > %g", case_name(c), k, v, BOUND[dtype]))
          end
        end)
      end
    end
    it("TF32 (set_allow_tf32) float32 within 1e-3", function()
      fsvc.cuda.set_allow_tf32(true)
      local ok, e = pcall(compare, CASES[2], "float32", 7)
      fsvc.cuda.set_allow_tf32(false)
      assert.is_true(ok, e)
      for k, v in pairs(e) do assert.is_true(v <= 1e-3, k .. " " .. v) end
    end)
  end)
end

describe("conv choices", function()
  after_each(function() fsvc.cuda.set_conv_backend("auto") end)

  it("im2col records nothing; cudnn records what ran; set_conv_backend clears the record", function()
    fsvc.cuda.set_conv_backend("im2col")
    compare(CASES[1], "float32", 1)
    assert.are.equal(0, #fsvc.cuda.conv_choices())
    fsvc.cuda.set_conv_backend("cudnn")
    compare(CASES[1], "float32", 1)
    local ch = fsvc.cuda.conv_choices()
    assert.are.equal(3, #ch) -- forward, backward_data, backward_filter
    local passes = {}
    for _, r in ipairs(ch) do
      passes[r.pass] = true
      assert.are.equal("float32", r.dtype)
      assert.are.equal(2, r.batch); assert.are.equal(6, r.in_channels); assert.are.equal(8, r.out_channels)
      assert.are.equal(40, r.length); assert.are.equal(40, r.out_length); assert.are.equal(3, r.kernel)
      if fsvc.cuda.cudnn_is_available() then
        assert.are.equal("cudnn", r.backend, r.note)
      else
        assert.are.equal("im2col", r.backend)
        assert.truthy(r.note:find("cuDNN refused", 1, true), r.note)
      end
    end
    assert.is_true(passes.forward and passes.backward_data and passes.backward_filter)
    fsvc.cuda.set_conv_backend("auto")
    assert.are.equal(0, #fsvc.cuda.conv_choices())
  end)

  it("auto times both and keeps the faster, once per shape", function()
    fsvc.cuda.set_conv_backend("auto")
    compare(CASES[2], "float32", 2)
    compare(CASES[2], "float32", 3) -- the same shapes again: no new records
    local ch = fsvc.cuda.conv_choices()
    assert.are.equal(3, #ch)
    for _, r in ipairs(ch) do
      assert.is_number(r.im2col_ms)
      if fsvc.cuda.cudnn_is_available() and r.cudnn_ms then
        assert.are.equal(r.cudnn_ms < r.im2col_ms and "cudnn" or "im2col", r.backend)
        assert.is_number(r.cudnn_algo)
      else
        assert.are.equal("im2col", r.backend)
        assert.truthy(#r.note > 0)
      end
    end
  end)

  if emulated then
    it("survives a cuDNN algorithm that the heuristic lists but refuses when run (emulation)", function()
      -- emu_dnn.cpp: forward IMPLICIT_PRECOMP_GEMM (1) is listed for dilated convolutions and refuses them
      fsvc.cuda.set_conv_backend("auto")
      local e = compare(CASES[5], "float64", 4)
      for k, v in pairs(e) do assert.is_true(v <= 1e-10, k .. " " .. v) end
      local fwd
      for _, r in ipairs(fsvc.cuda.conv_choices()) do if r.pass == "forward" then fwd = r end end
      assert.truthy(fwd.note:find("algorithm 1", 1, true), fwd.note)
      assert.truthy(fwd.cudnn_ms, "another algorithm was timed")
      assert.are_not.equal(1, fwd.cudnn_algo)
    end)
  end
end)

describe("conv in a CUDA graph", function()
  after_each(function() fsvc.cuda.set_conv_backend("auto") end)
  for _, backend in ipairs({ "auto", "cudnn", "im2col" }) do
    it("captures forward and backward with backend " .. backend .. " and replays on new input", function()
      fsvc.cuda.set_conv_backend(backend)
      fsvc.manual_seed(11)
      local conv = fsvc.nn.Conv1d(8, 12, 5, { padding = 2, groups = 2 }):to("cuda")
      local x = fsvc.randn({ 2, 8, 30 }):cuda()
      local function step()
        for _, p in ipairs(conv:parameters()) do p.grad = nil end
        local y = conv(x)
        y:pow(2):sum():backward()
        return y
      end
      local g = fsvc.cuda.CUDAGraph()
      local y = g:capture(step, { warmup = 1 })
      local x2 = fsvc.randn({ 2, 8, 30 })
      x:copy_(x2:cuda())
      g:replay()
      fsvc.cuda.synchronize()
      -- the same step eagerly on the CPU
      local cpu = fsvc.nn.Conv1d(8, 12, 5, { padding = 2, groups = 2 })
      cpu:load_state_dict(conv:to("cpu"):state_dict())
      conv:to("cuda")
      local yr = cpu(x2)
      yr:pow(2):sum():backward()
      assert.is_true(max_rel(y, yr) < 1e-5)
      assert.is_true(max_rel(conv.weight.grad, cpu.weight.grad) < 1e-5)
    end)
  end
end)
