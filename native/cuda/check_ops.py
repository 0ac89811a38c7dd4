#!/usr/bin/env python3
"""Every CUDA op of libkestrel_cuda.so against a float64 numpy reference, through the C ABI (ctypes).

This needs only python3 + numpy and the built library, not Node.js (the GPU image has Python, not Node).
The reference follows native/lib/portable (the contract's reference kernels); native/lib/cuda-pyref.test.ts
checks this reference against the portable TypeScript ops on the same inputs (--emit), so a failure on the
GPU points at the CUDA code.

Error per output: max|got - ref| / max|ref|; a NaN/inf never passes; outputs are poisoned with NaN first.
Tolerances: 1e-5 (f32 weights and all non-matrix ops), 1e-2 (bf16 and q8 weights).

  python3 native/cuda/check_ops.py --lib native/cuda/build/libkestrel_cuda.so [--log FILE]
  python3 native/cuda/check_ops.py --emit DIR      # write the cases and reference outputs (no GPU needed)
"""
import argparse
import ctypes as C
import json
import math
import os
import sys

import numpy as np

F32, BF16, Q8 = 0, 1, 2
FMT = {"f32": F32, "bf16": BF16, "q8": Q8}
TOL = {"f32": 1e-5, "bf16": 1e-2, "q8": 1e-2}


# ----------------------------------------------------------------------------------------------
# inputs


def randn(rng, n, scale=1.0):
    return (rng.standard_normal(n) * scale).astype(np.float32)


