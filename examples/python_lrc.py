"""Worked example of the Python package (README, "Python"): LRC on one linear of the default
model from numpy activations, then the whole model.

    . build/venv/bin/activate
    python examples/python_lrc.py [--shared ../shared] [--out /tmp/lrc-example]

1. Activations: the input of layer 0's q/k/v projections for a few thousand calibration tokens,
   computed in numpy from the model's own arrays (token embeddings, then RMSNorm with the
   layer's input_layernorm weight). No rotation here: these are the raw activations, outliers
   and all, which is what makes 4-bit activations hard.
2. lrc.Stats accumulates XXᵀ, YYᵀ, XYᵀ (Y = Q_a(X), 4 bits, clip 0.9) in float64.
3. lrc.solve with GPTQ (QuaRot's baseline) and with LRC at 10% rank (Algorithm 1); both eq. 2
   objectives are printed, relative to ‖WX‖².
4. lrc.quantize runs the whole pipeline (QuaRot + LRC 10%) and lrc.eval_ppl scores it.
"""
import argparse
import os
import time
from pathlib import Path

import numpy as np

import lrc


def main():
    repo = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.environ.get("LRC_SHARED", repo.parent / "shared"))
    ap.add_argument("--out", default="/tmp/lrc-example")
    ap.add_argument("--tokens", type=int, default=4096, help="calibration tokens for step 1")
    ap.add_argument("--nsamples", type=int, default=32, help="calibration sequences, step 4")
    args = ap.parse_args()
    shared = Path(args.shared)
    model = shared / "models" / "llama-22m-debtext"
    calib = shared / "data" / "debtext-calib.txt"
    valid = shared / "data" / "debtext-valid.txt"
    print(f"lrc {lrc.__version__}, model {model}")

    # 1. numpy activations: RMSNorm(embedding) = the input of layer 0's attention projections.
    m = lrc.load_checkpoint(str(model))
    ids = lrc.tokenize(str(model), calib.read_text()[:200_000])[: args.tokens]
    h = m.embeddings[ids]
    x = h / np.sqrt(np.mean(h * h, axis=1, keepdims=True) + m.norm_eps)
    x = (x * m.norms["layers.0.input_layernorm"]).astype(np.float32)
    w = m.linears["layers.0.self_attn.q_proj"].w  # [d_out x d_in], float32
    print(f"layers.0.self_attn.q_proj: W {w.shape}, X {x.shape} (tokens x d_in)")

    # 2. statistics, in batches as they would come from a model.
    stats = lrc.Stats(w.shape[1], abits=4, a_clip=0.9)
    for batch in np.array_split(x, 4):
        stats.add(batch)

    # 3. one matrix, two methods.
    results = {}
    for name, kw in [("GPTQ", dict(method="gptq")), ("LRC 10%", dict(method="lrc", rank=0.1))]:
        t = time.time()
        sol = lrc.solve(w, stats, **kw)
        results[name] = sol
        print(f"{name:8s} rank {sol.rank:3d}  eq. 2 objective {sol.objective:.6g}  "
              f"relative {sol.relative_error:.5f}  ({time.time() - t:.2f}s)")
    ratio = results["LRC 10%"].objective / results["GPTQ"].objective
    print(f"LRC 10% / GPTQ objective: {ratio:.3f}")

    # 4. the whole model.
    t = time.time()
    rep = lrc.quantize(str(model), calib=str(calib), out=args.out, method="lrc", rank=0.1,
                       nsamples=args.nsamples,
                       progress=lambda done, total: print(f"  layer {done}/{total}", flush=True))
    print(f"quantized -> {args.out}: {rep['bits_per_weight']:.2f} bits/weight, "
          f"{time.time() - t:.1f}s")
    for path, what in [(str(model), "FP"), (args.out, "W4A4 + LRC 10%")]:
        r = lrc.eval_ppl(path, str(valid), seq=512, max_chunks=8)
        print(f"perplexity {what}: {r['ppl']:.4f} ({r['tokens']} tokens)")


if __name__ == "__main__":
    main()
