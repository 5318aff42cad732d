-- fsvc.audio: load / save / info round trips, mono mixing, resampling on load.
local audio, dsp = fsvc.audio, fsvc.dsp
local dir = os.getenv("TMPDIR") or "/tmp"
local FX = "../shared/reference/fixtures/f0/"

local function tmp(name) return dir .. "/fsvc_audio_spec_" .. name end
local function maxdiff(a, b) return fsvc.max_abs_diff(a:to("float64"), b:to("float64")) end

describe("audio", function()
  local stereo
  before_each(function()
    fsvc.manual_seed(11)
    stereo = (fsvc.rand({ 2, 2400 }) * 1.6 - 0.8)
  end)

  it("saves and loads wav pcm16 / pcm24 / float and flac", function()
    for _, c in ipairs {
      { "a.wav", "pcm16", 1 / 32768 }, { "b.wav", "pcm24", 1 / 2 ^ 23 }, { "c.wav", "float", 0 },
      { "d.flac", "pcm16", 1 / 32768 }, { "e.flac", "pcm24", 1 / 2 ^ 23 },
    } do
      local path = tmp(c[1])
      audio.save(path, stereo, 24000, { subtype = c[2] })
      local info = audio.info(path)
      assert.are.same({ 2400, 2, 24000, c[2] }, { info.frames, info.channels, info.sample_rate, info.subtype })
      assert.are.equal(c[1]:match("%.(%a+)$"), info.format)
      assert(math.abs(info.duration - 0.1) < 1e-9)
      local x, sr = audio.load(path)
      assert.are.equal(24000, sr)
      assert.are.same({ 2, 2400 }, x.shape)
      assert.are.equal("float32", x.dtype)
      assert(maxdiff(x, stereo) <= c[3] + 1e-7, c[1] .. ": round trip error " .. maxdiff(x, stereo))
      os.remove(path)
    end
  end)

  it("mono=true averages the channels; a mono file loads as [L]", function()
    local path = tmp("m.wav")
    audio.save(path, stereo, 24000, { subtype = "float" })
    local m = audio.load(path, { mono = true })
    assert.are.same({ 2400 }, m.shape)
    assert(maxdiff(m, stereo:mean(0)) < 1e-7)
    audio.save(path, stereo:select(0, 0), 24000, { format = "wav", subtype = "float" })
    assert.are.same({ 2400 }, audio.load(path).shape)
    os.remove(path)
  end)

  it("resamples on load with sr and matches dsp.resample", function()
    local path = tmp("r.wav")
    audio.save(path, stereo, 48000, { subtype = "float" })
    local x, sr = audio.load(path, { sr = 24000 })
    assert.are.equal(24000, sr)
    assert.are.same({ 2, 1200 }, x.shape)
    assert(maxdiff(x, dsp.resample(stereo, 48000, 24000)) < 1e-6)
    local y, sr2 = audio.load(path, { sr = 48000 })
    assert.are.equal(48000, sr2)
    assert.are.same({ 2, 2400 }, y.shape)
    os.remove(path)
  end)

  it("float64 signals are saved too; PCM clips at full scale", function()
    local path = tmp("clip.wav")
    audio.save(path, fsvc.tensor({ -2.0, -1.0, 0.0, 0.5, 1.0, 3.0 }, { dtype = "float64" }), 8000)
    local x = audio.load(path)
    assert(math.abs(x:get(0) + 1) < 1e-4 and math.abs(x:get(5) - 1) < 1e-4)
    assert(math.abs(x:get(3) - 0.5) < 1e-4)
    os.remove(path)
  end)

  it("reads the F0 fixture wavs (16-bit PCM as int16 / 32768)", function()
    local path = FX .. "01_tone_glide_vibrato_16k.wav"
    local f = io.open(path, "rb")
    if not f then
      print("skipping: " .. path .. " is absent")
      return
    end
    f:close()
    local info = audio.info(path)
    assert.are.same({ 40000, 1, 16000, "wav", "pcm16" }, { info.frames, info.channels, info.sample_rate, info.format, info.subtype })
    local x, sr = audio.load(path)
    assert.are.equal(16000, sr)
    assert.are.same({ 40000 }, x.shape)
    -- every sample is a multiple of 1/32768
    for i = 1000, 1100 do
      local v = x:get(i) * 32768
      assert.are.equal(math.floor(v), v)
    end
  end)
end)
