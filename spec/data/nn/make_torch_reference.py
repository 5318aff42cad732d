#!/usr/bin/python3
"""Writes spec/data/nn/torch_reference.lua: inputs, parameters, outputs and gradients of fsvc.nn's
layers, utils, optimisers and schedulers computed by PyTorch (Debian's torch 1.13), for
spec/nn_spec.lua and spec/optim_spec.lua. Run: /usr/bin/python3 spec/data/nn/make_torch_reference.py"""
import math
import os
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(1234)
cases = {}


def T(t):
    t = t.detach()
    return {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""),
            "data": [float(v) for v in t.reshape(-1).tolist()]}


def module_case(name, m, inputs, call=None, extra=None):
    """Forward, then backward of sum(out * w) with a random w; stores everything."""
    call = call or (lambda m, *xs: m(*xs))
    xs = [x.clone().requires_grad_(x.dtype.is_floating_point) for x in inputs]
    out = call(m, *xs)
    if isinstance(out, tuple):
        out = out[0]
    w = torch.randn(out.shape)
    (out * w).sum().backward()
    c = {"inputs": [T(x) for x in xs], "out": T(out), "w": T(w),
         "params": {k: T(v) for k, v in m.state_dict().items()},
         "keys": list(m.state_dict().keys()),
         "grads": {k: T(p.grad) for k, p in m.named_parameters() if p.grad is not None},
         "input_grads": [T(x.grad) if x.grad is not None else None for x in xs],
         "repr": repr(m)}
    if extra:
        c.update(extra)
    cases[name] = c


# ---- layers ----
module_case("conv1d_groups", nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2), [torch.randn(2, 4, 9)])
module_case("conv1d_same_reflect", nn.Conv1d(3, 2, 4, dilation=2, padding="same", padding_mode="reflect"),
            [torch.randn(1, 3, 10)])
module_case("conv1d_nobias", nn.Conv1d(3, 5, 1, bias=False), [torch.randn(2, 3, 4)])
module_case("conv_transpose1d", nn.ConvTranspose1d(4, 3, 4, stride=2, padding=1), [torch.randn(2, 4, 5)])
module_case("linear", nn.Linear(5, 3), [torch.randn(2, 4, 5)])
ln = nn.LayerNorm(6)
with torch.no_grad():
    ln.weight.normal_(); ln.bias.normal_()
module_case("layer_norm", ln, [torch.randn(2, 3, 6)])
ln2 = nn.LayerNorm((3, 4), eps=1e-3, elementwise_affine=False)
module_case("layer_norm_2d", ln2, [torch.randn(2, 3, 4)])
gn = nn.GroupNorm(2, 6)
with torch.no_grad():
    gn.weight.normal_(); gn.bias.normal_()
module_case("group_norm", gn, [torch.randn(2, 6, 5)])
module_case("gelu", nn.GELU(), [torch.randn(3, 4)])
module_case("gelu_tanh", nn.GELU(approximate="tanh"), [torch.randn(3, 4)])
module_case("leaky_relu", nn.LeakyReLU(0.1), [torch.randn(3, 4)])

# MultiheadAttention: self-attention with a key padding mask (seq-first) ...
mha = nn.MultiheadAttention(8, 2)
with torch.no_grad():
    mha.in_proj_bias.normal_(); mha.out_proj.bias.normal_()
x = torch.randn(5, 2, 8)
kpm = torch.tensor([[False, False, False, True, True], [False, False, False, False, False]])
module_case("mha_self_kpm", mha, [x], call=lambda m, x: m(x, x, x, key_padding_mask=kpm),
            extra={"key_padding_mask": T(kpm.long())})
_, wts = mha(x, x, x, key_padding_mask=kpm)
cases["mha_self_kpm"]["weights"] = T(wts)
# ... cross-attention, batch_first, attn_mask, per-head weights
mha2 = nn.MultiheadAttention(6, 3, batch_first=True)
with torch.no_grad():
    mha2.in_proj_bias.normal_()
q, kv = torch.randn(2, 4, 6), torch.randn(2, 3, 6)
am = torch.tensor([[False, True, False], [False, False, False], [True, False, False], [False, False, True]])
module_case("mha_cross_bf", mha2, [q, kv], call=lambda m, q, kv: m(q, kv, kv, attn_mask=am),
            extra={"attn_mask": T(am.long())})
_, wts = mha2(q, kv, kv, attn_mask=am, average_attn_weights=False)
cases["mha_cross_bf"]["weights_per_head"] = T(wts)
# kdim / vdim
mha3 = nn.MultiheadAttention(4, 1, kdim=3, vdim=5)
module_case("mha_kdim", mha3, [torch.randn(2, 1, 4), torch.randn(3, 1, 3), torch.randn(3, 1, 5)],
            call=lambda m, q, k, v: m(q, k, v))

