-- modules/: the FasterSVC networks. Default configs give exactly the reference's state_dict keys,
-- order and shapes (shared/reference/fixtures/default_state_dict_shapes.json) and parameter
-- counts (FASTERSVC.md); every reference fixture passes the parity runner (spec/parity.lua);
-- the blocks keep their contracts (causality, shapes, errors).
local nn = fsvc.nn
local common = require "modules.common"
local PitchEstimator = require "modules.pitch_estimator"
local ContentEncoder = require "modules.content_encoder"
local Decoder = require "modules.decoder"
local Discriminator = require "modules.discriminator"
local knn = require "modules.knn"
local losses = require "modules.losses"
local Convertor = require "modules.convertor"
local parity = require "spec.parity"

local FIXTURES = "../shared/reference/fixtures"

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- the ordered (key, shape) list of one network in default_state_dict_shapes.json: its values are
-- flat integer arrays, so the section ends at the first '}' after its opening brace
local function reference_shapes(text, net)
  local start = text:find('"' .. net .. '"%s*:%s*{')
  assert(start, "no section " .. net)
  local open = text:find("{", start, true)
  local close = text:find("}", open, true)
  local out = {}
  for key, dims in text:sub(open, close):gmatch('"([^"]+)"%s*:%s*%[([^%]]*)%]') do
    local shape = {}
    for d in dims:gmatch("%d+") do shape[#shape + 1] = tonumber(d) end
    out[#out + 1] = { key, shape }
  end
  local count = tonumber(text:match('"' .. net:gsub("%p", "%%%0") .. '%.num_params"%s*:%s*(%d+)'))
  return out, count
end

local function own_shapes(m)
  local sd = m:state_dict()
  local out = {}
  for _, k in ipairs(nn.state_dict_keys(sd)) do out[#out + 1] = { k, sd[k].shape } end
  return out
end

local shapes_text = read(FIXTURES .. "/default_state_dict_shapes.json")

describe("modules: default configs", function()
  local nets = {
    { "pitch_estimator", PitchEstimator, 8105472 },
    { "content_encoder", ContentEncoder, 8236032 },
    { "decoder", Decoder, 6396673 },
    { "discriminator", Discriminator, 91214341 },
  }
  for _, n in ipairs(nets) do
    local name, cls, count = n[1], n[2], n[3]
    it(name .. " has the reference's keys, order, shapes and parameter count", function()
      if not shapes_text then return pending("no " .. FIXTURES) end
      local m = cls {}
      local ref, ref_count = reference_shapes(shapes_text, name)
      assert.are.equal(count, ref_count)
      assert.are.same(ref, own_shapes(m))
      assert.are.equal(count, common.num_params(m))
      m = nil
      collectgarbage()
    end)
  end
end)

describe("modules: parity with the reference fixtures", function()
  local names = {}
  local p = io.popen('ls -1 "' .. FIXTURES .. '" 2>/dev/null')
  for f in p:lines() do
    local name = f:match("^(.*)%.safetensors$")
    if name then names[#names + 1] = name end
  end
  p:close()
  table.sort(names)
  for _, name in ipairs(names) do
    it(name, function()
      local pass, line = parity.run_fixture(FIXTURES .. "/" .. name .. ".safetensors", name)
      if not pass and name == "hubert_tiny" and tostring(line):find("cannot load modules.hubert") then
        return pending(line)
      end
      assert(pass, name .. ": " .. tostring(line))
    end)
  end

  it("reports a missing module as a failure with the reason, not a crash", function()
    local saved = parity.module_builders.DCC
    parity.module_builders.DCC = function()
      local ok, err = pcall(require, "modules.no_such_module")
      error({ missing = "cannot load modules.no_such_module: " .. tostring(err):match("[^\n]*") })
    end
    local pass, line = parity.run_fixture(FIXTURES .. "/dcc.safetensors", "dcc")
    parity.module_builders.DCC = saved
    if not read(FIXTURES .. "/dcc.safetensors") then return pending("no fixtures") end
    assert.is_false(pass)
    assert.truthy(line:find("no_such_module", 1, true))
  end)
end)

describe("modules: blocks", function()
  it("DCC is causal and keeps the length", function()
    fsvc.manual_seed(1)
    local m = common.DCC(3, 5, 3, 2)
    local x = fsvc.randn(1, 3, 20)
    local y = m(x)
    assert.are.same({ 1, 5, 20 }, y.shape)
    local x2 = x:clone()
    x2:narrow(2, 12, 8):fill_(7) -- change the future after t = 11
    local y2 = m(x2)
    local d = (y - y2):abs():narrow(2, 0, 12):max():item()
    assert.are.equal(0, d)
  end)

  it("ResBlock, Downsample, Upsample shapes", function()
    local x = fsvc.randn(2, 8, 24)
    assert.are.same({ 2, 8, 24 }, common.ResBlock(8, 5, 3, { norm = true })(x).shape)
    assert.are.same({ 2, 6, 6 }, common.Downsample(8, 6, 4)(x).shape)
    assert.are.same({ 2, 4, 72 }, common.Upsample(8, 4, 5, 3)(x, fsvc.randn(2, 5, 24)).shape)
  end)

  it("LayerNorm normalises over channels and time per item (unbiased std)", function()
    local m = common.LayerNorm(4)
    local x = fsvc.randn({ 2, 4, 10 }, { dtype = "float32" }) * 3 + 1
    local y = m(x)
    for b = 0, 1 do
      local yb = y:select(0, b)
      assert.is_true(math.abs(yb:mean():item()) < 1e-5)
      assert.is_true(math.abs(yb:std():item() - 1) < 1e-3)
    end
  end)
end)

describe("modules: networks", function()
  local small = { n_fft = 128, hop_size = 32, internal_channels = 16, kernel_size = 5,
    dilations = { 1, 3 }, output_channels = 40 }

  it("PitchEstimator: logits, estimate, freq2id/id2freq", function()
    fsvc.manual_seed(2)
    local pe = PitchEstimator(small)
    local wave = fsvc.randn(2, 640)
    assert.are.same({ 2, 40, 20 }, pe:logits(wave).shape)
    local f0 = pe:estimate(wave)
    assert.are.same({ 2, 1, 20 }, f0.shape)
    assert.is_false(f0.requires_grad)
    assert.is_true(f0:min():item() >= 0)
    local pe512 = PitchEstimator(common.config(small, { output_channels = 512 }))
    local ids = pe512:freq2id(fsvc.tensor({ 0, 10, 20, 440, 1e6 }, { dtype = "float32" }))
    assert.are.same({ 0, 0, 48, 262, 511 }, ids:tolist()) -- 48 log2(44) = 262.05
    local f = pe:id2freq(fsvc.tensor({ 0, 48, 96 })):tolist()
    assert.are.equal(0, f[1])
    assert.is_true(math.abs(f[2] - 20) < 1e-4 and math.abs(f[3] - 40) < 1e-4)
  end)

  it("ContentEncoder: encode shape, no bias on the output layer", function()
    local ce = ContentEncoder(small)
    assert.are.same({ 1, 40, 10 }, ce:encode(fsvc.randn(1, 320)).shape)
    assert.is_nil(ce.output_layer.bias)
  end)

  it("Decoder: generate_source and synthesize", function()
    fsvc.manual_seed(3)
    local dec = Decoder { channels = { 16, 12, 8 }, factors = { 2, 3, 4 }, cond_channels = { 16, 12, 8 },
      num_harmonics = 1, content_channels = 20, sample_rate = 2400, frame_size = 24 }
    local f0 = fsvc.full({ 2, 1, 12 }, 200)
    local src = dec:generate_source(f0)
    assert.are.same({ 2, 3, 288 }, src.shape)
    local noise = fsvc.randn(2, 1, 288)
    local given = dec:generate_source(f0, noise) -- the noise channel as given, the harmonics the same
    assert.are.equal(0, fsvc.max_abs_diff(given:narrow(1, 2, 1), noise))
    assert.are.equal(0, fsvc.max_abs_diff(given:narrow(1, 0, 2), src:narrow(1, 0, 2)))
    local y = dec:synthesize(fsvc.randn(2, 20, 12), f0, fsvc.rand(2, 1, 12))
    assert.are.same({ 2, 288 }, y.shape)
    assert.has_error(function() Decoder { factors = { 2, 3 }, channels = { 4, 4 }, cond_channels = { 4, 4 } } end)
  end)

  it("Discriminator: logits and features, MPD first", function()
    local d = Discriminator { scales = { 1, 2 }, periods = { 3 }, mpd_num_layers = 1, msd_num_layers = 2,
      mpd_channels = 4, msd_channels = 4, mpd_max_channels = 8, msd_max_channels = 8 }
    local logits, feats = d(fsvc.randn(2, 301)) -- 301: the MPD reflect-pads to a multiple of 3
    assert.are.equal(3, #logits)
    assert.are.equal(4, logits[1].ndim)
    assert.are.same({ 2, 4, 34, 3 }, feats[1].shape) -- 303/3 = 101 rows, kernel 5 stride 3
    assert.are.equal(3 + 5 + 5, #feats)
  end)
end)

describe("modules: kNN, losses, convertor", function()
  it("match_features picks the nearest reference frames", function()
    -- reference frames are one-hot directions; each source frame is closest to one of them
    local ref = fsvc.zeros(1, 4, 4)
    for i = 0, 3 do ref:set(1, 0, i, i) end
    local src = fsvc.tensor({ { { 0.9, 0.1 }, { 0.1, 0.8 }, { 0, 0.1 }, { 0, 0 } } }, { dtype = "float32" })
    local y = knn.match_features(src, ref, { k = 1 })
    assert.are.same({ { { 1, 0 }, { 0, 1 }, { 0, 0 }, { 0, 0 } } }, y:tolist())
    local y2 = knn.match_features(src, ref, { k = 1, alpha = 1 })
    assert.is_true((y2 - src):abs():max():item() < 1e-7)
    assert.has_error(function() knn.match_features(src, ref, { k = 5 }) end)
    assert.has_error(function() knn.match_features(src, ref, { metric = "dot" }) end)
    assert.has_error(function() knn.match_features(src, fsvc.zeros(1, 3, 4)) end)
  end)

  it("weighted cross-entropy is sum(w nll) / sum(w)", function()
    local logits = fsvc.randn({ 1, 3, 2 }, { dtype = "float64" })
    local labels = fsvc.tensor({ { 0, 2 } })
    local w = fsvc.tensor({ 0.5, 1, 2 }, { dtype = "float64" })
    local lp = logits:log_softmax(1)
    local expect = (-(lp:get(0, 0, 0)) * 0.5 - lp:get(0, 2, 1) * 2) / 2.5
    assert.is_true(math.abs(losses.cross_entropy(logits, labels, w):item() - expect) < 1e-12)
    local pw = losses.pitch_class_weights(4):tolist()
    assert.is_true(math.abs(pw[1] - 0.005) < 1e-9 and pw[2] == 1)
  end)

  it("LSGAN terms", function()
    local r, f = { fsvc.full({ 2 }, 0.5) }, { fsvc.full({ 2 }, 0.25) }
    assert.is_true(math.abs(losses.discriminator_adversarial(r, f):item() - (0.25 + 0.5625)) < 1e-7)
    assert.is_true(math.abs(losses.generator_adversarial(f):item() - 0.0625) < 1e-7)
  end)

  it("Convertor converts with small networks (target matching, pitch shift, odd length)", function()
    fsvc.manual_seed(4)
    local cfg = { n_fft = 1920, hop_size = 480, internal_channels = 8, kernel_size = 3, dilations = { 1 } }
    local pe = PitchEstimator(common.config(cfg, { output_channels = 512 }))
    local ce = ContentEncoder(common.config(cfg, { output_channels = 16 }))
    local dec = Decoder { channels = { 8, 8, 8, 8, 8 }, cond_channels = { 8, 8, 8, 8, 8 }, content_channels = 16 }
    local cv = Convertor.new { pitch_estimator = pe, content_encoder = ce, decoder = dec }
    local target = cv:encode_target(fsvc.randn(1, 480 * 16) * 0.1)
    assert.are.same({ 1, 16, 4 }, target.shape)
    local y = cv:convert(fsvc.randn(1, 480 * 5 + 100) * 0.1, target, { pitch_shift = 12, alpha = 0.2 })
    assert.are.same({ 1, 480 * 5 + 100 }, y.shape)
    assert.is_false(y.requires_grad)
    local y2 = Convertor.convert({ content_encoder = ce, decoder = dec }, fsvc.randn(2, 1440), nil,
      { f0 = fsvc.full({ 2, 1, 3 }, 150) })
    assert.are.same({ 2, 1440 }, y2.shape)
  end)
end)
