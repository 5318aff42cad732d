-- fsvc.optim against PyTorch 1.13 (spec/data/nn/torch_reference.lua) and the reference fixture
-- optim_adamw.safetensors; state-dict round trips that resume exactly; schedulers.
local R = dofile("spec/helpers/torch_reference.lua")
local nn, optim = fsvc.nn, fsvc.optim
local ref = R.data

local makers = {
  sgd = function(ps, o) return optim.SGD(ps, { lr = 0.1, fused = o }) end,
  sgd_momentum_wd = function(ps, o)
    return optim.SGD(ps, { lr = 0.05, momentum = 0.9, dampening = 0.1, weight_decay = 0.01, fused = o })
  end,
  sgd_nesterov = function(ps, o)
    return optim.SGD(ps, { lr = 0.05, momentum = 0.8, nesterov = true, maximize = true, fused = o })
  end,
  adam = function(ps, o) return optim.Adam(ps, { lr = 0.01, weight_decay = 0.1, fused = o }) end,
  adam_amsgrad = function(ps, o)
    return optim.Adam(ps, { lr = 0.02, betas = { 0.8, 0.9 }, amsgrad = true, fused = o })
  end,
  adamw = function(ps, o)
    return optim.AdamW(ps, { lr = 0.01, betas = { 0.8, 0.99 }, weight_decay = 0.01, fused = o })
  end,
  adamw_amsgrad = function(ps, o) return optim.AdamW(ps, { lr = 0.03, amsgrad = true, maximize = true, fused = o }) end,
  adamw_groups = function(ps, o)
    return optim.AdamW({ { params = { ps[1] } }, { params = { ps[2] }, lr = 0.1, weight_decay = 0 } },
      { lr = 0.01, fused = o })
  end,
}

local function run_case(name, fused, steps_before_reload)
  local c = ref["optim_" .. name]
  local ps = { nn.Parameter(R.tensor(c.init[1])), nn.Parameter(R.tensor(c.init[2])) }
  local opt = makers[name](ps, fused)
  for s, grads in ipairs(c.grads) do
    if steps_before_reload and s == steps_before_reload + 1 then
      -- resume: a new optimizer over copies of the parameters, loaded from the state dict
      local sd = opt:state_dict()
      local copies = { nn.Parameter(ps[1]:detach():clone()), nn.Parameter(ps[2]:detach():clone()) }
      opt = makers[name](copies, fused)
      opt:load_state_dict(sd)
      ps = copies
    end
    ps[1].grad, ps[2].grad = R.tensor(grads[1]), R.tensor(grads[2])
    opt:step()
    R.close(ps[1], R.tensor(c.params[s][1]), 2e-6, name .. " step " .. s .. " param 1")
    R.close(ps[2], R.tensor(c.params[s][2]), 2e-6, name .. " step " .. s .. " param 2")
  end
  -- the final state matches PyTorch's state dict entries
  local sd = opt:state_dict()
  for idx, entry in pairs(c.state) do
    local mine = sd.state[tonumber(idx)]
    for k, v in pairs(entry) do
      if type(v) == "number" then assert.are.equal(v, mine[k], name .. " state " .. k)
      else R.close(mine[k], R.tensor(v), 2e-6, name .. " state " .. idx .. "." .. k) end
    end
  end
  return opt
end

describe("optimizers against PyTorch", function()
  for name in pairs(makers) do
    it(name .. " (in-place tensor ops)", function() run_case(name, false) end)
    it(name .. " (fused step when available)", function() run_case(name, true) end)
    it(name .. " resumes exactly from a state dict", function() run_case(name, true, 2) end)
  end

  it("AdamW + clip_grad_norm_ reproduce the reference fixture", function()
    local t, meta = fsvc.load_safetensors("/work/shared/reference/fixtures/optim_adamw.safetensors")
    assert.are.equal("AdamW", meta.optimizer)
    local p = nn.Parameter(t["input.param"]:clone())
    local opt = optim.AdamW({ p }, { lr = tonumber(meta.lr), betas = { 0.8, 0.99 },
      weight_decay = tonumber(meta.weight_decay), eps = tonumber(meta.eps) })
    for s = 0, 2 do
      p.grad = t["input.grad" .. s]
      local total = nn.utils.clip_grad_norm_({ p }, 1.0)
      assert.is_true(math.abs(total - t["output.total_norm" .. s]:item()) < 1e-5 * total)
      R.close(p.grad, t["output.clipped_grad" .. s], 1e-6, "clipped grad " .. s)
      opt:step()
      R.close(p, t["output.param" .. s], 1e-6, "param " .. s)
    end
  end)
end)

