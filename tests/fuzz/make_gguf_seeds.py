#!/usr/bin/env python3
"""Seed corpus for tests/fuzz/fuzz_gguf.cpp.

Writes into OUTDIR:
  - prefixes of the real SmolLM2 GGUF (header, metadata, the start of the vocabulary) and
    truncated variants of them,
  - a complete tiny Llama GGUF written by gguf-py (pip install gguf): tensors of every type lrc
    dequantizes (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1), a byte-level BPE vocabulary,
    and its truncations,
  - a metadata-only file with every value type (nested arrays included).
Usage: tests/fuzz/make_gguf_seeds.py OUTDIR [--gguf FILE]
"""
import argparse
import os
import struct

import numpy as np


def tiny_model(path):
    import gguf
    from gguf.quants import quantize
    T = gguf.GGMLQuantizationType
    rng = np.random.default_rng(0)
    dim, hidden, n_layers, n_heads, n_kv = 64, 96, 1, 4, 2
    hd = dim // n_heads
    # vocabulary: the 256 byte tokens (GPT-2 mapping) + 3 merges + 2 control tokens
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_tok = {b: chr(c) for b, c in zip(bs, cs)}
    tokens = [byte_tok[b] for b in range(256)] + ["Ġt", "he", "Ġthe", "<|im_start|>", "<|im_end|>"]
    types = [1] * 259 + [3, 3]
    merges = ["Ġ t", "h e", "Ġt he"]
    vocab = len(tokens)

    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(128)
    w.add_embedding_length(dim)
    w.add_feed_forward_length(hidden)
    w.add_block_count(n_layers)
    w.add_head_count(n_heads)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(259)
    w.add_eos_token_id(260)

    def mat(rows, cols):
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def add(name, data, qtype):
        if qtype in (T.F32,):
            w.add_tensor(name, data)
        elif qtype == T.F16:
            w.add_tensor(name, data.astype(np.float16))
        else:
            q = quantize(data, qtype)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)

    add("token_embd.weight", mat(vocab, dim), T.Q8_0)
    add("blk.0.attn_norm.weight", np.ones(dim, np.float32), T.F32)
    add("blk.0.attn_q.weight", mat(n_heads * hd, dim), T.F16)
    add("blk.0.attn_k.weight", mat(n_kv * hd, dim), T.Q4_0)
    add("blk.0.attn_v.weight", mat(n_kv * hd, dim), T.Q4_1)
    add("blk.0.attn_output.weight", mat(dim, dim), T.Q5_0)
    add("blk.0.ffn_norm.weight", np.ones(dim, np.float32), T.F32)
    add("blk.0.ffn_gate.weight", mat(hidden, dim), T.Q5_1)
    add("blk.0.ffn_up.weight", mat(hidden, dim), T.BF16)
    add("blk.0.ffn_down.weight", mat(dim, hidden), T.F32)
    add("output_norm.weight", np.ones(dim, np.float32), T.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def all_value_types():
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b
    kv = [
        (0, struct.pack("<B", 7)), (1, struct.pack("<b", -7)), (2, struct.pack("<H", 700)),
        (3, struct.pack("<h", -700)), (4, struct.pack("<I", 70000)), (5, struct.pack("<i", -70000)),
        (6, struct.pack("<f", 0.5)), (7, b"\x01"), (8, s("text")), (10, struct.pack("<Q", 1 << 40)),
        (11, struct.pack("<q", -(1 << 40))), (12, struct.pack("<d", 0.25)),
        (9, struct.pack("<IQ", 8, 2) + s("a") + s("b")),
        (9, struct.pack("<IQ", 9, 2) + struct.pack("<IQ", 5, 1) + struct.pack("<i", 3)
         + struct.pack("<IQ", 8, 1) + s("z")),
    ]
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv))
    for i, (t, v) in enumerate(kv):
        out += s(f"k{i}") + struct.pack("<I", t) + v
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--gguf", default=os.path.join(
        os.environ.get("LRC_CACHE", os.path.expanduser("~/.cache/lrc")),
        "SmolLM2-135M-Instruct.Q4_1.gguf"))
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)

    def put(name, data):
        with open(os.path.join(a.outdir, name), "wb") as f:
            f.write(data)

    if os.path.exists(a.gguf):
        with open(a.gguf, "rb") as f:
            head = f.read(1 << 16)
        for n in (4, 8, 16, 24, 40, 100, 512, 1024, 4096, 16384, 65536):
            put(f"real_prefix_{n}", head[:n])
    put("all_value_types", all_value_types())
    tiny = os.path.join(a.outdir, "tiny_llama.gguf")
    tiny_model(tiny)
    with open(tiny, "rb") as f:
        data = f.read()
    for frac in (0.1, 0.5, 0.9):
        put(f"tiny_llama_cut{int(frac * 100)}", data[:int(len(data) * frac)])
    print(f"{a.outdir}: {len(os.listdir(a.outdir))} seeds")


if __name__ == "__main__":
    main()
