-- modules/hubert.lua: HuBERT (Hsu et al. 2021) as Hugging Face transformers' HubertModel, so that
-- its checkpoints (facebook/hubert-base-ls960, rinna/japanese-hubert-base, ...) load unchanged.
-- FasterSVC uses it as the content encoder's teacher: hidden_states[4] of HuBERT-base.
--
--   local hubert = require "modules.hubert"
--   local model = hubert.from_pretrained("path/to/dir")   -- config.json + model.safetensors or
--                                                          -- pytorch_model.bin
--   local out = model:forward(wave16k)                     -- [B, L] at 16 kHz
--   out.last_hidden_state                                  -- [B, T', hidden]
--   out.hidden_states[k + 1]                               -- Python's hidden_states[k]
--   local target = model:extract(wave16k, 4)               -- [B, hidden, T'], no grad
--
-- What it computes (transformers' modeling_hubert.py):
--   feature encoder: 7 Conv1d (conv_dim/conv_kernel/conv_stride, bias only with conv_bias), each
--     followed by GELU; feat_extract_norm "group": GroupNorm(C, C) after the first conv only;
--     "layer": LayerNorm over channels after every conv. [B, L] -> [B, C, T'].
--   feature projection: LayerNorm(C) (feat_proj_layer_norm), Linear(C, hidden), dropout.
--   positional embedding: weight-normed (dim 2) grouped Conv1d(hidden, hidden, K, pad K//2),
--     one trailing frame removed for even K, GELU; added to the hidden states.
--   encoder, do_stable_layer_norm false (base): LayerNorm(h + pos), dropout, post-norm layers;
--     hidden_states = {input of layer 1, output of layer 1, ..., output of layer N}.
--   encoder, do_stable_layer_norm true (large): h + pos, dropout, pre-norm layers, final LayerNorm;
--     hidden_states = {input of layer 1, output of layers 1..N-1, LayerNorm(output of layer N)}.
--   attention: q/k/v/out Linear with bias, softmax(q k^T / sqrt(head_dim) + mask) v, batched
--     over [B, heads] with matmul.
--   masked_spec_embed [hidden] is loaded (training-time masking in the original) but unused.
local fsvc = require "fsvc"
local nn = fsvc.nn
local F = nn.functional

local M = {}

-- ---- configuration ---------------------------------------------------------------------------

-- transformers' HubertConfig defaults (= facebook/hubert-base-ls960)
local DEFAULTS = {
  hidden_size = 768, num_hidden_layers = 12, num_attention_heads = 12, intermediate_size = 3072,
  hidden_act = "gelu", hidden_dropout = 0.1, activation_dropout = 0.1, attention_dropout = 0.1,
  feat_proj_layer_norm = true, feat_proj_dropout = 0.0, layerdrop = 0.1, layer_norm_eps = 1e-5,
  feat_extract_norm = "group", feat_extract_activation = "gelu",
  conv_dim = { 512, 512, 512, 512, 512, 512, 512 }, conv_stride = { 5, 2, 2, 2, 2, 2, 2 },
  conv_kernel = { 10, 3, 3, 3, 3, 2, 2 }, conv_bias = false,
  num_conv_pos_embeddings = 128, num_conv_pos_embedding_groups = 16, conv_pos_batch_norm = false,
  do_stable_layer_norm = false, mask_time_prob = 0.05, mask_feature_prob = 0.0,
}
M.DEFAULTS = DEFAULTS

--- config(overrides): a full config table (HubertConfig defaults, then the overrides).
function M.config(overrides)
  local cfg = {}
  for k, v in pairs(DEFAULTS) do cfg[k] = v end
  for k, v in pairs(overrides or {}) do cfg[k] = v end
  return cfg
end

-- A small JSON decoder (config.json files): objects -> tables, arrays -> lists, null -> nil.
local function json_decode(s)
  local pos = 1
  local function fail(msg)
    error(string.format("hubert: invalid JSON at byte %d: %s", pos, msg), 0)
  end
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value
  local escapes = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/" }
  local function str()
    pos = pos + 1
    local out = {}
    while true do
      local c = s:sub(pos, pos)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = pos + 1 break end
      if c == "\\" then
        local e = s:sub(pos + 1, pos + 1)
        if e == "u" then
          local hex = s:sub(pos + 2, pos + 5)
          if not hex:match("^%x%x%x%x$") then fail("bad \\u escape") end
          out[#out + 1] = utf8.char(tonumber(hex, 16))
          pos = pos + 6
        elseif escapes[e] then
          out[#out + 1] = escapes[e]
          pos = pos + 2
        else
          fail("bad escape")
        end
      else
        out[#out + 1] = c
        pos = pos + 1
      end
    end
    return table.concat(out)
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      pos = pos + 1
      local t = {}
      ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1 return t end
      while true do
        ws()
        if s:sub(pos, pos) ~= '"' then fail("expected a key") end
        local k = str()
        ws()
        if s:sub(pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        t[k] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return t end
        if d ~= "," then fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      pos = pos + 1
      local t, n = {}, 0
      ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1 return t end
      while true do
        n = n + 1
        t[n] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return t end
        if d ~= "," then fail("expected ',' or ']'") end
      end
    elseif c == '"' then
      return str()
    elseif s:sub(pos, pos + 3) == "true" then pos = pos + 4 return true
    elseif s:sub(pos, pos + 4) == "false" then pos = pos + 5 return false
    elseif s:sub(pos, pos + 3) == "null" then pos = pos + 4 return nil
    else
      local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not num or num == "" then fail("unexpected character '" .. c .. "'") end
      pos = pos + #num
      local v = tonumber(num)
      if v == nil then fail("bad number " .. num) end
      if math.type(v) == "float" and v == math.floor(v) and not num:find("[.eE]") then v = math.tointeger(v) end
      return v
    end
  end
  local ok, v = pcall(value)
  if not ok then error(v, 0) end
  ws()
  if pos <= #s then error(string.format("hubert: invalid JSON at byte %d: trailing characters", pos), 0) end
  return v
end
M.json_decode = json_decode

--- config_from_json(text): a config table from a transformers config.json text (missing keys take
--- HubertConfig's defaults).
function M.config_from_json(text)
  if type(text) ~= "string" then error("hubert.config_from_json: expects a JSON string, got " .. type(text), 2) end
  local t = json_decode(text)
  if type(t) ~= "table" then error("hubert.config_from_json: the JSON is not an object", 2) end
  return M.config(t)
end

local function check_config(cfg)
  local function fail(msg) error("HubertModel: config: " .. msg, 3) end
  for _, k in ipairs({ "conv_dim", "conv_kernel", "conv_stride" }) do
    if type(cfg[k]) ~= "table" or #cfg[k] == 0 then fail(k .. " must be a non-empty list") end
  end
  if #cfg.conv_dim ~= #cfg.conv_kernel or #cfg.conv_dim ~= #cfg.conv_stride then
    fail(string.format("conv_dim, conv_kernel, conv_stride have different lengths (%d, %d, %d)",
      #cfg.conv_dim, #cfg.conv_kernel, #cfg.conv_stride))
  end
  if cfg.hidden_size % cfg.num_attention_heads ~= 0 then
    fail(string.format("hidden_size %d is not a multiple of num_attention_heads %d",
      cfg.hidden_size, cfg.num_attention_heads))
  end
  if cfg.feat_extract_norm ~= "group" and cfg.feat_extract_norm ~= "layer" then
    fail("feat_extract_norm must be \"group\" or \"layer\", got " .. tostring(cfg.feat_extract_norm))
  end
end

-- transformers' ACT2FN, the entries HuBERT configs use
local ACTIVATIONS = {
  gelu = function(x) return fsvc.gelu(x) end,
  gelu_new = function(x) return F.gelu(x, "tanh") end,
  gelu_pytorch_tanh = function(x) return F.gelu(x, "tanh") end,
  relu = function(x) return fsvc.relu(x) end,
  silu = function(x) return F.silu(x) end,
  swish = function(x) return F.silu(x) end,
  tanh = function(x) return fsvc.tanh(x) end,
}
local function activation(name)
  local fn = ACTIVATIONS[name]
  if not fn then error("HubertModel: unsupported activation '" .. tostring(name) .. "'", 3) end
  return fn
end

-- ---- feature encoder -------------------------------------------------------------------------

-- One conv layer: conv -> norm ("group": GroupNorm(C, C); "layer": LayerNorm over channels;
-- none) -> activation. [B, Cin, T] -> [B, C, T'].
local ConvLayer = nn.Module:extend("HubertConvLayer")
function ConvLayer:init(cfg, i, norm)
  local cin = i == 1 and 1 or cfg.conv_dim[i - 1]
  local c = cfg.conv_dim[i]
  self.conv = nn.Conv1d(cin, c, cfg.conv_kernel[i], { stride = cfg.conv_stride[i], bias = cfg.conv_bias == true })
  if norm == "group" then
    self.layer_norm = nn.GroupNorm(c, c)
  elseif norm == "layer" then
    self.layer_norm = nn.LayerNorm(c)
  end
  self.norm = norm
  self.act = activation(cfg.feat_extract_activation)
end
function ConvLayer:forward(x)
  x = self.conv(x)
  if self.norm == "group" then
    x = self.layer_norm(x)
  elseif self.norm == "layer" then
    x = self.layer_norm(x:transpose(1, 2)):transpose(1, 2)
  end
  return self.act(x)
end

local FeatureEncoder = nn.Module:extend("HubertFeatureEncoder")
function FeatureEncoder:init(cfg)
  local layers = {}
  for i = 1, #cfg.conv_dim do
    local norm = nil
    if cfg.feat_extract_norm == "layer" then norm = "layer"
    elseif i == 1 then norm = "group" end
    layers[i] = ConvLayer(cfg, i, norm)
  end
  self.conv_layers = nn.ModuleList(layers)
end
-- [B, L] -> [B, C, T']
function FeatureEncoder:forward(wave)
  local x = wave:unsqueeze(1)
  for _, layer in ipairs(self.conv_layers) do x = layer(x) end
  return x
end

local FeatureProjection = nn.Module:extend("HubertFeatureProjection")
function FeatureProjection:init(cfg)
  local c = cfg.conv_dim[#cfg.conv_dim]
  if cfg.feat_proj_layer_norm then self.layer_norm = nn.LayerNorm(c, { eps = cfg.layer_norm_eps }) end
  self.projection = nn.Linear(c, cfg.hidden_size)
  self.dropout = nn.Dropout(cfg.feat_proj_dropout)
end
-- [B, T', C] -> [B, T', hidden]
function FeatureProjection:forward(x)
  if self.layer_norm then x = self.layer_norm(x) end
  return self.dropout(self.projection(x))
end

-- ---- positional convolution ------------------------------------------------------------------

-- BatchNorm1d in inference form (conv_pos_batch_norm configs): running statistics, as PyTorch's
-- eval mode. Training-mode batch statistics are not needed for a frozen teacher.
local BatchNorm1d = nn.Module:extend("BatchNorm1d")
function BatchNorm1d:init(c, eps)
  self.eps = eps or 1e-5
  self.weight = nn.Parameter(fsvc.ones({ c }))
  self.bias = nn.Parameter(fsvc.zeros({ c }))
  self:register_buffer("running_mean", fsvc.zeros({ c }))
  self:register_buffer("running_var", fsvc.ones({ c }))
  self:register_buffer("num_batches_tracked", fsvc.zeros({}, { dtype = "int64" }))
end
-- [B, C, T]
function BatchNorm1d:forward(x)
  local c = self.weight.shape[1]
  local scale = self.weight / fsvc.sqrt(self.running_var + self.eps)
  local shift = self.bias - self.running_mean * scale
  return x * scale:view(1, c, 1) + shift:view(1, c, 1)
end

local PositionalConv = nn.Module:extend("HubertPositionalConvEmbedding")
function PositionalConv:init(cfg)
  local h, k = cfg.hidden_size, cfg.num_conv_pos_embeddings
  self.conv = nn.Conv1d(h, h, k, { padding = k // 2, groups = cfg.num_conv_pos_embedding_groups })
  if cfg.conv_pos_batch_norm then
    self.batch_norm = BatchNorm1d(h)
  else
    -- newer transformers (torch.nn.utils.parametrizations.weight_norm); the legacy weight_g /
    -- weight_v keys of older checkpoints are renamed on load by weight_norm's load hook
    nn.utils.weight_norm(self.conv, { name = "weight", dim = 2, style = "parametrizations" })
  end
  self.remove_last = k % 2 == 0 -- HubertSamePadLayer
  self.act = activation(cfg.feat_extract_activation)
end
-- [B, T, hidden] -> [B, T, hidden]
function PositionalConv:forward(h)
  local x = h:transpose(1, 2)
  if self.batch_norm then x = self.batch_norm(x) end
  x = self.conv(x)
  if self.remove_last then x = x:narrow(2, 0, x.shape[3] - 1) end
  return self.act(x):transpose(1, 2)
end

-- ---- transformer -----------------------------------------------------------------------------

local Attention = nn.Module:extend("HubertAttention")
function Attention:init(cfg)
  local h = cfg.hidden_size
  self.num_heads = cfg.num_attention_heads
  self.head_dim = h // self.num_heads
  self.scaling = self.head_dim ^ -0.5
  self.dropout_p = cfg.attention_dropout
  -- key order as transformers' HubertAttention: k, v, q, out
  self.k_proj = nn.Linear(h, h)
  self.v_proj = nn.Linear(h, h)
  self.q_proj = nn.Linear(h, h)
  self.out_proj = nn.Linear(h, h)
end
-- x [B, T, hidden]; mask: nil or an additive float mask [B, 1, 1, T] -> [B, T, hidden]
function Attention:forward(x, mask)
  local B, T, H = x.shape[1], x.shape[2], x.shape[3]
  local nh, hd = self.num_heads, self.head_dim
  -- [B, T, H] -> [B, heads, T, head_dim]
  local function heads(t) return t:view(B, T, nh, hd):transpose(1, 2) end
  local q = heads(self.q_proj(x))
  local k = heads(self.k_proj(x))
  local v = heads(self.v_proj(x))
  local scores = fsvc.matmul(q, k:transpose(2, 3)) * self.scaling -- [B, heads, T, T]
  if mask then scores = scores + mask end
  local attn = fsvc.softmax(scores, -1)
  attn = F.dropout(attn, self.dropout_p, self.training)
  local out = fsvc.matmul(attn, v) -- [B, heads, T, head_dim]
  out = out:transpose(1, 2):contiguous():view(B, T, H)
  return self.out_proj(out)
end

local FeedForward = nn.Module:extend("HubertFeedForward")
function FeedForward:init(cfg)
  self.intermediate_dropout = nn.Dropout(cfg.activation_dropout)
  self.intermediate_dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
  self.act = activation(cfg.hidden_act)
  self.output_dense = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
  self.output_dropout = nn.Dropout(cfg.hidden_dropout)
end
function FeedForward:forward(x)
  x = self.intermediate_dropout(self.act(self.intermediate_dense(x)))
  return self.output_dropout(self.output_dense(x))
end

-- One transformer layer; post-norm (base) or pre-norm (stable: large models).
local EncoderLayer = nn.Module:extend("HubertEncoderLayer")
function EncoderLayer:init(cfg)
  self.attention = Attention(cfg)
  self.dropout = nn.Dropout(cfg.hidden_dropout)
  self.layer_norm = nn.LayerNorm(cfg.hidden_size, { eps = cfg.layer_norm_eps })
  self.feed_forward = FeedForward(cfg)
  self.final_layer_norm = nn.LayerNorm(cfg.hidden_size, { eps = cfg.layer_norm_eps })
  self.stable = cfg.do_stable_layer_norm == true
end
function EncoderLayer:forward(h, mask)
  if self.stable then
    h = h + self.dropout(self.attention(self.layer_norm(h), mask))
    return h + self.feed_forward(self.final_layer_norm(h))
  end
  h = self.layer_norm(h + self.dropout(self.attention(h, mask)))
  return self.final_layer_norm(h + self.feed_forward(h))
end

local Encoder = nn.Module:extend("HubertEncoder")
function Encoder:init(cfg)
  self.pos_conv_embed = PositionalConv(cfg)
  self.layer_norm = nn.LayerNorm(cfg.hidden_size, { eps = cfg.layer_norm_eps })
  self.dropout = nn.Dropout(cfg.hidden_dropout)
  local layers = {}
  for i = 1, cfg.num_hidden_layers do layers[i] = EncoderLayer(cfg) end
  self.layers = nn.ModuleList(layers)
  self.layerdrop = cfg.layerdrop or 0
  self.stable = cfg.do_stable_layer_norm == true
end
-- h [B, T, hidden]; frame_mask nil or [B, T] float (1 = real frame); num_layers: stop after this
-- many layers (the hidden states after it are not computed). Returns last, hidden_states.
function Encoder:forward(h, frame_mask, num_layers)
  local n = #self.layers
  num_layers = math.min(num_layers or n, n)
  local attn_mask = nil
  if frame_mask then
    local B, T = frame_mask.shape[1], frame_mask.shape[2]
    h = h * frame_mask:unsqueeze(2) -- padded frames are zeroed before the positional conv
    -- additive key mask [B, 1, 1, T]: float32's lowest value where the key is padding
    attn_mask = ((frame_mask * -1) + 1):view(B, 1, 1, T) * -3.4028234663852886e38
  end
  h = h + self.pos_conv_embed(h)
  if not self.stable then h = self.layer_norm(h) end
  h = self.dropout(h)
  local states = {}
  for i = 1, num_layers do
    states[#states + 1] = h
    -- LayerDrop (training only), as transformers: the layer is skipped with probability layerdrop
    local skip = self.training and self.layerdrop > 0 and fsvc.rand({ 1 }):item() < self.layerdrop
    if not skip then h = self.layers[i](h, attn_mask) end
  end
  if self.stable and num_layers == n then h = self.layer_norm(h) end
  states[#states + 1] = h
  return h, states
end

-- ---- the model -------------------------------------------------------------------------------

local HubertModel = nn.Module:extend("HubertModel")
M.HubertModel = HubertModel

--- HubertModel(config): config is a table (missing keys take HubertConfig's defaults) or a JSON
--- string. Parameters are randomly initialised; load weights with load_state_dict or use
--- hubert.from_pretrained.
function HubertModel:init(config)
  local cfg
  if type(config) == "string" then cfg = M.config_from_json(config)
  elseif config == nil or type(config) == "table" then cfg = M.config(config)
  else error("HubertModel: expects a config table or JSON string, got " .. type(config), 2) end
  check_config(cfg)
  self.config = cfg
  if (cfg.mask_time_prob or 0) > 0 or (cfg.mask_feature_prob or 0) > 0 then
    -- registered first so that state_dict() lists it first, as PyTorch does
    self.masked_spec_embed = nn.Parameter(fsvc.rand({ cfg.hidden_size }))
  end
  self.feature_extractor = FeatureEncoder(cfg)
  self.feature_projection = FeatureProjection(cfg)
  self.encoder = Encoder(cfg)
end

--- Number of frames the feature encoder produces from `length` samples.
function HubertModel:output_length(length)
  local cfg = self.config
  for i = 1, #cfg.conv_kernel do
    length = (length - cfg.conv_kernel[i]) // cfg.conv_stride[i] + 1
  end
  return length
end

-- [B, L] sample mask (nonzero = real sample) -> [B, T'] float frame mask, as transformers'
-- _get_feature_vector_attention_mask: the first output_length(sum of the mask) frames are real.
function HubertModel:_frame_mask(attention_mask, T, dtype)
  local B = attention_mask.shape[1]
  local lengths = attention_mask:ne(0):to("int64"):sum(-1)
  local rows = {}
  for b = 1, B do
    local n = self:output_length(lengths:_get_flat(b - 1))
    local row = {}
    for t = 1, T do row[t] = (t <= n) and 1 or 0 end
    rows[b] = row
  end
  return fsvc.tensor(rows, { dtype = dtype })
end

--- forward(input_values [B, L] or [L], opts) -> {last_hidden_state [B, T', hidden],
---   hidden_states = {N+1 tensors [B, T', hidden]}, extract_features [B, T', C]}.
--- hidden_states[k + 1] is transformers' hidden_states[k] (k = 0: the input of the first layer).
--- opts.attention_mask [B, L]: 1 for real samples, 0 for padding (right-padded batches).
--- opts.num_layers: run only the first n transformer layers (hidden_states has n+1 entries and
--- last_hidden_state is the output of layer n, without the stable variant's final LayerNorm
--- unless n is all of them).
function HubertModel:forward(input_values, opts)
  opts = opts or {}
  if not fsvc.is_tensor(input_values) then
    error("HubertModel: expected input_values, a tensor [B, samples], got " .. type(input_values), 2)
  end
  local x = input_values
  if x.ndim == 1 then x = x:unsqueeze(0) end
  if x.ndim ~= 2 then
    error(string.format("HubertModel: expected input_values [B, samples], got [%s]",
      table.concat(x.shape, ", ")), 2)
  end
  if x.dtype ~= self.feature_projection.projection.weight.dtype then
    x = x:to(self.feature_projection.projection.weight.dtype)
  end
  local L = x.shape[2]
  if self:output_length(L) < 1 then
    error(string.format("HubertModel: input of %d samples is too short (at least %d needed)", L,
      self:min_length()), 2)
  end
  local features = self.feature_extractor(x):transpose(1, 2) -- [B, T', C]
  local frame_mask = nil
  if opts.attention_mask ~= nil then
    local m = opts.attention_mask
    if not fsvc.is_tensor(m) or m.ndim ~= 2 or m.shape[1] ~= x.shape[1] or m.shape[2] ~= L then
      error(string.format("HubertModel: attention_mask must be a tensor [%d, %d]", x.shape[1], L), 2)
    end
    frame_mask = self:_frame_mask(m, features.shape[2], features.dtype)
  end
  local h = self.feature_projection(features)
  local last, states = self.encoder(h, frame_mask, opts.num_layers)
  return { last_hidden_state = last, hidden_states = states, extract_features = features }
end

--- Shortest input (in samples) that gives one frame.
function HubertModel:min_length()
  local n = 1
  local cfg = self.config
  for i = #cfg.conv_kernel, 1, -1 do n = (n - 1) * cfg.conv_stride[i] + cfg.conv_kernel[i] end
  return n
end

--- extract(wave16k [B, L], layer=4, opts) -> transformers' hidden_states[layer] transposed to
--- [B, hidden, T'] (the content encoder's distillation target). Runs under no_grad (the teacher
--- is frozen) unless opts.grad is true, and computes only the first `layer` transformer layers.
function HubertModel:extract(wave, layer, opts)
  layer = layer or 4
  opts = opts or {}
  local n = self.config.num_hidden_layers
  if math.type(layer) ~= "integer" or layer < 0 or layer > n then
    error(string.format("HubertModel:extract: layer must be an integer in [0, %d], got %s", n, tostring(layer)), 2)
  end
  local function run()
    local out = self:forward(wave, { attention_mask = opts.attention_mask, num_layers = layer })
    return out.hidden_states[layer + 1]:transpose(1, 2):contiguous()
  end
  if opts.grad then return run() end
  return fsvc.no_grad(run)
end

-- ---- checkpoints -----------------------------------------------------------------------------

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  return s
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- Keeps HubertModel's keys of a transformers checkpoint: a HubertForCTC / HubertForSequence-
-- Classification checkpoint has them under "hubert."; its heads (lm_head, projector, ...) drop.
local function model_keys(sd)
  local prefixed = false
  for k in pairs(sd) do
    if type(k) == "string" and k:sub(1, 7) == "hubert." then prefixed = true break end
  end
  if not prefixed then return sd end
  local out = {}
  for k, v in pairs(sd) do
    if type(k) == "string" and k:sub(1, 7) == "hubert." then out[k:sub(8)] = v end
  end
  return out
end

local function load_weights(path)
  if path:match("%.safetensors$") then return fsvc.load_safetensors(path) end
  return fsvc.load_torch(path)
end

--- from_pretrained(path, opts) -> HubertModel in eval mode.
--- path: a directory with config.json and model.safetensors or pytorch_model.bin (a transformers
--- save), or a weights file (.safetensors / .bin / .pt) with opts.config (a table or JSON text)
--- or a "config" JSON entry in the safetensors metadata. opts.strict (default true): missing or
--- unexpected keys are errors.
function M.from_pretrained(path, opts)
  opts = opts or {}
  if type(path) ~= "string" then error("hubert.from_pretrained: expects a path, got " .. type(path), 2) end
  local config = opts.config
  local weights
  if exists(path .. "/config.json") or exists(path .. "/model.safetensors") or exists(path .. "/pytorch_model.bin") then
    if config == nil then
      local text, err = read_file(path .. "/config.json")
      if not text then
        error("hubert.from_pretrained: " .. path .. "/config.json: " .. tostring(err), 2)
      end
      config = text
    end
    if exists(path .. "/model.safetensors") then weights = path .. "/model.safetensors"
    elseif exists(path .. "/pytorch_model.bin") then weights = path .. "/pytorch_model.bin"
    else
      error("hubert.from_pretrained: " .. path .. " has neither model.safetensors nor pytorch_model.bin", 2)
    end
  elseif exists(path) then
    weights = path
  else
    error("hubert.from_pretrained: " .. path .. ": no such file or directory", 2)
  end
  local ok, sd, meta = pcall(load_weights, weights)
  if not ok then error("hubert.from_pretrained: " .. tostring(sd), 2) end
  if config == nil and type(meta) == "table" and type(meta.config) == "string" then config = meta.config end
  if config == nil then
    error("hubert.from_pretrained: " .. weights .. " carries no config; pass opts.config or use a "
      .. "directory with config.json", 2)
  end
  local model = HubertModel(config)
  sd = model_keys(sd)
  if model.masked_spec_embed == nil then sd.masked_spec_embed = nil end
  local lok, err = pcall(model.load_state_dict, model, sd, { strict = opts.strict ~= false })
  if not lok then error("hubert.from_pretrained: " .. weights .. ": " .. tostring(err), 2) end
  model:eval()
  return model
end

return M