describe("optimizer mechanics", function()
  it("param groups, zero_grad, unknown options and bad state dicts", function()
    local a, b = nn.Parameter(fsvc.ones({ 2 })), nn.Parameter(fsvc.ones({ 3 }))
    local opt = optim.SGD({ { params = { a } }, { params = { b }, lr = 0.5 } }, { lr = 0.1 })
    assert.are.equal(0.1, opt.param_groups[1].lr)
    assert.are.equal(0.5, opt.param_groups[2].lr)
    a.grad, b.grad = fsvc.ones({ 2 }), fsvc.ones({ 3 })
    opt:step()
    assert.is_true(math.abs(a:get(0) - 0.9) < 1e-7 and math.abs(b:get(0) - 0.5) < 1e-7)
    opt:zero_grad()
    assert.is_nil(a.grad)
    opt:step() -- parameters without gradients are skipped
    assert.has_error(function() optim.Adam({ a }, { lrr = 1 }) end, "Adam: unknown option 'lrr'")
    assert.has_error(function() optim.Adam({}, {}) end)
    assert.has_error(function() optim.SGD({ a, a }, {}) end)
    assert.has_error(function() optim.Adam({ a }, { betas = { 1.5, 0.9 } }) end)
    local adam = optim.Adam({ a, b })
    a.grad, b.grad = fsvc.ones({ 2 }), fsvc.ones({ 3 })
    adam:step()
    local sd = adam:state_dict()
    local other = optim.Adam({ b, a }) -- sizes swapped
    assert.has_error(function() other:load_state_dict(sd) end)
    assert.has_error(function() optim.Adam({ a }):load_state_dict(sd) end)
    assert.matches("Adam %(", tostring(adam))
  end)

  it("steps parameters with an empty dim (a tensor of no elements is contiguous)", function()
    -- [5, 0] has strides {1, 1}: it was taken for non-contiguous and the fused steps refused it
    for _, make in ipairs({ fsvc.optim.AdamW, fsvc.optim.SGD }) do
      local empty, full = fsvc.zeros({ 5, 0 }, { requires_grad = true }), fsvc.ones({ 3 }, { requires_grad = true })
      assert.is_true(empty:is_contiguous())
      local opt = make({ empty, full }, { lr = 0.1 })
      empty.grad, full.grad = fsvc.zeros({ 5, 0 }), fsvc.ones({ 3 })
      opt:step()
      assert.are.same({ 5, 0 }, empty:size())
      assert.is_true(full:detach():max():item() < 1)
    end
  end)

  it("a module can be passed as the parameter list; a closure gives the loss", function()
    local lin = nn.Linear(2, 1)
    local opt = optim.SGD(lin, { lr = 0.1 })
    local x, y = fsvc.randn({ 8, 2 }), fsvc.randn({ 8, 1 })
    local loss = opt:step(function()
      opt:zero_grad()
      local l = nn.F.mse_loss(lin(x), y)
      l:backward()
      return l
    end)
    assert.is_true(fsvc.is_tensor(loss))
  end)

  it("flat state dicts round-trip through a safetensors file and resume exactly", function()
    fsvc.manual_seed(5)
    local net = nn.Linear(3, 2)
    local opt = optim.AdamW(net:parameters(), { lr = 1e-2, betas = { 0.8, 0.99 }, amsgrad = true })
    local x = fsvc.randn({ 4, 3 })
    local function train_step(n, o)
      o:zero_grad()
      n(x):pow(2):sum():backward()
      o:step()
    end
    train_step(net, opt)
    train_step(net, opt)
    local path = os.tmpname()
    local flat = optim.flatten_state_dict(opt:state_dict())
    for k, v in pairs(net:state_dict()) do flat["model." .. k] = v end
    fsvc.save_safetensors(path, flat)
    -- continue the original
    train_step(net, opt)
    -- resume a copy from the file
    local loaded = fsvc.load_safetensors(path)
    os.remove(path)
    local net2 = nn.Linear(3, 2)
    local msd = {}
    for k, v in pairs(loaded) do
      local mk = k:match("^model%.(.+)$")
      if mk then msd[mk] = v; loaded[k] = nil end
    end
    net2:load_state_dict(msd)
    local opt2 = optim.AdamW(net2:parameters(), { lr = 5, amsgrad = false })
    opt2:load_state_dict(optim.unflatten_state_dict(loaded, opt2))
    assert.are.equal(1e-2, opt2.param_groups[1].lr)
    assert.is_true(opt2.param_groups[1].amsgrad)
    assert.are.same({ 0.8, 0.99 }, opt2.param_groups[1].betas)
    train_step(net2, opt2)
    assert.are.equal(0, fsvc.max_abs_diff(net.weight, net2.weight))
    assert.are.equal(0, fsvc.max_abs_diff(net.bias, net2.bias))
  end)
end)

