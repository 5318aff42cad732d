-- Inference benchmark of the DEFAULT networks: pitch estimator (estimate), content encoder
-- (encode) and decoder (synthesize) on 10 s of audio (24 kHz, batch 1, no_grad), with 1 and 2
-- threads. Prints each network's time and real-time factor (seconds of compute per second of
-- audio) and the total.
--
--   build/fsvc spec/bench/bench_inference.lua [--seconds 10] [--repeat 3] [--threads 1,2] [--profile]
--
-- --profile also times every C op (fsvc.* functions and tensor methods) of one run of each
-- network, to find an op that is slower than its multiply-add count suggests.
-- Reference (FASTERSVC.md): PyTorch 1.13 CPU converts 10 s in 1.2-1.5 s on one core of a Zen 4
-- EPYC (RTF 0.12-0.15, decoder 85 %), about 0.08 on two; the multiply-adds are 2.94 G per second of
-- audio (content encoder 0.41 G, pitch estimator 0.40 G, decoder 2.13 G).
local PitchEstimator = require "modules.pitch_estimator"
local ContentEncoder = require "modules.content_encoder"
local Decoder = require "modules.decoder"

local opts = { seconds = 10, ["repeat"] = 3, threads = "1,2", profile = false }
do
  local i = 1
  while arg and arg[i] do
    local a = arg[i]
    if a == "--profile" then opts.profile = true
    elseif a:sub(1, 2) == "--" then opts[a:sub(3)] = arg[i + 1]; i = i + 1 end
    i = i + 1
  end
end
local seconds, reps = tonumber(opts.seconds), tonumber(opts["repeat"])
local SR = 24000
local GMAC = { pitch_estimator = 0.40, content_encoder = 0.41, decoder = 2.13 }

fsvc.manual_seed(0)
local pe, ce, dec = PitchEstimator {}, ContentEncoder {}, Decoder {}
pe:eval(); ce:eval(); dec:eval()
local L = SR * seconds
local t = fsvc.arange(L, { dtype = "float32" }) / SR
local wave = ((t * (2 * math.pi * 220)):sin() * 0.3 + fsvc.randn(L) * 0.01):unsqueeze(0)

local function run_pe() return pe:estimate(wave) end
local function run_ce() return ce:encode(wave) end
local z, f0, e
local function run_dec() return dec:synthesize(z, f0, e) end

local function best_of(fn)
  local best = math.huge
  for _ = 1, reps do
    collectgarbage()
    local t0 = fsvc.time()
    fsvc.no_grad(fn)
    local dt = fsvc.time() - t0
    if dt < best then best = dt end
  end
  return best
end

-- ---- op profiler: wraps every C function of fsvc and of the tensor methods ---------------------
local profile = {}
local function install_profiler()
  local originals = {}
  local function wrap(tbl, name, f)
    return function(...)
      local t0 = fsvc.time()
      local r = table.pack(f(...))
      local rec = profile[name]
      if not rec then rec = { time = 0, calls = 0 }; profile[name] = rec end
      rec.time = rec.time + fsvc.time() - t0
      rec.calls = rec.calls + 1
      return table.unpack(r, 1, r.n)
    end
  end
  local methods = debug.getregistry()["fsvc.methods"]
  for _, tbl in ipairs({ fsvc, fsvc.dsp, methods }) do
    for name, f in pairs(tbl) do
      if type(f) == "function" and debug.getinfo(f, "S").what == "C" and name ~= "time" then
        originals[#originals + 1] = { tbl, name, f }
        tbl[name] = wrap(tbl, name, f)
      end
    end
  end
  -- operators (x * y, x + y, ...) live in the tensor metatable
  local mt = getmetatable(fsvc.zeros(1))
  for _, op in ipairs({ "__add", "__sub", "__mul", "__div", "__pow", "__unm" }) do
    local f = rawget(mt, op)
    if f then
      originals[#originals + 1] = { mt, op, f }
      mt[op] = wrap(mt, op, f)
    end
  end
  return function()
    for _, o in ipairs(originals) do o[1][o[2]] = o[3] end
  end
end

local function print_profile(title, total)
  local rows = {}
  for name, rec in pairs(profile) do rows[#rows + 1] = { name, rec.time, rec.calls } end
  table.sort(rows, function(a, b) return a[2] > b[2] end)
  print(string.format("  ops of %s (one run, %.3f s):", title, total))
  for i = 1, math.min(#rows, 12) do
    print(string.format("    %-22s %8.1f ms %5.1f %%  %5d calls", rows[i][1], rows[i][2] * 1e3,
      100 * rows[i][2] / total, rows[i][3]))
  end
  profile = {}
end

print(string.format("fsvc inference benchmark: %g s of audio at 24 kHz, batch 1, best of %d", seconds, reps))
for th in tostring(opts.threads):gmatch("%d+") do
  fsvc.set_num_threads(tonumber(th))
  -- warm-up (scratch buffers, page faults) and the decoder's inputs
  fsvc.no_grad(function()
    f0 = run_pe()
    z = run_ce()
    e = fsvc.dsp.energy(wave, 480)
    run_dec()
  end)
  local times = {
    { "pitch_estimator", best_of(run_pe) },
    { "content_encoder", best_of(run_ce) },
    { "decoder", best_of(run_dec) },
  }
  local total = 0
  print(string.format("threads %s:", th))
  for _, r in ipairs(times) do
    total = total + r[2]
    print(string.format("  %-16s %7.3f s  RTF %.4f  %5.1f GMAC/s", r[1], r[2], r[2] / seconds,
      GMAC[r[1]] * seconds / r[2]))
  end
  print(string.format("  %-16s %7.3f s  RTF %.4f  %5.1f GMAC/s", "total", total, total / seconds,
    2.94 * seconds / total))
  if opts.profile then
    local uninstall = install_profiler()
    for _, r in ipairs({ { "pitch_estimator", run_pe }, { "content_encoder", run_ce }, { "decoder", run_dec } }) do
      local t0 = fsvc.time()
      fsvc.no_grad(r[2])
      print_profile(r[1], fsvc.time() - t0)
    end
    uninstall()
  end
end