def make_weight(rng, n, k, fmt):
    w = randn(rng, n * k, 1 / math.sqrt(k))
    if fmt == "f32":
        return {"fmt": fmt, "n": n, "k": k, "data": w, "scales": None}
    if fmt == "bf16":
        return {"fmt": fmt, "n": n, "k": k, "data": (w.view(np.uint32) >> 16).astype(np.uint16), "scales": None}
    kp = (k + 31) // 32 * 32
    q = rng.integers(-127, 128, size=(n, kp)).astype(np.int8)
    q[:, k:] = 0
    scales = (rng.random(n * kp // 32) * 0.02 + 0.001).astype(np.float32)
    return {"fmt": fmt, "n": n, "k": k, "data": q.reshape(-1), "scales": scales}


def decode(w):
    n, k = w["n"], w["k"]
    if w["fmt"] == "f32":
        return w["data"].reshape(n, k).astype(np.float64)
    if w["fmt"] == "bf16":
        return (w["data"].astype(np.uint32) << 16).view(np.float32).reshape(n, k).astype(np.float64)
    kp = (k + 31) // 32 * 32
    q = w["data"].reshape(n, kp).astype(np.float64)
    s = np.repeat(w["scales"].reshape(n, kp // 32).astype(np.float64), 32, axis=1)
    return (q * s)[:, :k]


# ----------------------------------------------------------------------------------------------
# float64 reference ops (native/lib/portable semantics)


def ref_linear(x, m, w, bias):
    W = decode(w)
    out = x.reshape(m, w["k"]).astype(np.float64) @ W.T
    if bias is not None:
        out = out + bias.astype(np.float64)
    return out.reshape(-1)


def ref_rmsnorm(x, m, n, weight, eps):
    x = x.reshape(m, n).astype(np.float64)
    r = 1 / np.sqrt((x * x).sum(1, keepdims=True) / n + eps)
    return (weight.astype(np.float64) * (x * r)).reshape(-1)


def ref_layernorm(x, m, n, weight, bias, eps):
    x = x.reshape(m, n).astype(np.float64)
    mean = x.mean(1, keepdims=True)
    var = ((x - mean) ** 2).mean(1, keepdims=True)
    return ((x - mean) / np.sqrt(var + eps) * weight + bias).reshape(-1)


def ref_gelu(x, approx):
    v = x.astype(np.float64)
    if approx == "tanh":
        return 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))
    erf = np.vectorize(math.erf)
    return 0.5 * v * (1 + erf(v / math.sqrt(2)))


def ref_silu(x):
    v = x.astype(np.float64)
    return v / (1 + np.exp(-v))


def ref_softmax(x, m, n):
    v = x.reshape(m, n).astype(np.float64)
    e = np.exp(v - v.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).reshape(-1)


def ref_rope(x, g, positions, cos, sin):
    m, nh, hs, rs, off, dim, inter = g
    half = dim // 2
    out = x.astype(np.float64).copy()
    for r in range(m):
        p = positions[r]
        c = cos[p * half:(p + 1) * half].astype(np.float64)
        s = sin[p * half:(p + 1) * half].astype(np.float64)
        for h in range(nh):
            o = r * rs + h * hs + off
            seg = out[o:o + dim].copy()
            if inter:
                a, b = seg[0::2].copy(), seg[1::2].copy()
            else:
                a, b = seg[:half].copy(), seg[half:].copy()
            out[o:o + half] = a * c - b * s
            out[o + half:o + dim] = b * c + a * s
    return out


def ref_attention(q, k, v, out, g, scale):
    tq, tk, nh, nkv, dqk, dv, qs, ks, vs, os_, causal, qpos0 = g
    res = out.astype(np.float64).copy()
    group = nh // nkv
    for i in range(tq):
        vis = min(tk, qpos0 + i + 1) if causal else tk
        for h in range(nh):
            gi = h // group
            qv = q[i * qs + h * dqk:i * qs + (h + 1) * dqk].astype(np.float64)
            K = np.stack([k[j * ks + gi * dqk:j * ks + (gi + 1) * dqk] for j in range(vis)]).astype(np.float64) if vis else np.zeros((0, dqk))
            V = np.stack([v[j * vs + gi * dv:j * vs + (gi + 1) * dv] for j in range(vis)]).astype(np.float64) if vis else np.zeros((0, dv))
            o = i * os_ + h * dv
            if vis == 0:
                res[o:o + dv] = 0
                continue
            sc = K @ qv * scale
            e = np.exp(sc - sc.max())
            res[o:o + dv] = (e / e.sum()) @ V
    return res


def f32(v):
    return float(np.float32(v))


def ref_route(logits, m, E, cfg, bias, scaling):
    topk, scoring, method, ngroup, topkgroup, norm = cfg
    idx = np.zeros(m * topk, np.int32)
    wt = np.zeros(m * topk, np.float64)
    scores = np.zeros(m * E, np.float64)
    per = E // ngroup
    for r in range(m):
        lg = logits[r * E:(r + 1) * E].astype(np.float64)
        if scoring == 0:
            e = np.exp(lg - lg.max())
            s = e / e.sum()
        else:
            s = 1 / (1 + np.exp(-lg))
        s = s.astype(np.float32).astype(np.float64)  # the reference keeps scores in f32
        scores[r * E:(r + 1) * E] = s
        sel = (s + bias).astype(np.float32).astype(np.float64) if method == 2 else s.copy()
        if method != 0:
            gs = []
            for g in range(ngroup):
                seg = np.sort(sel[g * per:(g + 1) * per])[::-1]
                gs.append(seg[0] if method == 1 else (seg[0] + seg[1] if per >= 2 else seg[0]))
            order = sorted(range(ngroup), key=lambda g: (-gs[g], g))
            keep = set(order[:topkgroup])
            for g in range(ngroup):
                if g not in keep:
                    sel[g * per:(g + 1) * per] = 0
        top = sorted(range(E), key=lambda e: (-sel[e], e))[:topk]
        ws = [s[e] if method == 2 else sel[e] for e in top]
        tot = sum(f32(w) for w in ws)
        denom = f32(f32(tot) + 1e-20)
        for j, e in enumerate(top):
            idx[r * topk + j] = e
            wt[r * topk + j] = f32(ws[j] / denom) * scaling if (topk > 1 and norm) else ws[j] * scaling
    return idx, wt, scores


def ref_experts(x, m, h, experts, idx, weight, topk):
    X = x.reshape(m, h).astype(np.float64)
    out = np.zeros((m, h))
    for r in range(m):
        for j in range(topk):
            ex = experts[idx[r * topk + j]]
            g = decode(ex["gate"]) @ X[r]
            u = decode(ex["up"]) @ X[r]
            hdn = (g / (1 + np.exp(-g))) * u
            out[r] += weight[r * topk + j] * (decode(ex["down"]) @ hdn)
    return out.reshape(-1)


# ----------------------------------------------------------------------------------------------
# the cases


def build_cases(seed=20261129):
    rng = np.random.default_rng(seed)
    cases = []

    def add(name, op, tol, params, inputs):
        cases.append({"name": name, "op": op, "tol": tol, "params": params, "inputs": inputs})

    for fmt in ("f32", "bf16", "q8"):
        for (m, k, n) in [(1, 64, 40), (3, 37, 19), (8, 128, 65), (9, 96, 33), (40, 160, 72), (70, 70, 130)]:
            w = make_weight(rng, n, k, fmt)
            inp = {"x": randn(rng, m * k), "w_data": w["data"]}
            if w["scales"] is not None:
                inp["w_scales"] = w["scales"]
            if m % 2:
                inp["bias"] = randn(rng, n)
            add(f"linear {fmt} m={m} k={k} n={n}{' +bias' if m % 2 else ''}", "linear", TOL[fmt], {"m": m, "fmt": fmt, "n": n, "k": k}, inp)
    m, n = 3, 300
    x, w, b = randn(rng, m * n, 3), randn(rng, n), randn(rng, n)
    add("rmsnorm", "rmsnorm", 1e-5, {"m": m, "n": n, "eps": 1e-6}, {"x": x, "w": w})
    add("layernorm", "layernorm", 1e-5, {"m": m, "n": n, "eps": 1e-5}, {"x": x, "w": w, "b": b})
    a, c = randn(rng, 1001, 3), randn(rng, 1001, 3)
    for op in ("gelu_tanh", "gelu_erf", "silu"):
        add(op, op, 1e-5, {}, {"x": a})
    for op in ("swiglu", "add", "mul"):
        add(op, op, 1e-5, {}, {"a": a, "b": c})
    add("softmax", "softmax", 1e-5, {"m": 4, "n": 250}, {"x": randn(rng, 1000, 4)})
    for fmt in ("f32", "bf16", "q8"):
        t = make_weight(rng, 50, 72, fmt)
        inp = {"w_data": t["data"], "ids": np.array([0, 49, 7, 7, 23], np.int32)}
        if t["scales"] is not None:
            inp["w_scales"] = t["scales"]
        add(f"embedding {fmt}", "embedding", 1e-5, {"fmt": fmt, "n": 50, "k": 72}, inp)
    for inter in (0, 1):
        geom = [3, 3, 24, 80, 8, 16, inter]
        max_pos, half = 40, 8
        pos_ = np.arange(max_pos)[:, None] / 10000 ** (2 * np.arange(half)[None, :] / 16)
        add(f"rope {'interleaved' if inter else 'rotate_half'}", "rope", 1e-5, {"geom": geom},
            {"x": randn(rng, 240), "positions": np.array([5, 39, 0], np.int32),
             "cos": np.cos(pos_).astype(np.float32).reshape(-1), "sin": np.sin(pos_).astype(np.float32).reshape(-1)})
    att = [
        ("decode", [1, 37, 4, 4, 32, 32, 128, 128, 128, 128, 1, 36], 1 / math.sqrt(32)),
        ("prefill causal GQA", [6, 6, 4, 2, 16, 16, 64, 40, 36, 70, 1, 0], 0.25),
        ("MLA decode (latent cache)", [1, 50, 8, 1, 72, 64, 576, 72, 72, 512, 1, 49], 0.1),
        ("MLA prefill chunk", [3, 10, 2, 1, 40, 32, 80, 40, 40, 64, 1, 7], 0.15),
        ("bidirectional ViT", [20, 20, 3, 3, 24, 24, 72, 72, 72, 72, 0, 0], 1 / math.sqrt(24)),
    ]
    for name, g, scale in att:
        tq, tk = g[0], g[1]
        out0 = np.full(tq * g[9], 0.5, np.float32)  # strided gaps keep this value
        add(f"attention {name}", "attention", 1e-5, {"geom": g, "scale": scale},
            {"q": randn(rng, tq * g[6]), "k": randn(rng, tk * g[7]), "v": randn(rng, tk * g[8]), "out": out0})
    routes = [
        ("softmax greedy", [6, 0, 0, 1, 1, 0], 1.0, False),
        ("softmax group_limited_greedy", [6, 0, 1, 8, 3, 0], 16.0, False),
        ("sigmoid noaux_tc", [8, 1, 2, 8, 4, 1], 2.5, True),
    ]
    for name, cfg, scaling, with_bias in routes:
        inp = {"logits": randn(rng, 5 * 64, 2)}
        inp["bias"] = randn(rng, 64, 0.1) if with_bias else np.zeros(64, np.float32)
        add(f"moeRoute {name}", "moe_route", 1e-5, {"m": 5, "E": 64, "cfg": cfg, "scaling": scaling, "bias": with_bias}, inp)
    for fmt in ("f32", "bf16", "q8"):
        E, h, inter, topk = 6, 64, 48, 2
        inp = {}
        for e in range(E):
            for nm, (nn, kk) in (("gate", (inter, h)), ("up", (inter, h)), ("down", (h, inter))):
                w = make_weight(rng, nn, kk, fmt)
                inp[f"e{e}_{nm}_data"] = w["data"]
                if w["scales"] is not None:
                    inp[f"e{e}_{nm}_scales"] = w["scales"]
        for m in (1, 11):
            idx = np.zeros(m * topk, np.int32)
            for i in range(m):
                idx[i * topk] = rng.integers(0, E)
                idx[i * topk + 1] = (idx[i * topk] + 1 + rng.integers(0, E - 1)) % E
            mi = dict(inp)
            mi.update({"x": randn(rng, m * h), "idx": idx, "weight": rng.random(m * topk).astype(np.float32)})
            add(f"moeExperts {fmt} m={m}", "moe_experts", TOL[fmt], {"fmt": fmt, "m": m, "h": h, "inter": inter, "E": E, "topK": topk}, mi)
    return cases


def weight_of(case, prefix="w"):
    p = case["params"]
    i = case["inputs"]
    return {"fmt": p["fmt"], "n": p["n"], "k": p["k"], "data": i[f"{prefix}_data"], "scales": i.get(f"{prefix}_scales")}


def expert_weights(case):
    p, i = case["params"], case["inputs"]
    ex = []
    for e in range(p["E"]):
        d = {}
        for nm, (nn, kk) in (("gate", (p["inter"], p["h"])), ("up", (p["inter"], p["h"])), ("down", (p["h"], p["inter"]))):
            d[nm] = {"fmt": p["fmt"], "n": nn, "k": kk, "data": i[f"e{e}_{nm}_data"], "scales": i.get(f"e{e}_{nm}_scales")}
        ex.append(d)
    return ex


def reference(case):
    """Reference outputs of one case: dict name -> array."""
    op, p, i = case["op"], case["params"], case["inputs"]
    if op == "linear":
        return {"out": ref_linear(i["x"], p["m"], weight_of(case), i.get("bias"))}
    if op == "rmsnorm":
        return {"out": ref_rmsnorm(i["x"], p["m"], p["n"], i["w"], p["eps"])}
    if op == "layernorm":
        return {"out": ref_layernorm(i["x"], p["m"], p["n"], i["w"], i["b"], p["eps"])}
    if op in ("gelu_tanh", "gelu_erf"):
        return {"out": ref_gelu(i["x"], op[5:])}
    if op == "silu":
        return {"out": ref_silu(i["x"])}
    if op == "swiglu":
        return {"out": ref_silu(i["a"]) * i["b"]}
    if op == "add":
        return {"out": i["a"].astype(np.float64) + i["b"]}
    if op == "mul":
        return {"out": i["a"].astype(np.float64) * i["b"]}
    if op == "softmax":
        return {"out": ref_softmax(i["x"], p["m"], p["n"])}
    if op == "embedding":
        return {"out": decode(weight_of(case))[i["ids"]].reshape(-1)}
    if op == "rope":
        return {"out": ref_rope(i["x"], p["geom"], i["positions"], i["cos"], i["sin"])}
    if op == "attention":
        return {"out": ref_attention(i["q"], i["k"], i["v"], i["out"], p["geom"], p["scale"])}
    if op == "moe_route":
        idx, w, s = ref_route(i["logits"], p["m"], p["E"], p["cfg"], i["bias"].astype(np.float64), p["scaling"])
        return {"idx": idx, "weight": w, "scores": s}
    if op == "moe_experts":
        return {"out": ref_experts(i["x"], p["m"], p["h"], expert_weights(case), i["idx"], i["weight"].astype(np.float64), p["topK"])}
    raise ValueError(op)


def rel_err(got, ref):
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    if got.shape != ref.shape or not np.all(np.isfinite(got)):
        return math.inf
    d = np.abs(got - ref).max() if got.size else 0.0
    mx = np.abs(ref).max() if ref.size else 0.0
    return d / mx if mx > 0 else d


# ----------------------------------------------------------------------------------------------
# the library


class Lib:
    def __init__(self, path):
        L = C.CDLL(path)
        P, I64, I32, F, V = C.c_void_p, C.c_int64, C.c_int32, C.c_float, C.c_void_p
        sig = {
            "kc_abi_version": (C.c_int, []),
            "kc_last_error": (C.c_char_p, []),
            "kc_init": (C.c_int, []),
            "kc_device_info": (C.c_int, [C.c_char_p, C.c_size_t, C.POINTER(C.c_int), C.POINTER(C.c_int), C.POINTER(C.c_size_t), C.POINTER(C.c_int)]),
            "kc_prepare_linear": (V, [C.c_int, I64, I64, P, P]),
            "kc_release_linear": (None, [V]),
            "kc_linear": (C.c_int, [P, I64, V, P, P]),
            "kc_rmsnorm": (C.c_int, [P, I64, I64, P, F, P]),
            "kc_layernorm": (C.c_int, [P, I64, I64, P, P, F, P]),
            "kc_unary": (C.c_int, [C.c_int, P, I64, P]),
            "kc_binary": (C.c_int, [C.c_int, P, P, I64, P]),
            "kc_softmax": (C.c_int, [P, I64, I64]),
            "kc_embedding": (C.c_int, [V, P, I64, P]),
            "kc_rope": (C.c_int, [P, I64, P, P, P, P, I64]),
            "kc_attention": (C.c_int, [P, I64, P, I64, P, I64, P, I64, P, F]),
            "kc_moe_route": (C.c_int, [P, I64, I32, P, P, F, P, P, P]),
            "kc_moe_experts": (C.c_int, [P, I64, I64, P, I32, P, P, I32, P]),
            "kc_d_copy_bandwidth": (C.c_double, [C.c_size_t, C.c_int]),
            "kc_d_alloc": (V, [C.c_size_t]),
            "kc_d_free": (None, [V]),
            "kc_d_upload": (C.c_int, [V, P, C.c_size_t]),
            "kc_d_sync": (C.c_int, []),
            "kc_d_linear": (C.c_int, [V, I64, V, V, V]),
            "kc_d_download": (C.c_int, [P, V, C.c_size_t]),
            "kc_d_rmsnorm": (C.c_int, [V, I64, I64, I64, V, F, V, I64]),
            "kc_d_rope": (C.c_int, [V, P, V, V, V]),
            "kc_d_attention": (C.c_int, [V, V, V, V, P, F]),
            "kc_d_moe_route": (C.c_int, [V, I64, I32, P, V, F, V, V, V]),
            "kc_moe_group_create": (V, [P, I32]),
            "kc_moe_group_release": (None, [V]),
            "kc_d_moe_experts": (C.c_int, [V, I64, I64, V, V, V, I32, V]),
            "kc_d_linear_grouped": (C.c_int, [V, I64, I64, I32, I64, V, V, I64, I64]),
            "kc_d_argmax": (C.c_int, [V, I64, I64, V]),
            "kc_d_attention_at": (C.c_int, [V, V, V, V, P, F, V, I32]),
            "kc_d_append_rows": (C.c_int, [V, I64, V, I64, V]),
            "kc_set_q8_activations": (C.c_int, [C.c_int]),
            "kc_d_mla_prep": (C.c_int, [V, V, P, V, F, V, V, V, V, V, V]),
        }
        for name, (res, args) in sig.items():
            f = getattr(L, name)
            f.restype = res
            f.argtypes = args
            setattr(self, name[3:], f)

    def check(self, rc, what):
        if rc != 0:
            raise RuntimeError(f"{what}: {self.last_error().decode()}")

    def prepare(self, w):
        h = self.prepare_linear(FMT[w["fmt"]], w["n"], w["k"], ptr(w["data"]), ptr(w["scales"]))
        if not h:
            raise RuntimeError(f"prepare_linear: {self.last_error().decode()}")
        return h


def ptr(a):
    return None if a is None else a.ctypes.data_as(C.c_void_p)


def nanlike(n, dtype=np.float32):
    return np.full(n, np.nan, dtype) if dtype == np.float32 else np.full(n, -1, dtype)


def run_gpu(lib, case):
    op, p, i = case["op"], case["params"], case["inputs"]
    if op == "linear":
        w = lib.prepare(weight_of(case))
        out = nanlike(p["m"] * p["n"])
        try:
            lib.check(lib.linear(ptr(i["x"]), p["m"], w, ptr(i.get("bias")), ptr(out)), op)
        finally:
            lib.release_linear(w)
        return {"out": out}
    if op in ("rmsnorm", "layernorm"):
        out = nanlike(p["m"] * p["n"])
        if op == "rmsnorm":
            lib.check(lib.rmsnorm(ptr(i["x"]), p["m"], p["n"], ptr(i["w"]), p["eps"], ptr(out)), op)
        else:
            lib.check(lib.layernorm(ptr(i["x"]), p["m"], p["n"], ptr(i["w"]), ptr(i["b"]), p["eps"], ptr(out)), op)
        return {"out": out}
    if op in ("gelu_tanh", "gelu_erf", "silu"):
        out = nanlike(i["x"].size)
        lib.check(lib.unary({"gelu_tanh": 0, "gelu_erf": 1, "silu": 2}[op], ptr(i["x"]), i["x"].size, ptr(out)), op)
        return {"out": out}
    if op in ("add", "mul", "swiglu"):
        out = nanlike(i["a"].size)
        lib.check(lib.binary({"add": 0, "mul": 1, "swiglu": 2}[op], ptr(i["a"]), ptr(i["b"]), i["a"].size, ptr(out)), op)
        return {"out": out}
    if op == "softmax":
        x = i["x"].copy()
        lib.check(lib.softmax(ptr(x), p["m"], p["n"]), op)
        return {"out": x}
    if op == "embedding":
        w = lib.prepare(weight_of(case))
        out = nanlike(i["ids"].size * p["k"])
        try:
            lib.check(lib.embedding(w, ptr(i["ids"]), i["ids"].size, ptr(out)), op)
        finally:
            lib.release_linear(w)
        return {"out": out}
    if op == "rope":
        x = i["x"].copy()
        g = np.array(p["geom"], np.int32)
        lib.check(lib.rope(ptr(x), x.size, ptr(g), ptr(i["positions"]), ptr(i["cos"]), ptr(i["sin"]), i["cos"].size // (p["geom"][5] // 2)), op)
        return {"out": x}
    if op == "attention":
        g = np.array(p["geom"], np.int32)
        out = i["out"].copy()
        tq, nh, dv, ostr = p["geom"][0], p["geom"][2], p["geom"][5], p["geom"][9]
        for r in range(tq):
            out[r * ostr:r * ostr + nh * dv] = np.nan  # poison what the op writes; gaps must survive
        lib.check(lib.attention(ptr(i["q"]), i["q"].size, ptr(i["k"]), i["k"].size, ptr(i["v"]), i["v"].size, ptr(out), out.size, ptr(g), p["scale"]), op)
        return {"out": out}
    if op == "moe_route":
        m, E, cfg = p["m"], p["E"], p["cfg"]
        idx = nanlike(m * cfg[0], np.int32)
        w = nanlike(m * cfg[0])
        s = nanlike(m * E)
        c = np.array(cfg, np.int32)
        lib.check(lib.moe_route(ptr(i["logits"]), m, E, ptr(c), ptr(i["bias"]) if p["bias"] else None, p["scaling"], ptr(idx), ptr(w), ptr(s)), op)
        return {"idx": idx, "weight": w, "scores": s}
    if op == "moe_experts":
        ex = expert_weights(case)
        handles = []
        try:
            for e in ex:
                for nm in ("gate", "up", "down"):
                    handles.append(lib.prepare(e[nm]))
            arr = (C.c_void_p * len(handles))(*handles)
            out = nanlike(p["m"] * p["h"])
            lib.check(lib.moe_experts(ptr(i["x"]), p["m"], p["h"], C.cast(arr, C.c_void_p), p["E"], ptr(i["idx"]), ptr(i["weight"]), p["topK"], ptr(out)), op)
        finally:
            for h in handles:
                lib.release_linear(h)
        return {"out": out}
    raise ValueError(op)


# ----------------------------------------------------------------------------------------------
# the device-pointer layer (what the device-resident decode runs on): same references, inputs on the GPU


def ref_grouped(x, m, ldx, groups, xgs, w, ldo, ogs, out0):
    W = decode(w)
    n, k = w["n"] // groups, w["k"]
    out = out0.astype(np.float64).copy()
    for r in range(m):
        for g in range(groups):
            xv = x[r * ldx + g * xgs:r * ldx + g * xgs + k].astype(np.float64)
            out[r * ldo + g * ogs:r * ldo + g * ogs + n] = W[g * n:(g + 1) * n] @ xv
    return out


def build_device_cases(seed=20261130):
    rng = np.random.default_rng(seed)
    base = {c["name"]: c for c in build_cases()}
    cases = []
    for name in ("moeExperts f32 m=1", "moeExperts bf16 m=1", "moeExperts bf16 m=11", "moeExperts q8 m=11", "rope interleaved", "rope rotate_half",
                 "attention decode", "attention MLA decode (latent cache)", "attention MLA prefill chunk", "moeRoute softmax group_limited_greedy",
                 "moeRoute sigmoid noaux_tc"):
        c = dict(base[name])
        c["name"] = "device " + name
        c["op"] = "d_" + c["op"]
        cases.append(c)
    for fmt in ("f32", "bf16", "q8"):
        groups, n, k, m = 4, 24, 40, 3
        xgs, ldx, ogs, ldo = 48, 4 * 48 + 5, 30, 4 * 30 + 2
        w = make_weight(rng, groups * n, k, fmt)
        inp = {"x": randn(rng, m * ldx), "w_data": w["data"], "out0": np.full(m * ldo, 0.5, np.float32)}
        if w["scales"] is not None:
            inp["w_scales"] = w["scales"]
        cases.append({"name": f"device linearGrouped {fmt}", "op": "d_linear_grouped", "tol": TOL[fmt],
                      "params": {"fmt": fmt, "n": groups * n, "k": k, "m": m, "ldx": ldx, "groups": groups, "xgs": xgs, "ldo": ldo, "ogs": ogs}, "inputs": inp})
    m, n, ld = 4, 96, 130
    cases.append({"name": "device rmsnorm strided (in place)", "op": "d_rmsnorm", "tol": 1e-5, "params": {"m": m, "n": n, "ld": ld, "eps": 1e-6},
                  "inputs": {"x": randn(rng, m * ld, 2), "w": randn(rng, n)}})
    # the position-relative forms a captured decode step uses: attention at base[0], rows appended at base[0]
    for name in ("attention decode", "attention MLA decode (latent cache)", "attention MLA prefill chunk"):
        c = dict(base[name])
        c["name"] = "device " + name + " at a device base"
        c["op"] = "d_attention_at"
        cases.append(c)
    width, cap, rows, at = 72, 20, 3, 11
    cases.append({"name": "device appendRows at a device base", "op": "d_append_rows", "tol": 0, "params": {"width": width, "cap": cap, "rows": rows, "at": at},
                  "inputs": {"cache": randn(rng, cap * width), "src": randn(rng, rows * width)}})
    # the fused MLA step before attention: latent rmsnorm, ropes, cache append at base[0], q_pe into qAbs
    T, nh, nope, rp, kvl, cap, at = 3, 4, 16, 8, 24, 12, 5
    dq, lw, half, max_pos = nope + rp, kvl + rp, rp // 2, 40
    ang = np.arange(max_pos)[:, None] / 10000 ** (2 * np.arange(half)[None, :] / rp)
    cases.append({"name": "device mlaPrep (norm, ropes, append, q_pe)", "op": "d_mla_prep", "tol": 1e-5,
                  "params": {"T": T, "nh": nh, "dq": dq, "nope": nope, "rope": rp, "kvl": kvl, "cap": cap, "at": at, "eps": 1e-6},
                  "inputs": {"q": randn(rng, T * nh * dq), "kva": randn(rng, T * lw, 2), "w": randn(rng, kvl), "positions": np.array([at, at + 1, at + 2], np.int32),
                             "cos": np.cos(ang).astype(np.float32).reshape(-1), "sin": np.sin(ang).astype(np.float32).reshape(-1),
                             "cache": randn(rng, cap * lw), "qabs": randn(rng, T * nh * lw)}})
    x = randn(rng, 3 * 1000)
    x[1000 + 17] = x[1000 + 900] = 50.0  # a tie: the lower index wins
    cases.append({"name": "device argmax", "op": "d_argmax", "tol": 0, "params": {"m": 3, "n": 1000}, "inputs": {"x": x}})
    return cases


def device_reference(case):
    op, p, i = case["op"], case["params"], case["inputs"]
    if op == "d_linear_grouped":
        return {"out": ref_grouped(i["x"], p["m"], p["ldx"], p["groups"], p["xgs"], weight_of(case), p["ldo"], p["ogs"], i["out0"])}
    if op == "d_rmsnorm":
        out = i["x"].astype(np.float64).copy()
        for r in range(p["m"]):
            o = r * p["ld"]
            out[o:o + p["n"]] = ref_rmsnorm(i["x"][o:o + p["n"]], 1, p["n"], i["w"], p["eps"])
        return {"out": out}
    if op == "d_argmax":
        return {"out": i["x"].reshape(p["m"], p["n"]).argmax(1).astype(np.int32)}
    if op == "d_append_rows":
        out = i["cache"].astype(np.float64).copy()
        out[p["at"] * p["width"]:(p["at"] + p["rows"]) * p["width"]] = i["src"]
        return {"out": out}
    if op == "d_attention_at":
        return reference(dict(case, op="attention"))
    if op == "d_mla_prep":
        T, nh, dq, nope, rp, kvl, at = p["T"], p["nh"], p["dq"], p["nope"], p["rope"], p["kvl"], p["at"]
        lw = kvl + rp
        kva = i["kva"].reshape(T, lw).astype(np.float64).copy()
        kva[:, :kvl] = ref_rmsnorm(i["kva"].reshape(T, lw)[:, :kvl].copy(), T, kvl, i["w"], p["eps"]).reshape(T, kvl)
        roped_k = ref_rope(kva.reshape(-1).astype(np.float32), [T, 1, lw, lw, kvl, rp, 1], i["positions"], i["cos"], i["sin"]).reshape(T, lw)
        kva[:, kvl:] = roped_k[:, kvl:]
        cache = i["cache"].astype(np.float64).reshape(-1, lw).copy()
        cache[at:at + T] = kva
        qr = ref_rope(i["q"], [T, nh, dq, nh * dq, nope, rp, 1], i["positions"], i["cos"], i["sin"]).reshape(T, nh, dq)
        qabs = i["qabs"].astype(np.float64).reshape(T, nh, lw).copy()
        qabs[:, :, kvl:] = qr[:, :, nope:]
        return {"cache": cache.reshape(-1), "qabs": qabs.reshape(-1)}
    return reference(dict(case, op=op[2:]))


class Dev:
    """Device buffers of one case, freed together."""

    def __init__(self, lib):
        self.lib, self.ptrs = lib, []

    def put(self, a):
        a = np.ascontiguousarray(a)
        d = self.lib.d_alloc(max(a.nbytes, 4))
        self.ptrs.append(d)
        self.lib.check(self.lib.d_upload(d, ptr(a), a.nbytes), "upload")
        return d

    def get(self, d, n, dtype=np.float32):
        out = np.empty(n, dtype)
        self.lib.check(self.lib.d_download(ptr(out), d, out.nbytes), "download")
        return out

    def free(self):
        for d in self.ptrs:
            self.lib.d_free(d)


def run_device(lib, case):
    op, p, i = case["op"], case["params"], case["inputs"]
    D = Dev(lib)
    try:
        if op == "d_moe_experts":
            handles = [lib.prepare(e[nm]) for e in expert_weights(case) for nm in ("gate", "up", "down")]
            arr = (C.c_void_p * len(handles))(*handles)
            g = lib.moe_group_create(C.cast(arr, C.c_void_p), p["E"])
            try:
                if not g:
                    raise RuntimeError(lib.last_error().decode())
                out = D.put(nanlike(p["m"] * p["h"]))
                lib.check(lib.d_moe_experts(D.put(i["x"]), p["m"], p["h"], g, D.put(i["idx"]), D.put(i["weight"]), p["topK"], out), op)
                return {"out": D.get(out, p["m"] * p["h"])}
            finally:
                lib.moe_group_release(g)
                for h in handles:
                    lib.release_linear(h)
        if op == "d_rope":
            x = D.put(i["x"])
            lib.check(lib.d_rope(x, ptr(np.array(p["geom"], np.int32)), D.put(i["positions"]), D.put(i["cos"]), D.put(i["sin"])), op)
            return {"out": D.get(x, i["x"].size)}
        if op == "d_attention":
            g = p["geom"]
            out0 = i["out"].copy()
            for r in range(g[0]):
                out0[r * g[9]:r * g[9] + g[2] * g[5]] = np.nan
            out = D.put(out0)
            lib.check(lib.d_attention(D.put(i["q"]), D.put(i["k"]), D.put(i["v"]), out, ptr(np.array(g, np.int32)), p["scale"]), op)
            return {"out": D.get(out, out0.size)}
        if op == "d_moe_route":
            m, E, cfg = p["m"], p["E"], p["cfg"]
            idx, w, sc = D.put(nanlike(m * cfg[0], np.int32)), D.put(nanlike(m * cfg[0])), D.put(nanlike(m * E))
            lib.check(lib.d_moe_route(D.put(i["logits"]), m, E, ptr(np.array(cfg, np.int32)), D.put(i["bias"]) if p["bias"] else None, p["scaling"], idx, w, sc), op)
            return {"idx": D.get(idx, m * cfg[0], np.int32), "weight": D.get(w, m * cfg[0]), "scores": D.get(sc, m * E)}
        if op == "d_linear_grouped":
            h = lib.prepare(weight_of(case))
            try:
                out0 = i["out0"].copy()
                n = p["n"] // p["groups"]
                for r in range(p["m"]):
                    for gi in range(p["groups"]):
                        o = r * p["ldo"] + gi * p["ogs"]
                        out0[o:o + n] = np.nan
                out = D.put(out0)
                lib.check(lib.d_linear_grouped(D.put(i["x"]), p["m"], p["ldx"], p["groups"], p["xgs"], h, out, p["ldo"], p["ogs"]), op)
                return {"out": D.get(out, out0.size)}
            finally:
                lib.release_linear(h)
        if op == "d_rmsnorm":
            x = D.put(i["x"])
            lib.check(lib.d_rmsnorm(x, p["m"], p["n"], p["ld"], D.put(i["w"]), p["eps"], x, p["ld"]), op)
            return {"out": D.get(x, i["x"].size)}
        if op == "d_attention_at":
            g = list(p["geom"])
            tq, tk, qpos0 = g[0], g[1], g[11]
            base_ = D.put(np.array([qpos0], np.int32))
            rel = g[:]
            rel[1], rel[11] = tk - qpos0, 0  # keys and query positions relative to base[0]
            out0 = i["out"].copy()
            for r in range(tq):
                out0[r * g[9]:r * g[9] + g[2] * g[5]] = np.nan
            out = D.put(out0)
            lib.check(lib.d_attention_at(D.put(i["q"]), D.put(i["k"]), D.put(i["v"]), out, ptr(np.array(rel, np.int32)), p["scale"], base_, tk), op)
            return {"out": D.get(out, out0.size)}
        if op == "d_append_rows":
            cache = D.put(i["cache"])
            lib.check(lib.d_append_rows(cache, p["width"], D.put(i["src"]), p["rows"], D.put(np.array([p["at"]], np.int32))), op)
            return {"out": D.get(cache, i["cache"].size)}
        if op == "d_mla_prep":
            T, nh, rp, kvl, at = p["T"], p["nh"], p["rope"], p["kvl"], p["at"]
            lw = kvl + rp
            cache0 = i["cache"].copy()
            cache0[at * lw:(at + T) * lw] = np.nan  # poisoned: every appended value must be written
            qabs0 = i["qabs"].copy().reshape(T, nh, lw)
            qabs0[:, :, kvl:] = np.nan
            cache, qabs = D.put(cache0), D.put(qabs0.reshape(-1))
            geom = np.array([T, nh, p["dq"], p["nope"], rp, kvl], np.int32)
            lib.check(lib.d_mla_prep(D.put(i["q"]), D.put(i["kva"]), ptr(geom), D.put(i["w"]), p["eps"], D.put(i["cos"]), D.put(i["sin"]),
                                     D.put(i["positions"]), D.put(np.array([at], np.int32)), cache, qabs), op)
            return {"cache": D.get(cache, cache0.size), "qabs": D.get(qabs, qabs0.size)}
        if op == "d_argmax":
            out = D.put(np.full(p["m"], -1, np.int32))
            lib.check(lib.d_argmax(D.put(i["x"]), p["m"], p["n"], out), op)
            return {"out": D.get(out, p["m"], np.int32)}
        raise ValueError(op)
    finally:
        D.free()


def compare(case, got, ref):
    if case["op"] in ("d_argmax", "d_append_rows"):
        return 0.0 if np.array_equal(got["out"], ref["out"]) else math.inf
    if case["op"] == "d_mla_prep":
        return max(rel_err(got["cache"], ref["cache"]), rel_err(got["qabs"], ref["qabs"]))
    if case["op"] in ("moe_route", "d_moe_route"):
        if not np.array_equal(got["idx"], ref["idx"]):
            return math.inf
        return max(rel_err(got["weight"], ref["weight"]), rel_err(got["scores"], ref["scores"]))
    return rel_err(got["out"], ref["out"])


def bench_gemv(lib, lines):
    """Decode-shaped matrix-vector products on device buffers (no host copies): achieved weight-read bandwidth.
    A kernel-level figure, not end-to-end decode: it bounds what a device-resident decode could reach."""
    import time
    rng = np.random.default_rng(1)
    n, k = 16384, 8192
    for fmt in ("bf16", "q8"):
        w = make_weight(rng, n, k, fmt) if fmt == "q8" else {"fmt": "bf16", "n": n, "k": k, "data": rng.integers(0, 1 << 15, n * k, dtype=np.uint16) & 0x3fff | 0x3c00, "scales": None}
        h = lib.prepare(w)
        x = randn(rng, k)
        dx, dout = lib.d_alloc(k * 4), lib.d_alloc(n * 4)
        try:
            lib.check(lib.d_upload(dx, ptr(x), k * 4), "upload")
            bytes_ = w["data"].nbytes + (w["scales"].nbytes if w["scales"] is not None else 0)
            for _ in range(3):
                lib.check(lib.d_linear(dx, 1, h, None, dout), "d_linear")
            lib.check(lib.d_sync(), "sync")
            reps = 50
            t0 = time.perf_counter()
            for _ in range(reps):
                lib.check(lib.d_linear(dx, 1, h, None, dout), "d_linear")
            lib.check(lib.d_sync(), "sync")
            dt = (time.perf_counter() - t0) / reps
            lines.append(f"gemv {fmt} {n}x{k} (m=1, device buffers): {dt * 1e6:.1f} us, {bytes_ / dt / 1e9:.0f} GB/s of weights")
            print(lines[-1], flush=True)
        finally:
            lib.d_free(dx)
            lib.d_free(dout)
            lib.release_linear(h)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default="native/cuda/build/libkestrel_cuda.so")
    ap.add_argument("--log")
    ap.add_argument("--bench", action="store_true", help="also time decode-shaped GEMVs on device buffers")
    ap.add_argument("--emit", help="write cases + reference outputs to this directory and exit (no GPU)")
    args = ap.parse_args()
    cases = build_cases()
    if args.emit:
        os.makedirs(args.emit, exist_ok=True)
        manifest = []
        for n, case in enumerate(cases):
            ref = reference(case)
            files = {}
            for kind, arrays in (("in", case["inputs"]), ("ref", ref)):
                for name, a in arrays.items():
                    a = np.ascontiguousarray(a)
                    fn = f"{n:03d}_{kind}_{name}.bin"
                    a.tofile(os.path.join(args.emit, fn))
                    files[f"{kind}:{name}"] = {"file": fn, "dtype": str(a.dtype), "length": int(a.size)}
            manifest.append({"name": case["name"], "op": case["op"], "tol": case["tol"], "params": case["params"], "files": files})
        with open(os.path.join(args.emit, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
        print(f"wrote {len(cases)} cases to {args.emit}")
        return 0
    lib = Lib(os.path.abspath(args.lib))
    if lib.abi_version() != 3:
        print("library ABI version mismatch; rebuild", file=sys.stderr)
        return 2
    if lib.init() != 0:
        print(f"CUDA unavailable: {lib.last_error().decode()}", file=sys.stderr)
        return 2
    name = C.create_string_buffer(256)
    ma, mi, sms, mem = C.c_int(), C.c_int(), C.c_int(), C.c_size_t()
    lib.device_info(name, 256, C.byref(ma), C.byref(mi), C.byref(mem), C.byref(sms))
    lines = [f"device: {name.value.decode()} (sm_{ma.value}{mi.value}, {sms.value} SMs, {mem.value / 2**30:.1f} GiB)"]
    failed = 0
    cases = cases + build_device_cases()
    # the q8 cases once more with f32 activations (kc_set_q8_activations(0)); the default quantizes them to int8
    q8f = [dict(c, name=c["name"] + " [q8 with f32 activations]", q8f32=True) for c in cases if "q8" in c["name"] and "embedding" not in c["name"]]
    for case in cases + q8f:
        dev = case["op"].startswith("d_")
        ref = device_reference(case) if dev else reference(case)
        try:
            lib.check(lib.set_q8_activations(0 if case.get("q8f32") else 1), "set_q8_activations")
            got = run_device(lib, case) if dev else run_gpu(lib, case)
            err = compare(case, got, ref)
        except Exception as e:  # one failing op must not hide the others
            err = math.inf
            lines.append(f"  error in {case['name']}: {e}")
        ok = err <= case["tol"]
        failed += 0 if ok else 1
        lines.append(f"{'PASS' if ok else 'FAIL'} {case['name']}: rel err {err:.2e} (tol {case['tol']})")
        print(lines[-1], flush=True)
    lib.check(lib.set_q8_activations(1), "set_q8_activations")
    cases = cases + q8f
    bw = lib.d_copy_bandwidth(1 << 30, 20)
    lines.append(f"device copy bandwidth (read+write): {bw:.0f} GB/s")
    print(lines[-1], flush=True)
    if args.bench:
        try:
            bench_gemv(lib, lines)
        except Exception as e:
            lines.append(f"bench failed: {e}")
    lines.append(f"{len(cases) - failed}/{len(cases)} ops pass")
    print(lines[-1])
    if args.log:
        with open(args.log, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
