-- Device helpers for the parity runner (spec/parity.lua --device) and the training benchmark
-- (spec/bench/bench_train.lua -d).
--
--   local D = dofile("spec/helpers/device.lua")
--   D.parse(name)            "cpu" | "cuda" | "cuda:N" -> canonical name ("cuda" -> "cuda:0"), or
--                            nil and a message
--   D.unavailable(device)    nil when the device can be used, else why not (a one-line string)
--   D.install_host_dsp([names]) -> restore(), calls: while installed, each fsvc.dsp function in
--                            names (default D.HOST_DSP, the ones without a device path) given a
--                            CUDA tensor runs on host copies and its tensor results move back to
--                            that device (differentiable both ways: moves are "to_device" nodes).
--                            calls[name] counts the round trips. D.ALL_DSP (every fsvc.dsp
--                            function that takes tensors) sends all of them through the host,
--                            e.g. to compare a device path with its host round trip.
--   D.spectrogram(x, n_fft, hop), D.log_mel_loss(fake, real): the same values as
--                            fsvc.dsp.spectrogram / fsvc.dsp.log_mel_loss, computed with device
--                            ops (an STFT as a conv1d with a windowed DFT basis), so they run where
--                            x lives. checked against fsvc.dsp in spec/device_spec.lua.
local fsvc = require "fsvc"

local M = {}

function M.parse(name)
  if name == "cpu" then return "cpu" end
  if name == "cuda" then return "cuda:0" end
  if type(name) == "string" and name:match("^cuda:%d+$") then return name end
  return nil, string.format("unknown device '%s' (expected cpu, cuda or cuda:N)", tostring(name))
end

function M.unavailable(device)
  if device == "cpu" then return nil end
  if not fsvc.cuda.is_available() then return fsvc.cuda.unavailable_reason() end
  local index = tonumber(device:match("^cuda:(%d+)$"))
  local count = fsvc.cuda.device_count()
  if index >= count then
    return string.format("%s requested but only %d CUDA device(s) present", device, count)
  end
  return nil
end

-- every fsvc.dsp function that takes tensors
M.ALL_DSP = { "rfft", "stft", "istft", "magnitude", "spectrogram", "mel_spectrogram", "log_mel_loss",
  "multiscale_stft_loss", "energy", "oscillate_harmonics", "pitch_shift", "freq2id", "id2freq",
  "interpolate_f0", "harvest", "dio" }
-- those of them that refuse CUDA tensors (their C functions start with FSVC_REFUSE_CUDA); the
-- others have device paths (core/dsp/dsp_device.c, dsp_device_pitch.c)
M.HOST_DSP = { "harvest", "dio" }

function M.install_host_dsp(names)
  local saved, calls = {}, {}
  for _, name in ipairs(names or M.HOST_DSP) do
    local f = fsvc.dsp[name]
    if f then
      saved[name] = f
      fsvc.dsp[name] = function(...)
        local args = table.pack(...)
        local device
        for i = 1, args.n do
          local a = args[i]
          if fsvc.is_tensor(a) and a.is_cuda then
            device = device or a.device
            args[i] = a:cpu()
          end
        end
        if not device then return f(...) end
        calls[name] = (calls[name] or 0) + 1
        local out = table.pack(f(table.unpack(args, 1, args.n)))
        for i = 1, out.n do
          if fsvc.is_tensor(out[i]) then out[i] = out[i]:to(device) end
        end
        return table.unpack(out, 1, out.n)
      end
    end
  end
  local function restore()
    for name, f in pairs(saved) do fsvc.dsp[name] = f end
  end
  return restore, calls
end

-- ---- device-generic STFT power and the losses built on it --------------------------------------
local basis_cache = {}

-- [2F, 1, n_fft] rows w[n] cos(2 pi k n / N) then -w[n] sin(...), k = 0..N/2 (periodic Hann w),
-- computed in float64 on the host, cached per (n_fft, dtype, device)
local function dft_basis(n_fft, dtype, device)
  local key = n_fft .. "/" .. dtype .. "/" .. device
  local b = basis_cache[key]
  if b then return b end
  local F = n_fft // 2 + 1
  local n = fsvc.arange(n_fft, { dtype = "float64" })
  local w = 0.5 - (n * (2 * math.pi / n_fft)):cos() * 0.5
  local k = fsvc.arange(F, { dtype = "float64" })
  local angle = k:view(F, 1) * n:view(1, n_fft) * (2 * math.pi / n_fft)
  local wv = w:view(1, n_fft)
  b = fsvc.cat({ angle:cos() * wv, -(angle:sin() * wv) }, 0):view(2 * F, 1, n_fft)
  b = b:to(dtype)
  if device ~= "cpu" then b = b:to(device) end
  basis_cache[key] = b
  return b
end

-- |STFT|^2 of x [B, L] (centred, reflect padding of n_fft/2, periodic Hann) -> [B, F, 1 + L/hop]
local function stft_power(x, n_fft, hop)
  local basis = dft_basis(n_fft, x.dtype, x.device)
  local F = n_fft // 2 + 1
  local padded = fsvc.pad(x:unsqueeze(1), { n_fft // 2, n_fft // 2 }, { mode = "reflect" })
  local s = padded:conv1d(basis, nil, { stride = hop })
  local re, im = s:narrow(1, 0, F), s:narrow(1, F, F)
  return re * re + im * im
end
M.stft_power = stft_power

-- fsvc.dsp.spectrogram: magnitude, first frame dropped -> [B, n_fft/2+1, L/hop]
function M.spectrogram(x, n_fft, hop)
  local p = stft_power(x, n_fft, hop)
  return p:narrow(2, 1, p.shape[3] - 1):sqrt()
end

local mel_cache = {}
local function mel_matrix(dtype, device) -- [128, 513]: torchaudio's HTK filterbank, transposed
  local key = dtype .. "/" .. device
  local m = mel_cache[key]
  if not m then
    m = fsvc.dsp.mel_filterbank({ sample_rate = 24000, n_fft = 1024, n_mels = 128, dtype = dtype })
        :t():contiguous()
    if device ~= "cpu" then m = m:to(device) end
    mel_cache[key] = m
  end
  return m
end

local function log_mel(x)
  local mel = fsvc.matmul(mel_matrix(x.dtype, x.device), stft_power(x, 1024, 256))
  local l = mel:clamp(1e-6, math.huge):log()
  return fsvc.where(l:abs():lt(math.huge), l, 0) -- NaN/Inf -> 0, as the reference
end

-- fsvc.dsp.log_mel_loss: mean |log mel(fake) - log mel(real)| (24 kHz, n_fft 1024, hop 256, 128
-- HTK mels, power 2)
function M.log_mel_loss(fake, real)
  return (log_mel(fake) - log_mel(real)):abs():mean()
end

return M
