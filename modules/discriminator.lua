-- Discriminator: multi-period (HiFi-GAN MPD; none by default) and multi-scale (MSD) sub-
-- discriminators. forward(x [B, L]) returns logits (a list: MPD first, then MSD) and feature
-- maps (a list in the same order). Reference: module/discriminator.py of uthree/fastersvc;
-- FASTERSVC.md "Discriminator".
--
--   local Discriminator = require "modules.discriminator"
--   local d = Discriminator{ }                  -- defaults: 91 214 341 parameters
--   local logits, feats = d(wave)
--
-- The MPD's Conv2d with kernel (k, 1) and stride (s, 1) never mixes the width (period) axis, so
-- it is computed as a Conv1d over the height after folding the width into the batch: the weight
-- keeps PyTorch's 4-D shape [out, in, k, 1] (state_dict compatible) and is viewed as [out, in, k].
local fsvc = require "fsvc"
local nn = fsvc.nn
local common = require "modules.common"

local Discriminator = nn.Module:extend("Discriminator")

Discriminator.defaults = {
  scales = { 1, 2, 3 }, periods = {},
  mpd_num_layers = 4, msd_num_layers = 8,
  mpd_channels = 32, msd_channels = 64,
  mpd_max_channels = 256, msd_max_groups = 8, msd_max_channels = 512,
}

local SLOPE = 0.1

