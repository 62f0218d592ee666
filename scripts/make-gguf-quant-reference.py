#!/usr/bin/env python3
"""tests/data/gguf_py_quant_reference.dat (a GGUF file; not named .gguf, which .gitignore
excludes): ggml quant blocks made by the reference
implementation (gguf-py, pip install gguf), to check lrc's dequantization against it.

For each type T in F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 the file holds a [4 x 64] tensor
"<T>" quantized by gguf.quants.quantize and an F32 tensor "<T>.ref" with
gguf.quants.dequantize of it. tests/test_io_gguf_dequant.cpp checks lrc gives the same floats.
"""
import os
import sys

import numpy as np
import gguf
from gguf.quants import dequantize, quantize

T = gguf.GGMLQuantizationType
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "gguf_py_quant_reference.dat")
out = os.path.normpath(out)
rng = np.random.default_rng(42)
x = (rng.standard_normal((4, 64)) * np.array([[0.01], [1.0], [30.0], [1e-4]])).astype(np.float32)
x[1, :32] = 0.0  # an all-zero block
w = gguf.GGUFWriter(out, "none")
w.add_string("generator", "scripts/make-gguf-quant-reference.py, gguf " + gguf.__version__
             if hasattr(gguf, "__version__") else "scripts/make-gguf-quant-reference.py")
for t in (T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1):
    if t == T.F16:
        q = x.astype(np.float16)
        w.add_tensor(t.name, q)
        ref = q.astype(np.float32)
    else:
        q = quantize(x, t)
        w.add_tensor(t.name, q, raw_shape=q.shape, raw_dtype=t)
        ref = dequantize(q, t).astype(np.float32)
    w.add_tensor(t.name + ".ref", ref)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(out, os.path.getsize(out), "bytes")
