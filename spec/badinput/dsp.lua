-- Wrong arguments to fsvc.dsp; each must raise a one-line Lua error, never crash.
local dsp = fsvc.dsp
local function freed()
  local t = fsvc.zeros(100)
  t:free()
  return t
end
local x = function() return fsvc.randn(2, 100) end
local nan = function() local t = fsvc.randn(100); t:narrow(0, 3, 1):fill_(0 / 0); return t end
local f0 = function() return fsvc.rand(1, 1, 4) * 200 end

return {
  -- stft family
  { name = "stft: not a tensor", fn = function() return dsp.stft("x", { n_fft = 8 }) end },
  { name = "stft: no options", fn = function() return dsp.stft(x()) end },
  { name = "stft: n_fft missing", fn = function() return dsp.stft(x(), { hop_length = 2 }) end },
  { name = "stft: n_fft 0", fn = function() return dsp.stft(x(), { n_fft = 0 }) end },
  { name = "stft: hop 0", fn = function() return dsp.stft(x(), { n_fft = 8, hop_length = 0 }) end },
  { name = "stft: win_length > n_fft", fn = function() return dsp.stft(x(), { n_fft = 8, win_length = 9 }) end },
  { name = "stft: window of the wrong length", fn = function() return dsp.stft(x(), { n_fft = 8, window = fsvc.ones(7) }) end },
  { name = "stft: window with NaN", fn = function() return dsp.stft(x(), { n_fft = 8, window = fsvc.full({ 8 }, 0 / 0) }) end },
  { name = "stft: window not a tensor", fn = function() return dsp.stft(x(), { n_fft = 8, window = { 1, 2 } }) end },
  { name = "stft: unknown option", fn = function() return dsp.stft(x(), { n_fft = 8, hop = 2 }) end },
  { name = "stft: bad pad_mode", fn = function() return dsp.stft(x(), { n_fft = 8, pad_mode = "circular" }) end },
  { name = "stft: 3-d input", fn = function() return dsp.stft(fsvc.randn(2, 2, 100), { n_fft = 8 }) end },
  { name = "stft: 0-d input", fn = function() return dsp.stft(fsvc.tensor(1.0), { n_fft = 8 }) end },
  { name = "stft: empty input", fn = function() return dsp.stft(fsvc.zeros(2, 0), { n_fft = 8 }) end },
  { name = "stft: int64 input", fn = function() return dsp.stft(fsvc.zeros({ 100 }, { dtype = "int64" }), { n_fft = 8 }) end },
  { name = "stft: freed input", fn = function() return dsp.stft(freed(), { n_fft = 8 }) end },
  { name = "stft: reflect pad longer than the signal", fn = function() return dsp.stft(fsvc.randn(4), { n_fft = 8 }) end },
  { name = "stft: signal shorter than n_fft", fn = function() return dsp.stft(fsvc.randn(4), { n_fft = 8, center = false }) end },
  { name = "stft: huge n_fft", fn = function() return dsp.stft(x(), { n_fft = 1 << 40 }) end },
  { name = "istft: last dim not 2", fn = function() return dsp.istft(fsvc.randn(5, 4, 3), { n_fft = 8 }) end },
  { name = "istft: wrong bin count", fn = function() return dsp.istft(fsvc.randn(6, 4, 2), { n_fft = 8 }) end },
  { name = "istft: two-sided", fn = function() return dsp.istft(fsvc.randn(8, 4, 2), { n_fft = 8, onesided = false }) end },
  { name = "istft: NOLA fails", fn = function() return dsp.istft(fsvc.randn(5, 4, 2), { n_fft = 8, hop_length = 8, center = false }) end },
  { name = "istft: negative length", fn = function() return dsp.istft(fsvc.randn(5, 4, 2), { n_fft = 8, length = -1 }) end },
  { name = "magnitude: last dim not 2", fn = function() return dsp.magnitude(fsvc.randn(3, 3)) end },
  { name = "magnitude: power 0", fn = function() return dsp.magnitude(fsvc.randn(3, 2), 0) end },
  { name = "magnitude: power NaN", fn = function() return dsp.magnitude(fsvc.randn(3, 2), { power = 0 / 0 }) end },
  { name = "spectrogram: too short", fn = function() return dsp.spectrogram(fsvc.randn(1, 100), 1920, 480) end },
  { name = "spectrogram: hop 0", fn = function() return dsp.spectrogram(fsvc.randn(1, 4000), 1920, 0) end },
  { name = "hann_window: negative", fn = function() return dsp.hann_window(-1) end },
  { name = "hann_window: int64", fn = function() return dsp.hann_window(4, { dtype = "int64" }) end },
  -- mel
  { name = "mel_filterbank: no table", fn = function() return dsp.mel_filterbank(24000) end },
  { name = "mel_filterbank: no sample_rate", fn = function() return dsp.mel_filterbank { n_fft = 1024 } end },
  { name = "mel_filterbank: sr 0", fn = function() return dsp.mel_filterbank { sample_rate = 0, n_fft = 1024 } end },
  { name = "mel_filterbank: f_max <= f_min", fn = function() return dsp.mel_filterbank { sample_rate = 24000, n_fft = 1024, f_min = 500, f_max = 100 } end },
  { name = "mel_filterbank: bad scale", fn = function() return dsp.mel_filterbank { sample_rate = 24000, n_fft = 1024, mel_scale = "bark" } end },
  { name = "mel_filterbank: bad norm", fn = function() return dsp.mel_filterbank { sample_rate = 24000, n_fft = 1024, norm = "l2" } end },
  { name = "mel_filterbank: n_mels 0", fn = function() return dsp.mel_filterbank { sample_rate = 24000, n_fft = 1024, n_mels = 0 } end },
  { name = "mel_spectrogram: sr negative", fn = function() return dsp.mel_spectrogram(x(), { sample_rate = -1 }) end },
  { name = "mel_spectrogram: unknown option", fn = function() return dsp.mel_spectrogram(x(), { nfft = 8 }) end },
  -- losses and energy
  { name = "log_mel_loss: shapes differ", fn = function() return dsp.log_mel_loss(fsvc.randn(1, 2000), fsvc.randn(1, 2001)) end },
  { name = "log_mel_loss: dtypes differ", fn = function() return dsp.log_mel_loss(fsvc.randn(1, 2000), fsvc.randn({ 1, 2000 }, { dtype = "float64" })) end },
  { name = "log_mel_loss: too short", fn = function() return dsp.log_mel_loss(fsvc.randn(1, 100), fsvc.randn(1, 100)) end },
  { name = "log_mel_loss: not a tensor", fn = function() return dsp.log_mel_loss(fsvc.randn(1, 2000), 1) end },
  { name = "multiscale_stft_loss: too short", fn = function() return dsp.multiscale_stft_loss(fsvc.randn(1, 1000), fsvc.randn(1, 1000)) end },
  { name = "energy: 1-D", fn = function() return dsp.energy(fsvc.randn(960)) end },
  { name = "energy: shorter than a frame", fn = function() return dsp.energy(fsvc.randn(1, 100)) end },
  { name = "energy: frame 0", fn = function() return dsp.energy(fsvc.randn(1, 960), 0) end },
  -- oscillator
  { name = "oscillate_harmonics: [B, T]", fn = function() return dsp.oscillate_harmonics(fsvc.rand(1, 4)) end },
  { name = "oscillate_harmonics: NaN f0", fn = function() return dsp.oscillate_harmonics(nan():reshape(1, 1, 100)) end },
  { name = "oscillate_harmonics: sr 0", fn = function() return dsp.oscillate_harmonics(f0(), 480, 0) end },
  { name = "oscillate_harmonics: frame 0", fn = function() return dsp.oscillate_harmonics(f0(), 0) end },
  { name = "oscillate_harmonics: negative harmonics", fn = function() return dsp.oscillate_harmonics(f0(), 480, 24000, -1) end },
  { name = "oscillate_harmonics: empty", fn = function() return dsp.oscillate_harmonics(fsvc.zeros(1, 1, 0)) end },
  { name = "Oscillator: sr 0", fn = function() return dsp.Oscillator { sample_rate = 0 } end },
  { name = "Oscillator: unknown option", fn = function() return dsp.Oscillator { rate = 1 } end },
  { name = "Oscillator: batch changes", fn = function()
    local o = dsp.Oscillator {}
    o:process(f0())
    return o:process(fsvc.rand(2, 1, 4))
  end },
  { name = "Oscillator: process on a closed one", fn = function()
    local o = dsp.Oscillator {}
    o:close()
    return o:process(f0())
  end },
  { name = "Oscillator: process with no f0", fn = function() return dsp.Oscillator {}:process() end },
  { name = "Oscillator: method on a non-oscillator", fn = function() return dsp.Oscillator {}.process({}, f0()) end },
  { name = "StreamSTFT: no n_fft", fn = function() return dsp.StreamSTFT {} end },
  { name = "StreamSTFT: win_length > n_fft", fn = function() return dsp.StreamSTFT { n_fft = 8, win_length = 10 } end },
  { name = "StreamSTFT: batch changes", fn = function()
    local s = dsp.StreamSTFT { n_fft = 8 }
    s:process(fsvc.randn(2, 10))
    return s:process(fsvc.randn(3, 10))
  end },
  { name = "StreamSTFT: NaN chunk", fn = function() return dsp.StreamSTFT { n_fft = 8 }:process(nan()) end },
  { name = "StreamSTFT: flush before any chunk", fn = function() return dsp.StreamSTFT { n_fft = 8 }:flush() end },
  { name = "StreamSTFT: reflect flush of too few samples", fn = function()
    local s = dsp.StreamSTFT { n_fft = 8, center = true }
    s:process(fsvc.randn(3))
    return s:flush()
  end },
  -- pitch helpers
  { name = "pitch_shift: NaN semitones", fn = function() return dsp.pitch_shift(f0(), 0 / 0) end },
  { name = "pitch_shift: int64", fn = function() return dsp.pitch_shift(fsvc.zeros({ 3 }, { dtype = "int64" }), 1) end },
  { name = "freq2id: NaN", fn = function() return dsp.freq2id(nan()) end },
  { name = "id2freq: class 512", fn = function() return dsp.id2freq(fsvc.tensor({ 512 }, { dtype = "int64" })) end },
  { name = "id2freq: negative", fn = function() return dsp.id2freq(fsvc.tensor({ -1 }, { dtype = "int64" })) end },
  { name = "interpolate_f0: n 0", fn = function() return dsp.interpolate_f0(fsvc.rand(10), 0) end },
  { name = "interpolate_f0: 4-d", fn = function() return dsp.interpolate_f0(fsvc.rand(1, 1, 1, 10), 5) end },
  { name = "interpolate_f0: empty", fn = function() return dsp.interpolate_f0(fsvc.zeros(0), 5) end },
  -- resample and F0
  { name = "resample: rate 0", fn = function() return dsp.resample(fsvc.randn(100), 0, 16000) end },
  { name = "resample: rate NaN", fn = function() return dsp.resample(fsvc.randn(100), 24000, 0 / 0) end },
  { name = "resample: empty", fn = function() return dsp.resample(fsvc.zeros(0), 24000, 16000) end },
  { name = "resample: NaN sample", fn = function() return dsp.resample(nan(), 24000, 16000) end },
  { name = "resample: too short for the ratio", fn = function() return dsp.resample(fsvc.randn(1), 48000, 8000) end },
  { name = "harvest: sr 0", fn = function() return dsp.harvest(fsvc.randn(1000), 0) end },
  { name = "harvest: stereo", fn = function() return dsp.harvest(fsvc.randn(2, 1000), 16000) end },
  { name = "harvest: empty", fn = function() return dsp.harvest(fsvc.zeros(0), 16000) end },
  { name = "harvest: NaN sample", fn = function() return dsp.harvest(nan(), 16000) end },
  { name = "harvest: f0_floor > f0_ceil", fn = function() return dsp.harvest(fsvc.randn(4000), 16000, { f0_floor = 500, f0_ceil = 100 }) end },
  { name = "dio: frame_period 0", fn = function() return dsp.dio(fsvc.randn(4000), 16000, { frame_period = 0 }) end },
  { name = "dio: unknown option", fn = function() return dsp.dio(fsvc.randn(4000), 16000, { floor = 50 }) end },
}
