-- Host time of a conversion, by C function: where an eager step's host side goes (Lua module code,
-- op calls, waits for the device), measured with a debug hook on C calls and returns. Asserts
-- nothing; the hook itself adds a few microseconds per call, so read shares, not absolute times.
--
--   build/fsvc spec/bench/host_profile.lua [-d cpu|cuda] [--seconds S]
--
-- For a conversion of S seconds (10) and one of a streaming buffer (4 x 1920 samples) with the
-- default networks: the hooked call's host time, then the wait for the device after it, then the
-- C functions by exclusive host time (time inside Lua functions counts to the C function that
-- called them: `pcall` and `no_grad` hold the modules' Lua code), then an unhooked call's host
-- time and wait. A function that waits for the device (an upload, item()) shows a long time.
local PitchEstimator = require "modules.pitch_estimator"
local ContentEncoder = require "modules.content_encoder"
local Decoder = require "modules.decoder"
local Convertor = require "modules.convertor"
local device, secs = "cpu", 10
do
  local i = 1
  while arg[i] do
    if arg[i] == "-d" or arg[i] == "--device" then device = arg[i + 1]; i = i + 2
    elseif arg[i] == "--seconds" then secs = tonumber(arg[i + 1]); i = i + 2
    else io.stderr:write("usage: build/fsvc spec/bench/host_profile.lua [-d cpu|cuda] [--seconds S]\n") os.exit(2) end
  end
  if not secs or secs <= 0 then io.stderr:write("host_profile: --seconds must be a positive number\n") os.exit(2) end
end
if device ~= "cpu" and not fsvc.cuda.is_available() then
  print("SKIP: no CUDA device (" .. fsvc.cuda.unavailable_reason() .. ")")
  return
end
local SR = 24000
local pe, ce, dec = PitchEstimator {}, ContentEncoder {}, Decoder {}
for _, m in ipairs({ pe, ce, dec }) do m:eval():to(device) end
local cv = Convertor.new { pitch_estimator = pe, content_encoder = ce, decoder = dec }
local function wave(n) return (fsvc.randn({ 1, n }) * 0.1):to(device) end
local target = cv:encode_target(wave(10 * SR))
local function sync() if device ~= "cpu" then fsvc.cuda.synchronize() end end
local summary = {}
for _, n in ipairs({ math.floor(secs * SR), 4 * 1920 }) do
  local w = wave(n)
  for _ = 1, 3 do cv:convert(w, target) end
  sync()
  local clock = fsvc.time
  local stack, excl, calls = {}, {}, {}
  local function hook(ev)
    local info = debug.getinfo(2, "nS")
    if info.what ~= "C" then return end
    local now = clock()
    if ev == "call" or ev == "tail call" then
      stack[#stack + 1] = { name = info.name or "?", t = now, child = 0 }
    elseif #stack > 0 then
      local top = table.remove(stack)
      local dt = now - top.t
      excl[top.name] = (excl[top.name] or 0) + dt - top.child
      calls[top.name] = (calls[top.name] or 0) + 1
      if #stack > 0 then stack[#stack].child = stack[#stack].child + dt end
    end
  end
  local t0 = clock()
  debug.sethook(hook, "cr")
  cv:convert(w, target)
  debug.sethook()
  local t1 = clock()
  sync()
  local t2 = clock()
  local list = {}
  for k, v in pairs(excl) do list[#list + 1] = { k, v } end
  table.sort(list, function(a, b) return a[2] > b[2] end)
  print(string.format("== convert of %d samples: host %.1f ms (hooked), then %.1f ms waiting for the device",
    n, (t1 - t0) * 1e3, (t2 - t1) * 1e3))
  for i = 1, math.min(25, #list) do
    print(string.format("  %8.3f ms  %5d calls  %s", list[i][2] * 1e3, calls[list[i][1]], list[i][1]))
  end
  local t3 = clock()
  cv:convert(w, target)
  local t4 = clock()
  sync()
  local wait = clock() - t4
  print(string.format("  unhooked: host %.1f ms, wait %.1f ms", (t4 - t3) * 1e3, wait * 1e3))
  summary[#summary + 1] = string.format("%d samples: host %.1f ms + wait %.1f ms", n, (t4 - t3) * 1e3, wait * 1e3)
end
print("summary: " .. device .. ", " .. table.concat(summary, "; "))
