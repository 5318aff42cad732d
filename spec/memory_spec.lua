-- A training-style loop must hold a flat resident set: Lua's collector does not see tensor
-- bytes, so the binding paces it (lua/bind_tensor.c); tensors can also be freed explicitly.
local function rss_mb()
  local f = assert(io.open("/proc/self/statm"))
  local _, resident = f:read("n", "n")
  f:close()
  return resident * 4096 / 2 ^ 20
end

describe("memory", function()
  it("stays flat over 10 000 iterations of forward + backward on 1 MB tensors", function()
    fsvc.manual_seed(7)
    local w = fsvc.randn({ 256, 1024 }, { requires_grad = true }) -- 1 MB of float32
    local x = fsvc.randn(256, 1024)
    local function step()
      local y = ((x * w + 1):tanh() * x):mean()
      w.grad = nil
      y:backward()
      return y
    end
    for _ = 1, 200 do step() end -- warm up allocator and collector
    collectgarbage()
    local before = rss_mb()
    local peak = before
    for i = 1, 10000 do
      step()
      if i % 500 == 0 then peak = math.max(peak, rss_mb()) end
    end
    local growth = peak - before
    print(string.format("\n    rss before %.1f MB, peak %.1f MB, growth %.1f MB", before, peak, growth))
    assert.is_true(growth < 50, string.format("resident set grew by %.1f MB", growth))
  end)

  it("releases a tensor deterministically with free() and with a to-be-closed variable", function()
    collectgarbage()
    collectgarbage()
    local base = fsvc.memory_allocated()
    local t = fsvc.zeros(1024, 1024)
    assert.are.equal(base + 4 * 1024 * 1024, fsvc.memory_allocated())
    t:free()
    assert.are.equal(base, fsvc.memory_allocated())
    assert.has_error(function() return t + 1 end)
    do
      local u <close> = fsvc.ones(512, 512)
      assert.are.equal(base + 4 * 512 * 512, fsvc.memory_allocated())
    end
    assert.are.equal(base, fsvc.memory_allocated())
  end)

  it("keeps the storage of a view alive after its base is freed", function()
    local t = fsvc.arange(10, { dtype = "float32" })
    local v = t:narrow(0, 2, 3)
    t:free()
    assert.are.same({ 2, 3, 4 }, v:tolist())
  end)
end)
