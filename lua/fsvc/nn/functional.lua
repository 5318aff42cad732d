-- fsvc.nn.functional (also fsvc.nn.F): stateless forms of the layers and the common losses, as
-- torch.nn.functional. Dims are 0-based.
--
--   F.linear(x, w, b)  F.conv1d(x, w, b, opts)  F.conv_transpose1d(x, w, b, opts)
--   F.layer_norm(x, normalized_shape, w, b, eps)   F.group_norm(x, groups, w, b, eps)
--   F.dropout(x, p, training)   F.relu F.gelu{approximate} F.leaky_relu F.tanh F.sigmoid F.silu
--   F.softmax(x, dim) F.log_softmax(x, dim) F.pad(x, pads, opts) F.interpolate(x, opts)
--   F.normalize(x, {p=2, dim=1, eps=1e-12})
--   F.mse_loss(a, b, reduction) F.l1_loss F.smooth_l1_loss F.cross_entropy(logits, target, opts)
--   F.nll_loss(logp, target, opts) F.binary_cross_entropy_with_logits(x, y, opts)
--   F.scaled_dot_product_attention(q, k, v, {attn_mask, dropout_p, is_causal, scale})
local fsvc = require "fsvc"
local U = require "fsvc.nn.util_internal"

local F = {}

F.linear = function(x, w, b) return fsvc.linear(x, w, b) end
F.conv1d = function(x, w, b, opts) return fsvc.conv1d(x, w, b, opts) end
F.conv_transpose1d = function(x, w, b, opts) return fsvc.conv_transpose1d(x, w, b, opts) end
F.avg_pool1d = function(x, k, opts) return fsvc.avg_pool1d(x, k, opts) end
F.max_pool1d = function(x, k, opts) return fsvc.max_pool1d(x, k, opts) end
F.interpolate = function(x, opts) return fsvc.interpolate(x, opts) end
F.pad = function(x, pads, opts) return fsvc.pad(x, pads, opts) end
F.softmax = function(x, dim) return fsvc.softmax(x, dim) end
F.log_softmax = function(x, dim) return fsvc.log_softmax(x, dim) end
F.relu = function(x) return fsvc.relu(x) end
F.tanh = function(x) return fsvc.tanh(x) end
F.sigmoid = function(x) return fsvc.sigmoid(x) end
F.leaky_relu = function(x, slope) return fsvc.leaky_relu(x, slope or 0.01) end
F.silu = function(x) return x * fsvc.sigmoid(x) end

--- gelu(x, {approximate="none"|"tanh"}) or gelu(x, "tanh")
function F.gelu(x, approximate)
  if type(approximate) == "table" then approximate = approximate.approximate end
  if approximate == nil or approximate == "none" then return fsvc.gelu(x) end
  if approximate ~= "tanh" then
    error("gelu: approximate must be \"none\" or \"tanh\", got " .. tostring(approximate), 2)
  end
  local inner = (x + x * x * x * 0.044715) * math.sqrt(2 / math.pi)
  return x * 0.5 * (fsvc.tanh(inner) + 1)
end

local function last_dims(n)
  local dims = {}
  for i = 1, n do dims[i] = -i end
  return dims
end

