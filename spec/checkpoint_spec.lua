-- Checkpoints: safetensors round trips, torch.save imports compared exactly with the values torch
-- itself saw (spec/data/pt_expected.lua, written by spec/data/make_pt_fixtures.py), and the
-- reference fixtures in ../shared/reference/fixtures.
local expected = dofile("spec/data/pt_expected.lua")

local function tmpname(suffix)
  local p = os.tmpname()
  os.remove(p)
  return p .. (suffix or ".safetensors")
end

local function keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

local function check_tensor(name, want, got)
  assert(got, "missing tensor " .. name)
  assert.are.equal(want.dtype, got.dtype, name .. " dtype")
  assert.are.same(want.shape, got.shape, name .. " shape")
  local vals = got:flat()
  assert.are.equal(#want.values, #vals, name .. " numel")
  for i, v in ipairs(want.values) do
    if v ~= vals[i] then error(("%s[%d]: expected %.17g, got %.17g"):format(name, i - 1, v, vals[i])) end
  end
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

describe("torch.save import", function()
  for _, fixture in ipairs(keys(expected)) do
    it("loads " .. fixture .. ".pt exactly", function()
      local want = expected[fixture]
      local ok, tensors, values = pcall(fsvc.load_torch, "spec/data/" .. fixture .. ".pt")
      if not ok and fixture == "deflated" and tostring(tensors):find("no zlib") then
        pending("this build does not link zlib: " .. tensors)
        return
      end
      assert(ok, tensors)
      assert.are.same(keys(want.tensors), keys(tensors))
      for name, w in pairs(want.tensors) do check_tensor(fixture .. ":" .. name, w, tensors[name]) end
      for name, w in pairs(want.scalars) do
        assert.are.equal(w, values[name], fixture .. ": value " .. name)
      end
    end)
  end

  it("keeps stored views as views: strides, offsets and shared storage", function()
    local t = fsvc.load_torch("spec/data/noncontig.pt")
    assert.is_false(t.t:is_contiguous())
    assert.are.same({ 1, 6 }, t.t:stride())
    assert.are.same({ 6, 2 }, t.slice:stride())
    assert.are.equal(6, t.slice:storage_offset())
    local s = fsvc.load_torch("spec/data/shared.pt")
    assert.are.equal(4, s.b:storage_offset())
    s.whole:_set_flat(5, 42) -- element 5 is a[1][2] and b[1]
    assert.are.equal(42, s.a:get(1, 2))
    assert.are.equal(42, s.b:get(1))
  end)

  it("names weight-normed convolutions as PyTorch does", function()
    local t = fsvc.load_torch("spec/data/weightnorm.pt")
    assert.are.same({ 3, 1, 1 }, t.weight_g.shape)
    assert.are.same({ 3, 2, 3 }, t.weight_v.shape)
  end)

  it("refuses the legacy format, missing files and non-torch files by name", function()
    local ok, err = pcall(fsvc.load_torch, "spec/data/legacy.pt")
    assert.is_false(ok)
    assert.truthy(err:find("legacy.pt", 1, true) and err:find("legacy"))
    ok, err = pcall(fsvc.load_torch, "spec/data/no_such.pt")
    assert.is_false(ok)
    assert.truthy(err:find("no_such.pt", 1, true))
    ok, err = pcall(fsvc.load_torch, "spec/data/pt_expected.lua")
    assert.is_false(ok)
    assert.truthy(err:find("pt_expected.lua", 1, true))
  end)
end)

describe("safetensors", function()
  it("round-trips every dtype, views and metadata", function()
    local path = tmpname()
    local base = fsvc.randn(4, 6)
    local src = {
      f32 = fsvc.randn(3, 4),
      f64 = fsvc.randn(2, 5, { dtype = "float64" }),
      i64 = fsvc.tensor({ { 1, -2 }, { 2 ^ 40, 7 } }),
      f16 = fsvc.tensor({ 0.5, -1.25, 3 }, { dtype = "float16" }),
      bf16 = fsvc.tensor({ 0.5, -1.25, 3, 8 }, { dtype = "bfloat16" }),
      scalar = fsvc.tensor(3.5),
      empty = fsvc.zeros(0, 3),
      transposed = base:transpose(0, 1),
      ["ups.0.c1.conv.weight"] = fsvc.randn(2, 1, 3),
    }
    fsvc.save_safetensors(path, src, { config = '{"n": 1}', version = 2 })
    local got, meta = fsvc.load_safetensors(path)
    assert.are.same(keys(src), keys(got))
    for name, t in pairs(src) do
      assert.are.equal(t.dtype, got[name].dtype, name)
      assert.are.same(t.shape, got[name].shape, name)
      assert.are.same(t:flat(), got[name]:flat(), name)
    end
    assert.are.same({ config = '{"n": 1}', version = "2" }, meta)
    -- the header length is a multiple of 8 and the data buffer follows it
    local f = assert(io.open(path, "rb"))
    local n = string.unpack("<I8", f:read(8))
    f:close()
    assert.are.equal(0, n % 8)
    -- load_checkpoint dispatches on content
    local again, meta2 = fsvc.load_checkpoint(path)
    assert.are.same(keys(src), keys(again))
    assert.are.same(meta, meta2)
    os.remove(path)
  end)

  it("gives tensors that outlive everything else and can be modified in place", function()
    local path = tmpname()
    fsvc.save_safetensors(path, { w = fsvc.ones(3) })
    local t = fsvc.load_safetensors(path).w
    collectgarbage()
    t:fill_(2) -- copy-on-write: the file is not changed
    assert.are.same({ 2, 2, 2 }, t:tolist())
    assert.are.same({ 1, 1, 1 }, fsvc.load_safetensors(path).w:tolist())
    os.remove(path)
  end)

  it("writes atomically and keeps the old file when a save fails", function()
    local path = tmpname()
    fsvc.save_safetensors(path, { w = fsvc.ones(2) })
    local freed = fsvc.zeros(2)
    freed:free()
    assert.has_error(function() fsvc.save_safetensors(path, { w = freed }) end)
    assert.has_error(function() fsvc.save_safetensors(path, {}) end)
    assert.has_error(function() fsvc.save_safetensors(path, { w = 3 }) end)
    assert.has_error(function() fsvc.save_safetensors(path, { fsvc.ones(1) }) end)
    assert.has_error(function() fsvc.save_safetensors(path, { w = fsvc.ones(1) }, { k = {} }) end)
    assert.are.same({ 1, 1 }, fsvc.load_safetensors(path).w:tolist())
    local ok, err = pcall(fsvc.save_safetensors, "/nonexistent-dir/x.safetensors", { w = fsvc.ones(1) })
    assert.is_false(ok)
    assert.truthy(err:find("/nonexistent-dir/x.safetensors", 1, true))
    os.remove(path)
  end)

  it("names the file and the key in errors", function()
    local path = tmpname()
    local function write(bytes)
      local f = assert(io.open(path, "wb"))
      f:write(bytes)
      f:close()
    end
    local function header(json, data)
      while #json % 8 ~= 0 do json = json .. " " end
      return string.pack("<I8", #json) .. json .. (data or "")
    end
    local cases = {
      { "", "truncated" },
      { string.pack("<I8", 1000) .. "{}", "header length" },
      { header('{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]'), "JSON" },
      { header('{"w": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}}', ("\0"):rep(8)), "F33" },
      { header('{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}', ("\0"):rep(8)), "'w'" },
      { header('{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}', ("\0"):rep(4)), "out of range" },
      { header('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}',
        ("\0"):rep(12)), "overlap" },
    }
    for _, case in ipairs(cases) do
      write(case[1])
      local ok, err = pcall(fsvc.load_safetensors, path)
      assert.is_false(ok)
      assert.truthy(err:find(path, 1, true), err)
      assert.truthy(err:find(case[2], 1, true), err)
      assert.is_nil(err:find("\n"), err)
    end
    os.remove(path)
  end)

  it("loads every reference fixture with its metadata", function()
    local dir = "../shared/reference/fixtures"
    local p = io.popen('ls "' .. dir .. '"/*.safetensors 2>/dev/null')
    local files = {}
    for line in p:lines() do files[#files + 1] = line end
    p:close()
    if #files == 0 then
      pending("no reference fixtures in " .. dir)
      return
    end
    for _, path in ipairs(files) do
      local tensors, meta = fsvc.load_safetensors(path)
      assert.truthy(next(tensors), path .. " has no tensors")
      assert.are.equal("table", type(meta))
      for name, t in pairs(tensors) do
        assert.is_false(t:is_freed(), path .. ":" .. name)
        if t.dtype ~= "int64" then assert.is_false(t:has_nonfinite(), path .. ":" .. name) end
      end
      -- a re-save gives back the same tensors
      local out = tmpname()
      fsvc.save_safetensors(out, tensors, meta)
      local back, meta2 = fsvc.load_safetensors(out)
      os.remove(out)
      assert.are.same(meta, meta2)
      for name, t in pairs(tensors) do assert.are.same(t:flat(), back[name]:flat(), path .. ":" .. name) end
    end
  end)
end)
