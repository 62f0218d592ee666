#!/usr/bin/env python3
"""Reference logits of HF transformers for one tiny random-weight model per family (issue 28).

For each family this script
  1. makes a tiny config (2 layers, GQA, the family's features) and lets transformers save a
     model of it (save_pretrained: config.json and the safetensors names users' files have);
  2. overwrites every stored tensor with values from a counter-based rule (below) that lrc's
     C++ test (tests/test_model_arch_refs.cpp) reproduces bit for bit, so the weights need not
     be committed;
  3. loads that directory back with from_pretrained (fp32, eager attention) and records the
     logits for fixed token ids.
Output: <out>/<family>.json with the saved config.json, the tensor list (name, shape, scale,
offset), the token ids and the logits; lrc's test writes the same HF directory from it and
compares its own logits (max abs diff < 1e-3).

Weight rule (exact in float32 in both languages): tensor t (its index in the sorted name list),
element i (row-major):  key = seed·2^48 + (t+1)·2^32 + i,  k = splitmix64(key) >> 40  (24 bits),
value = float32(offset + scale · (k / 2^23 − 1)), computed in float64 then rounded once.

Needs torch, transformers, safetensors, numpy (the GPU machine has them; runs on its CPU):
  python3 scripts/make-arch-refs.py --out tests/data/arch
"""
import argparse
import json
import math
import os
import sys
import tempfile
import traceback

import numpy as np

SEED = 28
TOKENS = [(i * 37 + 11) % 264 for i in range(10)]

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(x):
    """x: uint64 array; the standard splitmix64 output function (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def rule_values(t, n, scale, offset, seed=SEED):
    """float32[n]: tensor t's values (see the module docstring)."""
    base = (np.uint64(seed) << np.uint64(48)) + (np.uint64(t + 1) << np.uint64(32))
    k = splitmix64(base + np.arange(n, dtype=np.uint64)) >> np.uint64(40)
    u = k.astype(np.float64) / float(1 << 23) - 1.0
    return (offset + scale * u).astype(np.float32)


def scale_offset(name, shape):
    """Magnitudes that keep activations O(1): norms near 1, biases 0.5, linears ~1/sqrt(d_in)."""
    if len(shape) == 1:
        if name.endswith(".bias"):
            return 0.5, 0.0
        return 0.25, 1.0  # norm weights in [0.75, 1.25)
    if "embed_tokens" in name:
        return 1.0, 0.0
    d_in = shape[-1]
    return 2.0 ** -round(math.log2(math.sqrt(d_in))), 0.0


