-- Training and inference steps of the DEFAULT FasterSVC networks (modules/, docs/modules.md) on one
-- device, against the PyTorch anchors of FASTERSVC.md "Sizes and cost" for the card in use (the
-- H100's on an H100, else the H200's; on the CPU the reference's one-core figures for the convert
-- and streaming steps) and the goal of issue 5. It prints figures and asserts nothing.
--
--   build/fsvc spec/bench/bench_train.lua [-d cpu|cuda|cuda:N] [--batch N] [--seconds S]
--                                         [--reps N] [--warmup N] [--quick] [--host-dsp] [--tf32]
--                                         [--only a,b,...] [--step-budget S] [--graph] [--profile]
--
-- Steps (what a step computes is FASTERSVC.md's "Training (train_dec / train_pe)" and "Inference"):
--   decoder+logmel  CE.encode (frozen) -> self-kNN (k 4, cos) -> synthesize(z, f0, energy) ->
--                   log-mel L1 -> backward -> clip_grad_norm 1.0 -> AdamW (lr 1e-4, betas .8/.99)
--   +discriminator  the same generator step with 2.5 * log-mel + LSGAN on the centre 10 000
--                   samples, then the discriminator's LSGAN step (D(real)^2 + (D(fake)-1)^2,
--                   clip, AdamW); the default discriminator (MSD scales 1, 2, 3; no MPD periods)
--   pitch-estimator augmentation (gain, noise, the rolled batch as background) -> logits ->
--                   weighted cross-entropy -> backward -> AdamW (lr 1e-4)
--   convert 10s     Convertor:convert of 10 s against a 10 s target (file I/O excluded), batch 1
--   streaming step  modules/ has no streaming entry yet: Convertor:convert of a 4 x 1920-sample
--                   buffer (the new chunk included) plus the linear crossfade of one chunk
-- Defaults: batch 16 of 1 s clips at 24 kHz (the reference's), 10 timed repetitions after 2
-- warm-up ones (3 on the CPU); the time is the median. No new repetition starts once a step has
-- used --step-budget seconds (20; the warm-up included), so a slow device still finishes; the
-- "runs" column says how many were timed. Rows are printed as their steps finish. --quick: batch 1 of 0.1 s clips, no
-- warm-up, one timed repetition, the convert step on 1 s: a check that every step runs (about
-- 40 s on a 2-core CPU, most of it the 91 M-parameter discriminator), not a measurement.
--
-- On CUDA: after the rows, the host launches of one eager step of each ("launches per step:
-- key=kernels+library calls", fsvc.cuda.launch_counts) and the convolution choices the steps made
-- (each pass and shape: im2col or cuDNN, both timings; docs/cuda.md "Convolutions"); set
-- FSVC_CONV_BACKEND=im2col|cudnn to force one. fsvc.cuda.synchronize() around each timed repetition; the DSP (the log-mel loss, the
-- encoders' spectrogram, energy, the harmonic oscillator, the pitch helpers) runs on the device
-- through fsvc.dsp's device paths; --host-dsp sends every DSP call through the host instead. The
-- table's last column says which DSP calls went through the host (none, unless --host-dsp).
--
-- --profile (CUDA): fsvc.cuda.profiler_start/stop around the first timed call of each eager step,
-- so that `ncu --profile-from-start off ...` or another profiler started with collection off
-- records one step of each row and none of the warm-ups (docs/cuda.md "Profiling").
--
-- --graph (CUDA): the decoder, discriminator, pitch-estimator and streaming steps are also
-- captured as CUDA graphs (docs/cuda.md "CUDA graphs": gradients set to nil at the start of the
-- captured function, AdamW with capturable = true, clip_grad_norm_ with sync = false so that the
-- norm stays on the device) and their replays timed in a "graph ms" column. The decoder's source
-- noise, which Decoder:generate_source draws from the CPU generator and uploads, comes in the
-- graphs from a static device buffer refilled with the same draws before each replay (an upload
-- cannot be captured; static_source_noise). The training graphs' two warm-ups are real steps;
-- the pitch row's augmentation runs eagerly and is written into the graph's static input before
-- each replay (a captured draw would repeat its numbers at every replay; on CUDA it draws from
-- the device's generator, as the reference does), and its loss is the same weighted
-- cross-entropy computed from a weighted one-hot target (written when cross_entropy's gather checked its
-- indices on the host, which a capture refuses). A step
-- that cannot be captured (a host round trip, a host synchronisation) says "graph: not capturable
-- (<reason>)" in its row instead; one whose eager run made DSP host round trips is not tried (its
-- warm-ups would be spent on a capture that can only fail).
local D = dofile("spec/helpers/device.lua")
local PitchEstimator = require "modules.pitch_estimator"
local ContentEncoder = require "modules.content_encoder"
local Decoder = require "modules.decoder"
local Discriminator = require "modules.discriminator"
local Convertor = require "modules.convertor"
local losses = require "modules.losses"
local knn = require "modules.knn"

local USAGE = "usage: build/fsvc spec/bench/bench_train.lua [-d cpu|cuda|cuda:N] [--batch N] "
  .. "[--seconds S] [--reps N] [--warmup N] [--quick] [--host-dsp] [--tf32] [--only a,b,...] "
  .. "[--step-budget S] [--graph] [--profile]"

-- ---- options -------------------------------------------------------------------------------
local opts = { device = "cpu" }
do
  local argv, i = arg or {}, 1
  local function value(name)
    local v = argv[i + 1]
    if v == nil then io.stderr:write("bench_train: " .. name .. " needs a value\n" .. USAGE .. "\n") os.exit(2) end
    i = i + 1
    return v
  end
  local function number(name)
    local v = tonumber(value(name))
    if not v or v <= 0 then io.stderr:write("bench_train: " .. name .. " must be a positive number\n") os.exit(2) end
    return v
  end
  while argv[i] do
    local a = argv[i]
    if a == "-d" or a == "--device" then opts.device = value(a)
    elseif a == "--batch" then
      opts.batch = math.tointeger(number(a))
      if not opts.batch then io.stderr:write("bench_train: --batch must be an integer\n") os.exit(2) end
    elseif a == "--seconds" then opts.seconds = number(a)
    elseif a == "--reps" then
      opts.reps = math.tointeger(number(a))
      if not opts.reps then io.stderr:write("bench_train: --reps must be an integer\n") os.exit(2) end
    elseif a == "--warmup" then
      opts.warmup = math.tointeger(tonumber(value(a)))
      if not opts.warmup or opts.warmup < 0 then io.stderr:write("bench_train: --warmup must be an integer >= 0\n") os.exit(2) end
    elseif a == "--quick" then opts.quick = true
    elseif a == "--host-dsp" then opts.host_dsp = true
    elseif a == "--tf32" then opts.tf32 = true
    elseif a == "--only" then opts.only = value(a)
    elseif a == "--step-budget" then opts.step_budget = number(a)
    elseif a == "--graph" then opts.graph = true
    elseif a == "--profile" then opts.profile = true
    elseif a == "-h" or a == "--help" then print(USAGE) os.exit(0)
    else io.stderr:write("bench_train: unknown argument '" .. tostring(a) .. "'\n" .. USAGE .. "\n") os.exit(2) end
    i = i + 1
  end
end

local device, err = D.parse(opts.device)
if not device then io.stderr:write("bench_train: " .. err .. "\n") os.exit(2) end
local why = D.unavailable(device)
if why then
  print("SKIP: no CUDA device (" .. why .. ")")
  os.exit(0)
end
local cuda = device ~= "cpu"
local quick = opts.quick
local SR, FRAME = 24000, 480
local batch = opts.batch or (quick and 1 or 16)
local seconds = opts.seconds or (quick and 0.1 or 1)
local L = math.max(FRAME, math.floor(seconds * SR / FRAME + 0.5) * FRAME)
local T = L // FRAME
local warmup = opts.warmup or (quick and 0 or 2)
local reps = opts.reps or (quick and 1 or (cuda and 10 or 3))
local convert_seconds = quick and 1 or 10
local step_budget = opts.step_budget or 20
local only
local STEPS = { decoder = true, discriminator = true, pitch = true, convert = true, stream = true }
if opts.only then
  only = {}
  for name in opts.only:gmatch("[^,]+") do
    if not STEPS[name] then
      io.stderr:write("bench_train: --only: unknown step '" .. name
        .. "' (expected decoder, discriminator, pitch, convert, stream)\n")
      os.exit(2)
    end
    only[name] = true
  end
end
if cuda and opts.tf32 then fsvc.cuda.set_allow_tf32(true) end
local graphs = opts.graph and cuda

-- DSP on device tensors runs on the device (fsvc.dsp's device paths); only the functions without
-- one (D.HOST_DSP) make a host round trip, and --host-dsp sends every DSP call through the host
local restore_dsp, host_calls = D.install_host_dsp(opts.host_dsp and D.ALL_DSP or nil)

local function sync() if cuda then fsvc.cuda.synchronize() end end

local function median(xs)
  table.sort(xs)
  local n = #xs
  if n % 2 == 1 then return xs[(n + 1) // 2] end
  return (xs[n // 2] + xs[n // 2 + 1]) / 2
end

-- ms per call: the median of up to `reps` timed calls after `warmup` calls; no new call starts
-- once the step has used `step_budget` seconds (at least one is timed). Also returns the number
-- of timed calls and which DSP calls went through the host.
local function time_step(fn)
  local started = fsvc.time()
  for _ = 1, warmup do fn(); collectgarbage() end
  sync()
  for k in pairs(host_calls) do host_calls[k] = nil end
  local times = {}
  for _ = 1, reps do
    if #times > 0 and fsvc.time() - started > step_budget then break end
    collectgarbage()
    sync()
    -- --profile: a profiler that starts with collection off records the first timed call only
    if opts.profile and #times == 0 then fsvc.cuda.profiler_start() end
    local t0 = fsvc.time()
    fn()
    sync()
    times[#times + 1] = (fsvc.time() - t0) * 1e3
    if opts.profile and #times == 1 then fsvc.cuda.profiler_stop() end
  end
  local via = {}
  for k in pairs(host_calls) do via[#via + 1] = k end
  table.sort(via)
  return median(times), #times, via
end

local function to_dev(t) return cuda and t:to(device) or t end

-- a voiced-like test signal: a few harmonics of a gliding f0 plus noise, peak ~0.5, [B, n]
local function test_wave(b, n)
  local t = fsvc.arange(n, { dtype = "float32" }):view(1, n) / SR
  local f = (fsvc.arange(b, { dtype = "float32" }):view(b, 1) * 15 + 150)
  local phase = t * f * (2 * math.pi)
  local w = phase:sin() * 0.3 + (phase * 2):sin() * 0.1 + (phase * 3):sin() * 0.05
  return w + fsvc.randn({ b, n }) * 0.01
end

-- ---- the table, one row printed as soon as its step is measured --------------------------------
local device_name = cuda and fsvc.cuda.get_device_name(tonumber(device:match("%d+$"))) or
    string.format("%d threads", fsvc.get_num_threads())
-- The reference's timings (PyTorch 2.11 eager fp32 on the GPUs; PyTorch 1.13 on one core of the CI
-- machines' CPU), batch 16 of 1 s clips, convert 10 s (FASTERSVC.md "Sizes and cost")
local ANCHORS = {
  H200 = { decoder = 35.9, discriminator = 146.6, pitch = 7.8, convert = 11.9, stream = 12.1 },
  H100 = { decoder = 38.5, discriminator = 152.4, pitch = 6.4, convert = 12.2, stream = 7.9 },
  ["CPU 1 core"] = { convert = "1200-1500", stream = "52-58" },
}
local anchor_card = not cuda and "CPU 1 core" or device_name:find("H100") and "H100" or "H200"
local anchors = ANCHORS[anchor_card]
print(string.format("device: %s (%s)  batch %d x %.2f s (%d samples)  median of up to %d timed runs "
  .. "after %d warm-up, at most %gs per step%s", device, device_name, batch, L / SR, L, reps, warmup,
  step_budget, (cuda and opts.tf32) and ", TF32 on" or ""))
if opts.graph and not cuda then print("note: --graph needs a CUDA device; ignored on " .. device) end
if graphs then
  print(string.format("%-20s %10s %10s %12s %8s %5s  %s", "step", "ms", "graph ms", "anchor " .. anchor_card,
    "goal", "runs", "DSP via host / note"))
else
  print(string.format("%-20s %10s %16s %8s %5s  %s", "step", "ms", "anchor " .. anchor_card, "goal", "runs",
    "DSP via host / note"))
end
io.stdout:flush()
local function fmt(v)
  if type(v) == "number" then return string.format("%.1f", v) end
  return tostring(v)
end

fsvc.manual_seed(0)
if cuda then fsvc.cuda.manual_seed(0) end
local results = {}

-- graph_build() -> replay function (a captured step), or an error; the reason shown for a step
-- that cannot be captured names the DSP calls that went through the host during the attempt
-- (their copies cannot be captured), else the error's first line.
local function time_graph(graph_build)
  for k in pairs(host_calls) do host_calls[k] = nil end
  local ok, replay = pcall(graph_build)
  if not ok then
    local via = {}
    for k in pairs(host_calls) do via[#via + 1] = k end
    table.sort(via)
    local reason = #via > 0 and ("host round trip in " .. table.concat(via, ","))
        or tostring(replay):match("[^\n]*"):sub(1, 160)
    return nil, nil, "graph: not capturable (" .. reason .. ")"
  end
  local okt, ms, n = pcall(time_step, replay)
  if not okt then return nil, nil, "graph: replay failed (" .. tostring(ms):match("[^\n]*") .. ")" end
  return ms, n
end

local launches = {} -- "key=kernels+library calls" of one eager step, on CUDA
local function run(key, label, goal, build, graph_build)
  if only and not only[key] then return end
  local anchor = anchors[key] or "-"
  if quick and key == "convert" then anchor = "-" end
  local ok, step = pcall(build)
  local ms, n, via, note
  if ok then
    local okt, a, b, c = pcall(time_step, step)
    if okt then ms, n, via = a, b, c else note = tostring(a):match("[^\n]*") end
    if okt and cuda then -- one more step, counting its launches (the timed ones include the tuning)
      local c0 = fsvc.cuda.launch_counts()
      if pcall(step) then
        local c1 = fsvc.cuda.launch_counts()
        launches[#launches + 1] = string.format("%s=%d+%d", key, c1.kernels - c0.kernels,
          c1.library_calls - c0.library_calls)
      end
    end
  else
    note = tostring(step):match("[^\n]*")
  end
  step = nil
  collectgarbage()
  collectgarbage()
  local gms, gn, gnote
  if graphs and graph_build then
    if via and #via > 0 then
      -- a host round trip cannot be captured: say so without the warm-ups of a doomed capture
      gnote = "graph: not capturable (host round trip in " .. table.concat(via, ",") .. ")"
    elseif note then
      gnote = "graph: not tried (the eager step failed)"
    else
      gms, gn, gnote = time_graph(graph_build)
    end
  end
  results[#results + 1] = { key = key, ms = ms, note = note, graph_ms = gms, graph = graphs and graph_build ~= nil }
  local tail = note and ("FAILED: " .. note) or (#via > 0 and table.concat(via, ",") or "-")
  if gnote then tail = tail .. "; " .. gnote end
  if graphs then
    print(string.format("%-20s %10s %10s %12s %8s %5s  %s", label, ms and string.format("%.1f", ms) or "-",
      gms and string.format("%.1f", gms) or "-", fmt(anchor), fmt(goal),
      (n or "-") .. (gn and ("/" .. gn) or ""), tail))
  else
    print(string.format("%-20s %10s %16s %8s %5s  %s", label, ms and string.format("%.1f", ms) or "-",
      fmt(anchor), fmt(goal), n or "-", tail))
  end
  io.stdout:flush()
  collectgarbage()
  collectgarbage()
end

-- captures fn (a training step when it calls backward and a capturable optimiser) as a CUDA graph;
-- returns the replay function. Two warm-up runs: the first step of a new optimiser creates its
-- state, which keeps blocks that the first warm-up's temporaries had freed, so the capture would
-- lack some; the second warm-up runs as the capture will.
local function capture(fn)
  local g = fsvc.cuda.CUDAGraph()
  g:capture(fn, { warmup = 2 })
  return function() g:replay() end
end

-- the parameters' gradients are written afresh by each replay's backward
local function grads_to_nil(params)
  for _, p in ipairs(params) do p.grad = nil end
end

-- Decoder:generate_source draws the source's noise channel from the CPU generator and uploads it
-- (so that a seed gives the same source on every device); an upload cannot be captured. For a
-- graph, dec's generate_source is given the noise from a static device buffer instead; the
-- returned refill() draws the next noise from the CPU generator into that buffer, to be called
-- before each replay.
local function static_source_noise(dec)
  local noise
  dec.generate_source = function(self, p)
    -- made by the first (warm-up) call, outside the capture
    if not noise then
      noise = fsvc.randn({ p.shape[1], 1, p.shape[3] * self.frame_size }, { dtype = p.dtype }):to(p.device)
    end
    return Decoder.generate_source(self, p, noise)
  end
  return function()
    if noise then noise:copy_(fsvc.randn(noise.shape, { dtype = noise.dtype }):to(noise.device)) end
  end
end

-- clip_grad_norm_ that a capture accepts: the norm stays a 0-d CUDA tensor (no host read)
local function clip_on_device(params, max_norm)
  return fsvc.nn.utils.clip_grad_norm_(params, max_norm, 2, { sync = false })
end

local AdamW = fsvc.optim.AdamW
local clip = fsvc.nn.utils.clip_grad_norm_

-- ---- (a) decoder with the log-mel loss ---------------------------------------------------------
local function decoder_setup(capturable)
  local ce = ContentEncoder {}
  ce:eval():requires_grad_(false)
  local dec = Decoder {}
  ce:to(device)
  dec:to(device)
  local opt = AdamW(dec:parameters(), { lr = 1e-4, betas = { 0.8, 0.99 }, capturable = capturable })
  local wave = to_dev(test_wave(batch, L))
  local f0 = to_dev((fsvc.rand({ batch, 1, T }) * 200 + 100))
  return ce, dec, opt, wave, f0
end

local function generator_forward(ce, dec, wave, f0)
  local z = fsvc.no_grad(function()
    local enc = ce:encode(wave)
    return knn.match_features(enc, enc, { k = 4, alpha = 0, metric = "cos" })
  end)
  local e = fsvc.dsp.energy(wave, FRAME)
  return dec:synthesize(z, f0, e)
end

run("decoder", "decoder + log-mel", 18, function()
  local ce, dec, opt, wave, f0 = decoder_setup()
  return function()
    opt:zero_grad()
    local fake = generator_forward(ce, dec, wave, f0)
    local loss = losses.log_mel(fake, wave)
    loss:backward()
    clip(dec:parameters(), 1.0)
    opt:step()
  end
end, function()
  local ce, dec, opt, wave, f0 = decoder_setup(true)
  local params = dec:parameters()
  local refill = static_source_noise(dec)
  local replay = capture(function()
    grads_to_nil(params)
    local fake = generator_forward(ce, dec, wave, f0)
    local loss = losses.log_mel(fake, wave)
    loss:backward()
    clip_on_device(params, 1.0)
    opt:step()
    return loss
  end)
  return function()
    refill()
    replay()
  end
end)

-- ---- (b) + the discriminator ------------------------------------------------------------------
run("discriminator", "+ discriminator", 75, function()
  local ce, dec, opt_g, wave, f0 = decoder_setup()
  local disc = Discriminator {}
  disc:to(device)
  local opt_d = AdamW(disc:parameters(), { lr = 1e-4, betas = { 0.8, 0.99 } })
  local n = math.min(10000, L)
  local start = (L - n) // 2
  return function()
    opt_g:zero_grad()
    local fake = generator_forward(ce, dec, wave, f0)
    local fake_c, real_c = fake:narrow(1, start, n), wave:narrow(1, start, n)
    local loss_g = losses.log_mel(fake, wave) * 2.5 + losses.generator_adversarial((disc(fake_c)))
    loss_g:backward()
    clip(dec:parameters(), 1.0)
    opt_g:step()
    opt_d:zero_grad()
    local real_logits = disc(real_c)
    local fake_logits = disc(fake_c:detach())
    local loss_d = losses.discriminator_adversarial(real_logits, fake_logits)
    loss_d:backward()
    clip(disc:parameters(), 1.0)
    opt_d:step()
  end
end, function()
  local ce, dec, opt_g, wave, f0 = decoder_setup(true)
  local disc = Discriminator {}
  disc:to(device)
  local opt_d = AdamW(disc:parameters(), { lr = 1e-4, betas = { 0.8, 0.99 }, capturable = true })
  local gparams, dparams = dec:parameters(), disc:parameters()
  local n = math.min(10000, L)
  local start = (L - n) // 2
  local refill = static_source_noise(dec)
  local replay = capture(function()
    grads_to_nil(gparams)
    local fake = generator_forward(ce, dec, wave, f0)
    local fake_c, real_c = fake:narrow(1, start, n), wave:narrow(1, start, n)
    local loss_g = losses.log_mel(fake, wave) * 2.5 + losses.generator_adversarial((disc(fake_c)))
    loss_g:backward()
    clip_on_device(gparams, 1.0)
    opt_g:step()
    grads_to_nil(dparams) -- the generator's backward reached the discriminator too (zero_grad)
    local real_logits = disc(real_c)
    local fake_logits = disc(fake_c:detach())
    local loss_d = losses.discriminator_adversarial(real_logits, fake_logits)
    loss_d:backward()
    clip_on_device(dparams, 1.0)
    opt_d:step()
    return loss_g, loss_d
  end)
  return function()
    refill()
    replay()
  end
end)

-- ---- (c) pitch estimator ----------------------------------------------------------------------
local function pitch_setup(capturable)
  local pe = PitchEstimator {}
  pe:to(device)
  local opt = AdamW(pe:parameters(), { lr = 1e-4, capturable = capturable })
  local weight_cpu = losses.pitch_class_weights(pe.output_channels)
  local labels_cpu = fsvc.randint(0, pe.output_channels, { batch, T })
  local weight, labels = to_dev(weight_cpu), to_dev(labels_cpu)
  local wave = to_dev(test_wave(batch, L))
  -- augmentation: gain, noise, the rolled batch as background. On CUDA the draws come from the
  -- device's generator (fsvc.empty on the device, then uniform_/normal_), as the reference draws
  -- with torch.rand/randn on its device: the CPU generator's 384 000 normals and their upload
  -- (which waits for the device) are host work a training step on a GPU does not need.
  local function draw(shape, low, high, normal)
    if cuda then
      local t = fsvc.empty(shape, { device = device })
      if normal then return t:normal_(0, 1) end
      return t:uniform_(low, high)
    end
    return normal and fsvc.randn(shape) or fsvc.rand(shape) * (high - low) + low
  end
  local function augment()
    return fsvc.no_grad(function()
      local gain = draw({ batch, 1 }, 0, 2)
      local noise_gain = draw({ batch, 1 }, 0, 1)
      local bg_gain = draw({ batch, 1 }, 0, 0.5)
      local rolled = batch > 1 and fsvc.cat({ wave:narrow(0, 1, batch - 1), wave:narrow(0, 0, 1) }, 0) or wave
      local noise = draw({ batch, L }, nil, nil, true)
      return wave * gain + noise * noise_gain + rolled * bg_gain
    end)
  end
  return pe, opt, weight, labels, augment, weight_cpu, labels_cpu
end

run("pitch", "pitch estimator", 4, function()
  local pe, opt, weight, labels, augment = pitch_setup()
  return function()
    opt:zero_grad()
    local x = augment()
    local loss = losses.cross_entropy(pe:logits(x), labels, weight)
    loss:backward()
    opt:step()
  end
end, function()
  local pe, opt, _, _, augment, weight_cpu, labels_cpu = pitch_setup(true)
  local params = pe:parameters()
  local x = augment() -- the static input
  -- the same weighted cross-entropy from a weighted one-hot target built outside the graph:
  -- cross_entropy's gather/index_select check their indices on the host, which cannot be captured
  local C = pe.output_channels
  local classes = fsvc.arange(C, { dtype = "int64" }):view(1, C, 1)
  local target = to_dev(labels_cpu:view(batch, 1, T):eq(classes):to("float32") * weight_cpu:view(1, C, 1))
  local total_weight = target:sum()
  local replay = capture(function()
    grads_to_nil(params)
    local loss = -(pe:logits(x):log_softmax(1) * target):sum() / total_weight
    loss:backward()
    opt:step()
    return loss
  end)
  return function()
    x:copy_(augment())
    replay()
  end
end)

-- ---- (d) convert and (e) streaming ------------------------------------------------------------
local function convertor()
  local pe, ce, dec = PitchEstimator {}, ContentEncoder {}, Decoder {}
  for _, m in ipairs({ pe, ce, dec }) do m:eval():to(device) end
  local cv = Convertor.new { pitch_estimator = pe, content_encoder = ce, decoder = dec }
  local target = cv:encode_target(to_dev(test_wave(1, 10 * SR)))
  return cv, target
end

run("convert", string.format("convert %gs", convert_seconds), "-", function()
  local cv, target = convertor()
  local wave = to_dev(test_wave(1, convert_seconds * SR))
  return function() cv:convert(wave, target) end
end)

local STREAM_CHUNK, STREAM_NBUF = 1920, 4
local function stream_setup()
  local cv, target = convertor()
  local chunk, nbuf = STREAM_CHUNK, STREAM_NBUF
  local buffer = to_dev(test_wave(1, chunk * nbuf))
  local fade_in = to_dev(fsvc.arange(chunk, { dtype = "float32" }):view(1, chunk) / chunk)
  local prev_tail = to_dev(fsvc.zeros({ 1, chunk }))
  return cv, target, buffer, fade_in, prev_tail
end

run("stream", "streaming step", 1, function()
  local cv, target, buffer, fade_in, prev_tail = stream_setup()
  local chunk, nbuf = STREAM_CHUNK, STREAM_NBUF
  return function()
    local y = cv:convert(buffer, target)
    -- emit the chunk before the newest, faded with the previous step's overlapping chunk
    local cur = y:narrow(1, (nbuf - 2) * chunk, chunk)
    local out = cur * fade_in + prev_tail * (1 - fade_in)
    prev_tail = y:narrow(1, (nbuf - 1) * chunk, chunk)
    return out
  end
end, function()
  local cv, target, buffer, fade_in, prev_tail = stream_setup()
  local chunk, nbuf = STREAM_CHUNK, STREAM_NBUF
  local refill = static_source_noise(cv.decoder)
  -- buffer (the input) and prev_tail (carried between steps) are static: copy_ keeps their memory
  local replay = capture(function()
    local y = fsvc.no_grad(function() return cv:convert(buffer, target) end)
    local cur = y:narrow(1, (nbuf - 2) * chunk, chunk)
    local out = cur * fade_in + prev_tail * (1 - fade_in)
    prev_tail:copy_(y:narrow(1, (nbuf - 1) * chunk, chunk))
    return out
  end)
  return function()
    refill()
    replay()
  end
end)

restore_dsp()

-- ---- the rest of the report -------------------------------------------------------------------
if quick or batch ~= 16 or L ~= SR then
  print("note: the anchors are for batch 16 of 1 s clips (convert: 10 s); this run used other sizes")
end
if cuda then
  local s = fsvc.cuda.memory_stats()
  print(string.format("memory_stats: allocated %.1f MB, reserved %.1f MB, peak %.1f MB, %d cudaMalloc, "
    .. "%d allocations, %d cache hits", s.allocated / 2 ^ 20, s.reserved / 2 ^ 20, s.peak_allocated / 2 ^ 20,
    s.num_cuda_malloc, s.num_alloc, s.num_cache_hits))
  -- host launches of one eager step: our kernels + cuBLAS/cuFFT/cuDNN calls (each one or more)
  print("launches per step: " .. table.concat(launches, " "))
  -- which implementation each convolution pass of the steps chose (docs/cuda.md "Convolutions")
  local choices = fsvc.cuda.conv_choices()
  local n_cudnn, t_chosen, t_im2col = 0, 0, 0
  print(string.format("conv backend %s: %d (pass, shape) choices; cuDNN %s", fsvc.cuda.get_conv_backend(), #choices,
    fsvc.cuda.cudnn_is_available() and ("version " .. fsvc.cuda.cudnn_version())
    or ("unavailable: " .. fsvc.cuda.cudnn_unavailable_reason())))
  print(string.format("  %-15s %-8s %5s %5s %5s %7s %7s %3s %3s %3s %3s  %-7s %9s %9s  %s", "pass", "dtype", "B",
    "Cin", "Cout", "T", "Tout", "K", "s", "d", "g", "chose", "im2col ms", "cuDNN ms", "note"))
  for _, c in ipairs(choices) do
    if c.backend == "cudnn" then n_cudnn = n_cudnn + 1 end
    if c.im2col_ms then
      t_im2col = t_im2col + c.im2col_ms
      t_chosen = t_chosen + (c.backend == "cudnn" and c.cudnn_ms or c.im2col_ms)
    end
    print(string.format("  %-15s %-8s %5d %5d %5d %7d %7d %3d %3d %3d %3d  %-7s %9s %9s  %s", c.pass, c.dtype,
      c.batch, c.in_channels, c.out_channels, c.length, c.out_length, c.kernel, c.stride, c.dilation, c.groups,
      c.backend, c.im2col_ms and string.format("%.3f", c.im2col_ms) or "-",
      c.cudnn_ms and string.format("%.3f", c.cudnn_ms) or "-", c.note))
  end
  print(string.format("conv summary: cuDNN chosen for %d of %d; one call of each timed pass: %.2f ms as "
    .. "chosen, %.2f ms with im2col everywhere", n_cudnn, #choices, t_chosen, t_im2col))
end
-- one line for logs and scripts (spec/gpu/device_check.sh puts it in its summary)
local parts = {}
for _, r in ipairs(results) do
  parts[#parts + 1] = string.format("%s=%s", r.key, r.ms and string.format("%.1f", r.ms) or "FAILED")
end
local gparts = {}
for _, r in ipairs(results) do
  if r.graph then
    gparts[#gparts + 1] = string.format("%s=%s", r.key, r.graph_ms and string.format("%.1f", r.graph_ms) or "-")
  end
end
print(string.format("summary: %s ms (%s, batch %d)%s", table.concat(parts, " "), device, batch,
  #gparts > 0 and ("; graph: " .. table.concat(gparts, " ") .. " ms") or ""))
local failed = 0
for _, r in ipairs(results) do if r.note then failed = failed + 1 end end
os.exit(failed == 0 and 0 or 1)
