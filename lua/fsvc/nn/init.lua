-- fsvc.nn: layers and networks written in Lua on top of the tensor ops (PyTorch's torch.nn style).
--
--   local nn = fsvc.nn
--   local net = nn.Sequential(nn.Conv1d(1, 8, 3, { padding = 1 }), nn.LeakyReLU(0.1), nn.Conv1d(8, 1, 1))
--   local y = net(x)                       -- x [B, 1, T]
--   nn.functional (nn.F), nn.init, nn.utils (weight_norm, spectral_norm, clip_grad_norm_)
--
-- Every layer lives in its own file (lua/fsvc/nn/<file>.lua) and loads on first access.
local module = require "fsvc.nn.module"

local nn = {
  Module = module.Module,
  Parameter = module.Parameter,
  is_parameter = module.is_parameter,
  is_module = module.is_module,
  state_dict_keys = module.state_dict_keys,
}

-- name -> file under fsvc.nn (a file may define several closely related names)
local files = {
  Conv1d = "conv1d", ConvTranspose1d = "conv_transpose1d", Linear = "linear",
  LayerNorm = "layer_norm", GroupNorm = "group_norm", Dropout = "dropout",
  GELU = "activation", LeakyReLU = "activation", ReLU = "activation", Tanh = "activation",
  Sigmoid = "activation", Identity = "activation", SiLU = "activation", Softmax = "activation",
  Sequential = "sequential", ModuleList = "module_list", ModuleDict = "module_dict",
  MultiheadAttention = "multihead_attention", AvgPool1d = "pool", MaxPool1d = "pool",
  Embedding = "embedding",
  functional = "functional", F = "functional", init = "init_weights", utils = "utils",
}

return setmetatable(nn, {
  __index = function(t, key)
    local file = files[key]
    if not file then return nil end
    local mod = require("fsvc.nn." .. file)
    -- a file returns either the value itself or a table of several names
    local value = mod
    if type(mod) == "table" and rawget(mod, key) ~= nil and not module.is_module(mod)
        and rawget(mod, "__name") == nil then
      value = mod[key]
    end
    rawset(t, key, value)
    return value
  end,
})
