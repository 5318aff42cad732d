-- Wrong arguments and bad files for fsvc.audio; each must raise a one-line Lua error naming the
-- file or the argument, never crash.
local audio = fsvc.audio
local dir = os.getenv("TMPDIR") or "/tmp"
local function file_with(name, bytes)
  local path = dir .. "/fsvc_badinput_" .. name
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  return path
end
local function wav_header_only()
  -- a RIFF/WAVE header announcing 1000 frames of 16-bit mono with no data after it
  return "RIFF" .. string.pack("<I4", 36 + 2000) .. "WAVEfmt " .. string.pack("<I4I2I2I4I4I2I2", 16, 1, 1, 24000, 48000, 2, 16)
    .. "data" .. string.pack("<I4", 2000)
end
local function wav_rate0()
  return "RIFF" .. string.pack("<I4", 36 + 8) .. "WAVEfmt " .. string.pack("<I4I2I2I4I4I2I2", 16, 1, 1, 0, 0, 2, 16)
    .. "data" .. string.pack("<I4", 8) .. string.rep("\1\0", 4)
end

return {
  { name = "load: missing file", fn = function() return audio.load(dir .. "/fsvc_no_such_file.wav") end },
  { name = "load: empty file", fn = function() return audio.load(file_with("empty.wav", "")) end },
  { name = "load: not audio", fn = function() return audio.load(file_with("text.wav", "hello, this is not a wav file\n")) end },
  { name = "load: header without data", fn = function() return audio.load(file_with("truncated.wav", wav_header_only())) end },
  { name = "load: sample rate 0", fn = function() return audio.load(file_with("rate0.wav", wav_rate0())) end },
  { name = "load: a folder", fn = function() return audio.load(dir) end },
  { name = "load: path not a string", fn = function() return audio.load(42) end },
  { name = "load: empty path", fn = function() return audio.load("") end },
  { name = "load: sr 0", fn = function() return audio.load(dir .. "/x.wav", { sr = 0 }) end },
  { name = "load: sr NaN", fn = function() return audio.load(dir .. "/x.wav", { sr = 0 / 0 }) end },
  { name = "load: unknown option", fn = function() return audio.load(dir .. "/x.wav", { rate = 16000 }) end },
  { name = "load: options not a table", fn = function() return audio.load(dir .. "/x.wav", true) end },
  { name = "info: missing file", fn = function() return audio.info(dir .. "/fsvc_no_such_file.flac") end },
  { name = "info: not audio", fn = function() return audio.info(file_with("text2.wav", "nope")) end },
  { name = "save: sr 0", fn = function() return audio.save(dir .. "/fsvc_bad.wav", fsvc.zeros(10), 0) end },
  { name = "save: sr fractional", fn = function() return audio.save(dir .. "/fsvc_bad.wav", fsvc.zeros(10), 100.5) end },
  { name = "save: NaN samples", fn = function() return audio.save(dir .. "/fsvc_bad.wav", fsvc.full({ 10 }, 0 / 0), 24000) end },
  { name = "save: empty signal", fn = function() return audio.save(dir .. "/fsvc_bad.wav", fsvc.zeros(0), 24000) end },
  { name = "save: 3-d signal", fn = function() return audio.save(dir .. "/fsvc_bad.wav", fsvc.zeros(1, 1, 10), 24000) end },
  { name = "save: [L, C] by mistake", fn = function() return audio.save(dir .. "/fsvc_bad.wav", fsvc.zeros(1000, 2), 24000) end },
  { name = "save: int64 signal", fn = function() return audio.save(dir .. "/fsvc_bad.wav", fsvc.zeros({ 10 }, { dtype = "int64" }), 24000) end },
  { name = "save: unknown subtype", fn = function() return audio.save(dir .. "/fsvc_bad.wav", fsvc.zeros(10), 24000, { subtype = "pcm8" }) end },
  { name = "save: unknown format", fn = function() return audio.save(dir .. "/fsvc_bad.ogg", fsvc.zeros(10), 24000, { format = "ogg" }) end },
  { name = "save: flac float", fn = function() return audio.save(dir .. "/fsvc_bad.flac", fsvc.zeros(10), 24000, { subtype = "float" }) end },
  { name = "save: unknown extension", fn = function() return audio.save(dir .. "/fsvc_bad.xyz", fsvc.zeros(10), 24000) end },
  { name = "save: missing folder", fn = function() return audio.save(dir .. "/fsvc_no_such_dir/a.wav", fsvc.zeros(10), 24000) end },
  { name = "save: not a tensor", fn = function() return audio.save(dir .. "/fsvc_bad.wav", { 0, 0 }, 24000) end },
}
