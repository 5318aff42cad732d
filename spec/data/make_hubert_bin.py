"""Writes a transformers-style HuBERT checkpoint directory from the tiny reference fixture, as an
older transformers release would have saved a HubertForCTC: pytorch_model.bin (torch.save, zip
format) with keys under "hubert.", the positional conv's weight norm as legacy weight_g/weight_v,
and a CTC head (lm_head.*) that HubertModel must drop; plus config.json.

Usage: /usr/bin/python3 spec/data/make_hubert_bin.py FIXTURE.safetensors OUT_DIR
(needs only torch; the safetensors file is parsed by hand)."""
import json
import os
import struct
import sys

import torch

fixture, out_dir = sys.argv[1], sys.argv[2]
with open(fixture, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
meta = header.pop("__metadata__", {})
state = {}
for name, rec in header.items():
    if not name.startswith("param."):
        continue
    assert rec["dtype"] == "F32", name
    a, b = rec["data_offsets"]
    t = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(rec["shape"]).clone()
    key = name[len("param."):]
    key = key.replace("conv.parametrizations.weight.original0", "conv.weight_g")
    key = key.replace("conv.parametrizations.weight.original1", "conv.weight_v")
    state["hubert." + key] = t
config = json.loads(meta["config"])
torch.manual_seed(0)
state["lm_head.weight"] = torch.randn(config["vocab_size"], config["hidden_size"])
state["lm_head.bias"] = torch.zeros(config["vocab_size"])
os.makedirs(out_dir, exist_ok=True)
torch.save(state, os.path.join(out_dir, "pytorch_model.bin"))
config["architectures"] = ["HubertForCTC"]
with open(os.path.join(out_dir, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