-- Both sub-discriminators end the same way: each conv + leaky_relu, then post; every output is
-- appended to fmap.
local function conv_stack(self, x, fmap)
  for i = 1, #self.convs do
    x = self.convs[i](x):leaky_relu(SLOPE)
    fmap[#fmap + 1] = x
  end
  x = self.post(x)
  fmap[#fmap + 1] = x
  return x, fmap
end

-- ---- Conv2d with a (k, 1) kernel -------------------------------------------------------------
-- input [B, Cin, H, W] -> [B, Cout, H', W], H' = (H + 2 pad - k) / stride + 1
local ConvK1 = nn.Module:extend("ConvK1")
Discriminator.ConvK1 = ConvK1

function ConvK1:init(cin, cout, k, stride, pad)
  self.stride, self.pad = stride or 1, pad or 0
  -- the default init of a Conv1d of the same fan-in
  local c = nn.Conv1d(cin, cout, k)
  self.weight = nn.Parameter(fsvc.no_grad(function() return c.weight:unsqueeze(-1):contiguous() end))
  self.bias = nn.Parameter(fsvc.no_grad(function() return c.bias:clone() end))
end

function ConvK1:forward(x)
  local B, C, H, W = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
  local w = self.weight
  local x1 = x:permute({ 0, 3, 1, 2 }):reshape(B * W, C, H)       -- [B*W, C, H]
  local y = fsvc.conv1d(x1, w:squeeze(-1), self.bias, { stride = self.stride, padding = self.pad })
  local Co, Ho = y.shape[2], y.shape[3]
  return y:view(B, W, Co, Ho):permute({ 0, 2, 3, 1 })             -- [B, Co, Ho, W]
end

-- ---- period sub-discriminator ----------------------------------------------------------------
local DiscriminatorP = nn.Module:extend("DiscriminatorP")

function DiscriminatorP:init(period, opts)
  local k, s, c = opts.kernel_size or 5, opts.stride or 3, opts.channels
  local pad = (k - 1) // 2
  self.period = period
  local convs = { ConvK1(1, c, k, s, pad) }
  for _ = 1, opts.num_layers do
    local c_next = math.min(c * 2, opts.max_channels)
    convs[#convs + 1] = ConvK1(c, c_next, k, s, pad)
    c = c_next
  end
  for _, m in ipairs(convs) do nn.utils.weight_norm(m) end
  self.convs = nn.ModuleList(convs)
  self.post = nn.utils.weight_norm(ConvK1(c, 1, 3, 1, 1))
end

-- x [B, 1, L] -> logit [B, 1, H, period], feature maps
function DiscriminatorP:forward(x)
  local fmap = {}
  local b, c, t = x.shape[1], x.shape[2], x.shape[3]
  if t % self.period ~= 0 then
    local n_pad = self.period - t % self.period
    x = fsvc.pad(x, { 0, n_pad }, { mode = "reflect" })
    t = t + n_pad
  end
  x = x:reshape(b, c, t // self.period, self.period)
  return conv_stack(self, x, fmap)
end

-- ---- scale sub-discriminator -----------------------------------------------------------------
local DiscriminatorS = nn.Module:extend("DiscriminatorS")

function DiscriminatorS:init(scale, opts)
  self.scale = scale
  local norm = opts.spectral_norm and nn.utils.spectral_norm or nn.utils.weight_norm
  local c = opts.channels
  local convs = { nn.Conv1d(1, c, 15, { stride = 1, padding = 7 }) }
  for _ = 1, opts.num_layers do
    local c_next = math.min(c * 2, opts.max_channels)
    convs[#convs + 1] = nn.Conv1d(c, c_next, 41, { stride = 2, padding = 20, groups = 2 })
    c = c_next
  end
  for _, m in ipairs(convs) do norm(m) end
  self.convs = nn.ModuleList(convs)
  self.post = norm(nn.Conv1d(c, 1, 3, { stride = 1, padding = 1 }))
end

-- x [B, 1, L] -> logit [B, 1, L'], feature maps (the pooled input first)
function DiscriminatorS:forward(x)
  local fmap = {}
  if self.scale ~= 1 then x = fsvc.avg_pool1d(x, self.scale) end
  fmap[1] = x
  return conv_stack(self, x, fmap)
end

-- ---- containers ------------------------------------------------------------------------------
local MultiPeriodicDiscriminator = nn.Module:extend("MultiPeriodicDiscriminator")
function MultiPeriodicDiscriminator:init(cfg)
  local subs = {}
  for i, p in ipairs(cfg.periods) do
    subs[i] = DiscriminatorP(p, { channels = cfg.mpd_channels, max_channels = cfg.mpd_max_channels,
      num_layers = cfg.mpd_num_layers })
  end
  self.sub_discs = nn.ModuleList(subs)
end

local MultiScaleDiscriminator = nn.Module:extend("MultiScaleDiscriminator")
function MultiScaleDiscriminator:init(cfg)
  local subs = {}
  for i, s in ipairs(cfg.scales) do
    subs[i] = DiscriminatorS(s, { channels = cfg.msd_channels, max_channels = cfg.msd_max_channels,
      num_layers = cfg.msd_num_layers, spectral_norm = (i == 1) })
  end
  self.sub_discs = nn.ModuleList(subs)
end

local function run_all(container, x, logits, feats)
  for i = 1, #container.sub_discs do
    local logit, fmap = container.sub_discs[i](x)
    logits[#logits + 1] = logit
    for _, f in ipairs(fmap) do feats[#feats + 1] = f end
  end
end

function Discriminator:init(cfg)
  cfg = common.config(Discriminator.defaults, cfg)
  self.config = cfg
  self.MPD = MultiPeriodicDiscriminator(cfg)
  self.MSD = MultiScaleDiscriminator(cfg)
end

-- x [B, L] -> logits (list), feature maps (list); MPD's first, then MSD's
function Discriminator:forward(x)
  x = x:unsqueeze(1)
  local mpd_logits, mpd_feats, msd_logits, msd_feats = {}, {}, {}, {}
  run_all(self.MPD, x, mpd_logits, mpd_feats)
  run_all(self.MSD, x, msd_logits, msd_feats)
  for _, l in ipairs(msd_logits) do mpd_logits[#mpd_logits + 1] = l end
  for _, f in ipairs(msd_feats) do mpd_feats[#mpd_feats + 1] = f end
  return mpd_logits, mpd_feats
end

return Discriminator
