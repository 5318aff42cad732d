-- modules/hubert.lua: transformers' HubertModel in fsvc.
--   * the reference fixture hubert_tiny (group norm, post-norm layers, parametrizations keys);
--   * spec/data/hubert_stable.safetensors (spec/data/make_hubert_stable.py, torch 1.13): layer
--     norm feature encoder with conv bias, pre-norm ("stable") layers, odd positional kernel,
--     legacy weight_g/weight_v keys, a right-padded batch with an attention_mask;
--   * the base config's state_dict keys, order and shapes (hubert_base_state_dict_shapes.json);
--   * from_pretrained on directories (config.json + model.safetensors / pytorch_model.bin).
local fsvc = require "fsvc"
local hubert = require "modules.hubert"

local FIXTURES = "../shared/reference/fixtures"
local TOL = 1e-4 -- max abs error / max abs reference

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p '" .. p .. "'"))
  return p
end

local function rmdir(p) os.execute("rm -rf '" .. p .. "'") end

local function params_of(t)
  local sd = {}
  for k, v in pairs(t) do if k:sub(1, 6) == "param." then sd[k:sub(7)] = v end end
  return sd
end

local function rel_err(got, ref)
  assert.are.same(ref.shape, got.shape)
  return (got - ref):abs():max():item() / ref:abs():max():item()
end

