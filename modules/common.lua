-- Building blocks shared by the FasterSVC networks (reference: module/common.py and
-- module/decoder.py of uthree/fastersvc; facts in shared/reference/FASTERSVC.md).
--
--   local common = require "modules.common"
--   common.DCC(cin, cout, k, dilation, {groups=1})    causal conv, replicate-padded on the left
--   common.LayerNorm(C, {eps=1e-4})                   the reference's channel-time norm
--   common.ResBlock(C, k, dilation, {mlp_mul=1, norm=false, negative_slope=0.1})
--   common.FiLM(C, Cc)                                x * to_mu(c) + to_sigma(c)
--   common.Downsample(cin, cout, factor)               residual DCC stack + AvgPool1d(factor)
--   common.Upsample(cin, cout, cc, factor)             linear upsampling + DCC/FiLM stack
--
-- Parameter names equal the reference's state_dict keys (c1.conv.weight, norm.scale, ...), so
-- checkpoints move between fsvc and PyTorch unchanged. All tensors are [B, C, T].
local fsvc = require "fsvc"
local nn = fsvc.nn

local common = {}

-- leaky_relu slope of every block of the reference
common.LRELU_SLOPE = 0.1

-- ---- DCC: dilated causal convolution ----------------------------------------------------------
-- Left-pads (k-1)*d samples by replicating the first sample, then a plain Conv1d: the output at t
-- depends only on inputs <= t, and the length is kept. Keys: conv.weight, conv.bias.
local DCC = nn.Module:extend("DCC")
common.DCC = DCC

function DCC:init(input_channels, output_channels, kernel_size, dilation, opts)
  opts = opts or {}
  dilation = dilation or 1
  self.conv = nn.Conv1d(input_channels, output_channels, kernel_size,
    { dilation = dilation, groups = opts.groups or 1 })
  self.pad_size = (kernel_size - 1) * dilation
end

function DCC:forward(x)
  if self.pad_size > 0 then x = fsvc.pad(x, { self.pad_size, 0 }, { mode = "replicate" }) end
  return self.conv(x)
end

