-- Bad input for the checkpoint functions: each case must raise a Lua error, never crash.
-- a fresh path (os.tmpname creates the file: remove it so that nothing is left behind)
local function tmp()
  local p = os.tmpname()
  os.remove(p)
  return p .. ".safetensors"
end

local function with_bytes(bytes, fn)
  return function()
    local p = os.tmpname()
    local f = assert(io.open(p, "wb"))
    f:write(bytes)
    f:close()
    local ok, err = pcall(fn, p)
    os.remove(p)
    if not ok then error(err, 0) end
  end
end

local function hdr(json, data)
  while #json % 8 ~= 0 do json = json .. " " end
  return string.pack("<I8", #json) .. json .. (data or "")
end

return {
  { name = "load_safetensors without a path", fn = function() fsvc.load_safetensors() end },
  { name = "load_safetensors with a number", fn = function() fsvc.load_safetensors(3) end },
  { name = "load_safetensors of an empty path", fn = function() fsvc.load_safetensors("") end },
  { name = "load_safetensors of a folder", fn = function() fsvc.load_safetensors("spec") end },
  { name = "load_safetensors of a missing file", fn = function() fsvc.load_safetensors("/no/such.safetensors") end },
  { name = "load_safetensors of an empty file", fn = with_bytes("", fsvc.load_safetensors) },
  { name = "load_safetensors of a huge header length", fn = with_bytes(string.pack("<I8", 2 ^ 62) .. "{}", fsvc.load_safetensors) },
  { name = "load_safetensors of bad JSON", fn = with_bytes(hdr('{"w": {'), fsvc.load_safetensors) },
  { name = "load_safetensors of an unknown dtype", fn = with_bytes(hdr('{"w": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}', "abcd"), fsvc.load_safetensors) },
  { name = "load_safetensors of a wrong size", fn = with_bytes(hdr('{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}', "abcd"), fsvc.load_safetensors) },
  { name = "load_safetensors of a truncated buffer", fn = with_bytes(hdr('{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}', "abcd"), fsvc.load_safetensors) },
  { name = "load_safetensors of a torch file", fn = function() fsvc.load_safetensors("spec/data/dtypes.pt") end },
  { name = "load_torch of a safetensors file", fn = with_bytes(hdr("{}"), fsvc.load_torch) },
  { name = "load_torch of the legacy format", fn = function() fsvc.load_torch("spec/data/legacy.pt") end },
  { name = "load_torch of a truncated zip", fn = function()
      local f = assert(io.open("spec/data/module.pt", "rb"))
      local bytes = f:read("a")
      f:close()
      with_bytes(bytes:sub(1, #bytes // 2), fsvc.load_torch)()
    end },
  { name = "load_torch of a table", fn = function() fsvc.load_torch({}) end },
  { name = "load_checkpoint of garbage", fn = with_bytes("hello world, not a checkpoint", fsvc.load_checkpoint) },
  { name = "save_safetensors without tensors", fn = function() fsvc.save_safetensors(tmp()) end },
  { name = "save_safetensors of an empty table", fn = function() fsvc.save_safetensors(tmp(), {}) end },
  { name = "save_safetensors of a non-tensor", fn = function() fsvc.save_safetensors(tmp(), { w = 1 }) end },
  { name = "save_safetensors with a number key", fn = function() fsvc.save_safetensors(tmp(), { fsvc.ones(1) }) end },
  { name = "save_safetensors of a freed tensor", fn = function()
      local t = fsvc.ones(2)
      t:free()
      fsvc.save_safetensors(tmp(), { w = t })
    end },
  { name = "save_safetensors with a reserved name", fn = function() fsvc.save_safetensors(tmp(), { __metadata__ = fsvc.ones(1) }) end },
  { name = "save_safetensors with table metadata", fn = function() fsvc.save_safetensors(tmp(), { w = fsvc.ones(1) }, { k = {} }) end },
  { name = "save_safetensors with string metadata", fn = function() fsvc.save_safetensors(tmp(), { w = fsvc.ones(1) }, "meta") end },
  { name = "save_safetensors into a missing folder", fn = function() fsvc.save_safetensors("/no/such/dir/x.safetensors", { w = fsvc.ones(1) }) end },
}
