-- Runs every ```lua block of the API reference, so the documentation stays true.
local function blocks_of(path)
  local f = assert(io.open(path))
  local text = f:read("a")
  f:close()
  local blocks = {}
  for code in text:gmatch("```lua\n(.-)```") do blocks[#blocks + 1] = code end
  return blocks
end

for _, doc in ipairs({ "docs/API.md", "docs/nn.md", "docs/dsp.md", "docs/modules.md", "docs/hubert.md", "docs/cuda.md", "docs/amp.md" }) do
  local f = io.open(doc)
  if f then
    f:close()
    describe("examples of " .. doc, function()
      -- blocks of one page run in order in one environment, so a later block may use an earlier one's globals
      local env = setmetatable({}, { __index = _G })
      for i, code in ipairs(blocks_of(doc)) do
        it("block " .. i, function()
          local chunk = assert(load(code, doc .. " block " .. i, "t", env))
          chunk()
        end)
      end
    end)
  end
end
