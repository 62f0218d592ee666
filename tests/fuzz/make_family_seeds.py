#!/usr/bin/env python3
"""fuzz_hf_model seeds for the model families (issue 28): one tiny HF directory per family, as
fuzz_files.h's parts (config.json, then model.safetensors), from the configs and tensor lists of
tests/data/arch/<family>.json (every weight 0.01: the loader's paths, not the numbers, matter).
Usage: tests/fuzz/make_family_seeds.py OUT_DIR   (e.g. build-fuzz/fuzz-seeds/fuzz_hf_model)"""
import json
import os
import struct
import sys

SEP = b"\n--LRC-FUZZ-PART--\n"
root = os.path.join(os.path.dirname(__file__), "..", "data", "arch")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for fam in ["llama3", "mistral", "qwen2", "qwen3", "phi3"]:
    ref = json.load(open(os.path.join(root, fam + ".json")))
    header, blobs, off = {}, [], 0
    for t in ref["tensors"]:
        n = 1
        for d in t["shape"]:
            n *= d
        data = struct.pack("<%df" % n, *([0.01] * n))
        header[t["name"]] = {"dtype": "F32", "shape": t["shape"], "data_offsets": [off, off + len(data)]}
        off += len(data)
        blobs.append(data)
    h = json.dumps(header).encode()
    st = struct.pack("<Q", len(h)) + h + b"".join(blobs)
    with open(os.path.join(out, "family-" + fam + ".bin"), "wb") as f:
        f.write(json.dumps(ref["config"]).encode() + SEP + st)
