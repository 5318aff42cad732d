-- The harmonic source and the pitch helpers on CUDA tensors (core/dsp/dsp_device_pitch.c; on the
-- CPU emulation under FSVC_CUDA=EMULATE): oscillate_harmonics, pitch_shift, freq2id, id2freq and
-- interpolate_f0 against the CPU on several shapes, float32 and float64, their error messages, a
-- finite-difference gradient check of pitch_shift through CUDA, and the decoder moved with
-- :to("cuda") running forward and backward with no host DSP against the CPU.
-- Tolerances: normwise relative to the CPU's result of the same dtype, float64 1e-10 (the device
-- sums the phase in another order than the CPU: ~1e-12 cycles), float32 1e-5 (both round the
-- same float64 arithmetic once: ~1e-7 in practice). Phases in cycles are compared on the circle,
-- since a phase within rounding of a whole cycle may be ~0 on one device and ~1 on the other.
-- Without a device: one pending test.
local dsp = fsvc.dsp

if not fsvc.cuda.is_available() then
  describe("harmonic source and pitch helpers on cuda", function() pending("SKIP: no CUDA device") end)
  return
end

local function host64(t) return (t.is_cuda and t:cpu() or t):double() end

-- ||a - b|| / max(||b||, tiny), on the host in float64
local function normrel(a, b)
  local ha, hb = host64(a), host64(b)
  assert.are.same(hb.shape, ha.shape)
  if hb:numel() == 0 then return 0 end
  local num = (ha - hb):pow(2):sum():sqrt():item()
  if num ~= num then return math.huge end
  return num / math.max(hb:pow(2):sum():sqrt():item(), 1e-300)
end

-- max over elements of the distance on the unit circle between two phases in cycles
local function circular_max(a, b)
  local d = (host64(a) - host64(b)):abs()
  return fsvc.minimum(d, 1 - d):max():item()
end

local tol = { float64 = 1e-10, float32 = 1e-5 }
local phase_tol = { float64 = 1e-9, float32 = 1e-6 }
local dtypes = { "float64", "float32" }

-- f0 [B, 1, T] in Hz: voiced values up to 600 Hz, some unvoiced (0), a few negative and a few
-- below the 10 Hz mask
local function random_f0(B, T, seed)
  fsvc.manual_seed(seed)
  local f = fsvc.rand({ B, 1, T }, { dtype = "float64" }) * 650 - 50
  local keep = fsvc.rand({ B, 1, T }, { dtype = "float64" }):gt(0.2)
  return fsvc.where(keep, f, 0)
end

local function check_osc(f0, F, sr, H, minf, dt, label)
  local x = f0:to(dt)
  local opts = { min_frequency = minf, return_phase = true }
  local h, ph = dsp.oscillate_harmonics(x, F, sr, H, opts)
  local hd, phd = dsp.oscillate_harmonics(x:cuda(), F, sr, H, opts)
  assert.are.equal("cuda:0", hd.device)
  assert.are.equal("cuda:0", phd.device)
  assert.are.equal(dt, hd.dtype)
  assert.are.equal(dt, phd.dtype)
  local e = normrel(hd, h)
  assert(e <= tol[dt], string.format("%s %s: harmonics relative error %g", label, dt, e))
  local p = circular_max(phd, ph)
  assert(p <= phase_tol[dt], string.format("%s %s: phase error %g cycles", label, dt, p))
  -- in [0, 1); a float32 phase within half an ulp of 1 rounds to 1 (on the CPU too)
  local lo, hi = phd:min():item(), phd:max():item()
  assert(lo >= 0 and (hi < 1 or (dt == "float32" and hi <= 1)),
    string.format("%s %s: phase outside [0, 1): %g %g", label, dt, lo, hi))
end

