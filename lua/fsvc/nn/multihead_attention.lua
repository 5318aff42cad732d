-- nn.MultiheadAttention(embed_dim, num_heads, {dropout=0, bias=true, batch_first=false,
--   kdim=embed_dim, vdim=embed_dim}), as torch.nn.MultiheadAttention (same parameter names:
--   in_proj_weight [3E, E], in_proj_bias [3E], out_proj.weight [E, E], out_proj.bias [E]; with
--   kdim/vdim other than E: q_proj_weight, k_proj_weight, v_proj_weight instead of in_proj_weight).
--
--   out, weights = mha(query, key, value, {key_padding_mask=, attn_mask=, need_weights=true,
--                                          average_attn_weights=true})
--   query [L, N, E] ([N, L, E] with batch_first; [L, E] unbatched), key/value [S, N, kdim/vdim].
--   key_padding_mask [N, S]: nonzero (int64) marks keys to ignore, or a float mask added to the
--   scores. attn_mask [L, S] or [N*num_heads, L, S]: the same conventions (nonzero int64 = may
--   NOT attend, as PyTorch's boolean masks). weights: [N, L, S] averaged over heads, or
--   [N, num_heads, L, S]; nil when need_weights is false.
local fsvc = require "fsvc"
local module = require "fsvc.nn.module"
local init = require "fsvc.nn.init_weights"
local Linear = require "fsvc.nn.linear"
local F = require "fsvc.nn.functional"
local U = require "fsvc.nn.util_internal"

local MultiheadAttention = module.Module:extend("MultiheadAttention")
-- PyTorch's out_proj class (a Linear under another name; kept so that reprs match)
local NonDynamicallyQuantizableLinear = Linear:extend("NonDynamicallyQuantizableLinear")

function MultiheadAttention:init(embed_dim, num_heads, opts)
  opts = opts or {}
  local L = "MultiheadAttention"
  self.embed_dim = U.check_int(L, "embed_dim", embed_dim, 1)
  self.num_heads = U.check_int(L, "num_heads", num_heads, 1)
  if self.embed_dim % self.num_heads ~= 0 then
    error(string.format("MultiheadAttention: embed_dim (%d) must be divisible by num_heads (%d)",
      self.embed_dim, self.num_heads), 2)
  end
  self.head_dim = self.embed_dim // self.num_heads
  self.kdim = opts.kdim or self.embed_dim
  self.vdim = opts.vdim or self.embed_dim
  self.dropout = opts.dropout or 0
  self.batch_first = opts.batch_first == true
  self.qkv_same_embed_dim = self.kdim == self.embed_dim and self.vdim == self.embed_dim
  local E, dt = self.embed_dim, U.dtype_opts(opts)
  if self.qkv_same_embed_dim then
    self.in_proj_weight = module.Parameter(fsvc.empty({ 3 * E, E }, dt))
    self:register_parameter("q_proj_weight", nil)
    self:register_parameter("k_proj_weight", nil)
    self:register_parameter("v_proj_weight", nil)
  else
    self.q_proj_weight = module.Parameter(fsvc.empty({ E, E }, dt))
    self.k_proj_weight = module.Parameter(fsvc.empty({ E, self.kdim }, dt))
    self.v_proj_weight = module.Parameter(fsvc.empty({ E, self.vdim }, dt))
    self:register_parameter("in_proj_weight", nil)
  end
  if opts.bias ~= false then
    self.in_proj_bias = module.Parameter(fsvc.empty({ 3 * E }, dt))
  else
    self:register_parameter("in_proj_bias", nil)
  end
  self.out_proj = NonDynamicallyQuantizableLinear(E, E, { bias = opts.bias ~= false, dtype = dt.dtype })
  self:reset_parameters()
end

function MultiheadAttention:reset_parameters()
  if self.qkv_same_embed_dim then
    init.xavier_uniform_(self.in_proj_weight)
  else
    init.xavier_uniform_(self.q_proj_weight)
    init.xavier_uniform_(self.k_proj_weight)
    init.xavier_uniform_(self.v_proj_weight)
  end
  if self.in_proj_bias then
    init.zeros_(self.in_proj_bias)
    init.zeros_(self.out_proj.bias)
  end
end

local function bias_part(b, i, E)
  if not b then return nil end
  return b:narrow(0, i * E, E)
end

-- [T, N, E] -> [N, H, T, hd]
local function heads(x, H, hd)
  local T, N = x.shape[1], x.shape[2]
  return x:reshape(T, N, H, hd):permute(1, 2, 0, 3)
end

-- a mask as an additive float tensor (int64: nonzero -> -inf)
local function additive(mask, dtype)
  if mask.dtype == "int64" then
    return fsvc.zeros(mask.shape, { dtype = dtype }):masked_fill(mask:ne(0), -math.huge)
  end
  return mask
end

function MultiheadAttention:forward(query, key, value, opts)
  opts = opts or {}
  key, value = key or query, value or key or query
  local E, H, hd = self.embed_dim, self.num_heads, self.head_dim
  local name = string.format("MultiheadAttention(embed_dim=%d, num_heads=%d%s)", E, H,
    self.batch_first and ", batch_first" or "")
  for _, t in ipairs({ query, key, value }) do
    if not fsvc.is_tensor(t) then error(name .. ": query, key and value must be tensors", 2) end
  end
  local unbatched = query.ndim == 2
  if unbatched then
    query, key, value = query:unsqueeze(1), key:unsqueeze(1), value:unsqueeze(1)
    if opts.key_padding_mask then opts.key_padding_mask = opts.key_padding_mask:unsqueeze(0) end
  elseif self.batch_first then
    query, key, value = query:transpose(0, 1), key:transpose(0, 1), value:transpose(0, 1)
  end
  -- now [T, N, E]
  local layout = self.batch_first and not unbatched and "[N, L, %d]" or "[L, N, %d]"
  if query.ndim ~= 3 or query.shape[3] ~= E then
    error(string.format("%s: expected query of shape " .. layout .. ", got %s", name, E,
      U.shape_str(query)), 2)
  end
  local Lq, N, S = query.shape[1], query.shape[2], key.shape[1]
  if key.ndim ~= 3 or key.shape[3] ~= self.kdim or key.shape[2] ~= N
      or value.ndim ~= 3 or value.shape[3] ~= self.vdim or value.shape[2] ~= N or value.shape[1] ~= S then
    error(string.format("%s: key %s and value %s do not match query %s (kdim %d, vdim %d)", name,
      U.shape_str(key), U.shape_str(value), U.shape_str(query), self.kdim, self.vdim), 2)
  end
  local b = self.in_proj_bias
  local q, k, v
  if self.qkv_same_embed_dim then
    local W = self.in_proj_weight
    if query == key and key == value then
      local qkv = fsvc.linear(query, W, b):chunk(3, -1)
      q, k, v = qkv[1], qkv[2], qkv[3]
    else
      q = fsvc.linear(query, W:narrow(0, 0, E), bias_part(b, 0, E))
      k = fsvc.linear(key, W:narrow(0, E, E), bias_part(b, 1, E))
      v = fsvc.linear(value, W:narrow(0, 2 * E, E), bias_part(b, 2, E))
    end
  else
    q = fsvc.linear(query, self.q_proj_weight, bias_part(b, 0, E))
    k = fsvc.linear(key, self.k_proj_weight, bias_part(b, 1, E))
    v = fsvc.linear(value, self.v_proj_weight, bias_part(b, 2, E))
  end
  q, k, v = heads(q, H, hd), heads(k, H, hd), heads(v, H, hd) -- [N, H, T, hd]
  local scores = fsvc.matmul(q * (1 / math.sqrt(hd)), k:transpose(-2, -1)) -- [N, H, L, S]
  local am = opts.attn_mask
  if am then
    am = additive(am, scores.dtype)
    if am.ndim == 2 then
      scores = scores + am
    elseif am.ndim == 3 and am.shape[1] == N * H then
      scores = scores + am:view(N, H, Lq, S)
    else
      error(string.format("%s: attn_mask must be [%d, %d] or [%d, %d, %d], got %s", name, Lq, S,
        N * H, Lq, S, U.shape_str(opts.attn_mask)), 2)
    end
  end
  local kpm = opts.key_padding_mask
  if kpm then
    if kpm.ndim ~= 2 or kpm.shape[1] ~= N or kpm.shape[2] ~= S then
      error(string.format("%s: key_padding_mask must be [%d, %d], got %s", name, N, S, U.shape_str(kpm)), 2)
    end
    scores = scores + additive(kpm, scores.dtype):view(N, 1, 1, S)
  end
  local attn = fsvc.softmax(scores, -1)
  if self.dropout > 0 and self.training then attn = F.dropout(attn, self.dropout, true) end
  local out = fsvc.matmul(attn, v)                               -- [N, H, L, hd]
  out = out:permute(2, 0, 1, 3):reshape(Lq, N, E)                -- [L, N, E]
  out = self.out_proj(out)
  if unbatched then out = out:squeeze(1)
  elseif self.batch_first then out = out:transpose(0, 1) end
  local weights = nil
  if opts.need_weights ~= false then
    weights = attn
    if opts.average_attn_weights ~= false then weights = attn:mean(1) end
    if unbatched then weights = weights:squeeze(0) end
  end
  return out, weights
end

return MultiheadAttention