--- layer_norm(x, normalized_shape, weight?, bias?, eps=1e-5): normalises over the last
--- #normalized_shape dims with the biased variance, as torch.nn.functional.layer_norm.
function F.layer_norm(x, normalized_shape, weight, bias, eps)
  eps = eps or 1e-5
  if type(normalized_shape) == "number" then normalized_shape = { normalized_shape } end
  local n = #normalized_shape
  local shape = x.shape
  local ok = #shape >= n
  for i = 1, n do ok = ok and shape[#shape - n + i] == normalized_shape[i] end
  if not ok then
    error(string.format("layer_norm: normalized_shape [%s] does not match the last dims of the input %s",
      table.concat(normalized_shape, ", "), U.shape_str(x)), 2)
  end
  local dims = last_dims(n)
  local mean = x:mean(dims, true)
  local xc = x - mean
  local var = (xc * xc):mean(dims, true)
  local y = xc / fsvc.sqrt(var + eps)
  if weight then y = y * weight end
  if bias then y = y + bias end
  return y
end

--- group_norm(x [N, C, *], num_groups, weight? [C], bias? [C], eps=1e-5)
function F.group_norm(x, num_groups, weight, bias, eps)
  eps = eps or 1e-5
  local shape = x.shape
  if #shape < 2 or shape[2] % num_groups ~= 0 then
    error(string.format("group_norm: input %s must be [N, C, ...] with C divisible by num_groups %d",
      U.shape_str(x), num_groups), 2)
  end
  local xg = x:reshape(shape[1], num_groups, -1)
  local mean = xg:mean(2, true)
  local xc = xg - mean
  local var = (xc * xc):mean(2, true)
  local y = (xc / fsvc.sqrt(var + eps)):reshape(shape)
  if weight or bias then
    local bshape = { 1, shape[2] }
    for _ = 3, #shape do bshape[#bshape + 1] = 1 end
    if weight then y = y * weight:view(bshape) end
    if bias then y = y + bias:view(bshape) end
  end
  return y
end

--- dropout(x, p=0.5, training=true): zeroes each element with probability p (mask drawn from
--- fsvc.rand) and scales the rest by 1/(1-p); the identity when not training or p == 0.
function F.dropout(x, p, training)
  p = p or 0.5
  if p < 0 or p > 1 then error("dropout: probability must be in [0, 1], got " .. tostring(p), 2) end
  if training == false or p == 0 then return x end
  if p == 1 then return x * 0 end
  local keep = fsvc.rand(x.shape, { dtype = x.dtype }):lt(1 - p)
  return x * keep * (1 / (1 - p))
end

--- normalize(x, {p=2, dim=1, eps=1e-12}): x / max(||x||_p along dim, eps)
function F.normalize(x, opts)
  opts = opts or {}
  local n = x:norm(opts.p or 2, opts.dim or 1, true)
  return x / n:clamp(opts.eps or 1e-12, nil)
end

local function reduce(loss, reduction, name)
  reduction = reduction or "mean"
  if reduction == "mean" then return loss:mean() end
  if reduction == "sum" then return loss:sum() end
  if reduction == "none" then return loss end
  error(name .. ": reduction must be \"mean\", \"sum\" or \"none\", got " .. tostring(reduction), 3)
end

local function same_shape(a, b, name)
  local sa, sb = a.shape, b.shape
  local ok = #sa == #sb
  for i = 1, #sa do ok = ok and sa[i] == sb[i] end
  if not ok then
    error(string.format("%s: input %s and target %s must have the same shape", name,
      U.shape_str(a), U.shape_str(b)), 3)
  end
end

function F.mse_loss(input, target, reduction)
  same_shape(input, target, "mse_loss")
  local d = input - target
  return reduce(d * d, reduction, "mse_loss")
end

function F.l1_loss(input, target, reduction)
  same_shape(input, target, "l1_loss")
  return reduce(fsvc.abs(input - target), reduction, "l1_loss")
end

function F.smooth_l1_loss(input, target, reduction, beta)
  same_shape(input, target, "smooth_l1_loss")
  beta = beta or 1
  local d = fsvc.abs(input - target)
  local small = d:lt(beta)
  local loss = fsvc.where(small, d * d * (0.5 / beta), d - 0.5 * beta)
  return reduce(loss, reduction, "smooth_l1_loss")
end

--- nll_loss(logp [N, C, ...], target int64 [N, ...], {weight=[C], reduction="mean",
--- ignore_index=-100}): the weighted mean divides by the sum of the picked weights, as PyTorch.
function F.nll_loss(logp, target, opts)
  opts = opts or {}
  if not fsvc.is_tensor(target) or target.dtype ~= "int64" then
    error("nll_loss: target must be an int64 tensor of class indices", 2)
  end
  local ls, ts = logp.shape, target.shape
  local ok = #ls == #ts + 1 and ls[1] == ts[1]
  for i = 2, #ts do ok = ok and ls[i + 1] == ts[i] end
  if not ok then
    error(string.format("nll_loss: input %s must be [N, C, ...] with target %s of shape [N, ...]",
      U.shape_str(logp), U.shape_str(target)), 2)
  end
  local ignore = opts.ignore_index or -100
  local valid = target:ne(ignore)
  local safe = fsvc.where(valid, target, 0)
  local picked = logp:gather(1, safe:unsqueeze(1)):squeeze(1)
  local w = valid:to(logp.dtype)
  if opts.weight then
    w = w * opts.weight:index_select(0, safe:reshape(-1)):view(ts)
  end
  local loss = -picked * w
  local reduction = opts.reduction or "mean"
  if reduction == "mean" then return loss:sum() / w:sum() end
  return reduce(loss, reduction, "nll_loss")
end

--- cross_entropy(logits [N, C, ...], target int64 [N, ...], {weight, reduction, ignore_index,
--- label_smoothing=0}) = nll_loss(log_softmax(logits, 1), target)
function F.cross_entropy(logits, target, opts)
  opts = opts or {}
  local logp = fsvc.log_softmax(logits, 1)
  local eps = opts.label_smoothing or 0
  if eps == 0 then return F.nll_loss(logp, target, opts) end
  -- (1 - eps) * nll + eps * mean over classes of -logp (weighted as PyTorch)
  local nll = F.nll_loss(logp, target, { weight = opts.weight, ignore_index = opts.ignore_index,
    reduction = "none" })
  local C = logits.shape[2]
  local lp = logp
  if opts.weight then
    local bshape = { 1, C }
    for _ = 3, #logits.shape do bshape[#bshape + 1] = 1 end
    lp = lp * opts.weight:view(bshape)
  end
  local valid = target:ne(opts.ignore_index or -100):to(logits.dtype)
  local smooth = -lp:sum(1) * valid / C
  local loss = nll * (1 - eps) + smooth * eps
  local reduction = opts.reduction or "mean"
  if reduction == "mean" then
    local denom
    if opts.weight then
      local safe = fsvc.where(target:ne(opts.ignore_index or -100), target, 0)
      denom = (opts.weight:index_select(0, safe:reshape(-1)):view(target.shape) * valid):sum()
    else
      denom = valid:sum()
    end
    return loss:sum() / denom
  end
  return reduce(loss, reduction, "cross_entropy")
end

--- binary_cross_entropy_with_logits(x, y, {reduction, pos_weight})
function F.binary_cross_entropy_with_logits(x, y, opts)
  opts = opts or {}
  same_shape(x, y, "binary_cross_entropy_with_logits")
  -- log(1 + exp(-|x|)) + max(x, 0) - x*y, stable for large |x|
  local sp = fsvc.log(fsvc.exp(-fsvc.abs(x)) + 1) + fsvc.relu(x)
  local loss
  if opts.pos_weight then
    local lw = (opts.pos_weight - 1) * y + 1
    loss = (1 - y) * x + lw * (sp - x)
  else
    loss = sp - x * y
  end
  return reduce(loss, opts.reduction, "binary_cross_entropy_with_logits")
end

--- scaled_dot_product_attention(q [..., L, E], k [..., S, E], v [..., S, Ev], opts):
--- softmax(q k^T * scale + mask) v. attn_mask: a float mask added to the scores, or a boolean-like
--- (0/1 int64) mask where 1 means "may attend"; is_causal masks the upper triangle.
--- Returns the output and the attention weights.
function F.scaled_dot_product_attention(q, k, v, opts)
  opts = opts or {}
  local E = q.shape[q.ndim]
  local scale = opts.scale or 1 / math.sqrt(E)
  local scores = fsvc.matmul(q * scale, k:transpose(-2, -1))
  local Lq, S = q.shape[q.ndim - 1], k.shape[k.ndim - 1]
  if opts.is_causal then
    local i = fsvc.arange(Lq):view(Lq, 1)
    local j = fsvc.arange(S):view(1, S)
    scores = scores:masked_fill(j:gt(i), -math.huge)
  end
  local mask = opts.attn_mask
  if mask then
    if mask.dtype == "int64" then scores = scores:masked_fill(mask:eq(0), -math.huge)
    else scores = scores + mask end
  end
  local attn = fsvc.softmax(scores, -1)
  if opts.dropout_p and opts.dropout_p > 0 then attn = F.dropout(attn, opts.dropout_p, true) end
  return fsvc.matmul(attn, v), attn
end

return F