describe("harmonic source and pitch helpers on cuda", function()
  it("oscillate_harmonics matches the CPU (harmonics and phases, several shapes)", function()
    local cases = {
      { B = 2, T = 5, F = 48, sr = 4800, H = 3, minf = 10 },
      { B = 1, T = 1, F = 1, sr = 100, H = 0, minf = 10 },
      { B = 3, T = 7, F = 480, sr = 24000, H = 0, minf = 10 },
      { B = 1, T = 4, F = 7, sr = 1000, H = 5, minf = 10 },
      { B = 2, T = 3, F = 5, sr = 1300, H = 1, minf = 0 },
      { B = 1, T = 6, F = 480, sr = 24000, H = 8, minf = 50 },
    }
    for i, c in ipairs(cases) do
      local f0 = random_f0(c.B, c.T, 10 + i)
      for _, dt in ipairs(dtypes) do
        check_osc(f0, c.F, c.sr, c.H, c.minf, dt,
          string.format("B=%d T=%d F=%d H=%d", c.B, c.T, c.F, c.H))
      end
    end
    -- a strided f0 (a view of a wider track) and a constant tone whose phase hits whole cycles
    local wide = random_f0(2, 12, 30)
    check_osc(wide:narrow(2, 3, 5), 48, 4800, 2, 10, "float64", "strided")
    check_osc(fsvc.full({ 1, 1, 4 }, 100, { dtype = "float64" }), 48, 4800, 1, 10, "float64", "constant")
    check_osc(fsvc.full({ 1, 1, 4 }, 100, { dtype = "float32" }), 48, 4800, 1, 10, "float32", "constant")
  end)

  it("oscillate_harmonics keeps the phase on long signals (20 s at 24 kHz)", function()
    local f0 = random_f0(2, 1000, 40)
    check_osc(f0, 480, 24000, 0, 10, "float64", "20 s")
    check_osc(f0, 480, 24000, 1, 10, "float32", "20 s")
  end)

  it("pitch_shift matches the CPU, values and gradients, and passes finite differences", function()
    fsvc.manual_seed(3)
    for _, shape in ipairs({ { 7 }, { 2, 1, 9 }, { 3, 4 } }) do
      for _, dt in ipairs(dtypes) do
        for _, s in ipairs({ 0, 12, -7.5 }) do
          local base = (fsvc.rand(shape, { dtype = "float64" }) * 400):to(dt)
          local w = fsvc.randn(shape, { dtype = dt })
          local a = base:clone():requires_grad_(true)
          local b = base:cuda():requires_grad_(true)
          local ya, yb = dsp.pitch_shift(a, s), dsp.pitch_shift(b, s)
          assert.are.equal("cuda:0", yb.device)
          ;(ya * w):sum():backward()
          ;(yb * w:cuda()):sum():backward()
          assert(normrel(yb, ya) <= tol[dt], dt .. " pitch_shift value")
          assert.are.equal("cuda:0", b.grad.device)
          assert(normrel(b.grad, a.grad) <= tol[dt], dt .. " pitch_shift gradient")
        end
      end
    end
    local x = (fsvc.rand({ 2, 1, 5 }, { dtype = "float64" }) * 300):requires_grad_(true)
    local ok, report = fsvc.gradcheck(function(a) return dsp.pitch_shift(a:cuda(), 3.5):cpu() end, { x })
    assert(ok, "pitch_shift gradcheck on cuda: " .. tostring(report))
  end)

  it("freq2id equals the CPU exactly (edges, random tracks, strided input)", function()
    local edges = { 0, -5, 1e-30, 9.99, 10, 10.0001, 10.15, 55.5, 110, 220, 440, 1e6, math.huge,
      -math.huge }
    fsvc.manual_seed(4)
    for _, dt in ipairs(dtypes) do
      local inputs = {
        fsvc.tensor(edges, { dtype = dt }),
        (fsvc.rand({ 2, 1, 300 }, { dtype = "float64" }) * math.log(20000)):exp():to(dt),
        ((fsvc.rand({ 6, 4 }, { dtype = "float64" }) * 900):to(dt)):t(),
      }
      for i, f in ipairs(inputs) do
        local c, g = dsp.freq2id(f), dsp.freq2id(f:cuda())
        assert.are.equal("cuda:0", g.device)
        assert.are.equal("int64", g.dtype)
        assert.are.same(c.shape, g.shape)
        assert.are.same(c:tolist(), g:cpu():tolist(), dt .. " input " .. i)
      end
    end
  end)

  it("id2freq matches the CPU for every class, int64 and float ids, both output dtypes", function()
    local ids = fsvc.arange(512, { dtype = "int64" })
    for _, idt in ipairs({ "int64", "float64", "float32" }) do
      local x = ids:to(idt):view(2, 1, 256)
      for _, odt in ipairs(dtypes) do
        local c = dsp.id2freq(x, { dtype = odt })
        local g = dsp.id2freq(x:cuda(), { dtype = odt })
        assert.are.equal("cuda:0", g.device)
        assert.are.equal(odt, g.dtype)
        local e = normrel(g, c)
        local limit = odt == "float64" and 1e-13 or 2e-7
        assert(e <= limit, string.format("id2freq %s -> %s: %g", idt, odt, e))
        assert.are.equal(0, g:cpu():view(-1):tolist()[1]) -- class 0 is unvoiced
      end
    end
    -- fractional classes (a soft argmax) are allowed as on the CPU
    local frac = fsvc.tensor({ 0.5, 100.25, 510.9 }, { dtype = "float64" })
    assert(normrel(dsp.id2freq(frac:cuda(), { dtype = "float64" }), dsp.id2freq(frac, { dtype = "float64" })) <= 1e-13)
  end)

  it("interpolate_f0 matches the CPU ([N], [B, N], [B, C, N], up and down, strided)", function()
    fsvc.manual_seed(5)
    local cases = { { { 7 }, 50 }, { { 2, 9 }, 4 }, { { 2, 3, 5 }, 5 }, { { 1 }, 3 }, { { 3, 1, 10 }, 23 },
      { { 1, 1, 50 }, 24000 } }
    for _, c in ipairs(cases) do
      for _, dt in ipairs(dtypes) do
        local f = (fsvc.rand(c[1], { dtype = "float64" }) * 500):to(dt)
        local a, b = dsp.interpolate_f0(f, c[2]), dsp.interpolate_f0(f:cuda(), c[2])
        assert.are.equal("cuda:0", b.device)
        assert.are.equal(dt, b.dtype)
        local limit = dt == "float64" and 1e-14 or 2e-7
        local e = normrel(b, a)
        assert(e <= limit, string.format("%s -> %d %s: %g", table.concat(c[1], "x"), c[2], dt, e))
      end
    end
    local f = fsvc.rand({ 8, 3 }, { dtype = "float64" }):t() -- [3, 8], strided
    assert(normrel(dsp.interpolate_f0(f:cuda(), 13), dsp.interpolate_f0(f, 13)) <= 1e-14)
  end)

  it("the results carry no gradient, as on the CPU", function()
    local f0 = fsvc.full({ 1, 1, 3 }, 150, { dtype = "float64" })
    for _, dev in ipairs({ "cpu", "cuda" }) do
      local x = f0:to(dev):requires_grad_(true)
      assert.is_false(dsp.oscillate_harmonics(x, 8, 800, 1).requires_grad, dev)
      assert.is_false(dsp.interpolate_f0(x, 5).requires_grad, dev)
      assert.is_false(dsp.id2freq(x, { dtype = "float64" }).requires_grad, dev)
      assert.is_true(dsp.pitch_shift(x, 1).requires_grad, dev)
    end
  end)

  it("bad values give the CPU's error messages", function()
    local function same_error(fn, x, ...)
      local ok1, e1 = pcall(fn, x, ...)
      local ok2, e2 = pcall(fn, x:cuda(), ...)
      assert.is_false(ok1)
      assert.is_false(ok2)
      assert.are.equal(tostring(e1), tostring(e2))
    end
    same_error(dsp.freq2id, fsvc.tensor({ 100, 0 / 0, 3 }))
    same_error(dsp.id2freq, fsvc.tensor({ 1, 512 }, { dtype = "int64" }))
    same_error(dsp.id2freq, fsvc.tensor({ 1, -1 }, { dtype = "int64" }))
    same_error(dsp.id2freq, fsvc.tensor({ 2, 0 / 0 }))
    same_error(dsp.oscillate_harmonics, fsvc.tensor({ { { 100, math.huge } } }))
    same_error(dsp.oscillate_harmonics, fsvc.tensor({ { { 0 / 0, 100 } } }), 4, 400)
    same_error(dsp.oscillate_harmonics, fsvc.zeros({ 2, 3 }))
    same_error(dsp.interpolate_f0, fsvc.zeros({ 4 }), 0)
    same_error(dsp.freq2id, fsvc.zeros({ 4 }, { dtype = "int64" }))
  end)

  it("the decoder on cuda runs forward and backward with no host DSP and matches the CPU", function()
    local Decoder = require "modules.decoder"
    local cfg = { channels = { 16, 8, 4 }, factors = { 2, 3, 4 }, cond_channels = { 16, 8, 4 },
      content_channels = 8, num_harmonics = 2, frame_size = 24, sample_rate = 2400 }
    fsvc.manual_seed(6)
    local cpu = Decoder(cfg)
    fsvc.manual_seed(6)
    local dev = Decoder(cfg):to("cuda")
    fsvc.manual_seed(7)
    local B, T = 2, 6
    local z = fsvc.randn({ B, 8, T })
    local f0 = random_f0(B, T, 8):float()
    local e = fsvc.rand({ B, 1, T })
    local function run(net, to)
      fsvc.manual_seed(9) -- the source's noise comes from the CPU generator on both devices
      local y = net:synthesize(to(z), to(f0), to(e))
      local w = to(fsvc.linspace(-1, 1, y:numel()):view(y.shape))
      ;(y * w):sum():backward()
      return y
    end
    local yc = run(cpu, function(t) return t end)
    local yd = run(dev, function(t) return t:cuda() end)
    assert.are.equal("cuda:0", yd.device)
    assert.are.same({ B, T * 24 }, yd.shape)
    local err = normrel(yd, yc)
    assert(err <= 1e-4, "decoder output " .. err)
    -- the gradients as one vector (a few biases feeding normalisations have gradients that are
    -- 0 up to float32 cancellation, ~1e-8: per parameter they are compared on the whole's scale)
    local pc, pd = cpu:parameters(), dev:parameters()
    assert.are.equal(#pc, #pd)
    local total, diff, worst = 0, 0, 0
    for i = 1, #pc do
      assert.are.equal("cuda:0", pd[i].grad.device)
      local gc, gd = host64(pc[i].grad), host64(pd[i].grad)
      local d2 = (gd - gc):pow(2):sum():item()
      total, diff, worst = total + gc:pow(2):sum():item(), diff + d2, math.max(worst, d2)
    end
    total = math.sqrt(total)
    assert(total > 0)
    assert(math.sqrt(diff) <= 1e-4 * total, "decoder gradients " .. math.sqrt(diff) / total)
    assert(math.sqrt(worst) <= 1e-4 * total, "decoder worst parameter " .. math.sqrt(worst) / total)
  end)
end)
