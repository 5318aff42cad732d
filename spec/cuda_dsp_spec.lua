-- The STFT family on CUDA tensors (cuFFT; on the CPU emulation under FSVC_CUDA=EMULATE): every
-- function against the CPU on random signals of several lengths, odd and even n_fft, values and
-- gradients (float64 1e-9; float32 1e-5 normwise relative to the CPU's float64, or twice the
-- CPU float32's own error, or twice what a one-ulp change of the float32 inputs makes, where that
-- is larger), plus finite-difference gradient
-- checks of rfft through CUDA. Without a device: one pending test.
local dsp = fsvc.dsp

if not fsvc.cuda.is_available() then
  describe("dsp on cuda", function() pending("SKIP: no CUDA device") end)
  return
end

-- max |a - b| / max(max |b|, tiny)
local function rel_err(a, b)
  local ha, hb = a:cpu():double(), b:cpu():double()
  assert.are.same(hb.shape, ha.shape)
  if hb:numel() == 0 then return 0 end
  local num = (ha - hb):abs():max():item()
  if num ~= num then return math.huge end
  return num / math.max(hb:abs():max():item(), 1e-30)
end

local tol = { float64 = 1e-9, float32 = 1e-5 }

-- fn(inputs...) on the CPU and on CUDA from the same values; compares the output and the
-- gradients of sum(out * w) for a fixed w. float32 results on CUDA are compared with the CPU's
-- float64 ones (the truth up to 1e-15): the CPU's own float32 path is the less accurate of the
-- two (KissFFT's float32 inverse FFTs put the n_fft 1024 STFT gradient 1.4e-5 from float64,
-- the emulated cuFFT 7e-7), so comparing two float32 results would test KissFFT, not CUDA.
local function compare(fn, inputs, dt, what)
  local function run(device, rdt)
    local xs = {}
    for i, x in ipairs(inputs) do
      xs[i] = x:to(rdt):to(device):detach():requires_grad_(true)
    end
    local out = fn(table.unpack(xs))
    assert.are.equal(device == "cpu" and "cpu" or "cuda:0", out.device)
    assert.are.equal(rdt, out.dtype)
    local w = fsvc.linspace(-1, 1, math.max(out:numel(), 1), { dtype = rdt }):reshape(out.shape):to(device)
    ;(out * w):sum():backward()
    local gs = {}
    for i, x in ipairs(xs) do gs[i] = x.grad end
    return out, gs
  end
  local co, cg = run("cpu", "float64")
  local go, gg = run("cuda", dt)
  -- float32 may also be as far from float64 as the CPU's float32 is, or as a change of one
  -- float32 ulp in the inputs moves the float64 answer (twice either, at most): the losses' log|X|
  -- and |a - b| amplify the rounding of the float32 inputs themselves. On an H200 the
  -- multiscale STFT loss's float32 gradient was 3.8e-5 from float64, the CPU's float32 9.3e-6,
  -- and the float64 gradient of one-ulp-perturbed inputs up to 4e-5 (the function's conditioning).
  local fo, fg, po, pg
  if dt == "float32" then
    fo, fg = run("cpu", dt)
    po, pg = 0, {}
    local clean = inputs
    for _ = 1, 8 do -- the spread of single perturbations is wide (5e-6 to 4e-5 in that case)
      inputs = {}
      for i, x in ipairs(clean) do
        inputs[i] = x * (fsvc.rand(x.shape, { dtype = "float64" }) * 2 - 1):mul(2 ^ -23):add(1)
      end
      local o, gs = run("cpu", "float64")
      po = math.max(po, rel_err(o, co))
      for i, g in ipairs(gs) do pg[i] = math.max(pg[i] or 0, rel_err(g, cg[i])) end
    end
    inputs = clean
  end
  local function check(got, ref, cpu32, perturbed, label)
    local e = rel_err(got, ref)
    local limit = tol[dt]
    if cpu32 then limit = math.max(limit, 2 * rel_err(cpu32, ref), 2 * perturbed) end
    assert(e <= limit, string.format("%s %s: %s relative error %g > %g", what, dt, label, e, limit))
  end
  check(go, co, fo, po, "output")
  for i, g in ipairs(cg) do
    assert(gg[i], what .. ": no CUDA gradient for input " .. i)
    assert.are.equal("cuda:0", gg[i].device)
    check(gg[i], g, fg and fg[i], pg and pg[i], "gradient " .. i)
  end
end

local dtypes = { "float64", "float32" }

describe("dsp on cuda", function()
  it("rfft matches the CPU for even, odd, tiny and strided inputs", function()
    fsvc.manual_seed(1)
    for _, n in ipairs({ 1, 2, 3, 7, 8, 9, 16, 30, 64, 100, 1024 }) do
      for _, dt in ipairs(dtypes) do
        compare(dsp.rfft, { fsvc.randn({ 3, n }, { dtype = "float64" }) }, dt, "rfft n=" .. n)
      end
    end
    compare(dsp.rfft, { fsvc.randn({ 2, 3, 10 }, { dtype = "float64" }) }, "float64", "rfft 3-d")
    compare(function(x) return dsp.rfft(x:transpose(0, 1)) end, { fsvc.randn({ 12, 3 }, { dtype = "float64" }) },
            "float64", "rfft strided")
    compare(function(x) return dsp.rfft(x:narrow(1, 1, 9)) end, { fsvc.randn({ 2, 11 }, { dtype = "float32" }) },
            "float32", "rfft at an odd offset")
  end)

  it("rfft equals a direct DFT on CUDA", function()
    local n = 12
    local x = fsvc.randn({ n }, { dtype = "float64" })
    local X = dsp.rfft(x:cuda()):cpu()
    local xv = x:tolist()
    for f = 0, n // 2 do
      local re, im = 0, 0
      for k = 0, n - 1 do
        re = re + xv[k + 1] * math.cos(2 * math.pi * f * k / n)
        im = im - xv[k + 1] * math.sin(2 * math.pi * f * k / n)
      end
      assert(math.abs(X:get(f, 0) - re) < 1e-12 and math.abs(X:get(f, 1) - im) < 1e-12)
    end
  end)

  it("rfft's gradient through CUDA passes finite differences (float64)", function()
    fsvc.manual_seed(2)
    for _, shape in ipairs({ { 3, 8 }, { 2, 9 }, { 4, 1 }, { 2, 2 }, { 1, 30 } }) do
      local x = fsvc.randn(shape, { dtype = "float64" }):requires_grad_(true)
      local ok, report = fsvc.gradcheck(function(a) return dsp.rfft(a:cuda()):cpu() end, { x })
      assert(ok, "rfft " .. table.concat(shape, "x") .. ": " .. report)
    end
  end)

  it("stft matches the CPU for every padding, odd and even n_fft, several lengths", function()
    fsvc.manual_seed(3)
    local option_sets = {
      { n_fft = 16, hop_length = 4 },
      { n_fft = 15, hop_length = 4 },                                   -- odd n_fft
      { n_fft = 16, hop_length = 5, pad_mode = "constant" },
      { n_fft = 16, hop_length = 3, pad_mode = "replicate" },
      { n_fft = 16, hop_length = 4, center = false },
      { n_fft = 16, hop_length = 4, onesided = false },
      { n_fft = 9, hop_length = 2, onesided = false },                  -- odd, two-sided
      { n_fft = 20, hop_length = 5, win_length = 12 },                  -- short window
      { n_fft = 64, hop_length = 16 },
    }
    for _, L in ipairs({ 33, 100, 257 }) do
      for _, o in ipairs(option_sets) do
        for _, dt in ipairs(dtypes) do
          local what = string.format("stft L=%d n_fft=%d hop=%d", L, o.n_fft, o.hop_length)
          compare(function(x) return dsp.stft(x, o) end, { fsvc.randn({ 2, L }, { dtype = "float64" }) }, dt, what)
        end
      end
    end
    -- 1-d input, strided input, a custom window given on either device
    compare(function(x) return dsp.stft(x, { n_fft = 8, hop_length = 2 }) end, { fsvc.randn({ 40 }, { dtype = "float64" }) },
            "float64", "stft 1-d")
    compare(function(x) return dsp.stft(x:transpose(0, 1), { n_fft = 8, hop_length = 2 }) end,
            { fsvc.randn({ 40, 2 }, { dtype = "float64" }) }, "float64", "stft strided")
    local w = fsvc.tensor({ 0.1, 0.5, 1.0, 0.7, 0.3, 0.2 }, { dtype = "float64" })
    compare(function(x) return dsp.stft(x, { n_fft = 6, hop_length = 2, window = w }) end,
            { fsvc.randn({ 2, 30 }, { dtype = "float64" }) }, "float64", "stft CPU window")
    compare(function(x) return dsp.stft(x, { n_fft = 6, hop_length = 2, window = w:to(x.device) }) end,
            { fsvc.randn({ 2, 30 }, { dtype = "float64" }) }, "float64", "stft window on the device")
    -- the decoder's size, once (float32)
    compare(function(x) return dsp.stft(x, { n_fft = 1024, hop_length = 256 }) end,
            { fsvc.randn({ 2, 4000 }, { dtype = "float64" }) }, "float32", "stft 1024")
  end)

  it("istft matches the CPU (values and the spectrum's gradient) for every padding and length", function()
    -- random spectra, not stft outputs: istft of any spectrum (imaginary parts of bins 0 and
    -- n/2 included, which it ignores) must agree, and so must the gradient that reaches them
    fsvc.manual_seed(21)
    local cases = {
      { n_fft = 16, hop_length = 4, T = 9 },
      { n_fft = 15, hop_length = 5, T = 7 },                       -- odd n_fft: no Nyquist bin
      { n_fft = 16, hop_length = 4, T = 9, center = false,        -- Hann's w[0] = 0 fails NOLA here
        window = fsvc.rand({ 16 }, { dtype = "float64" }) + 0.5 },
      { n_fft = 16, hop_length = 4, T = 9, length = 50 },          -- longer than the frames give
      { n_fft = 16, hop_length = 4, T = 9, length = 13 },          -- cropped
      { n_fft = 16, hop_length = 4, win_length = 10, T = 6 },      -- window padded to n_fft
      { n_fft = 8, hop_length = 8, T = 5, window = fsvc.ones({ 8 }) }, -- hop = n_fft
    }
    for _, c in ipairs(cases) do
      local o = { n_fft = c.n_fft, hop_length = c.hop_length, win_length = c.win_length,
                  center = c.center, length = c.length, window = c.window }
      for _, dt in ipairs(dtypes) do
        local what = string.format("istft n_fft=%d hop=%d T=%d len=%s center=%s", c.n_fft,
                                   c.hop_length, c.T, tostring(c.length), tostring(c.center))
        compare(function(s) return dsp.istft(s, o) end,
                { fsvc.randn({ 2, c.n_fft // 2 + 1, c.T, 2 }, { dtype = "float64" }) }, dt, what)
      end
    end
    compare(function(s) return dsp.istft(s, { n_fft = 16, hop_length = 4 }) end,
            { fsvc.randn({ 9, 6, 2 }, { dtype = "float64" }) }, "float64", "istft [F, T, 2]")
    compare(function(s) return dsp.istft(s:transpose(1, 2), { n_fft = 16, hop_length = 4 }) end,
            { fsvc.randn({ 2, 6, 9, 2 }, { dtype = "float64" }) }, "float64", "istft strided")
    local w = fsvc.rand({ 12 }, { dtype = "float64" }) + 0.5
    compare(function(s) return dsp.istft(s, { n_fft = 12, hop_length = 3, window = w:to(s.device) }) end,
            { fsvc.randn({ 1, 7, 8, 2 }, { dtype = "float64" }) }, "float64", "istft window on the device")
    compare(function(s) return dsp.istft(s, { n_fft = 1024, hop_length = 256 }) end,
            { fsvc.randn({ 2, 513, 12, 2 }, { dtype = "float64" }) }, "float32", "istft 1024")
  end)

  it("istft inverts stft on CUDA, also under autocast (float32 result)", function()
    fsvc.manual_seed(22)
    local x = fsvc.randn({ 2, 3000 }):cuda()
    local o = { n_fft = 512, hop_length = 128 }
    local y = dsp.istft(dsp.stft(x, o), { n_fft = 512, hop_length = 128, length = 3000 })
    assert.are.equal("cuda:0", y.device)
    assert(rel_err(y, x) <= 1e-5, "istft(stft(x)) differs from x by " .. rel_err(y, x))
    local z = fsvc.autocast("float16", function() return dsp.istft(dsp.stft(x, o), o) end)
    assert.are.equal("float32", z.dtype)
    assert(rel_err(z, y:narrow(1, 0, z.shape[2])) <= 1e-5, "autocast changed istft")
  end)

  it("magnitude matches the CPU, gradient 0 where |X| = 0", function()
    fsvc.manual_seed(4)
    for _, p in ipairs({ 1, 2, 0.5, 3 }) do
      for _, dt in ipairs(dtypes) do
        local s = fsvc.randn({ 2, 5, 7, 2 }, { dtype = "float64" })
        s:_set_flat(0, 0); s:_set_flat(1, 0) -- one |X| = 0
        compare(function(a) return dsp.magnitude(a, p) end, { s }, dt, "magnitude p=" .. p)
      end
    end
    local z = fsvc.zeros({ 3, 2 }, { dtype = "float64" }):cuda():requires_grad_(true)
    local m = dsp.magnitude(z, 1)
    m:sum():backward()
    assert.are.equal(0, z.grad:abs():max():item())
    assert.are.equal(0, m:abs():max():item())
  end)

  it("spectrogram, mel_spectrogram and energy match the CPU", function()
    fsvc.manual_seed(5)
    for _, L in ipairs({ 64, 201 }) do
      for _, dt in ipairs(dtypes) do
        compare(function(x) return dsp.spectrogram(x, 16, 4) end, { fsvc.randn({ 2, L }, { dtype = "float64" }) }, dt,
                "spectrogram L=" .. L)
        compare(function(x)
          return dsp.mel_spectrogram(x, { sample_rate = 8000, n_fft = 32, hop_length = 8, n_mels = 6 })
        end, { fsvc.randn({ 2, L }, { dtype = "float64" }) }, dt, "mel htk L=" .. L)
        compare(function(x)
          return dsp.mel_spectrogram(x, { sample_rate = 8000, n_fft = 31, hop_length = 8, n_mels = 5,
                                          mel_scale = "slaney", norm = "slaney", power = 1 })
        end, { fsvc.randn({ L }, { dtype = "float64" }) }, dt, "mel slaney L=" .. L)
        compare(function(x) return dsp.energy(x, 16) end, { fsvc.randn({ 2, L }, { dtype = "float64" }) }, dt,
                "energy L=" .. L)
      end
    end
  end)

  it("log_mel_loss and multiscale_stft_loss match the CPU, values and gradients", function()
    fsvc.manual_seed(6)
    for _, L in ipairs({ 1200, 2100 }) do
      for _, dt in ipairs(dtypes) do
        local real = fsvc.randn({ 2, L }, { dtype = "float64" }) * 0.1
        compare(function(a, b) return dsp.log_mel_loss(a, b) end, { fsvc.randn({ 2, L }, { dtype = "float64" }), real },
                dt, "log_mel_loss L=" .. L)
        compare(function(a, b) return dsp.multiscale_stft_loss(a, b) end,
                { fsvc.randn({ 2, L }, { dtype = "float64" }), real }, dt, "multiscale_stft_loss L=" .. L)
      end
    end
  end)

  it("log_mel_loss zeroes non-finite log-mels on CUDA as on the CPU", function()
    local fake = fsvc.randn({ 1, 1200 }, { dtype = "float64" })
    local real = fsvc.randn({ 1, 1200 }, { dtype = "float64" })
    local bad = fake:clone()
    bad:_set_flat(600, 0 / 0)
    local c = dsp.log_mel_loss(bad, real):item()
    local g = dsp.log_mel_loss(bad:cuda(), real:cuda()):item()
    assert(c == c and math.abs(c - g) <= 1e-9 * math.abs(c), string.format("cpu %g cuda %g", c, g))
  end)

  it("captures the log-mel loss's forward and backward in a CUDA graph, replays equal to eager", function()
    -- the backward of rfft uploads nothing (its weights are a cached device constant): a
    -- training step's loss can be captured
    fsvc.manual_seed(8)
    local real = (fsvc.randn({ 2, 1200 }) * 0.1):cuda()
    local fake = fsvc.randn({ 2, 1200 }):cuda():requires_grad_(true)
    local g, loss = fsvc.cuda.graph(function()
      fake.grad = nil
      local l = dsp.log_mel_loss(fake, real)
      l:backward()
      return l
    end, { warmup = 2 })
    for _ = 1, 2 do
      fsvc.no_grad(function() fake:copy_(fsvc.randn({ 2, 1200 }):cuda()) end)
      g:replay()
      local again = fake:detach():clone():requires_grad_(true)
      local want = dsp.log_mel_loss(again, real)
      want:backward()
      assert(rel_err(loss, want) <= 1e-6, "captured loss differs from the eager one")
      assert(rel_err(fake.grad, again.grad) <= 1e-6, "captured gradient differs from the eager one")
    end
  end)

  it("keeps the CPU-only functions and mixed devices to clear errors", function()
    local x = fsvc.randn({ 2, 64 }):cuda()
    local sst = dsp.StreamSTFT({ n_fft = 16, hop_length = 4 })
    local ok, err = pcall(sst.process, sst, x)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("CPU", 1, true), err)
    ok, err = pcall(dsp.log_mel_loss, fsvc.randn({ 1, 1200 }):cuda(), fsvc.randn({ 1, 1200 }))
    assert.is_false(ok)
    assert.truthy(tostring(err):find("different devices", 1, true), err)
    ok, err = pcall(dsp.rfft, fsvc.zeros({ 2, 3 }, { dtype = "int64" }):cuda())
    assert.is_false(ok)
    assert.truthy(tostring(err):find("rfft: input must be float32 or float64", 1, true), err)
  end)

  it("reuses and evicts cuFFT plans (more sizes than the cache holds)", function()
    fsvc.manual_seed(7)
    for round = 1, 2 do
      for n = 3, 14 do
        local x = fsvc.randn({ 2, n }, { dtype = "float64" })
        local e = rel_err(dsp.rfft(x:cuda()), dsp.rfft(x))
        assert(e <= 1e-12, string.format("round %d n=%d: %g", round, n, e))
      end
    end
  end)
end)