def families():
    common = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=264,
                  rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                  hidden_act="silu")
    return {
        # Llama-3.1: theta 5e5, llama3 scaling whose three regimes all occur at head_dim 16
        # (wavelengths 6, 33, 168 kept; 872 smoothed; >= 4500 divided by 8), untied head.
        "llama3": ("llama", dict(common, head_dim=16, max_position_embeddings=8192,
                                 rope_theta=500000.0, tie_word_embeddings=False,
                                 rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                               "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                               "original_max_position_embeddings": 1024})),
        # Mistral: a sliding window (5) shorter than the 12 test tokens, 4:1 GQA.
        "mistral": ("mistral", dict(common, num_key_value_heads=1, head_dim=16,
                                    max_position_embeddings=256, rope_theta=10000.0,
                                    sliding_window=5, tie_word_embeddings=False)),
        # Qwen2: q/k/v biases, tied embeddings (as the small Qwen2.5 models).
        "qwen2": ("qwen2", dict(common, max_position_embeddings=256, rope_theta=1000000.0,
                                tie_word_embeddings=True, use_sliding_window=False)),
        # Qwen3: per-head q/k RMSNorm, head_dim 32 != hidden/heads (q width 128 != 64).
        "qwen3": ("qwen3", dict(common, head_dim=32, max_position_embeddings=256,
                                rope_theta=1000000.0, tie_word_embeddings=False,
                                attention_bias=False, use_sliding_window=False)),
        # Phi-3: fused qkv_proj / gate_up_proj, longrope (short factors below 64 positions,
        # attention factor sqrt(1 + ln 4 / ln 64)).
        "phi3": ("phi3", dict(common, max_position_embeddings=256,
                              original_max_position_embeddings=64, rope_theta=10000.0,
                              tie_word_embeddings=False,
                              rope_scaling={"type": "longrope",
                                            "short_factor": [1.0, 1.1, 1.3, 1.6, 2.0, 2.5, 3.1, 3.8],
                                            "long_factor": [1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0]})),
        # Mixtral: 4 experts, top-2 routing.
        "mixtral": ("mixtral", dict(common, intermediate_size=64, max_position_embeddings=256,
                                    rope_theta=1000000.0, num_local_experts=4,
                                    num_experts_per_tok=2, tie_word_embeddings=False,
                                    sliding_window=None, router_jitter_noise=0.0)),
    }


def from_pretrained(cls, path):
    import torch
    try:
        return cls.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    except TypeError:
        return cls.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager")


def make_family(name, model_type, kw, out_dir, log):
    import torch
    import transformers
    from safetensors import safe_open
    from safetensors.numpy import save_file
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = AutoConfig.for_model(model_type, **kw)
    with tempfile.TemporaryDirectory() as d:
        AutoModelForCausalLM.from_config(cfg).save_pretrained(d)
        files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
        if files != ["model.safetensors"]:
            raise RuntimeError(f"expected one model.safetensors, saved {files}")
        path = os.path.join(d, "model.safetensors")
        with safe_open(path, framework="np") as f:
            names = sorted(f.keys())
            shapes = {n: list(f.get_slice(n).get_shape()) for n in names}
        tensors, listing = {}, []
        for t, n in enumerate(names):
            scale, offset = scale_offset(n, shapes[n])
            numel = int(np.prod(shapes[n]))
            tensors[n] = rule_values(t, numel, scale, offset).reshape(shapes[n])
            listing.append({"name": n, "shape": shapes[n], "scale": scale, "offset": offset})
        save_file(tensors, path, metadata={"format": "pt"})
        with open(os.path.join(d, "config.json")) as f:
            config = json.load(f)
        model = from_pretrained(AutoModelForCausalLM, d).eval()
        # The loaded parameters are the generated ones (where names match the file's).
        sd = model.state_dict()
        matched = 0
        for n, v in tensors.items():
            if n in sd:
                diff = float(np.abs(sd[n].float().numpy() - v).max())
                if diff != 0.0:
                    raise RuntimeError(f"{n}: loaded values differ from the rule by {diff}")
                matched += 1
        log.write(f"{name}: {len(names)} tensors in the file, {matched} matched state_dict "
                  f"names, {len(sd)} state_dict entries\n")
        with torch.no_grad():
            logits = model(torch.tensor([TOKENS])).logits[0].float().numpy()
    ref = {
        "family": name,
        "reference": "transformers",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "seed": SEED,
        "rule": "tensor t, element i: key = seed*2^48 + (t+1)*2^32 + i; "
                "k = splitmix64(key) >> 40; value = float32(offset + scale*(k/2^23 - 1))",
        "config": config,
        "tensors": listing,
        "tokens": TOKENS,
        "logits_shape": list(logits.shape),
        "logits": [float("%.6g" % x) for x in logits.reshape(-1)],
    }
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
    log.write(f"{name}: logits {list(logits.shape)}, max |logit| {float(np.abs(logits).max()):.4f}\n")


# ---- an independent numpy forward (HF's modeling code transcribed), for a machine without
# torch: `--numpy` writes the same files with "reference": "numpy". transformers' own logits
# (the default) are what the committed files hold when their "reference" says "transformers".

def hf_names(model_type, c):
    """The safetensors names transformers saves for config dict c (sorted)."""
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    if not c.get("tie_word_embeddings"):
        names.append("lm_head.weight")
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        names += [p + "input_layernorm.weight", p + "post_attention_layernorm.weight",
                  p + "self_attn.o_proj.weight"]
        if model_type == "phi3":
            names += [p + "self_attn.qkv_proj.weight", p + "mlp.gate_up_proj.weight",
                      p + "mlp.down_proj.weight"]
            continue
        names += [p + f"self_attn.{x}_proj.weight" for x in "qkv"]
        if model_type == "qwen2":
            names += [p + f"self_attn.{x}_proj.bias" for x in "qkv"]
        if model_type == "qwen3":
            names += [p + "self_attn.q_norm.weight", p + "self_attn.k_norm.weight"]
        if model_type == "mixtral":
            names.append(p + "block_sparse_moe.gate.weight")
            for e in range(c["num_local_experts"]):
                names += [p + f"block_sparse_moe.experts.{e}.w{j}.weight" for j in (1, 2, 3)]
        else:
            names += [p + f"mlp.{x}_proj.weight" for x in ("gate", "up", "down")]
    return sorted(names)


def hf_shape(name, c):
    hd = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    H, K, D, F = c["num_attention_heads"], c["num_key_value_heads"], c["hidden_size"], c["intermediate_size"]
    if name.endswith("norm.weight"):
        return [hd] if ("q_norm" in name or "k_norm" in name) else [D]
    if "embed_tokens" in name or name == "lm_head.weight":
        return [c["vocab_size"], D]
    table = {"q_proj.weight": [H * hd, D], "k_proj.weight": [K * hd, D], "v_proj.weight": [K * hd, D],
             "q_proj.bias": [H * hd], "k_proj.bias": [K * hd], "v_proj.bias": [K * hd],
             "o_proj.weight": [D, H * hd], "qkv_proj.weight": [(H + 2 * K) * hd, D],
             "gate_up_proj.weight": [2 * F, D], "gate_proj.weight": [F, D], "up_proj.weight": [F, D],
             "down_proj.weight": [D, F], "gate.weight": [c.get("num_local_experts", 0), D],
             "w1.weight": [F, D], "w3.weight": [F, D], "w2.weight": [D, F]}
    return table[".".join(name.split(".")[-2:])]


def np_inv_freq(c, hd, seq_len):
    rp = c.get("rope_parameters") or dict(c.get("rope_scaling") or {}, rope_theta=c.get("rope_theta"))
    base = rp["rope_theta"]
    inv = 1.0 / (base ** (np.arange(0, hd, 2, dtype=np.int64).astype(np.float32) / hd))
    t = rp.get("rope_type", rp.get("type", "default"))
    att = 1.0
    if t == "llama3":
        f, lo, hi, old = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"], rp["original_max_position_embeddings"]
        wl = 2 * math.pi / inv
        inv_l = np.where(wl > old / lo, inv / f, inv)
        sm = (old / wl - lo) / (hi - lo)
        smoothed = (1 - sm) * inv_l / f + sm * inv_l
        med = ~(wl < old / hi) & ~(wl > old / lo)
        inv = np.where(med, smoothed, inv_l)
    elif t in ("longrope", "su"):
        orig = rp.get("original_max_position_embeddings") or c.get("original_max_position_embeddings")
        factor = rp.get("factor") or c["max_position_embeddings"] / orig
        att = rp.get("attention_factor") or (1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(orig)))
        ext = np.array(rp["long_factor"] if seq_len > orig else rp["short_factor"], dtype=np.float32)
        inv = 1.0 / (ext * base ** (np.arange(0, hd, 2, dtype=np.int64).astype(np.float32) / hd))
    return inv.astype(np.float32), att


def np_forward(model_type, c, W, tokens):
    f32 = np.float32
    eps = c["rms_norm_eps"]
    hd = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    H, K = c["num_attention_heads"], c["num_key_value_heads"]
    T = len(tokens)

    def rms(x, w):
        return (x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + eps)).astype(f32) * w

    inv, att = np_inv_freq(c, hd, T)
    ang = np.arange(T, dtype=np.float32)[:, None] * inv[None, :]
    emb = np.concatenate([ang, ang], -1)
    cos, sin = np.cos(emb) * att, np.sin(emb) * att

    def rope(x):  # [T, heads, hd]
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        rot = np.concatenate([-x2, x1], -1)
        return x * cos[:, None, :] + rot * sin[:, None, :]

    window = c.get("sliding_window") if model_type in ("mistral", "phi3", "mixtral") else None
    qi, ki = np.arange(T)[:, None], np.arange(T)[None, :]
    mask = ki <= qi
    if window:
        mask &= ki > qi - window
    silu = lambda v: v / (1 + np.exp(-v))
    h = W["model.embed_tokens.weight"][tokens].astype(f32)
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rms(h, W[p + "input_layernorm.weight"])
        if model_type == "phi3":
            qkv = x @ W[p + "self_attn.qkv_proj.weight"].T
            q, k, v = qkv[:, : H * hd], qkv[:, H * hd: (H + K) * hd], qkv[:, (H + K) * hd:]
        else:
            q, k, v = (x @ W[p + f"self_attn.{n}_proj.weight"].T for n in "qkv")
            if model_type == "qwen2":
                q, k, v = (a + W[p + f"self_attn.{n}_proj.bias"] for a, n in zip((q, k, v), "qkv"))
        q, k, v = q.reshape(T, H, hd), k.reshape(T, K, hd), v.reshape(T, K, hd)
        if model_type == "qwen3":
            q, k = rms(q, W[p + "self_attn.q_norm.weight"]), rms(k, W[p + "self_attn.k_norm.weight"])
        q, k = rope(q), rope(k)
        out = np.zeros((T, H, hd), f32)
        for hh in range(H):
            g = hh // (H // K)
            s = (q[:, hh] @ k[:, g].T) / math.sqrt(hd)
            s = np.where(mask, s, -np.inf)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            out[:, hh] = s @ v[:, g]
        h = h + out.reshape(T, H * hd) @ W[p + "self_attn.o_proj.weight"].T
        x = rms(h, W[p + "post_attention_layernorm.weight"])
        if model_type == "phi3":
            gu = x @ W[p + "mlp.gate_up_proj.weight"].T
            F = gu.shape[1] // 2
            y = (silu(gu[:, :F]) * gu[:, F:]) @ W[p + "mlp.down_proj.weight"].T
        elif model_type == "mixtral":
            logits = x @ W[p + "block_sparse_moe.gate.weight"].T
            pr = np.exp(logits - logits.max(-1, keepdims=True))
            pr /= pr.sum(-1, keepdims=True)
            top = np.argsort(-pr, -1, kind="stable")[:, : c["num_experts_per_tok"]]
            y = np.zeros_like(x)
            for t in range(T):
                ws = pr[t, top[t]] / pr[t, top[t]].sum()
                for w, e in zip(ws, top[t]):
                    q1 = p + f"block_sparse_moe.experts.{e}."
                    y[t] += w * ((silu(x[t] @ W[q1 + "w1.weight"].T) * (x[t] @ W[q1 + "w3.weight"].T)) @ W[q1 + "w2.weight"].T)
        else:
            y = (silu(x @ W[p + "mlp.gate_proj.weight"].T) * (x @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
        h = h + y
    x = rms(h, W["model.norm.weight"])
    head = W["lm_head.weight"] if "lm_head.weight" in W else W["model.embed_tokens.weight"]
    return (x @ head.T).astype(f32)


def make_family_numpy(name, model_type, kw, out_dir, log):
    import transformers
    from transformers import AutoConfig
    with tempfile.TemporaryDirectory() as d:
        AutoConfig.for_model(model_type, **kw).save_pretrained(d)
        with open(os.path.join(d, "config.json")) as f:
            config = json.load(f)
    names = hf_names(model_type, config)
    W, listing = {}, []
    for t, n in enumerate(names):
        shape = hf_shape(n, config)
        scale, offset = scale_offset(n, shape)
        W[n] = rule_values(t, int(np.prod(shape)), scale, offset).reshape(shape)
        listing.append({"name": n, "shape": shape, "scale": scale, "offset": offset})
    logits = np_forward(model_type, config, W, TOKENS)
    ref = {"family": name, "reference": "numpy", "transformers": transformers.__version__ + " (config only)",
           "seed": SEED, "config": config, "tensors": listing, "tokens": TOKENS,
           "logits_shape": list(logits.shape), "logits": [float("%.6g" % x) for x in logits.reshape(-1)]}
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
    log.write(f"{name}: numpy logits {list(logits.shape)}, max |logit| {float(np.abs(logits).max()):.4f}\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--numpy", action="store_true", help="no torch: the numpy forward above")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    failed = 0
    with open(os.path.join(a.out, "make-arch-refs.log"), "w") as log:
        for name, (model_type, kw) in families().items():
            if a.only and name not in a.only:
                continue
            try:
                (make_family_numpy if a.numpy else make_family)(name, model_type, kw, a.out, log)
            except Exception:
                failed += 1
                log.write(f"{name}: FAILED\n{traceback.format_exc()}\n")
            log.flush()
    print(open(os.path.join(a.out, "make-arch-refs.log")).read())
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
