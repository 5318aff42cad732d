-- Parity runner: fsvc against the reference fixtures (golden data computed by the original
-- PyTorch modules).
--
--   build/fsvc spec/parity.lua [DIR] [NAME...] [--device cuda|cuda:N] [--tf32]
--                                                  (DIR defaults to ../shared/reference/fixtures)
--
-- For every DIR/*.safetensors (or only the NAMEs given): build the case from the metadata
-- ("module" / "function" / "loss" / "optimizer" + config), load the parameters ("param.*"), feed
-- the inputs ("input.*"), compare the outputs ("output.*"); where "cotangent.*" exist, backprop
-- sum_i sum(output_i * cotangent_i) (for a scalar loss without cotangents: the loss itself) and
-- compare "grad.param.*" and "grad.input.*". One line per fixture:
--   name  PASS|FAIL  out abs=<max abs err> rel=<max abs err / max abs ref>  grad abs=... rel=...
-- then "N passed, N failed"; the exit status is non-zero when any fixture fails.
--
-- Tolerances (relative to the largest reference magnitude of each tensor): 1e-4 on outputs, 1e-3
-- on gradients, except where a case states a looser bound and says why.
--
-- --device cuda: every fixture runs twice, on the CPU and with the module's parameters, the inputs
-- and the cotangents moved to the device (Module:to, x:to). The device's outputs and gradients,
-- copied to the host, must meet the same tolerances against the reference AND agree with the
-- CPU run within DEVICE_TOL (float32: 1e-5 relative; with --tf32, TF32 matmuls: 1e-3), or a
-- case's own looser bound; with --tf32 no bound is below 1e-3 (TF32's rounding of matmul inputs
-- compounds over a network: on the CPU emulation whole-network gradients move by up to a few
-- percent, so expect failures there). The line adds "vs-cpu abs=.. rel=..". DSP calls on
-- device tensors take fsvc.dsp's device paths (only the functions without one, D.HOST_DSP in
-- spec/helpers/device.lua, would go through the host; the fixtures use none of them), so the
-- DSP-only fixtures (energy, spectrogram, oscillate_harmonics) check those device paths too. Without a
-- usable device: "SKIP: no CUDA device (...)" and exit status 0.
-- A case is a function in the `builders` table (keyed by the fixture's file name, with a fallback
-- on its "module" metadata), so adding a fixture is a few lines.
local fsvc = require "fsvc"

local OUT_TOL, GRAD_TOL = 1e-4, 1e-3
local DEVICE_TOL, TF32_TOL = 1e-5, 1e-3

-- ---- a small JSON decoder for the metadata (objects -> tables, arrays -> lists, null -> nil) --
local function json_decode(s)
  local pos = 1
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value
  local function str()
    local out, i = {}, pos + 1
    while true do
      local c = s:sub(i, i)
      if c == "" then error("json: unterminated string") end
      if c == '"' then pos = i + 1 return table.concat(out) end
      if c == "\\" then
        local e = s:sub(i + 1, i + 1)
        local map = { n = "\n", t = "\t", r = "\r", b = "\b", f = "\f" }
        if e == "u" then
          out[#out + 1] = utf8.char(tonumber(s:sub(i + 2, i + 5), 16)); i = i + 6
        else
          out[#out + 1] = map[e] or e; i = i + 2
        end
      else
        out[#out + 1] = c; i = i + 1
      end
    end
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1; ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1 return t end
      while true do
        ws(); local k = str(); ws()
        assert(s:sub(pos, pos) == ":", "json: expected ':'"); pos = pos + 1
        t[k] = value(); ws()
        local d = s:sub(pos, pos); pos = pos + 1
        if d == "}" then return t end
        assert(d == ",", "json: expected ',' or '}'")
      end
    elseif c == "[" then
      local t, n = {}, 0
      pos = pos + 1; ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1 return t end
      while true do
        n = n + 1; t[n] = value(); ws()
        local d = s:sub(pos, pos); pos = pos + 1
        if d == "]" then return t end
        assert(d == ",", "json: expected ',' or ']'")
      end
    elseif c == '"' then return str()
    elseif s:sub(pos, pos + 3) == "true" then pos = pos + 4 return true
    elseif s:sub(pos, pos + 4) == "false" then pos = pos + 5 return false
    elseif s:sub(pos, pos + 3) == "null" then pos = pos + 4 return nil
    else
      local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      assert(num and #num > 0, "json: unexpected character at " .. pos)
      pos = pos + #num
      return math.tointeger(tonumber(num)) or tonumber(num)
    end
  end
  return value()
end

-- metadata value: JSON when it parses, else the string itself
local function meta_value(v)
  if type(v) ~= "string" then return v end
  local ok, r = pcall(json_decode, v)
  if ok and r ~= nil then return r end
  return v
end

-- ---- comparison ------------------------------------------------------------------------------
-- { abs = max |a - b|, ref = max |b|, rel = abs / ref } of two tensors (float64 arithmetic)
local function compare(actual, expected, opts)
  opts = opts or {}
  actual = actual:detach()
  if actual.is_cuda then actual = actual:cpu() end -- compared on the host
  local a, b = actual:to("float64"), expected:to("float64")
  if #a.shape ~= #b.shape then
    -- tolerate squeezed/unsqueezed singleton dims (e.g. a scalar loss vs [1])
    if a:numel() == b:numel() then a = a:reshape(b.shape) else
      return { abs = math.huge, ref = 0, rel = math.huge,
        why = "shape [" .. table.concat(actual.shape, ",") .. "] vs [" .. table.concat(expected.shape, ",") .. "]" }
    end
  end
  for i = 1, #a.shape do
    if a.shape[i] ~= b.shape[i] then
      return { abs = math.huge, ref = 0, rel = math.huge,
        why = "shape [" .. table.concat(actual.shape, ",") .. "] vs [" .. table.concat(expected.shape, ",") .. "]" }
    end
  end
  local d = (a - b):abs()
  if opts.circular then d = fsvc.minimum(d, (1 - d):abs()) end -- phases in [0, 1)
  local abs = d:numel() > 0 and d:max():item() or 0
  local ref = b:numel() > 0 and b:abs():max():item() or 0
  if abs ~= abs then abs = math.huge end
  return { abs = abs, ref = ref, rel = ref > 0 and abs / ref or abs }
end

-- worst = max over the comparisons of one kind
local function merge(worst, c, name)
  if not worst or c.rel > worst.rel then
    return { abs = c.abs, ref = c.ref, rel = c.rel, name = name, why = c.why }
  end
  if c.abs > worst.abs then worst.abs = c.abs end
  return worst
end

local function sorted_keys(t, prefix)
  local out = {}
  for k in pairs(t) do if k:sub(1, #prefix) == prefix then out[#out + 1] = k end end
  table.sort(out, function(x, y)
    local nx, ny = tonumber(x:sub(#prefix + 1)), tonumber(y:sub(#prefix + 1))
    if nx and ny then return nx < ny end
    return x < y
  end)
  return out
end

local function try_require(name)
  local ok, m = pcall(require, name)
  if not ok then return nil, "cannot load " .. name .. ": " .. tostring(m):match("[^\n]*") end
  return m
end

-- ---- case builders ---------------------------------------------------------------------------
-- A builder(tensors, meta) returns a case:
--   { module = m (optional; its parameters are loaded from "param.*" and their grads compared),
--     inputs = { name... } (order of the arguments; "input.<name>"),
--     run = function(args...) -> { [output key suffix] = tensor } or a list (keys "0", "1", ...),
--     tol = OUT_TOL, grad_tol = GRAD_TOL, circular = { [output key] = true } }
-- or nil, reason when the pieces it needs are missing.
local builders = {}

local function module_case(m, meta, inputs)
  return { module = m, inputs = inputs or meta.inputs, run = function(...) return { m(...) } end }
end

local function need(name)
  local m, err = try_require(name)
  if not m then error({ missing = err }) end
  return m
end

local module_builders = {
  DCC = function(t, meta)
    local common = need "modules.common"
    local a = meta.args
    return module_case(common.DCC(a[1], a[2], a[3], meta.dilation or 1), meta)
  end,
  LayerNorm = function(t, meta)
    local common = need "modules.common"
    return module_case(common.LayerNorm(meta.channels, { eps = meta.eps }), meta)
  end,
  ResBlock = function(t, meta)
    local common = need "modules.common"
    return module_case(common.ResBlock(meta.channels, meta.kernel_size, meta.dilation,
      { norm = meta.norm, negative_slope = meta.negative_slope, mlp_mul = meta.mlp_mul }), meta)
  end,
  FiLM = function(t, meta)
    local common = need "modules.common"
    return module_case(common.FiLM(meta.channels, meta.cond_channels), meta)
  end,
  Downsample = function(t, meta)
    local common = need "modules.common"
    return module_case(common.Downsample(meta.input_channels, meta.output_channels, meta.factor), meta)
  end,
  Upsample = function(t, meta)
    local common = need "modules.common"
    return module_case(common.Upsample(meta.input_channels, meta.output_channels,
      meta.cond_channels, meta.factor), meta)
  end,
  PitchEstimator = function(t, meta)
    local PE = need "modules.pitch_estimator"
    local m = PE(meta.config)
    return { module = m, inputs = meta.inputs, run = function(w) return { m:logits(w) } end }
  end,
  ["PitchEstimator.estimate"] = function(t, meta)
    local PE = need "modules.pitch_estimator"
    local m = PE(meta.config)
    -- The estimate is a softmax over the top-4 logits: a logit error e moves the weights by ~e and
    -- the f0 by ~e * (spread of the 4 frequencies), so it is compared at 1e-3 of the largest f0.
    return { module = m, inputs = { "wave" }, tol = 1e-3,
      run = function(w) return { f0 = m:estimate(w) } end }
  end,
  ContentEncoder = function(t, meta)
    local CE = need "modules.content_encoder"
    local m = CE(meta.config)
    return { module = m, inputs = meta.inputs, run = function(w) return { m:encode(w) } end }
  end,
  Decoder = function(t, meta)
    local Dec = need "modules.decoder"
    return module_case(Dec(meta.config), meta)
  end,
  Discriminator = function(t, meta)
    local D = need "modules.discriminator"
    local m = D(meta.config)
    return { module = m, inputs = meta.inputs,
      run = function(x)
        local logits, feats = m(x)
        local out = {}
        for _, l in ipairs(logits) do out[#out + 1] = l end
        for _, f in ipairs(feats) do out[#out + 1] = f end
        return out
      end }
  end,
}

builders.energy = function(t, meta)
  return { inputs = { "wave" },
    run = function(w) return { energy = fsvc.dsp.energy(w, meta.frame_size) } end }
end

builders.spectrogram = function(t, meta)
  return { inputs = { "wave" },
    run = function(w) return { spec = fsvc.dsp.spectrogram(w, meta.n_fft, meta.hop_size) } end }
end

builders.oscillate_harmonics = function(t, meta)
  -- Phase-sensitive: the phase is a float32 cumulative sum over 480 samples, whose rounding
  -- (summation order differs from PyTorch's scan) drifts by ~1e-5 of a cycle, i.e. ~1e-4 on
  -- sin(2 pi phase). The bound is 1e-3, and the phase is compared on the circle (0 == 1).
  return { inputs = { "f0" }, tol = 1e-3, circular = { phase = true },
    run = function(f0)
      local h, phase = fsvc.dsp.oscillate_harmonics(f0, meta.frame_size, meta.sample_rate,
        meta.num_harmonics, { min_frequency = meta.min_frequency, return_phase = true })
      return { harmonics = h, phase = phase }
    end }
end

builders.match_features = function(t, meta)
  local knn = need "modules.knn"
  return { inputs = { "source", "reference" },
    run = function(src, ref)
      local out = {}
      for _, key in ipairs(sorted_keys(t, "output.")) do
        local name = key:sub(8)
        local metric, k, alpha = name:match("^(%w+)%.k(%d+)%.alpha([%d%.]+)$")
        out[name] = knn.match_features(src, ref, { k = tonumber(k), alpha = tonumber(alpha), metric = metric })
      end
      return out
    end }
end

builders.loss_cross_entropy_weighted = function(t, meta)
  local losses = need "modules.losses"
  return { inputs = { "logits", "labels", "weight" },
    run = function(logits, labels, w) return { loss = losses.cross_entropy(logits, labels, w) } end }
end

builders.loss_logmel = function(t, meta)
  local losses = need "modules.losses"
  return { inputs = { "x", "y" }, run = function(x, y) return { loss = losses.log_mel(x, y) } end }
end

builders.loss_multiscale_stft = function(t, meta)
  local losses = need "modules.losses"
  -- Gradient bound 3e-3: the log|X| term makes this gradient ill-conditioned in float32. Against
  -- the float64 gradient of the fixture's inputs the reference's own (float32) gradient is off by
  -- 1.0e-3, the CPU's float32 (KissFFT) by 7.6e-4 and the device's float32 (cuFFT emulated in
  -- double) by 3.2e-4, so two correct float32 runs differ from each other by up to ~1.4e-3.
  return { inputs = { "x", "y" }, grad_tol = 3e-3,
    run = function(x, y) return { loss = losses.multiscale_stft(x, y) } end }
end

-- AdamW + clip_grad_norm_: not a forward/backward case; compares the state after every step.
builders.optim_adamw = function(t, meta)
  local optim = fsvc.optim
  return { custom = function(to_dev)
    local p = fsvc.nn.Parameter(to_dev(t["input.param"]:clone()))
    local opt = optim.AdamW({ p }, { lr = meta.lr, betas = meta.betas, eps = meta.eps,
      weight_decay = meta.weight_decay })
    local results = {}
    local i = 0
    while t["input.grad" .. i] do
      p.grad = to_dev(t["input.grad" .. i]:clone())
      local total = fsvc.nn.utils.clip_grad_norm_({ p }, 1.0)
      results["clipped_grad" .. i] = p.grad:clone()
      results["total_norm" .. i] = fsvc.tensor({ total }, { dtype = "float32" })
      opt:step()
      results["param" .. i] = p:detach():clone()
      i = i + 1
    end
    return results
  end }
end

builders.hubert_tiny = function(t, meta)
  local hubert = need "modules.hubert"
  local cfg = hubert.config_from_json and hubert.config_from_json(meta._raw.config) or meta.config
  local m = hubert.HubertModel(cfg)
  m:eval()
  return { module = m, inputs = { "wave" },
    run = function(w)
      local out = m:forward(w)
      local r = {}
      for i, h in ipairs(out.hidden_states) do r["hidden_states." .. (i - 1)] = h end
      return r
    end }
end

local function builder_for(name, meta)
  if builders[name] then return builders[name] end
  if meta.module and module_builders[meta.module] then return module_builders[meta.module] end
  if meta["function"] and builders[meta["function"]] then return builders[meta["function"]] end
  return nil
end

-- ---- one fixture -----------------------------------------------------------------------------
local function fmt(c)
  if not c then return "-" end
  return string.format("abs=%.2e rel=%.2e", c.abs, c.rel)
end

-- Runs one fixture on `device` (nil: the CPU). Returns pass, the report line, and the results
-- { [output/grad key] = tensor } (for the device run's comparison with the CPU run).
local function run_fixture(path, name, device, min_tol)
  local to_dev = function(x) return x end
  if device and device ~= "cpu" then to_dev = function(x) return x:to(device) end end
  local t, raw = fsvc.load_safetensors(path)
  local meta = { _raw = raw or {} }
  for k, v in pairs(raw or {}) do meta[k] = meta_value(v) end
  local b = builder_for(name, meta)
  if not b then return false, "no case builder for this fixture" end
  local ok, case = pcall(b, t, meta)
  if not ok then
    if type(case) == "table" and case.missing then return false, case.missing end
    return false, "building the case failed: " .. tostring(case)
  end
  local tol, gtol = case.tol or OUT_TOL, case.grad_tol or GRAD_TOL
  tol, gtol = math.max(tol, min_tol or 0), math.max(gtol, min_tol or 0)
  local out_worst, grad_worst
  local results = {}

  if case.custom then
    local res = case.custom(to_dev)
    for _, key in ipairs(sorted_keys(t, "output.")) do
      local got = res[key:sub(8)]
      if not got then return false, "no result for " .. key end
      results[key] = got
      out_worst = merge(out_worst, compare(got, t[key]), key)
    end
  else
    local m = case.module
    if m then
      local sd = {}
      for _, k in ipairs(sorted_keys(t, "param.")) do sd[k:sub(7)] = t[k] end
      local okl, err = pcall(function() m:load_state_dict(sd) end)
      if not okl then return false, "load_state_dict: " .. tostring(err):match("[^\n]*") end
      if device and device ~= "cpu" then
        local okm, errm = pcall(function() m:to(device) end)
        if not okm then return false, "to(" .. device .. "): " .. tostring(errm):match("[^\n]*") end
      end
      m:train(meta.mode ~= "eval")
      m:zero_grad()
    end
    local args = {}
    for i, iname in ipairs(case.inputs) do
      local x = t["input." .. iname]
      if not x then return false, "missing input." .. iname end
      if t["grad.input." .. iname] then x = x:clone() end
      x = to_dev(x)
      if t["grad.input." .. iname] then x:requires_grad_(true) end
      args[i] = x
    end
    local okr, outs = pcall(case.run, table.unpack(args, 1, #case.inputs))
    if not okr then return false, "forward failed: " .. tostring(outs):match("[^\n]*") end
    -- a list result is numbered "0", "1", ...
    local named = {}
    for k, v in pairs(outs) do
      if math.type(k) == "integer" then named[tostring(k - 1)] = v else named[k] = v end
    end
    local expected = sorted_keys(t, "output.")
    for _, key in ipairs(expected) do
      local got = named[key:sub(8)]
      if not got then return false, "no output for " .. key end
      local c = compare(got, t[key], { circular = case.circular and case.circular[key:sub(8)] })
      results[key] = got
      out_worst = merge(out_worst, c, key)
    end
    -- backward
    local grads = {}
    for k in pairs(t) do if k:match("^grad%.") then grads[#grads + 1] = k end end
    if #grads > 0 then
      local total
      local cots = sorted_keys(t, "cotangent.")
      if #cots > 0 then
        for _, ck in ipairs(cots) do
          local o = named[ck:sub(11)]
          if not o then return false, "no output for " .. ck end
          local term = (o * to_dev(t[ck])):sum()
          total = total and total + term or term
        end
      else
        for _, key in ipairs(expected) do
          local term = named[key:sub(8)]:sum()
          total = total and total + term or term
        end
      end
      local okb, err = pcall(function() total:backward() end)
      if not okb then return false, "backward failed: " .. tostring(err):match("[^\n]*") end
      local params = {}
      if m then for pname, p in m:named_parameters() do params[pname] = p end end
      table.sort(grads)
      for _, gk in ipairs(grads) do
        local got
        local pname = gk:match("^grad%.param%.(.*)$")
        local iname = gk:match("^grad%.input%.(.*)$")
        if pname then
          local p = params[pname]
          if not p then return false, "no parameter " .. pname end
          got = p.grad or fsvc.zeros_like(p)
        else
          local idx
          for i, n in ipairs(case.inputs) do if n == iname then idx = i end end
          if not idx then return false, "no input " .. tostring(iname) end
          got = args[idx].grad or fsvc.zeros_like(args[idx])
        end
        results[gk] = got
        grad_worst = merge(grad_worst, compare(got, t[gk]), gk)
      end
    end
  end

  local pass = out_worst ~= nil and out_worst.rel <= tol and (not grad_worst or grad_worst.rel <= gtol)
  local line = string.format("out %s  grad %s", fmt(out_worst), fmt(grad_worst))
  if not pass then
    local worst = (out_worst and out_worst.rel > tol) and out_worst or grad_worst
    if worst then line = line .. "  worst: " .. tostring(worst.name) .. (worst.why and (" (" .. worst.why .. ")") or "") end
  end
  -- a case's own looser bounds (error amplification) apply to the device-vs-CPU comparison too
  return pass, line, results, { out = case.tol, grad = case.grad_tol }
end

-- The fixture on the CPU and on `device`: the device run must pass against the reference and
-- agree with the CPU run (DEVICE_TOL or the case's looser bound).
local function run_fixture_on_device(path, name, device, tf32)
  local cpu_pass, _, cpu_res = run_fixture(path, name)
  if not cpu_pass or not cpu_res then return false, "fails on the CPU already (run without --device)" end
  local pass, line, res, case_tol = run_fixture(path, name, device, tf32 and TF32_TOL or nil)
  if not res then return false, line end
  local base = tf32 and TF32_TOL or DEVICE_TOL
  local worst, worst_tol = nil, base
  for key, got in pairs(res) do
    local want = cpu_res[key]
    if want then
      local c = compare(got, fsvc.no_grad(function() return want:detach() end))
      local bound = math.max(base, (key:match("^grad%.") and case_tol.grad or case_tol.out) or 0)
      if not worst or c.rel / bound > worst.rel / worst_tol then
        worst, worst_tol = { abs = c.abs, rel = c.rel, name = key, why = c.why }, bound
      end
    end
  end
  local agree = worst == nil or worst.rel <= worst_tol
  line = line .. string.format("  vs-cpu %s", fmt(worst))
  if not agree then
    line = line .. string.format("  vs-cpu worst: %s > %.0e", tostring(worst.name), worst_tol)
  end
  return pass and agree, line
end

-- ---- main ------------------------------------------------------------------------------------
local function main(argv)
  local positional, device, tf32 = {}, nil, false
  local i = 1
  while argv[i] do
    local a = argv[i]
    if a == "--device" or a == "-d" then
      device = argv[i + 1]
      i = i + 1
      if device == nil then
        io.stderr:write("parity: --device needs a value (cuda or cuda:N)\n")
        return 2
      end
    elseif a == "--tf32" then tf32 = true
    elseif a:sub(1, 1) == "-" then
      io.stderr:write("parity: unknown option " .. a .. " (expected --device cuda|cuda:N, --tf32)\n")
      return 2
    else positional[#positional + 1] = a end
    i = i + 1
  end
  local D
  if device then
    D = dofile("spec/helpers/device.lua")
    local canonical, err = D.parse(device)
    if not canonical then
      io.stderr:write("parity: " .. err .. "\n")
      return 2
    end
    device = canonical
    if device == "cpu" then device = nil end
  end
  if device then
    local why = D.unavailable(device)
    if why then
      print("SKIP: no CUDA device (" .. why .. ")")
      return 0
    end
    if tf32 then fsvc.cuda.set_allow_tf32(true) end
  end
  local dir = positional[1] or "../shared/reference/fixtures"
  local only = {}
  for k = 2, #positional do only[positional[k]] = true end
  local files = {}
  local p = io.popen('ls -1 "' .. dir .. '" 2>/dev/null')
  for f in p:lines() do
    local name = f:match("^(.*)%.safetensors$")
    if name and (next(only) == nil or only[name]) then files[#files + 1] = name end
  end
  p:close()
  table.sort(files)
  if #files == 0 then
    io.stderr:write("parity: no *.safetensors in " .. dir .. "\n")
    return 1
  end
  local restore_dsp = device and D.install_host_dsp() or nil
  local passed, failed = 0, 0
  for _, name in ipairs(files) do
    local t0 = fsvc.time()
    local path = dir .. "/" .. name .. ".safetensors"
    local ok, pass, line
    if device then
      ok, pass, line = pcall(run_fixture_on_device, path, name, device, tf32)
    else
      ok, pass, line = pcall(run_fixture, path, name)
    end
    if not ok then pass, line = false, "error: " .. tostring(pass):match("[^\n]*") end
    if pass then passed = passed + 1 else failed = failed + 1 end
    print(string.format("%-36s %s  %s  (%.2fs)", name, pass and "PASS" or "FAIL", line, fsvc.time() - t0))
    collectgarbage()
  end
  if restore_dsp then restore_dsp() end
  print(string.format("%d passed, %d failed%s", passed, failed,
    device and string.format(" (on %s%s)", device, tf32 and ", TF32" or "") or ""))
  return failed == 0 and 0 or 1
end

-- usable as a library (spec/modules_spec.lua runs it) and as a script
if ... == "spec.parity" then
  return { run_fixture = run_fixture, run_fixture_on_device = run_fixture_on_device,
    json_decode = json_decode, builders = builders,
    module_builders = module_builders, main = main }
end
os.exit(main(arg or {}))
