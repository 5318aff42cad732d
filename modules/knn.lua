-- kNN feature matching (kNN-VC style) of content features, and the target speaker's features.
-- Reference: match_features in module/common.py of uthree/fastersvc; FASTERSVC.md "kNN conversion".
--
--   local knn = require "modules.knn"
--   local y = knn.match_features(source, reference, {k=4, alpha=0, metric="cos"})
--       source [B, C, T], reference [B, C, R] -> [B, C, T]: for each source frame the mean of
--       the k most similar reference frames, mixed as (1-alpha) mean + alpha source.
--       metric: "cos" (both sides L2-normalised with +1e-6, the default), "IP" (inner product)
--       or "L2" (minus the euclidean distance).
--   local target = knn.encode_target(content_encoder, wave)   -- [B, C, T/4]
--
-- This is the exact (brute-force) search: cost T*R*C per item. For large dictionaries a FAISS
-- index does the same search.
local fsvc = require "fsvc"

local knn = {}

-- similarity [B, T, R] between src [B, T, C] and ref [B, R, C]
local function similarity(src, ref, metric)
  if metric == "IP" then
    return fsvc.bmm(src, ref:transpose(1, 2))
  elseif metric == "L2" then
    -- -||s - r|| = -sqrt(|s|^2 + |r|^2 - 2 s.r) (torch.cdist's matrix-product path)
    local s2 = (src * src):sum(2, true)                      -- [B, T, 1]
    local r2 = (ref * ref):sum(2, true):transpose(1, 2)      -- [B, 1, R]
    local d2 = s2 + r2 - fsvc.bmm(src, ref:transpose(1, 2)) * 2
    return -(d2:clamp(0, math.huge)):sqrt()
  elseif metric == "cos" or metric == nil then
    local sn = src / (src:norm(2, 2, true) + 1e-6)
    local rn = ref / (ref:norm(2, 2, true) + 1e-6)
    return fsvc.bmm(sn, rn:transpose(1, 2))
  end
  error("match_features: metric must be \"cos\", \"IP\" or \"L2\", got " .. tostring(metric), 3)
end

function knn.match_features(source, reference, opts)
  opts = opts or {}
  local k, alpha = opts.k or 4, opts.alpha or 0
  local metric = opts.metric or opts.metrics or "cos"
  if source.ndim ~= 3 or reference.ndim ~= 3 or source.shape[1] ~= reference.shape[1]
      or source.shape[2] ~= reference.shape[2] then
    error(string.format("match_features: expects source [B, C, T] and reference [B, C, R] with "
      .. "the same B and C, got [%s] and [%s]", table.concat(source.shape, ", "),
      table.concat(reference.shape, ", ")), 2)
  end
  local B, C, T, R = source.shape[1], source.shape[2], source.shape[3], reference.shape[3]
  if k < 1 or k > R then
    error(string.format("match_features: k (%d) must be in 1..%d (reference frames)", k, R), 2)
  end
  local src = source:transpose(1, 2)           -- [B, T, C]
  local ref = reference:transpose(1, 2)        -- [B, R, C]
  local sims = similarity(src, ref, metric)    -- [B, T, R]
  local _, idx = sims:topk(k, 2)               -- [B, T, k]
  local flat = idx:reshape(B, T * k, 1):expand(B, T * k, C)
  local picked = ref:gather(1, flat):view(B, T, k, C)
  local result = picked:mean(2):transpose(1, 2)  -- [B, C, T]
  if alpha == 0 then return result end
  return result * (1 - alpha) + source * alpha
end

-- Content features of the target speaker's audio, average-pooled by `pool` (4) frames in time:
-- wave [B, L] -> [B, C, T/pool]. No gradient.
function knn.encode_target(content_encoder, wave, opts)
  opts = opts or {}
  return fsvc.no_grad(function()
    local z = content_encoder:encode(wave)
    return fsvc.avg_pool1d(z, opts.pool or 4)
  end)
end

return knn