describe("clip_grad_norm_", function()
  it("returns the total norm and scales only when above max_norm", function()
    local a, b = nn.Parameter(fsvc.zeros({ 2 })), nn.Parameter(fsvc.zeros({ 1 }))
    a.grad, b.grad = fsvc.tensor({ 3, 0 }):float(), fsvc.tensor({ 4 }):float()
    assert.is_true(math.abs(nn.utils.clip_grad_norm_({ a, b }, 10) - 5) < 1e-6)
    assert.are.equal(3, a.grad:get(0))
    assert.is_true(math.abs(nn.utils.clip_grad_norm_({ a, b }, 1) - 5) < 1e-6)
    assert.is_true(math.abs(a.grad:get(0) - 3 / (5 + 1e-6)) < 1e-6)
    a.grad = fsvc.tensor({ -7, 2 }):float()
    assert.is_true(math.abs(nn.utils.clip_grad_norm_({ a, b }, 100, math.huge) - 7) < 1e-6)
    assert.is_true(math.abs(nn.utils.clip_grad_norm_({ a, b }, 100, 1) - (7 + 2 + 0.8) ) < 1e-5)
    a.grad = fsvc.tensor({ 0 / 0, 1 }):float()
    assert.has_error(function() nn.utils.clip_grad_norm_({ a }, 1, 2, { error_if_nonfinite = true }) end)
  end)
end)

describe("lr schedulers against PyTorch", function()
  local S = optim.lr_scheduler
  local makers_s = {
    step = function(o) return S.StepLR(o, { step_size = 3, gamma = 0.5 }) end,
    exp = function(o) return S.ExponentialLR(o, { gamma = 0.9 }) end,
    cosine = function(o) return S.CosineAnnealingLR(o, { T_max = 5, eta_min = 0.01 }) end,
    lambda = function(o) return S.LambdaLR(o, { lr_lambda = function(e) return 1 / (e + 1) end }) end,
    linear = function(o) return S.LinearLR(o, { start_factor = 0.25, total_iters = 4 }) end,
  }
  for name, make in pairs(makers_s) do
    it(name, function()
      local p = nn.Parameter(fsvc.zeros({ 1 }))
      local opt = optim.SGD({ p }, { lr = 0.1 })
      local s = make(opt)
      for i, expected in ipairs(ref["sched_" .. name].lrs) do
        local lr = opt.param_groups[1].lr
        assert.is_true(math.abs(lr - expected) < 1e-12, string.format("%s step %d: %.17g vs %.17g", name, i, lr, expected))
        assert.are.equal(lr, s:get_last_lr()[1])
        opt:step()
        s:step()
        if i == 5 then -- a state-dict round trip mid-way changes nothing
          local sd = s:state_dict()
          local s2 = make(opt)
          opt.param_groups[1].lr = s:get_last_lr()[1]
          s2:load_state_dict(sd)
          s = s2
        end
      end
    end)
  end
end)
