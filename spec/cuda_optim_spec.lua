-- fsvc.optim's Adam/AdamW on CUDA: the device-cached chunk table, capturable = true (device step
-- counters and rate), and a whole training step (forward, backward, optimiser) captured as one
-- CUDA graph and replayed against eager CPU steps. Runs on a GPU or the CPU emulation
-- (FSVC_CUDA=EMULATE); without a device only the argument checks run.
local nn = fsvc.nn
local optim = fsvc.optim

local function max_rel(a, b)
  a, b = a:cpu():to("float64"), b:cpu():to("float64")
  return (a - b):abs():max():item() / math.max(b:abs():max():item(), 1e-30)
end

describe("capturable Adam/AdamW: arguments", function()
  it("refuses CPU parameters, fused = false and lr_tensor without capturable", function()
    local p = fsvc.randn({ 3 }):requires_grad_(true)
    local ok, err = pcall(optim.AdamW, { p }, { capturable = true })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("AdamW: capturable = true needs CUDA parameters (parameter 1 is on cpu)", 1, true), err)
    local opt = optim.Adam({ p })
    ok, err = pcall(opt.lr_tensor, opt, 1)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("Adam:lr_tensor: group 1 is not capturable", 1, true), err)
    ok, err = pcall(opt.lr_tensor, opt, 2)
    assert.truthy(tostring(err):find("no parameter group 2", 1, true), err)
    assert.are.equal(false, opt.param_groups[1].capturable) -- PyTorch's key, in state dicts too
  end)
end)

if not fsvc.cuda.is_available() then
  describe("cuda optimisers", function()
    print("SKIP: no CUDA device (" .. fsvc.cuda.unavailable_reason() .. ")")
    pending("SKIP: no CUDA device")
  end)
  return
end

-- parameters of a few shapes (one spans two 65536-element chunks) and gradients for `steps` steps
local function problem(dtype, steps)
  fsvc.manual_seed(7)
  local shapes = { { 70000 }, { 8, 3, 5 }, { 1 }, { 33 } }
  local init, grads = {}, {}
  for i, s in ipairs(shapes) do init[i] = fsvc.randn(s, { dtype = dtype }) end
  for t = 1, steps do
    grads[t] = {}
    for i, s in ipairs(shapes) do grads[t][i] = fsvc.randn(s, { dtype = dtype }) end
  end
  return init, grads
end

-- runs `steps` steps of cls(opts) on `device`; returns the parameters and the optimiser
local function run(cls, opts, device, init, grads, steps, each)
  local ps = {}
  for i, x in ipairs(init) do ps[i] = x:clone():to(device):requires_grad_(true) end
  local opt = cls(ps, opts)
  for t = 1, steps do
    for i, p in ipairs(ps) do p.grad = grads[t][i]:to(device) end
    opt:step()
    if each then each(opt, t) end
  end
  return ps, opt
end