# ---- weight norm / spectral norm ----
c = nn.utils.weight_norm(nn.Conv1d(3, 4, 3, padding=1))
module_case("weight_norm", c, [torch.randn(2, 3, 6)])
c = nn.utils.weight_norm(nn.Linear(3, 4), dim=None)
module_case("weight_norm_dim_none", c, [torch.randn(2, 3)])
sn = nn.utils.spectral_norm(nn.Conv1d(3, 4, 3, padding=1))
sd0 = {k: T(v) for k, v in sn.state_dict().items()}  # before the training-mode forward
module_case("spectral_norm_train", sn, [torch.randn(2, 3, 6)])
cases["spectral_norm_train"]["params_before"] = sd0  # weight_u/v after the power iteration in "params"
sn.eval()
xe = torch.randn(2, 3, 6)
cases["spectral_norm_eval"] = {"input": T(xe), "out": T(sn(xe)), "params": {k: T(v) for k, v in sn.state_dict().items()}}

# ---- state dict names of a nested network ----
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(2, 2, 3)
        self.norm = nn.LayerNorm(2)
        self.register_buffer("running", torch.zeros(2))
        self.register_buffer("scratch", torch.zeros(1), persistent=False)
        self.scale = nn.Parameter(torch.ones(1))

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.input = nn.Conv1d(1, 2, 1)
        self.ups = nn.ModuleList([Block(), Block()])
        self.seq = nn.Sequential(nn.Linear(2, 2), nn.GELU(), nn.Linear(2, 1, bias=False))
        self.attn = nn.MultiheadAttention(2, 1)
        self.out = nn.utils.weight_norm(nn.Conv1d(2, 1, 1))
        self.disc = nn.utils.spectral_norm(nn.Conv1d(1, 1, 3))

net = Net()
cases["names"] = {"state_dict": list(net.state_dict().keys()),
                  "named_parameters": [k for k, _ in net.named_parameters()],
                  "named_buffers": [k for k, _ in net.named_buffers()],
                  "named_modules": [k for k, _ in net.named_modules()],
                  "num_parameters": sum(p.numel() for p in net.parameters())}

# ---- losses ----
logits = torch.randn(4, 5, 3, requires_grad=True)
target = torch.randint(0, 5, (4, 3))
weight = torch.rand(5)
loss = F.cross_entropy(logits, target, weight=weight)
loss.backward()
cases["cross_entropy"] = {"logits": T(logits), "target": T(target), "weight": T(weight),
                          "loss": loss.item(), "grad": T(logits.grad),
                          "loss_smooth": F.cross_entropy(logits, target, weight=weight, label_smoothing=0.1).item(),
                          "loss_sum_ignore": F.cross_entropy(logits, target, reduction="sum", ignore_index=2).item()}

# ---- optimisers: 4 steps with fixed gradients on two parameters ----
def optim_case(name, make, steps=4):
    torch.manual_seed(99)
    p1, p2 = torch.randn(3, 4, requires_grad=True), torch.randn(5, requires_grad=True)
    init = [T(p1), T(p2)]
    grads = [[torch.randn(3, 4), torch.randn(5)] for _ in range(steps)]
    opt = make([p1, p2])
    outs = []
    for g1, g2 in grads:
        p1.grad, p2.grad = g1.clone(), g2.clone()
        opt.step()
        outs.append([T(p1), T(p2)])
    sd = opt.state_dict()
    cases["optim_" + name] = {"init": init, "grads": [[T(a), T(b)] for a, b in grads], "params": outs,
                              "state": {str(k): {kk: (T(vv) if torch.is_tensor(vv) and vv.dim() > 0 else (None if vv is None else float(vv)))
                                                 for kk, vv in v.items() if vv is not None} for k, v in sd["state"].items()}}

optim_case("sgd", lambda ps: torch.optim.SGD(ps, lr=0.1))
optim_case("sgd_momentum_wd", lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01))
optim_case("sgd_nesterov", lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True, maximize=True))
optim_case("adam", lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1))
optim_case("adam_amsgrad", lambda ps: torch.optim.Adam(ps, lr=0.02, betas=(0.8, 0.9), amsgrad=True))
optim_case("adamw", lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.8, 0.99), weight_decay=0.01))
optim_case("adamw_amsgrad", lambda ps: torch.optim.AdamW(ps, lr=0.03, amsgrad=True, maximize=True))
optim_case("adamw_groups", lambda ps: torch.optim.AdamW([{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.1, "weight_decay": 0}], lr=0.01))

# ---- schedulers: lr over 12 steps ----
def sched_case(name, make):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    s = make(opt)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    cases["sched_" + name] = {"lrs": lrs}

sched_case("step", lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5))
sched_case("exp", lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9))
sched_case("cosine", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=5, eta_min=0.01))
sched_case("lambda", lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 1 / (e + 1)))
sched_case("linear", lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=4))


# ---- write as Lua ----
def lua(v, ind=""):
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isinf(v):
            return "math.huge" if v > 0 else "-math.huge"
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, list):
        return "{" + ", ".join(lua(x, ind) for x in v) + "}"
    if isinstance(v, dict):
        items = []
        for k in v:
            key = k if k.isidentifier() else "[" + lua(k) + "]"
            items.append(ind + "  " + key + " = " + lua(v[k], ind + "  "))
        return "{\n" + ",\n".join(items) + "\n" + ind + "}"
    raise TypeError(type(v))

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_reference.lua")
with open(out, "w") as f:
    f.write("-- Generated by make_torch_reference.py with torch " + torch.__version__ + "; do not edit.\n")
    f.write("return " + lua(cases) + "\n")
print("wrote", out)
