-- Gradient checks of the DSP ops (fsvc.dsp): rfft (even, odd and tiny n, batched), stft (w.r.t. the signal; centred reflect /
-- constant / replicate padding, non-centred, two-sided, odd n_fft, a short window, a custom
-- window, a strided input), istft (w.r.t. the spectrum), magnitude (powers 1, 2, 0.5), and the
-- compositions built on them: spectrogram, mel_spectrogram, energy, log_mel_loss,
-- multiscale_stft_loss. float64 runs through fsvc's own double FFT. spec/cuda_spec.lua runs the
-- same cases on CUDA against the CPU.
local dsp = fsvc.dsp

local function r(shape, scale)
  local t = fsvc.randn(shape, { dtype = "float64" })
  if scale then t = t * scale end
  t.requires_grad = true
  return t
end
local function inputs(...)
  local specs = { ... }
  return function()
    local list = {}
    for i, s in ipairs(specs) do list[i] = r(s) end
    return list
  end
end

local cases = {}
local function add(op, fn, make, opts)
  cases[#cases + 1] = { op = op, fn = fn, inputs = make, opts = opts }
end

-- rfft (the adjoint halves bins 1..ceil(n/2)-1; DC and, for even n, Nyquist imaginary parts
-- do not reach the input)
add("rfft", function(x) return dsp.rfft(x) end, inputs({ 3, 8 }))
add("rfft", function(x) return dsp.rfft(x) end, inputs({ 2, 9 }))  -- odd n
add("rfft", function(x) return dsp.rfft(x) end, inputs({ 2, 2, 6 }))
add("rfft", function(x) return dsp.rfft(x) end, inputs({ 5 }))
add("rfft", function(x) return dsp.rfft(x) end, inputs({ 3, 1 }))  -- n = 1: X_0 = x_0
add("rfft", function(x) return dsp.rfft(x) end, inputs({ 2, 2 }))
add("rfft", function(x) return dsp.rfft(x:transpose(0, 1)) end, inputs({ 12, 2 })) -- strided
add("rfft", function(x) return dsp.rfft(x) end, inputs({ 1, 30 }))  -- radix 2*3*5

-- stft
add("stft", function(x) return dsp.stft(x, { n_fft = 8, hop_length = 2 }) end, inputs({ 2, 20 }))
add("stft", function(x) return dsp.stft(x, { n_fft = 8, hop_length = 3, pad_mode = "constant" }) end, inputs({ 17 }))
add("stft", function(x) return dsp.stft(x, { n_fft = 8, hop_length = 2, pad_mode = "replicate" }) end, inputs({ 1, 15 }))
add("stft", function(x) return dsp.stft(x, { n_fft = 8, hop_length = 4, center = false }) end, inputs({ 2, 24 }))
add("stft", function(x) return dsp.stft(x, { n_fft = 8, hop_length = 2, onesided = false }) end, inputs({ 2, 12 }))
add("stft", function(x) return dsp.stft(x, { n_fft = 9, hop_length = 2 }) end, inputs({ 2, 14 }))  -- odd n_fft
add("stft", function(x) return dsp.stft(x, { n_fft = 12, hop_length = 3, win_length = 6 }) end, inputs({ 16 }))
add("stft", function(x)
  local w = fsvc.tensor({ 0.1, 0.5, 1.0, 0.7, 0.3, 0.2 }, { dtype = "float64" })
  return dsp.stft(x, { n_fft = 6, hop_length = 2, window = w })
end, inputs({ 2, 13 }))
add("stft", function(x) return dsp.stft(x:transpose(0, 1), { n_fft = 8, hop_length = 2 }) end, inputs({ 16, 2 })) -- strided
add("stft", function(x) return dsp.stft(x, { n_fft = 30, hop_length = 5 }) end, inputs({ 1, 40 })) -- radix 2*3*5

-- istft (onesided spectra; the imaginary parts of the DC and Nyquist bins get gradient 0)
add("istft", function(s) return dsp.istft(s, { n_fft = 8, hop_length = 2 }) end, inputs({ 2, 5, 6, 2 }))
add("istft", function(s) return dsp.istft(s, { n_fft = 8, hop_length = 2, length = 9 }) end, inputs({ 5, 6, 2 }))
add("istft", function(s) return dsp.istft(s, { n_fft = 9, hop_length = 3 }) end, inputs({ 1, 5, 4, 2 }))
add("istft", function(s)
  local w = fsvc.tensor({ 0.5, 1, 1, 0.5 }, { dtype = "float64" })
  return dsp.istft(s, { n_fft = 4, hop_length = 2, window = w, center = false })
end, inputs({ 2, 3, 5, 2 }))

-- magnitude
add("magnitude", function(s) return dsp.magnitude(s) end, inputs({ 3, 4, 2 }))
add("magnitude", function(s) return dsp.magnitude(s, { power = 2 }) end, inputs({ 2, 3, 5, 2 }))
add("magnitude", function(s) return dsp.magnitude(s, 0.5) end, inputs({ 6, 2 }))

-- compositions
add("stft", function(x) return dsp.spectrogram(x, 16, 4) end, inputs({ 2, 32 }))
add("stft", function(x)
  return dsp.mel_spectrogram(x, { sample_rate = 8000, n_fft = 16, hop_length = 4, n_mels = 5 })
end, inputs({ 2, 24 }))
add("stft", function(x)
  return dsp.mel_spectrogram(x, { sample_rate = 8000, n_fft = 16, hop_length = 4, n_mels = 4,
                                  mel_scale = "slaney", norm = "slaney", power = 1 })
end, inputs({ 20 }))
add("energy", function(x) return dsp.energy(x, 4) end, inputs({ 2, 16 }))
add("log_mel_loss", function(a, b) return dsp.log_mel_loss(a, b) end,
    function() return { r({ 1, 513 }), fsvc.randn({ 1, 513 }, { dtype = "float64" }) } end)
-- multiscale_stft_loss needs > 1024 samples (n_fft 2048 reflect-padded): too slow for finite
-- differences here; its gradient is checked against the PyTorch fixture in spec/dsp_spec.lua.

return cases