-- checks every output.hidden_states.K of fixture `t` against out.hidden_states[K + 1]
local function check_states(out, t, n, label)
  assert.are.equal(n + 1, #out.hidden_states)
  for k = 0, n do
    local e = rel_err(out.hidden_states[k + 1], t["output.hidden_states." .. k])
    print(string.format("  %s hidden_states[%d]: rel err %.3g", label, k, e))
    assert(e <= TOL, string.format("%s hidden_states[%d]: relative error %.3g > %g", label, k, e, TOL))
  end
end

local tiny_path = FIXTURES .. "/hubert_tiny.safetensors"
local have_tiny = exists(tiny_path)
local tiny, tiny_meta
if have_tiny then tiny, tiny_meta = fsvc.load_safetensors(tiny_path) end

local function tiny_model()
  local m = hubert.HubertModel(hubert.config_from_json(tiny_meta.config))
  m:load_state_dict(params_of(tiny))
  return m:eval()
end

describe("hubert", function()
  describe("reference fixture hubert_tiny", function()
    it("matches every hidden state", function()
      if not have_tiny then return pending("no " .. tiny_path) end
      local m = tiny_model()
      local out = fsvc.no_grad(function() return m:forward(tiny["input.wave"]) end)
      check_states(out, tiny, 3, "tiny")
      assert.are.equal(out.hidden_states[4], out.last_hidden_state)
      assert.are.same({ 2, 49, 16 }, out.extract_features.shape)
    end)

    it("extract(wave, layer) is hidden_states[layer] as [B, hidden, T'] without grad", function()
      if not have_tiny then return pending("no " .. tiny_path) end
      local m = tiny_model()
      for _, layer in ipairs({ 0, 2, 3 }) do
        local z = m:extract(tiny["input.wave"], layer)
        assert.are.same({ 2, 32, 49 }, z.shape)
        assert.is_false(z.requires_grad)
        local ref = tiny["output.hidden_states." .. layer]:transpose(1, 2)
        assert(rel_err(z, ref) <= TOL)
      end
      assert.has_error(function() m:extract(tiny["input.wave"], 4) end)
      assert.has_error(function() m:extract(tiny["input.wave"], -1) end)
    end)

    it("accepts an unbatched wave and float64", function()
      if not have_tiny then return pending("no " .. tiny_path) end
      local m = tiny_model():double()
      local wave = tiny["input.wave"]:select(0, 1)
      local out = fsvc.no_grad(function() return m:forward(wave) end)
      local ref = tiny["output.hidden_states.3"]:narrow(0, 1, 1)
      assert.are.equal("float64", out.last_hidden_state.dtype)
      assert(rel_err(out.last_hidden_state:float(), ref) <= TOL)
    end)

    it("backpropagates to the parameters and the input", function()
      if not have_tiny then return pending("no " .. tiny_path) end
      local m = tiny_model()
      m:train()
      local wave = tiny["input.wave"]:narrow(1, 0, 4000):clone():requires_grad_(true)
      local out = m:forward(wave)
      out.last_hidden_state:pow(2):mean():backward()
      assert.is_not_nil(wave.grad)
      assert.is_not_nil(m.encoder.layers[1].attention.q_proj.weight.grad)
      assert.is_not_nil(m.feature_extractor.conv_layers[1].conv.weight.grad)
      assert.is_not_nil(m.encoder.pos_conv_embed.conv.parametrizations.weight.original1.grad)
      assert.is_false(wave.grad:has_nonfinite())
    end)
  end)

  describe("stable layer norm, layer-norm feature encoder, padded batch", function()
    local t, meta = fsvc.load_safetensors("spec/data/hubert_stable.safetensors")
    local function model()
      local m = hubert.HubertModel(hubert.config_from_json(meta.config))
      m:load_state_dict(params_of(t)) -- legacy weight_g / weight_v keys
      return m:eval()
    end

    it("matches torch with an attention_mask", function()
      local m = model()
      local out = fsvc.no_grad(function()
        return m:forward(t["input.wave"], { attention_mask = t["input.attention_mask"] })
      end)
      check_states(out, t, 2, "stable")
    end)

    it("gives a padded item the values of the same item alone", function()
      local m = model()
      local wave = t["input.wave"]:narrow(0, 1, 1):narrow(1, 0, 1100)
      local alone = fsvc.no_grad(function() return m:forward(wave) end)
      local padded = fsvc.no_grad(function()
        return m:forward(t["input.wave"], { attention_mask = t["input.attention_mask"] })
      end)
      local T = m:output_length(1100)
      assert.are.equal(T, alone.last_hidden_state.shape[2])
      for k = 1, 3 do
        local a = alone.hidden_states[k]
        local p = padded.hidden_states[k]:narrow(0, 1, 1):narrow(1, 0, T)
        assert(rel_err(p, a) <= TOL, "hidden state " .. (k - 1))
      end
    end)

    it("num_layers stops early (no final LayerNorm unless all layers ran)", function()
      local m = model()
      local out = fsvc.no_grad(function() return m:forward(t["input.wave"], { num_layers = 1 }) end)
      assert.are.equal(2, #out.hidden_states)
      assert.are.equal(out.hidden_states[2], out.last_hidden_state)
    end)
  end)

  describe("base config", function()
    it("has exactly the keys, order and shapes of hubert-base", function()
      local path = FIXTURES .. "/hubert_base_state_dict_shapes.json"
      if not exists(path) then return pending("no " .. path) end
      local text = read(path)
      local want = hubert.json_decode(text)
      local order = {}
      for k in text:gmatch('"([^"]+)"%s*:%s*%[') do
        -- top-level entries only (the file also carries num_params and the config)
        if type(want[k]) == "table" and k ~= "config" then order[#order + 1] = k end
      end
      -- the recorded config is HubertConfig's defaults, which HubertModel() uses
      local cfg = hubert.config(want.config)
      for k, v in pairs(hubert.DEFAULTS) do assert.are.same(v, cfg[k], k) end
      local m = hubert.HubertModel() -- HubertConfig defaults = hubert-base
      local sd = m:state_dict()
      local keys = fsvc.nn.state_dict_keys(sd)
      assert.are.same(order, keys)
      for _, k in ipairs(keys) do assert.are.same(want[k], sd[k].shape, k) end
      assert.are.equal(want.num_params, m:num_parameters())
      assert.are.equal(49, m:output_length(16000))
    end)
  end)

  describe("from_pretrained", function()
    it("loads config.json + model.safetensors", function()
      if not have_tiny then return pending("no " .. tiny_path) end
      local dir = tmpdir()
      write(dir .. "/config.json", tiny_meta.config)
      fsvc.save_safetensors(dir .. "/model.safetensors", params_of(tiny))
      local m = hubert.from_pretrained(dir)
      rmdir(dir)
      assert.is_false(m.training)
      local out = fsvc.no_grad(function() return m:forward(tiny["input.wave"]) end)
      check_states(out, tiny, 3, "model.safetensors")
    end)

    it("loads a weights file whose metadata carries the config", function()
      if not have_tiny then return pending("no " .. tiny_path) end
      local dir = tmpdir()
      fsvc.save_safetensors(dir .. "/w.safetensors", params_of(tiny), { config = tiny_meta.config })
      local m = hubert.from_pretrained(dir .. "/w.safetensors")
      rmdir(dir)
      local z = m:extract(tiny["input.wave"], 1)
      assert(rel_err(z, tiny["output.hidden_states.1"]:transpose(1, 2)) <= TOL)
    end)

    it("loads config.json + pytorch_model.bin (HubertForCTC, legacy keys) written by torch", function()
      if not have_tiny then return pending("no " .. tiny_path) end
      local dir = tmpdir()
      local ok = os.execute(string.format("/usr/bin/python3 spec/data/make_hubert_bin.py '%s' '%s' 2>/dev/null",
        tiny_path, dir))
      if not ok or not exists(dir .. "/pytorch_model.bin") then
        rmdir(dir)
        return pending("/usr/bin/python3 with torch is not available")
      end
      local m = hubert.from_pretrained(dir)
      rmdir(dir)
      local out = fsvc.no_grad(function() return m:forward(tiny["input.wave"]) end)
      check_states(out, tiny, 3, "pytorch_model.bin")
    end)

    it("explains what is missing or wrong", function()
      local dir = tmpdir()
      assert.has_error(function() hubert.from_pretrained(dir .. "/nothing") end)
      write(dir .. "/config.json", '{"hidden_size": 32}')
      local ok, err = pcall(hubert.from_pretrained, dir)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("neither model.safetensors nor pytorch_model.bin", 1, true))
      if have_tiny then
        -- weights of another shape: the load names the key and both shapes
        write(dir .. "/config.json", '{"hidden_size": 32, "num_attention_heads": 4}')
        fsvc.save_safetensors(dir .. "/model.safetensors", params_of(tiny))
        ok, err = pcall(hubert.from_pretrained, dir)
        assert.is_false(ok)
        assert.truthy(tostring(err):find("size mismatch", 1, true))
      end
      rmdir(dir)
    end)
  end)

  describe("config and input checks", function()
    it("parses transformers JSON", function()
      local c = hubert.config_from_json('{"conv_dim": [4, 4], "conv_kernel": [3, 2], "conv_stride": [2, 1],'
        .. ' "hidden_size": 8, "layer_norm_eps": 1e-05, "name": "a\\u00e9\\n", "x": null, "b": false}')
      assert.are.same({ 4, 4 }, c.conv_dim)
      assert.are.equal(1e-5, c.layer_norm_eps)
      assert.are.equal("a\u{e9}\n", c.name)
      assert.is_false(c.b)
      assert.are.equal(12, c.num_hidden_layers) -- default
      assert.has_error(function() hubert.config_from_json('{"a": }') end)
      assert.has_error(function() hubert.config_from_json('[1, 2') end)
      assert.has_error(function() hubert.config_from_json(42) end)
    end)

    it("rejects bad configs and inputs", function()
      local small = { hidden_size = 8, num_attention_heads = 2, intermediate_size = 16, num_hidden_layers = 1,
        conv_dim = { 4, 4 }, conv_kernel = { 3, 2 }, conv_stride = { 2, 2 }, num_conv_pos_embeddings = 4,
        num_conv_pos_embedding_groups = 2 }
      local m = hubert.HubertModel(small)
      assert.are.equal(5, m:min_length()) -- (1 - 1) * 2 + 2 = 2 samples -> (2 - 1) * 2 + 3 = 5
      assert.are.equal(1, m:output_length(5))
      assert.are.equal(0, m:output_length(4))
      local out = fsvc.no_grad(function() return m:forward(fsvc.randn({ 3, 100 })) end)
      assert.are.same({ 3, m:output_length(100), 8 }, out.last_hidden_state.shape)
      assert.has_error(function() m:forward(fsvc.randn({ 1, 3 })) end)     -- too short
      assert.has_error(function() m:forward(fsvc.randn({ 1, 2, 100 })) end) -- not [B, L]
      assert.has_error(function() m:forward("wave") end)
      assert.has_error(function() m:forward(fsvc.randn({ 2, 100 }), { attention_mask = fsvc.ones({ 2, 99 }) }) end)
      local bad = {}
      for k, v in pairs(small) do bad[k] = v end
      bad.conv_kernel = { 3 }
      assert.has_error(function() hubert.HubertModel(bad) end)
      bad.conv_kernel, bad.num_attention_heads = { 3, 2 }, 3
      assert.has_error(function() hubert.HubertModel(bad) end)
      bad.num_attention_heads, bad.feat_extract_norm = 2, "batch"
      assert.has_error(function() hubert.HubertModel(bad) end)
      bad.feat_extract_norm, bad.hidden_act = "group", "mystery"
      assert.has_error(function() hubert.HubertModel(bad) end)
    end)
  end)
end)