-- ---- LayerNorm (the reference's ChannelNorm) ---------------------------------------------------
-- Per batch item, mean and UNBIASED std over all channels and time steps (dims 1 and 2); eps is
-- added to the std, not the variance. Keys: scale [1, C, 1], shift [1, C, 1]. Not causal: it looks
-- at the whole sequence.
local LayerNorm = nn.Module:extend("LayerNorm")
common.LayerNorm = LayerNorm

function LayerNorm:init(channels, opts)
  opts = opts or {}
  self.channels = channels
  self.eps = opts.eps or 1e-4
  self.scale = nn.Parameter(fsvc.ones({ 1, channels, 1 }))
  self.shift = nn.Parameter(fsvc.zeros({ 1, channels, 1 }))
end

function LayerNorm:forward(x)
  local mu = x:mean({ 1, 2 }, true)
  local sigma = x:std({ 1, 2 }, { unbiased = true, keepdim = true }) + self.eps
  return (x - mu) / sigma * self.scale + self.shift
end

-- ---- ResBlock ---------------------------------------------------------------------------------
-- y = x + c3(leaky_relu(c2(norm(c1(x))))), c1 a DCC, c2/c3 1x1 convs (C -> C*mlp_mul -> C).
local ResBlock = nn.Module:extend("ResBlock")
common.ResBlock = ResBlock

function ResBlock:init(channels, kernel_size, dilation, opts)
  opts = opts or {}
  local mlp_mul = opts.mlp_mul or 1
  self.c1 = DCC(channels, channels, kernel_size or 7, dilation or 1)
  if opts.norm then self.norm = LayerNorm(channels) end
  self.c2 = nn.Conv1d(channels, channels * mlp_mul, 1)
  self.c3 = nn.Conv1d(channels * mlp_mul, channels, 1)
  self.negative_slope = opts.negative_slope or common.LRELU_SLOPE
end

function ResBlock:forward(x)
  local h = self.c1(x)
  if self.norm then h = self.norm(h) end
  h = self.c2(h):leaky_relu(self.negative_slope)
  return self.c3(h) + x
end

-- ---- FiLM -------------------------------------------------------------------------------------
-- y = x * to_mu(c) + to_sigma(c) (the reference's naming: "mu" multiplies).
local FiLM = nn.Module:extend("FiLM")
common.FiLM = FiLM

function FiLM:init(channels, cond_channels)
  self.to_mu = nn.Conv1d(cond_channels, channels, 1)
  self.to_sigma = nn.Conv1d(cond_channels, channels, 1)
end

function FiLM:forward(x, c)
  return x * self.to_mu(c) + self.to_sigma(c)
end

-- ---- Downsample -------------------------------------------------------------------------------
-- res = down_res(x); x -> lrelu -> c1 (d=1) -> lrelu -> c2 (d=2) -> lrelu -> c3 (d=4);
-- y = AvgPool1d(factor)(x + res): [B, cin, T] -> [B, cout, T/factor].
local Downsample = nn.Module:extend("Downsample")
common.Downsample = Downsample

function Downsample:init(input_channels, output_channels, factor)
  self.factor = factor or 4
  self.down_res = nn.Conv1d(input_channels, output_channels, 1)
  self.c1 = DCC(input_channels, input_channels, 3, 1)
  self.c2 = DCC(input_channels, input_channels, 3, 2)
  self.c3 = DCC(input_channels, output_channels, 3, 4)
end

function Downsample:forward(x)
  local s = common.LRELU_SLOPE
  local res = self.down_res(x)
  x = self.c1(x:leaky_relu(s))
  x = self.c2(x:leaky_relu(s))
  x = self.c3(x:leaky_relu(s))
  return fsvc.avg_pool1d(x + res, self.factor)
end

-- ---- Upsample ---------------------------------------------------------------------------------
-- x and c are linearly interpolated by `factor` (align_corners=False); two residual DCC pairs
-- (dilations 1,3 and 9,27), each closed by a FiLM on c; then c5 changes the channel count.
local Upsample = nn.Module:extend("Upsample")
common.Upsample = Upsample

function Upsample:init(input_channels, output_channels, cond_channels, factor)
  self.factor = factor or 4
  self.c1 = DCC(input_channels, input_channels, 3, 1)
  self.c2 = DCC(input_channels, input_channels, 3, 3)
  self.film1 = FiLM(input_channels, cond_channels)
  self.c3 = DCC(input_channels, input_channels, 3, 9)
  self.c4 = DCC(input_channels, input_channels, 3, 27)
  self.film2 = FiLM(input_channels, cond_channels)
  self.c5 = DCC(input_channels, output_channels, 3, 1)
end

function Upsample:forward(x, c)
  local s = common.LRELU_SLOPE
  local up = { scale_factor = self.factor, mode = "linear", align_corners = false }
  c = fsvc.interpolate(c, up)
  x = fsvc.interpolate(x, up)
  local res = x
  x = self.c1(x:leaky_relu(s))
  x = self.c2(x:leaky_relu(s))
  x = self.film1(x, c) + res
  res = x
  x = self.c3(x:leaky_relu(s))
  x = self.c4(x:leaky_relu(s))
  x = self.film2(x, c) + res
  return self.c5(x)
end

-- ---- helpers ----------------------------------------------------------------------------------
-- A shallow copy of `defaults` overridden by the fields of `cfg` (configs are plain tables).
function common.config(defaults, cfg)
  local out = {}
  for k, v in pairs(defaults) do out[k] = v end
  for k, v in pairs(cfg or {}) do out[k] = v end
  return out
end

-- Number of parameter elements of a module.
function common.num_params(m)
  local n = 0
  for _, p in ipairs(m:parameters()) do n = n + p:numel() end
  return n
end

return common
