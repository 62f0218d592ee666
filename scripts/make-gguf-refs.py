#!/usr/bin/env python3
"""tests/data/arch/phi3-llamacpp.gguf.dat (a GGUF file; not named .gguf, which .gitignore
excludes): the tiny Phi-3 of scripts/make-arch-refs.py (tests/data/arch/phi3.json) as llama.cpp's
convert_hf_to_gguf.py (class Phi3MiniModel, default --outtype f16) writes it, made with gguf-py,
llama.cpp's own GGUF writer, and none of lrc's code. tests/test_model_arch_refs.cpp
(ArchGguf.Phi3AsLlamaCppConvertsIt) loads it and compares the logits with transformers'.

What the converter does for Phi3ForCausalLM, and so this script:
  * tensor names from gguf-py's map for MODEL_ARCH.PHI3: qkv_proj -> blk.N.attn_qkv and
    gate_up_proj -> blk.N.ffn_up stay fused as HF stores them (q, k, v rows; gate rows first);
    q and k are not permuted (llama.cpp runs Phi-3 with NEOX RoPE, HF's half split);
  * 2-D weights in F16, 1-D norms in F32 (what --outtype f16 gives);
  * keys phi3.context_length, .rope.scaling.original_context_length, .embedding_length,
    .feed_forward_length, .block_count, .attention.head_count(_kv),
    .attention.layer_norm_rms_epsilon, .rope.dimension_count, .rope.freq_base,
    .attention.sliding_window (0 for none), general.file_type;
  * for longrope: phi3.rope.scaling.attn_factor = sqrt(1 + ln(s) / ln(original)) with
    s = context / original, and rope_factors_long.weight / rope_factors_short.weight (F32).
The vocabulary is left out (a real Phi-3's would be tokenizer.ggml.model "llama"); the test
passes the reference's byte tokenizer with --tokenizer.

The weights come from the counter rule of scripts/make-arch-refs.py (imported from it). F32
would be 431 KB; F16 keeps the file at 216 KB and the logits within 5.5e-4 of transformers'.

  pip install numpy gguf   # gguf-py, as llama.cpp's gguf-py/ directory
  python3 scripts/make-gguf-refs.py [--out PATH]
"""
import argparse
import importlib.util
import json
import math
import os

import numpy as np
import gguf

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))


def arch_refs():
    """scripts/make-arch-refs.py as a module (its name has dashes)."""
    spec = importlib.util.spec_from_file_location("make_arch_refs", os.path.join(HERE, "make-arch-refs.py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def hf_tensors(ref, rule_values):
    """{HF name: float32 array} of the reference model, by the counter rule (tensor t = its index
    in the reference's sorted tensor list)."""
    out = {}
    for t, e in enumerate(ref["tensors"]):
        n = int(np.prod(e["shape"]))
        out[e["name"]] = rule_values(t, n, e["scale"], e["offset"], seed=ref["seed"]).reshape(e["shape"])
    return out


def write_phi3(ref, W, path):
    c = ref["config"]
    rp = c.get("rope_parameters") or dict(c.get("rope_scaling") or {}, rope_theta=c.get("rope_theta"))
    n_embd, n_head = c["hidden_size"], c["num_attention_heads"]
    rope_dims = int(rp.get("partial_rotary_factor", 1.0) * n_embd) // n_head
    ctx = c["max_position_embeddings"]
    orig = rp.get("original_max_position_embeddings") or c.get("original_max_position_embeddings")
    w = gguf.GGUFWriter(path, "phi3")  # general.architecture
    w.add_name("lrc arch reference phi3")
    w.add_context_length(ctx)
    w.add_rope_scaling_orig_ctx_len(orig)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_block_count(c["num_hidden_layers"])
    w.add_head_count(n_head)
    w.add_head_count_kv(c["num_key_value_heads"])
    w.add_layer_norm_rms_eps(c["rms_norm_eps"])
    w.add_rope_dimension_count(rope_dims)
    w.add_rope_freq_base(rp["rope_theta"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_sliding_window(c.get("sliding_window") or 0)

    # The converter's generate_extra_tensors: LongRoPE's attention factor and factor tensors.
    long_f, short_f = rp.get("long_factor"), rp.get("short_factor")
    if long_f:
        scale = ctx / orig
        kind = rp.get("rope_type", rp.get("type", "")).lower()
        assert kind in ("longrope", "su"), kind
        w.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(scale) / math.log(orig)) if scale > 1.0 else 1.0)
        assert len(long_f) == len(short_f) == rope_dims // 2
        w.add_tensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FACTORS_LONG] + ".weight",
                     np.asarray(long_f, dtype=np.float32))
        w.add_tensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FACTORS_SHORT] + ".weight",
                     np.asarray(short_f, dtype=np.float32))

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.PHI3, c["num_hidden_layers"])
    for hf_name, data in W.items():
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        assert name is not None, hf_name
        w.add_tensor(name, data.astype(np.float16) if data.ndim == 2 else data.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default=os.path.join(ROOT, "tests", "data", "arch", "phi3.json"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "arch", "phi3-llamacpp.gguf.dat"))
    a = ap.parse_args()
    with open(a.ref) as f:
        ref = json.load(f)
    assert ref["config"]["model_type"] == "phi3"
    write_phi3(ref, hf_tensors(ref, arch_refs().rule_values), a.out)
    print(a.out, os.path.getsize(a.out), "bytes")


if __name__ == "__main__":
    main()
