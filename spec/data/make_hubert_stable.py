"""Golden data for the HuBERT variants that the reference fixture (hubert_tiny: group norm,
post-norm) does not cover: feat_extract_norm "layer", conv_bias, do_stable_layer_norm (pre-norm
layers and a final LayerNorm, as hubert-large), no feature-projection LayerNorm, an odd positional
kernel, and a right-padded batch with an attention_mask. The model below transcribes
transformers' modeling_hubert.py (HubertModel, eager attention) in plain torch 1.13 (transformers
is not installed here). Writes spec/data/hubert_stable.safetensors: param.* (transformers' key
names), input.wave, input.attention_mask (int64), output.hidden_states.K, with the config JSON in
the metadata.

Usage: /usr/bin/python3 spec/data/make_hubert_stable.py spec/data/hubert_stable.safetensors"""
import json
import struct
import sys

import torch
from torch import nn
import torch.nn.functional as F

CONFIG = {
    "model_type": "hubert", "hidden_size": 24, "num_hidden_layers": 2, "num_attention_heads": 3,
    "intermediate_size": 40, "hidden_act": "gelu", "hidden_dropout": 0.0, "activation_dropout": 0.0,
    "attention_dropout": 0.0, "feat_proj_layer_norm": False, "feat_proj_dropout": 0.0,
    "layerdrop": 0.0, "layer_norm_eps": 1e-5, "feat_extract_norm": "layer",
    "feat_extract_activation": "gelu", "conv_dim": [8, 12, 12], "conv_stride": [5, 2, 2],
    "conv_kernel": [10, 3, 3], "conv_bias": True, "num_conv_pos_embeddings": 7,
    "num_conv_pos_embedding_groups": 3, "do_stable_layer_norm": True, "mask_time_prob": 0.05,
    "mask_feature_prob": 0.0,
}


class ConvLayer(nn.Module):
    def __init__(self, c, i):
        super().__init__()
        cin = 1 if i == 0 else c["conv_dim"][i - 1]
        cout = c["conv_dim"][i]
        self.conv = nn.Conv1d(cin, cout, c["conv_kernel"][i], stride=c["conv_stride"][i], bias=c["conv_bias"])
        self.layer_norm = nn.LayerNorm(cout, elementwise_affine=True)

    def forward(self, x):
        x = self.conv(x)
        x = self.layer_norm(x.transpose(-2, -1)).transpose(-2, -1)
        return F.gelu(x)


class FeatureEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv_layers = nn.ModuleList([ConvLayer(c, i) for i in range(len(c["conv_dim"]))])

    def forward(self, x):
        x = x[:, None]
        for layer in self.conv_layers:
            x = layer(x)
        return x