describe("Adam/AdamW on CUDA", function()
  local cases = {
    { "AdamW", optim.AdamW, { lr = 1e-2, weight_decay = 0.1 } },
    { "Adam", optim.Adam, { lr = 3e-3, weight_decay = 0.05, amsgrad = true } },
    { "Adam maximize", optim.Adam, { lr = 1e-3, maximize = true, betas = { 0.8, 0.99 } } },
  }
  for _, dtype in ipairs({ "float32", "float64" }) do
    for _, c in ipairs(cases) do
      local name, cls, opts = c[1], c[2], c[3]
      it(name .. " " .. dtype .. ": capturable equals the default step exactly, and the CPU", function()
        local steps = 4
        local init, grads = problem(dtype, steps)
        local cpu = run(cls, opts, "cpu", init, grads, steps)
        local eager = run(cls, opts, "cuda", init, grads, steps)
        local copts = { capturable = true }
        for k, v in pairs(opts) do copts[k] = v end
        local cap, opt = run(cls, copts, "cuda", init, grads, steps)
        for i = 1, #init do
          assert.are.equal(0, max_rel(cap[i], eager[i]))
          assert(max_rel(eager[i], cpu[i]) < (dtype == "float32" and 1e-6 or 1e-14),
            string.format("parameter %d: %g from the CPU", i, max_rel(eager[i], cpu[i])))
          local st = opt.state[cap[i]]
          assert.is_true(fsvc.is_tensor(st.step) and st.step.is_cuda)
          assert.are.equal(steps, st.step:item())
        end
      end)
    end
  end

  it("uploads the chunk table once per parameter list", function()
    local init, grads = problem("float32", 5)
    local ps, opt = run(optim.AdamW, {}, "cuda", init, grads, 5)
    local plan = rawget(opt, "_plans")[opt.param_groups[1]]
    assert.are.equal(1, plan:uploads()) -- new gradients every step, one table
    -- new state tensors (load_state_dict): the table is rebuilt once
    opt:load_state_dict(opt:state_dict())
    for t = 1, 2 do
      for i, p in ipairs(ps) do p.grad = grads[t][i]:cuda() end
      opt:step()
      assert.are.equal(2, plan:uploads())
    end
    -- capturable: a parameter without a gradient changes the list
    local cps, copt = run(optim.AdamW, { capturable = true }, "cuda", init, grads, 3)
    local cplan = rawget(copt, "_plans")[copt.param_groups[1]]
    assert.are.equal(1, cplan:uploads())
    cps[2].grad = nil
    copt:step()
    assert.are.equal(2, cplan:uploads())
    assert.are.equal(4, copt.state[cps[1]].step:item())
    assert.are.equal(3, copt.state[cps[2]].step:item())
    -- without capturable, parameters at different step counts are updated one by one
    ps[2].grad = nil
    opt:step()
    for i, p in ipairs(ps) do p.grad = grads[3][i]:cuda() end
    opt:step()
    assert.are.equal(9, opt.state[ps[1]].step)
    assert.are.equal(8, opt.state[ps[2]].step)
  end)

  it("keeps the step count on the device and round-trips the state dict", function()
    local init, grads = problem("float32", 6)
    local ref = run(optim.AdamW, { lr = 1e-2 }, "cuda", init, grads, 6)
    local ps, opt = run(optim.AdamW, { lr = 1e-2, capturable = true }, "cuda", init, grads, 3)
    local sd = opt:state_dict()
    assert.are.equal(3, sd.state[0].step:item())
    -- resume a non-capturable optimiser from it, then a capturable one from that
    local flat = optim.flatten_state_dict(sd)
    local plain = optim.AdamW(ps, { lr = 1e-2 })
    plain:load_state_dict(optim.unflatten_state_dict(flat, plain))
    plain.param_groups[1].capturable = false
    for i, p in ipairs(ps) do p.grad = grads[4][i]:cuda() end
    plain:step()
    assert.are.equal(4, plain.state[ps[1]].step)
    local again = optim.AdamW(ps, { lr = 1e-2, capturable = true })
    again:load_state_dict(plain:state_dict())
    again.param_groups[1].capturable = true
    for t = 5, 6 do
      for i, p in ipairs(ps) do p.grad = grads[t][i]:cuda() end
      again:step()
    end
    assert.are.equal(6, again.state[ps[1]].step:item())
    for i = 1, #ps do assert.are.equal(0, max_rel(ps[i], ref[i])) end
  end)

  it("follows learning-rate changes and schedulers through the device rate", function()
    local init, grads = problem("float32", 4)
    local function sched_each(opt) opt._sched:step() end
    local function make(capt)
      local ps = {}
      for i, x in ipairs(init) do ps[i] = x:cuda():requires_grad_(true) end
      local opt = optim.AdamW(ps, { lr = 1e-2, capturable = capt })
      opt._sched = optim.lr_scheduler.StepLR(opt, { step_size = 1, gamma = 0.5 })
      return ps, opt
    end
    local a, oa = make(false)
    local b, ob = make(true)
    for t = 1, 4 do
      for i = 1, #a do a[i].grad, b[i].grad = grads[t][i]:cuda(), grads[t][i]:cuda() end
      oa:step(); ob:step()
      sched_each(oa); sched_each(ob)
      -- the scheduler wrote the device rate itself
      assert.are.equal(oa.param_groups[1].lr, rawget(ob, "_lr_dev")[ob.param_groups[1]].t:item())
    end
    for i = 1, #a do assert.are.equal(0, max_rel(b[i], a[i])) end
    -- a plain assignment reaches the device at the next step
    ob.param_groups[1].lr = 0.25
    for i = 1, #b do b[i].grad = grads[1][i]:cuda() end
    ob:step()
    assert.are.equal(0.25, ob:lr_tensor(1):item())
  end)
end)

