-- GPU speed on decoder-like stacks (FasterSVC's upsampling decoder: dilated kernel-3 convs with
-- leaky ReLU and residuals at each level, then a 1x1 conv), forward and forward+backward, CPU
-- against CUDA. Run: build/fsvc spec/bench/bench_gpu.lua [quick]
-- Without a GPU it prints why and exits. Timing: wall clock after fsvc.cuda.synchronize(), the
-- best of several calls (the first calls warm the caching allocator and cuBLAS).
local quick = arg and arg[1] == "quick"
if not fsvc.cuda.is_available() then
  print("SKIP: no CUDA device (" .. fsvc.cuda.unavailable_reason() .. ")")
  return
end
local clock = fsvc.time or os.clock

-- levels: channels, frames (1 s of audio at 24 kHz with the reference's upsampling)
local levels = quick and { { 96, 800 } } or { { 384, 100 }, { 192, 200 }, { 96, 800 }, { 48, 3200 }, { 24, 12000 } }
local batch = quick and 2 or 8

local function make_stack(C, device, dtype)
  local ws = {}
  for i, d in ipairs({ 1, 3, 9, 27 }) do
    ws[i] = { w = (fsvc.randn({ C, C, 3 }, { dtype = dtype }) * (1 / math.sqrt(3 * C))):to(device):requires_grad_(true),
      b = fsvc.zeros({ C }, { dtype = dtype }):to(device):requires_grad_(true), d = d }
  end
  ws.out = (fsvc.randn({ C, C, 1 }, { dtype = dtype }) * (1 / math.sqrt(C))):to(device):requires_grad_(true)
  return ws
end

local function forward(ws, x)
  for _, l in ipairs(ws) do
    local h = x:leaky_relu(0.1):conv1d(l.w, l.b, { padding = l.d, dilation = l.d })
    x = x + h
  end
  return x:conv1d(ws.out)
end

local function best_of(n, f, device)
  local best = math.huge
  for _ = 1, n do
    if device == "cuda" then fsvc.cuda.synchronize() end
    local t0 = clock()
    f()
    if device == "cuda" then fsvc.cuda.synchronize() end
    best = math.min(best, clock() - t0)
  end
  return best
end

print(string.format("%-14s %-8s %10s %10s %10s", "level", "device", "fwd ms", "fwd+bwd ms", "speedup"))
for _, lv in ipairs(levels) do
  local C, T = lv[1], lv[2]
  local res = {}
  for _, device in ipairs({ "cpu", "cuda" }) do
    local ws = make_stack(C, device, "float32")
    local x = fsvc.randn({ batch, C, T }):to(device)
    local reps = device == "cpu" and 2 or 10
    local f = best_of(reps, function() fsvc.no_grad(function() return forward(ws, x) end) end, device)
    local fb = best_of(reps, function() forward(ws, x):sum():backward() end, device)
    res[device] = { f, fb }
  end
  for _, device in ipairs({ "cpu", "cuda" }) do
    local r = res[device]
    print(string.format("%-14s %-8s %10.2f %10.2f %10s", C .. "x" .. T .. " b" .. batch, device, r[1] * 1e3, r[2] * 1e3,
      device == "cuda" and string.format("%.1fx", res.cpu[2] / r[2]) or ""))
  end
end
local s = fsvc.cuda.memory_stats()
print(string.format("device memory: peak %.1f MB, reserved %.1f MB, %d cudaMalloc calls for %d allocations",
  s.peak_allocated / 2 ^ 20, s.reserved / 2 ^ 20, s.num_cuda_malloc, s.num_alloc))