class FeatureProjection(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.projection = nn.Linear(c["conv_dim"][-1], c["hidden_size"])
        self.dropout = nn.Dropout(0.0)

    def forward(self, x):
        return self.dropout(self.projection(x))


class PosConv(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, k = c["hidden_size"], c["num_conv_pos_embeddings"]
        conv = nn.Conv1d(h, h, k, padding=k // 2, groups=c["num_conv_pos_embedding_groups"])
        # torch 1.13 has only the legacy weight_norm: keys weight_g / weight_v (older checkpoints)
        self.conv = nn.utils.weight_norm(conv, name="weight", dim=2)
        self.num_pad_remove = 1 if k % 2 == 0 else 0

    def forward(self, x):
        x = self.conv(x.transpose(1, 2))
        if self.num_pad_remove > 0:
            x = x[:, :, :-self.num_pad_remove]
        return F.gelu(x).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.h, self.nh = h, c["num_attention_heads"]
        self.hd = h // self.nh
        self.scaling = self.hd ** -0.5
        self.k_proj = nn.Linear(h, h)
        self.v_proj = nn.Linear(h, h)
        self.q_proj = nn.Linear(h, h)
        self.out_proj = nn.Linear(h, h)

    def forward(self, x, mask):
        B, T, _ = x.shape
        shape = lambda t: t.view(B, T, self.nh, self.hd).transpose(1, 2)
        q, k, v = shape(self.q_proj(x)), shape(self.k_proj(x)), shape(self.v_proj(x))
        w = torch.matmul(q, k.transpose(2, 3)) * self.scaling
        if mask is not None:
            w = w + mask
        w = F.softmax(w, dim=-1)
        o = torch.matmul(w, v).transpose(1, 2).reshape(B, T, self.h)
        return self.out_proj(o)


class FeedForward(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.intermediate_dropout = nn.Dropout(0.0)
        self.intermediate_dense = nn.Linear(c["hidden_size"], c["intermediate_size"])
        self.output_dense = nn.Linear(c["intermediate_size"], c["hidden_size"])
        self.output_dropout = nn.Dropout(0.0)

    def forward(self, x):
        return self.output_dropout(self.output_dense(self.intermediate_dropout(F.gelu(self.intermediate_dense(x)))))


class StableLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = Attention(c)
        self.dropout = nn.Dropout(0.0)
        self.layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.feed_forward = FeedForward(c)
        self.final_layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, h, mask):
        res = h
        h = self.layer_norm(h)
        h = self.dropout(self.attention(h, mask))
        h = res + h
        return h + self.feed_forward(self.final_layer_norm(h))


class StableEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.pos_conv_embed = PosConv(c)
        self.layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.dropout = nn.Dropout(0.0)
        self.layers = nn.ModuleList([StableLayer(c) for _ in range(c["num_hidden_layers"])])

    def forward(self, h, frame_mask):
        mask4 = None
        if frame_mask is not None:
            h = h.clone()
            h[~frame_mask] = 0
            m = frame_mask[:, None, None, :].to(h.dtype)
            mask4 = (1.0 - m).expand(h.shape[0], 1, h.shape[1], h.shape[1]) * torch.finfo(h.dtype).min
        h = h + self.pos_conv_embed(h)
        h = self.dropout(h)
        states = []
        for layer in self.layers:
            states.append(h)
            h = layer(h, mask4)
        h = self.layer_norm(h)
        states.append(h)
        return states


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.masked_spec_embed = nn.Parameter(torch.rand(c["hidden_size"]))
        self.feature_extractor = FeatureEncoder(c)
        self.feature_projection = FeatureProjection(c)
        self.encoder = StableEncoder(c)

    def out_len(self, n):
        for k, s in zip(self.c["conv_kernel"], self.c["conv_stride"]):
            n = torch.div(n - k, s, rounding_mode="floor") + 1
        return n

    def forward(self, wave, attention_mask):
        feats = self.feature_extractor(wave).transpose(1, 2)
        lengths = self.out_len(attention_mask.sum(-1))
        fm = torch.zeros(feats.shape[:2], dtype=torch.long)
        fm[torch.arange(fm.shape[0]), lengths - 1] = 1
        fm = fm.flip([-1]).cumsum(-1).flip([-1]).bool()
        return self.encoder(self.feature_projection(feats), fm)


def save_safetensors(path, tensors, meta):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        t = t.contiguous()
        dt = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        b = bytes(t.view(torch.uint8).flatten().tolist())  # little-endian host; no numpy here
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


torch.manual_seed(1234)
model = Model(CONFIG).eval()
with torch.no_grad():  # make the norms' affine parameters non-trivial
    for name, p in model.named_parameters():
        if "layer_norm" in name or name.endswith("weight_g"):
            p.add_(0.1 * torch.randn_like(p))
L = 1600
wave = torch.randn(2, L) * 0.3
mask = torch.ones(2, L, dtype=torch.long)
mask[1, 1100:] = 0
wave[1, 1100:] = 0
with torch.no_grad():
    states = model(wave, mask)
out = {"param." + k: v.detach() for k, v in model.state_dict().items()}
out["input.wave"] = wave
out["input.attention_mask"] = mask
for i, s in enumerate(states):
    out["output.hidden_states.%d" % i] = s
save_safetensors(sys.argv[1], out, {"config": json.dumps(CONFIG), "torch": torch.__version__,
                                    "note": "spec/data/make_hubert_stable.py"})
print("wrote", sys.argv[1], [tuple(s.shape) for s in states])
