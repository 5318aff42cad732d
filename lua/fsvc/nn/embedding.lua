-- nn.Embedding(num_embeddings, embedding_dim, {padding_idx=nil}): a lookup table; input int64
-- indices of any shape -> [..., embedding_dim]. Weights ~ N(0, 1), the padding row zeroed.
local fsvc = require "fsvc"
local module = require "fsvc.nn.module"
local U = require "fsvc.nn.util_internal"

local Embedding = module.Module:extend("Embedding")

function Embedding:init(num_embeddings, embedding_dim, opts)
  opts = opts or {}
  self.num_embeddings = U.check_int("Embedding", "num_embeddings", num_embeddings, 1)
  self.embedding_dim = U.check_int("Embedding", "embedding_dim", embedding_dim, 1)
  self.padding_idx = opts.padding_idx
  self.weight = module.Parameter(fsvc.randn({ self.num_embeddings, self.embedding_dim }, U.dtype_opts(opts)))
  if self.padding_idx then
    fsvc.no_grad(function() self.weight:select(0, self.padding_idx):fill_(0) end)
  end
end

function Embedding:forward(idx)
  if not fsvc.is_tensor(idx) or idx.dtype ~= "int64" then
    error("Embedding: expected an int64 index tensor, got " .. U.shape_str(idx), 2)
  end
  local shape = idx.shape
  shape[#shape + 1] = self.embedding_dim
  return self.weight:index_select(0, idx:reshape(-1)):view(shape)
end

function Embedding:extra_repr() return self.num_embeddings .. ", " .. self.embedding_dim end

return Embedding