describe("optimiser steps in CUDA graphs", function()
  it("replays a captured capturable step like eager steps", function()
    local steps = 4
    local init, grads = problem("float32", steps + 1)
    local ref = run(optim.AdamW, { lr = 1e-2 }, "cuda", init, grads, steps + 1)
    local ps = {}
    for i, x in ipairs(init) do ps[i] = x:cuda():requires_grad_(true) end
    local static = {}
    for i, p in ipairs(ps) do
      p.grad = grads[1][i]:cuda() -- assignment copies: the static gradient is p.grad itself
      static[i] = p.grad
    end
    local opt = optim.AdamW(ps, { lr = 1e-2, capturable = true })
    -- the warm-up is a real step (grads[1]); the captured call only records
    local g = fsvc.cuda.graph(function() opt:step() end)
    assert.are.equal(1, opt.state[ps[1]].step:item())
    for t = 2, steps + 1 do
      for i = 1, #ps do static[i]:copy_(grads[t][i]:cuda()) end
      g:replay()
    end
    assert.are.equal(steps + 1, opt.state[ps[1]].step:item())
    for i = 1, #ps do assert.are.equal(0, max_rel(ps[i], ref[i])) end
  end)

  it("refuses to capture a step with capturable = false", function()
    local p = fsvc.randn({ 10 }):cuda():requires_grad_(true)
    p.grad = fsvc.randn({ 10 }):cuda()
    local opt = optim.AdamW({ p })
    local ok, err = pcall(fsvc.cuda.graph, function() opt:step() end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("capturable = true", 1, true), err)
    opt:step() -- eager steps still work after the failed capture
    assert.are.equal(3, opt.state[p].step)
  end)

  it("captures forward, backward and AdamW of a small network and matches eager CPU steps", function()
    fsvc.manual_seed(3)
    local function net()
      return nn.Sequential(nn.Conv1d(2, 8, 3, { padding = 1 }), nn.LeakyReLU(0.1),
        nn.Conv1d(8, 4, 3, { padding = 1 }), nn.Tanh())
    end
    local head_cpu = net()
    local lin_cpu = nn.Linear(16, 1)
    local dev_head, dev_lin = net(), nn.Linear(16, 1)
    dev_head:load_state_dict(head_cpu:state_dict())
    dev_lin:load_state_dict(lin_cpu:state_dict())
    dev_head:cuda(); dev_lin:cuda()
    local n = 5
    local xs, ys = {}, {}
    for t = 1, n do xs[t], ys[t] = fsvc.randn({ 3, 2, 16 }), fsvc.randn({ 3, 4, 1 }) end
    local function loss_of(head, lin, x, y) return nn.F.mse_loss(lin(head(x)), y) end
    local function params(head, lin)
      local ps = head:parameters()
      for _, p in ipairs(lin:parameters()) do ps[#ps + 1] = p end
      return ps
    end

    -- eager on the CPU
    local cpu_ps = params(head_cpu, lin_cpu)
    local copt = optim.AdamW(cpu_ps, { lr = 1e-2, weight_decay = 0.01 })
    local cpu_losses = {}
    for t = 1, n do
      copt:zero_grad()
      local l = loss_of(head_cpu, lin_cpu, xs[t], ys[t])
      l:backward()
      copt:step()
      cpu_losses[t] = l:item()
    end

    -- one graph on the device: static inputs, grads set to nil at the start of the captured fn
    local dev_ps = params(dev_head, dev_lin)
    local dopt = optim.AdamW(dev_ps, { lr = 1e-2, weight_decay = 0.01, capturable = true })
    local sx, sy = xs[1]:cuda(), ys[1]:cuda()
    local g, loss = fsvc.cuda.graph(function()
      for _, p in ipairs(dev_ps) do p.grad = nil end
      local l = loss_of(dev_head, dev_lin, sx, sy)
      l:backward()
      dopt:step()
      return l
    end)
    for t = 2, n do -- the warm-up made step 1 on (xs[1], ys[1])
      sx:copy_(xs[t]:cuda())
      sy:copy_(ys[t]:cuda())
      g:replay()
      local got = loss:item()
      assert(math.abs(got - cpu_losses[t]) <= 1e-5 * math.max(1, math.abs(cpu_losses[t])),
        string.format("step %d: loss %.9g, CPU %.9g", t, got, cpu_losses[t]))
    end
    for i, p in ipairs(dev_ps) do
      assert(max_rel(p, cpu_ps[i]) < 1e-5, string.format("parameter %d: %g from the CPU", i, max_rel(p, cpu_ps[i])))
    end
    assert.are.equal(n, dopt.state[dev_ps[1]].step:item())
  end)
end)
describe("two optimisers in one graph", function()
  -- a GAN iteration as spec/bench/bench_train.lua --graph captures it: the generator's update
  -- (its loss through the discriminator), then the discriminator's, each with gradient clipping
  -- that keeps the norm on the device (sync = false) and a capturable AdamW; weight_norm and
  -- spectral_norm layers (the discriminator's power iteration updates its buffers in the graph)
  it("replays generator and discriminator updates as eager CPU steps", function()
    local function make(device)
      fsvc.manual_seed(31)
      local G = nn.Sequential(nn.utils.weight_norm(nn.Conv1d(2, 6, 3, { padding = 1 })), nn.LeakyReLU(0.1),
        nn.Conv1d(6, 1, 3, { padding = 1 }))
      local D = nn.Sequential(nn.utils.spectral_norm(nn.Conv1d(1, 4, 5, { padding = 2, stride = 2 })),
        nn.LeakyReLU(0.1), nn.utils.weight_norm(nn.Conv1d(4, 1, 3, { padding = 1 })))
      if device ~= "cpu" then G:to(device); D:to(device) end
      return G, D
    end
    local function step(G, D, opt_g, opt_d, z, real, sync)
      for _, p in ipairs(G:parameters()) do p.grad = nil end
      local fake = G(z)
      local loss_g = (D(fake) - 1):pow(2):mean() + (fake - real):pow(2):mean()
      loss_g:backward()
      nn.utils.clip_grad_norm_(G:parameters(), 0.05, 2, { sync = sync })
      opt_g:step()
      for _, p in ipairs(D:parameters()) do p.grad = nil end -- the generator's backward reached D
      local loss_d = (D(real) - 1):pow(2):mean() + D(fake:detach()):pow(2):mean()
      loss_d:backward()
      nn.utils.clip_grad_norm_(D:parameters(), 0.05, 2, { sync = sync })
      opt_d:step()
      return loss_g, loss_d
    end
    local n = 4
    fsvc.manual_seed(32)
    local zs, reals = {}, {}
    for t = 1, n do zs[t], reals[t] = fsvc.randn({ 2, 2, 32 }), fsvc.randn({ 2, 1, 32 }) end

    local Gc, Dc = make("cpu")
    local og = optim.AdamW(Gc:parameters(), { lr = 1e-2, betas = { 0.8, 0.99 } })
    local od = optim.AdamW(Dc:parameters(), { lr = 1e-2, betas = { 0.8, 0.99 } })
    local want = {}
    for t = 0, n do -- t = 0 and 1: the two warm-ups, both on the first batch
      local k = math.max(t, 1)
      local lg, ld = step(Gc, Dc, og, od, zs[k], reals[k], true)
      want[t] = { lg:item(), ld:item() }
    end

    local G, D = make("cuda")
    local dog = optim.AdamW(G:parameters(), { lr = 1e-2, betas = { 0.8, 0.99 }, capturable = true })
    local dod = optim.AdamW(D:parameters(), { lr = 1e-2, betas = { 0.8, 0.99 }, capturable = true })
    local z, real = zs[1]:cuda(), reals[1]:cuda()
    local g, lg, ld = fsvc.cuda.graph(function() return step(G, D, dog, dod, z, real, false) end, { warmup = 2 })
    for t = 2, n do
      z:copy_(zs[t]:cuda())
      real:copy_(reals[t]:cuda())
      g:replay()
      for i, got in ipairs({ lg:item(), ld:item() }) do
        assert(math.abs(got - want[t][i]) <= 1e-5 * math.max(1, math.abs(want[t][i])),
          string.format("step %d: loss %d %.9g, CPU %.9g", t, i, got, want[t][i]))
      end
    end
    for _, pair in ipairs({ { G, Gc }, { D, Dc } }) do
      local dev_ps, cpu_ps = pair[1]:parameters(), pair[2]:parameters()
      for i, p in ipairs(dev_ps) do
        assert(max_rel(p, cpu_ps[i]) < 1e-5, string.format("parameter %d: %g from the CPU", i, max_rel(p, cpu_ps[i])))
      end
    end
    assert.are.equal(n + 1, dod.state[D:parameters()[1]].step:item())
  end)
end)
