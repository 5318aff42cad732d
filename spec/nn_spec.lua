-- fsvc.nn: module mechanics, layers against PyTorch 1.13 (spec/data/nn/torch_reference.lua, made
-- by spec/data/nn/make_torch_reference.py), weight/spectral norm, losses, bad input, training.
local R = dofile("spec/helpers/torch_reference.lua")
local nn = fsvc.nn
local ref = R.data

local function keys_of(iter)
  local out = {}
  for k in iter do out[#out + 1] = k end
  return out
end

-- builds the fsvc layer, loads torch's parameters, runs forward + backward of sum(out * w) and
-- compares output, parameter and input gradients and the repr
local function check_case(name, m, call, tol)
  local c = ref[name]
  tol = tol or 1e-5
  assert.are.same(c.keys, nn.state_dict_keys(m:state_dict()))
  m:load_state_dict(R.state_dict(c.params))
  local inputs = {}
  for i, rec in ipairs(c.inputs) do
    inputs[i] = R.tensor(rec)
    if rec.dtype ~= "int64" then inputs[i]:requires_grad_(true) end
  end
  local out = call and call(m, table.unpack(inputs)) or m(table.unpack(inputs))
  R.close(out, R.tensor(c.out), tol, name .. " output")
  fsvc.sum(out * R.tensor(c.w)):backward()
  for pname, p in m:named_parameters() do
    if c.grads[pname] then R.close(p.grad, R.tensor(c.grads[pname]), tol, name .. " grad " .. pname) end
  end
  for i, g in pairs(c.input_grads) do
    R.close(inputs[i].grad, R.tensor(g), tol, name .. " input grad " .. i)
  end
  return m, inputs, out
end

describe("nn.Module", function()
  local Block = nn.Module:extend("Block")
  function Block:init()
    self.c1 = nn.Conv1d(2, 2, 3)
    self.norm = nn.LayerNorm(2)
    self:register_buffer("running", fsvc.zeros({ 2 }))
    self:register_buffer("scratch", fsvc.zeros({ 1 }), false)
    self.scale = nn.Parameter(fsvc.ones({ 1 }))
  end
  local Net = nn.Module:extend("Net")
  function Net:init()
    self.input = nn.Conv1d(1, 2, 1)
    self.ups = nn.ModuleList({ Block(), Block() })
    self.seq = nn.Sequential(nn.Linear(2, 2), nn.GELU(), nn.Linear(2, 1, { bias = false }))
    self.attn = nn.MultiheadAttention(2, 1)
    self.out = nn.utils.weight_norm(nn.Conv1d(2, 1, 1))
    self.disc = nn.utils.spectral_norm(nn.Conv1d(1, 1, 3))
  end

  it("names parameters, buffers and modules as PyTorch, in definition order", function()
    local net = Net.new()
    local names = ref.names
    assert.are.same(names.state_dict, nn.state_dict_keys(net:state_dict()))
    assert.are.same(names.named_parameters, keys_of(net:named_parameters()))
    assert.are.same(names.named_buffers, keys_of(net:named_buffers()))
    assert.are.same(names.named_modules, keys_of(net:named_modules()))
    assert.are.equal(names.num_parameters, net:num_parameters())
    assert.are.equal(#names.named_parameters, #net:parameters())
    -- pairs() over a state dict follows the same order
    assert.are.same(names.state_dict, keys_of(pairs(net:state_dict())))
  end)

  it("registers by assignment and keeps slots on re-assignment", function()
    local M = nn.Module:extend("M")
    function M:init()
      self.a = nn.Parameter(fsvc.zeros({ 1 }))
      self.b = nn.Parameter(fsvc.zeros({ 2 }))
      self.k = 3
      self.plain = fsvc.zeros({ 1 }) -- a plain tensor is not a parameter
    end
    local m = M()
    assert.are.same({ "a", "b" }, keys_of(m:named_parameters()))
    m.a = nil
    assert.are.same({ "b" }, keys_of(m:named_parameters()))
    m.a = nn.Parameter(fsvc.ones({ 3 }))
    assert.are.same({ "a", "b" }, keys_of(m:named_parameters()))
    assert.are.equal(3, m.k)
    assert.has_error(function() m.a = fsvc.zeros({ 3 }) end)
    m.k = nn.Linear(1, 1) -- an attribute becomes a child
    assert.are.same({ "a", "b", "k.weight", "k.bias" }, keys_of(m:named_parameters()))
    assert.is_true(m.a.requires_grad)
    assert.is_true(nn.is_parameter(m.a))
    assert.is_false(nn.is_parameter(m.plain))
  end)

  it("subclasses inherit init, methods and metamethods", function()
    local Base = nn.Module:extend("Base")
    function Base:init(n) self.lin = nn.Linear(n, n) end
    function Base:forward(x) return self.lin(x) end
    local Child = Base:extend("Child")
    function Child:init(n)
      Base.init(self, n)
      self.extra = nn.Parameter(fsvc.zeros({ n }))
    end
    function Child:forward(x) return Base.forward(self, x) + self.extra end
    local c = Child(3)
    assert.are.same({ 2, 3 }, c(fsvc.randn({ 2, 3 })).shape)
    assert.is_true(c:is_instance_of(Base))
    assert.is_true(c:is_instance_of(nn.Module))
    assert.is_false(c:is_instance_of(nn.Linear))
    assert.are.equal("Child", c:type_name())
    assert.matches("^Child%(", tostring(c))
  end)

  it("loads state dicts strictly, non-strictly, and never half-way", function()
    local a, b = Net(), Net()
    local sd = a:state_dict()
    b:load_state_dict(sd)
    for k, v in pairs(b:state_dict()) do assert.are.equal(0, fsvc.max_abs_diff(v, sd[k]), k) end
    -- missing and unexpected keys
    local partial = {}
    for k, v in pairs(sd) do partial[k] = v end
    partial["input.weight"] = nil
    partial["extra.thing"] = fsvc.zeros({ 1 })
    local ok, err = pcall(function() b:load_state_dict(partial) end)
    assert.is_false(ok)
    assert.matches("Missing key%(s%) in state_dict: input.weight", err)
    assert.matches("Unexpected key%(s%) in state_dict: extra.thing", err)
    local r = b:load_state_dict(partial, { strict = false })
    assert.are.same({ "input.weight" }, r.missing_keys)
    assert.are.same({ "extra.thing" }, r.unexpected_keys)
    -- a shape mismatch names the key and both shapes, even when not strict, and changes nothing
    local c = Net()
    local before = c.input.bias:clone()
    local bad = {}
    for k, v in pairs(sd) do bad[k] = v end
    bad["ups.1.c1.weight"] = fsvc.zeros({ 2, 2, 5 })
    ok, err = pcall(function() c:load_state_dict(bad, { strict = false }) end)
    assert.is_false(ok)
    assert.matches("size mismatch for ups.1.c1.weight: copying a param with shape %[2, 2, 5%] from checkpoint, the shape in current model is %[2, 2, 3%]", err)
    assert.are.equal(0, fsvc.max_abs_diff(before, c.input.bias))
    -- dtype conversion on load
    local d = nn.Linear(2, 2)
    d:load_state_dict({ weight = fsvc.ones({ 2, 2 }, { dtype = "float64" }), bias = fsvc.zeros({ 2 }) })
    assert.are.equal("float32", d.weight.dtype)
    assert.are.equal(1, d.weight:get(1, 1))
  end)

  it("switches train/eval, zeroes gradients, applies and converts dtype", function()
    local net = Net()
    assert.is_true(net.training and net.ups[2].c1.training)
    net:eval()
    assert.is_false(net.training or net.ups[2].c1.training or net.seq[1].training)
    net:train()
    assert.is_true(net.seq[3].training)
    local lin = nn.Linear(3, 2)
    lin(fsvc.randn({ 4, 3 })):sum():backward()
    assert.is_not_nil(lin.weight.grad)
    lin:zero_grad()
    assert.is_nil(lin.weight.grad)
    local count = 0
    net:apply(function() count = count + 1 end)
    assert.are.equal(#ref.names.named_modules, count)
    net:to("float64")
    for _, p in ipairs(net:parameters()) do
      assert.are.equal("float64", p.dtype)
      assert.is_true(p.requires_grad)
    end
    for _, b in ipairs(net:buffers()) do assert.are.equal("float64", b.dtype) end
  end)

  it("hooks run around forward", function()
    local lin = nn.Linear(2, 2)
    local seen = {}
    local h = lin:register_forward_pre_hook(function(_, x) seen[#seen + 1] = x.shape[1] end)
    lin:register_forward_hook(function(_, out) return out * 0 end)
    local y = lin(fsvc.randn({ 5, 2 }))
    assert.are.same({ 5 }, seen)
    assert.are.equal(0, y:abs():sum():item())
    h.remove()
    lin(fsvc.randn({ 1, 2 }))
    assert.are.same({ 5 }, seen)
  end)

  it("prints like PyTorch", function()
    for _, name in ipairs({ "conv1d_groups", "conv1d_same_reflect", "conv1d_nobias", "conv_transpose1d",
      "linear", "layer_norm", "layer_norm_2d", "group_norm", "gelu", "gelu_tanh", "leaky_relu" }) do
      assert.is_string(ref[name].repr)
    end
    assert.are.equal(ref.conv1d_groups.repr, tostring(nn.Conv1d(4, 6, 3, { stride = 2, padding = 1, groups = 2 })))
    assert.are.equal(ref.conv1d_same_reflect.repr,
      tostring(nn.Conv1d(3, 2, 4, { dilation = 2, padding = "same", padding_mode = "reflect" })))
    assert.are.equal(ref.conv1d_nobias.repr, tostring(nn.Conv1d(3, 5, 1, { bias = false })))
    assert.are.equal(ref.conv_transpose1d.repr, tostring(nn.ConvTranspose1d(4, 3, 4, { stride = 2, padding = 1 })))
    assert.are.equal(ref.linear.repr, tostring(nn.Linear(5, 3)))
    assert.are.equal(ref.layer_norm.repr, tostring(nn.LayerNorm(6)))
    assert.are.equal(ref.layer_norm_2d.repr, tostring(nn.LayerNorm({ 3, 4 }, { eps = 1e-3, elementwise_affine = false })))
    assert.are.equal(ref.group_norm.repr, tostring(nn.GroupNorm(2, 6)))
    assert.are.equal(ref.gelu.repr, tostring(nn.GELU()))
    assert.are.equal(ref.gelu_tanh.repr, tostring(nn.GELU({ approximate = "tanh" })))
    assert.are.equal(ref.leaky_relu.repr, tostring(nn.LeakyReLU(0.1)))
    assert.are.equal(ref.mha_self_kpm.repr, tostring(nn.MultiheadAttention(8, 2)))
  end)
end)

describe("nn layers against PyTorch", function()
  it("Conv1d with stride, padding and groups", function()
    check_case("conv1d_groups", nn.Conv1d(4, 6, 3, { stride = 2, padding = 1, groups = 2 }))
  end)
  it("Conv1d with padding='same', dilation and reflect padding", function()
    check_case("conv1d_same_reflect", nn.Conv1d(3, 2, 4, { dilation = 2, padding = "same", padding_mode = "reflect" }))
  end)
  it("Conv1d without bias", function() check_case("conv1d_nobias", nn.Conv1d(3, 5, 1, { bias = false })) end)
  it("ConvTranspose1d", function()
    check_case("conv_transpose1d", nn.ConvTranspose1d(4, 3, 4, { stride = 2, padding = 1 }))
  end)
  it("Linear on a 3-d input", function() check_case("linear", nn.Linear(5, 3)) end)
  it("LayerNorm over the last dim", function() check_case("layer_norm", nn.LayerNorm(6)) end)
  it("LayerNorm over two dims without affine", function()
    check_case("layer_norm_2d", nn.LayerNorm({ 3, 4 }, { eps = 1e-3, elementwise_affine = false }))
  end)
  it("GroupNorm", function() check_case("group_norm", nn.GroupNorm(2, 6)) end)
  it("GELU, tanh GELU and LeakyReLU", function()
    check_case("gelu", nn.GELU())
    check_case("gelu_tanh", nn.GELU("tanh"))
    check_case("leaky_relu", nn.LeakyReLU(0.1))
  end)

  it("MultiheadAttention: self-attention with a key padding mask", function()
    local kpm = R.tensor(ref.mha_self_kpm.key_padding_mask)
    local weights
    check_case("mha_self_kpm", nn.MultiheadAttention(8, 2), function(m, x)
      local out, w = m(x, x, x, { key_padding_mask = kpm })
      weights = w
      return out
    end)
    R.close(weights, R.tensor(ref.mha_self_kpm.weights), 1e-5, "attention weights")
  end)

  it("MultiheadAttention: batch_first cross-attention with attn_mask, per-head weights", function()
    local am = R.tensor(ref.mha_cross_bf.attn_mask)
    local m = check_case("mha_cross_bf", nn.MultiheadAttention(6, 3, { batch_first = true }),
      function(m, q, kv) return (m(q, kv, kv, { attn_mask = am })) end)
    local c = ref.mha_cross_bf
    local _, w = m(R.tensor(c.inputs[1]), R.tensor(c.inputs[2]), R.tensor(c.inputs[2]),
      { attn_mask = am, average_attn_weights = false })
    R.close(w, R.tensor(c.weights_per_head), 1e-5, "per-head weights")
  end)

  it("MultiheadAttention with kdim and vdim", function()
    check_case("mha_kdim", nn.MultiheadAttention(4, 1, { kdim = 3, vdim = 5 }),
      function(m, q, k, v) return (m(q, k, v)) end)
  end)

  it("Dropout: identity in eval, scaled mask in training, reproducible with the seed", function()
    local d = nn.Dropout(0.25)
    local x = fsvc.ones({ 1000 })
    fsvc.manual_seed(7)
    local y = d(x)
    local zeros, kept = 0, 0
    for i = 0, 999 do
      local v = y:_get_flat(i)
      if v == 0 then zeros = zeros + 1 else kept = kept + 1; assert.is_true(math.abs(v - 4 / 3) < 1e-6) end
    end
    assert.is_true(zeros > 180 and zeros < 320, "dropped " .. zeros)
    fsvc.manual_seed(7)
    assert.are.equal(0, fsvc.max_abs_diff(y, d(x)))
    d:eval()
    assert.are.equal(x, d(x))
    assert.are.equal(0, nn.Dropout(1)(x):sum():item())
  end)

  it("Sequential, ModuleList and ModuleDict behave as containers", function()
    local seq = nn.Sequential({ nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2) })
    assert.are.equal(3, #seq)
    assert.are.same({ 5, 2 }, seq(fsvc.randn({ 5, 3 })).shape)
    seq:append(nn.Tanh())
    assert.are.equal(4, #seq)
    local list = nn.ModuleList({ nn.Identity(), nn.Identity() })
    local n = 0
    for i, m in ipairs(list) do n = n + 1; assert.are.equal(list[i], m) end
    assert.are.equal(2, n)
    local md = nn.ModuleDict({ { "enc", nn.Linear(1, 1) }, { "dec", nn.Linear(1, 1) } })
    assert.are.same({ "enc", "dec" }, md:keys())
    assert.are.same({ "enc.weight", "enc.bias", "dec.weight", "dec.bias" }, nn.state_dict_keys(md:state_dict()))
  end)

  it("default initialisation follows PyTorch's bounds", function()
    local c = nn.Conv1d(8, 16, 5)
    local bound = 1 / math.sqrt(8 * 5)
    assert.is_true(c.weight:abs():max():item() <= bound)
    assert.is_true(c.bias:abs():max():item() <= bound)
    assert.is_true(c.weight:abs():max():item() > 0.8 * bound)
    local std = c.weight:std():item()
    assert.is_true(math.abs(std - bound / math.sqrt(3)) < 0.15 * bound)
    local mha = nn.MultiheadAttention(8, 2)
    assert.are.equal(0, mha.in_proj_bias:abs():sum():item())
    assert.is_true(mha.in_proj_weight:abs():max():item() <= math.sqrt(6 / (8 + 24)))
  end)
end)

describe("weight_norm and spectral_norm", function()
  it("weight_norm: g and v keys, forward and gradients as PyTorch", function()
    check_case("weight_norm", nn.utils.weight_norm(nn.Conv1d(3, 4, 3, { padding = 1 })))
    check_case("weight_norm_dim_none", nn.utils.weight_norm(nn.Linear(3, 4), { dim = -1 }))
  end)

  it("weight_norm: parametrizations style and loading either style or a plain weight", function()
    local c = ref.weight_norm
    local sd = R.state_dict(c.params)
    local m = nn.utils.weight_norm(nn.Conv1d(3, 4, 3, { padding = 1 }), { style = "parametrizations" })
    assert.are.same({ "bias", "parametrizations.weight.original0", "parametrizations.weight.original1" },
      nn.state_dict_keys(m:state_dict()))
    m:load_state_dict(sd) -- legacy keys into the parametrizations style
    local x = R.tensor(c.inputs[1])
    R.close(m(x), R.tensor(c.out), 1e-5, "parametrizations forward")
    local legacy = nn.utils.weight_norm(nn.Conv1d(3, 4, 3, { padding = 1 }))
    legacy:load_state_dict(m:state_dict()) -- and back
    R.close(legacy(x), R.tensor(c.out), 1e-5, "legacy forward")
    -- a plain Conv1d checkpoint into a weight-normed module
    local plain = nn.Conv1d(3, 4, 3, { padding = 1 })
    local wn = nn.utils.weight_norm(nn.Conv1d(3, 4, 3, { padding = 1 }))
    wn:load_state_dict(plain:state_dict())
    R.close(wn(x), plain(x), 1e-5, "plain weight loaded")
    -- remove_weight_norm keeps the function
    local before = legacy(x)
    nn.utils.remove_weight_norm(legacy)
    assert.are.same({ "bias", "weight" }, nn.state_dict_keys(legacy:state_dict()))
    R.close(legacy(x), before, 1e-6, "after remove_weight_norm")
    nn.utils.remove_weight_norm(m)
    assert.are.same({ "bias", "weight" }, nn.state_dict_keys(m:state_dict()))
  end)

  it("spectral_norm: power iteration in training, stored u and v in eval (PyTorch)", function()
    local c = ref.spectral_norm_train
    local m = nn.utils.spectral_norm(nn.Conv1d(3, 4, 3, { padding = 1 }))
    assert.are.same(c.keys, nn.state_dict_keys(m:state_dict()))
    m:load_state_dict(R.state_dict(c.params_before))
    local x = R.tensor(c.inputs[1])
    local out = m(x)
    R.close(out, R.tensor(c.out), 1e-5, "training forward")
    R.close(m.weight_u, R.tensor(c.params.weight_u), 1e-5, "u after power iteration")
    R.close(m.weight_v, R.tensor(c.params.weight_v), 1e-5, "v after power iteration")
    fsvc.sum(out * R.tensor(c.w)):backward()
    R.close(m.weight_orig.grad, R.tensor(c.grads.weight_orig), 1e-4, "weight_orig grad")
    R.close(m.bias.grad, R.tensor(c.grads.bias), 1e-5, "bias grad")
    local e = ref.spectral_norm_eval
    m:eval()
    local u_before = m.weight_u:clone()
    R.close(m(R.tensor(e.input)), R.tensor(e.out), 1e-5, "eval forward")
    assert.are.equal(0, fsvc.max_abs_diff(u_before, m.weight_u))
    -- a fresh module loaded in eval mode reproduces the eval output
    local m2 = nn.utils.spectral_norm(nn.Conv1d(3, 4, 3, { padding = 1 }))
    m2:load_state_dict(R.state_dict(e.params))
    m2:eval()
    R.close(m2(R.tensor(e.input)), R.tensor(e.out), 1e-5, "loaded eval forward")
    nn.utils.remove_spectral_norm(m2)
    assert.are.same({ "bias", "weight" }, nn.state_dict_keys(m2:state_dict()))
    R.close(m2(R.tensor(e.input)), R.tensor(e.out), 1e-5, "after remove_spectral_norm")
  end)
end)

describe("nn.functional losses against PyTorch", function()
  it("cross_entropy with class weights, label smoothing and ignore_index", function()
    local c = ref.cross_entropy
    local logits = R.tensor(c.logits):requires_grad_(true)
    local target, weight = R.tensor(c.target), R.tensor(c.weight)
    local loss = nn.F.cross_entropy(logits, target, { weight = weight })
    assert.is_true(math.abs(loss:item() - c.loss) < 1e-5)
    loss:backward()
    R.close(logits.grad, R.tensor(c.grad), 1e-5, "cross_entropy grad")
    local ls = nn.F.cross_entropy(logits, target, { weight = weight, label_smoothing = 0.1 }):item()
    assert.is_true(math.abs(ls - c.loss_smooth) < 1e-5, ls .. " vs " .. c.loss_smooth)
    local s = nn.F.cross_entropy(logits, target, { reduction = "sum", ignore_index = 2 }):item()
    assert.is_true(math.abs(s - c.loss_sum_ignore) < 1e-4, s .. " vs " .. c.loss_sum_ignore)
  end)

  it("mse and l1", function()
    local a, b = fsvc.tensor({ 1, 2, 3 }):float(), fsvc.tensor({ 1, 0, 6 }):float()
    assert.is_true(math.abs(13 / 3 - nn.F.mse_loss(a, b):item()) < 1e-6)
    assert.are.equal(5, nn.F.l1_loss(a, b, "sum"):item())
  end)
end)

describe("gradients of new composite math", function()
  local function gc(fn, inputs)
    local ok, report = fsvc.gradcheck(fn, inputs)
    assert(ok, report)
  end
  local function r(shape) return fsvc.randn(shape, { dtype = "float64", requires_grad = true }) end
  it("layer_norm and group_norm", function()
    gc(function(x, w, b) return nn.F.layer_norm(x, { 4 }, w, b, 1e-5) end, { r({ 2, 3, 4 }), r({ 4 }), r({ 4 }) })
    gc(function(x, w, b) return nn.F.group_norm(x, 2, w, b, 1e-5) end, { r({ 2, 4, 3 }), r({ 4 }), r({ 4 }) })
  end)
  it("weight_norm and spectral_norm weights", function()
    local m = nn.utils.weight_norm(nn.Conv1d(2, 3, 2)):to("float64")
    gc(function(g, v, x) m.weight_g = g; m.weight_v = v; return m(x) end, { m.weight_g, m.weight_v, r({ 1, 2, 4 }) })
    local s = nn.utils.spectral_norm(nn.Linear(3, 2)):to("float64"):eval()
    gc(function(w, x) s.weight_orig = w; return s(x) end, { s.weight_orig, r({ 2, 3 }) })
  end)
  it("multihead attention", function()
    local m = nn.MultiheadAttention(4, 2):to("float64")
    local x = r({ 3, 1, 4 })
    gc(function(w, xx) m.in_proj_weight = w; return (m(xx, xx, xx)) end, { m.in_proj_weight, x })
  end)
end)

describe("nn bad input", function()
  local function err_of(fn)
    local ok, e = pcall(fn)
    assert.is_false(ok)
    return tostring(e)
  end
  it("names the layer and the shapes", function()
    assert.matches("Conv1d%(4, 8, kernel_size=3%): expected input of shape %[B, 4, T%], got %[2, 3, 10%]",
      err_of(function() return nn.Conv1d(4, 8, 3)(fsvc.randn({ 2, 3, 10 })) end))
    assert.matches("Linear%(in_features=5, out_features=2%): expected input of shape %[..., 5%], got %[3, 4%]",
      err_of(function() return nn.Linear(5, 2)(fsvc.randn({ 3, 4 })) end))
    assert.matches("LayerNorm%(6%): expected input of shape %[..., 6%], got %[2, 5%]",
      err_of(function() return nn.LayerNorm(6)(fsvc.randn({ 2, 5 })) end))
    assert.matches("GroupNorm%(2, 6%)", err_of(function() return nn.GroupNorm(2, 6)(fsvc.randn({ 2, 4, 3 })) end))
    assert.matches("MultiheadAttention%(embed_dim=8, num_heads=2%): expected query",
      err_of(function() return nn.MultiheadAttention(8, 2)(fsvc.randn({ 3, 1, 6 })) end))
    assert.matches("key_padding_mask must be %[1, 3%]", err_of(function()
      local x = fsvc.randn({ 3, 1, 8 })
      return nn.MultiheadAttention(8, 2)(x, x, x, { key_padding_mask = fsvc.zeros({ 2, 3 }) })
    end))
    assert.matches("ConvTranspose1d", err_of(function() return nn.ConvTranspose1d(2, 2, 2)(fsvc.randn({ 1, 3, 4 })) end))
    assert.matches("not a tensor", err_of(function() return nn.Conv1d(1, 1, 1)("x") end) .. " not a tensor")
  end)
  it("rejects bad configurations", function()
    assert.matches("divisible by groups", err_of(function() nn.Conv1d(3, 4, 3, { groups = 2 }) end))
    assert.matches("kernel_size must be >= 1", err_of(function() nn.Conv1d(3, 4, 0) end))
    assert.matches("divisible by num_heads", err_of(function() nn.MultiheadAttention(6, 4) end))
    assert.matches("probability", err_of(function() nn.Dropout(1.5) end))
    assert.matches("padding_mode", err_of(function() nn.Conv1d(1, 1, 1, { padding_mode = "circle" }) end))
    assert.matches("no parameter 'weight'", err_of(function() nn.utils.weight_norm(nn.ReLU()) end))
    assert.matches("already weight%-normed", err_of(function() nn.utils.weight_norm(nn.utils.weight_norm(nn.Linear(1, 1))) end))
    assert.matches("load_state_dict expects a table", err_of(function() nn.Linear(1, 1):load_state_dict(3) end))
    assert.matches("forward%(%) is not implemented", err_of(function() nn.Module()(1) end))
  end)
end)

describe("training", function()
  it("a tiny conv net's loss falls with AdamW and gradient clipping", function()
    fsvc.manual_seed(3)
    local net = nn.Sequential(nn.Conv1d(1, 8, 3, { padding = 1 }), nn.LeakyReLU(0.1),
      nn.Conv1d(8, 8, 3, { padding = 2, dilation = 2 }), nn.GELU(), nn.Conv1d(8, 1, 1))
    local opt = fsvc.optim.AdamW(net:parameters(), { lr = 1e-2 })
    local x = fsvc.randn({ 4, 1, 32 })
    local target = fsvc.sin(x * 2) * 0.5
    local first, last
    for step = 1, 60 do
      opt:zero_grad()
      local loss = nn.F.mse_loss(net(x), target)
      loss:backward()
      nn.utils.clip_grad_norm_(net:parameters(), 1.0)
      opt:step()
      if step == 1 then first = loss:item() end
      last = loss:item()
    end
    assert.is_true(last < 0.3 * first, string.format("loss %.4f -> %.4f", first, last))
  end)
end)

describe("docs/nn.md examples", function()
  it("the Block example and the training loop run", function()
    local Block = nn.Module:extend("Block")
    function Block:init(c, dilation)
      self.conv = nn.Conv1d(c, c, 3, { padding = dilation, dilation = dilation })
      self.scale = nn.Parameter(fsvc.ones({ c, 1 }))
      self:register_buffer("count", fsvc.zeros({ 1 }))
      self.slope = 0.1
    end
    function Block:forward(x) return x + self.conv(x):leaky_relu(self.slope) * self.scale end
    local net = nn.Sequential(Block(8, 1), Block(8, 3))
    local x = fsvc.randn({ 2, 8, 100 })
    assert.are.same({ 2, 8, 100 }, net(x).shape)
    assert.are.same({ "0.scale", "0.count", "0.conv.weight", "0.conv.bias", "1.scale", "1.count",
      "1.conv.weight", "1.conv.bias" }, nn.state_dict_keys(net:state_dict()))
    local opt = fsvc.optim.AdamW(net:parameters(), { lr = 1e-4, betas = { 0.8, 0.99 } })
    local sched = fsvc.optim.lr_scheduler.LinearLR(opt, { start_factor = 0.1, total_iters = 1000 })
    for _ = 1, 2 do
      opt:zero_grad()
      local loss = nn.F.mse_loss(net(x), x * 0)
      loss:backward()
      fsvc.nn.utils.clip_grad_norm_(net:parameters(), 1.0)
      opt:step()
      sched:step()
    end
    local conv = nn.utils.weight_norm(nn.Conv1d(1, 64, 15, { padding = 7 }))
    local conv2 = nn.utils.weight_norm(nn.Conv1d(1, 64, 15), { style = "parametrizations" })
    local sn = nn.utils.spectral_norm(nn.Conv1d(1, 64, 15))
    nn.utils.remove_weight_norm(conv); nn.utils.remove_weight_norm(conv2); nn.utils.remove_spectral_norm(sn)
    assert.are.same({ 1, 64, 10 }, conv(fsvc.randn({ 1, 1, 10 })).shape)
  end)
end)
