#!/usr/bin/env python3
"""Export the SigLIP vision tower of a DeepSeek-VL2 checkpoint to ONNX, for `kestrel bench vlm --onnx`.

The same computation as Kestrel's ViT (packages/vit): stride-P patch convolution, + pos_embed, `layers` pre-norm
blocks (LayerNorm eps 1e-6, fused qkv attention, tanh-GELU MLP) and the final LayerNorm, on [tiles, 3, S, S] float32
pixels -> [tiles, N, width] features. Weights are read from the checkpoint's safetensors (BF16/F16/F32, sharded or
not) with numpy; nothing is downloaded. The .onnx file goes outside the repository (default
~/.cache/kestrel/onnx/<checkpoint folder name>-vision.onnx).

Run with Debian's PyTorch:  apt-get install python3-torch python3-numpy
  /usr/bin/python3 scripts/siglip-onnx/export_siglip_onnx.py --model ~/.cache/kestrel/presets/deepseek-vl2-tiny
"""
import argparse
import json
import math
import os
import struct

import numpy as np
import torch
from torch import nn

DT = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def read_tensors(model_dir, prefix):
    """name -> float32 numpy array for every tensor whose name starts with prefix."""
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) else ["model.safetensors"]
    out = {}
    for f in files:
        with open(os.path.join(model_dir, f), "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
            base = 8 + n
            for name, e in header.items():
                if name == "__metadata__" or not name.startswith(prefix):
                    continue
                b, end = e["data_offsets"]
                fh.seek(base + b)
                a = np.frombuffer(fh.read(end - b), dtype=DT[e["dtype"]])
                if e["dtype"] == "BF16":
                    a = (a.astype(np.uint32) << 16).view(np.float32)
                out[name[len(prefix):]] = a.astype(np.float32).reshape(e["shape"])
    return out


class Block(nn.Module):
    def __init__(self, d, heads, mlp):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.fc1 = nn.Linear(d, mlp)
        self.fc2 = nn.Linear(mlp, d)

    def forward(self, x):
        b, n, d = x.shape
        hd = d // self.heads
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = torch.softmax(q @ k.transpose(-2, -1) * (1.0 / math.sqrt(hd)), dim=-1) @ v
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


class Tower(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, p = cfg["width"], cfg["patch_size"]
        g = cfg.get("image_size", 384) // p
        self.patch = nn.Conv2d(3, d, p, stride=p)
        self.pos = nn.Parameter(torch.zeros(1, g * g, d))
        self.blocks = nn.ModuleList(Block(d, cfg.get("heads", 16), int(d * cfg["mlp_ratio"])) for _ in range(cfg["layers"]))
        self.norm = nn.LayerNorm(d, eps=1e-6)

    def forward(self, px):
        x = self.patch(px).flatten(2).transpose(1, 2) + self.pos
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="DeepSeek-VL2 checkpoint folder")
    ap.add_argument("--out", help="output .onnx (default ~/.cache/kestrel/onnx/<folder>-vision.onnx)")
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.model, "config.json")))["vision_config"]
    out = a.out or os.path.join(os.path.expanduser("~/.cache/kestrel/onnx"), os.path.basename(os.path.normpath(a.model)) + "-vision.onnx")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    w = read_tensors(a.model, "vision.")
    m = Tower(cfg).eval()
    sd = {"patch.weight": w["patch_embed.proj.weight"], "patch.bias": w["patch_embed.proj.bias"], "pos": w["pos_embed"],
          "norm.weight": w["norm.weight"], "norm.bias": w["norm.bias"]}
    for i in range(cfg["layers"]):
        for ours, theirs in [("norm1", "norm1"), ("qkv", "attn.qkv"), ("proj", "attn.proj"), ("norm2", "norm2"), ("fc1", "mlp.fc1"), ("fc2", "mlp.fc2")]:
            for t in ("weight", "bias"):
                sd[f"blocks.{i}.{ours}.{t}"] = w[f"blocks.{i}.{theirs}.{t}"]
    m.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    s = cfg.get("image_size", 384)
    tmp = out + ".tmp"
    with torch.no_grad():
        torch.onnx.export(m, torch.zeros(1, 3, s, s), tmp, input_names=["pixel_values"], output_names=["features"],
                          dynamic_axes={"pixel_values": {0: "tiles"}, "features": {0: "tiles"}}, opset_version=14)
    os.replace(tmp, out)
    print(json.dumps({"onnx": out, "bytes": os.path.getsize(out)}))


if __name__ == "__main__":
    main()
