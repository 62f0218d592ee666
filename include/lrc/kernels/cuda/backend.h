// The CUDA backend: the whole forward on one GPU (kernels/backend.h). Activations live in
// device memory between calls; the forward uploads tokens (or h) at its start and downloads
// logits / NLL at its end. Parameters are uploaded the first time an operation sees them,
// keyed by their host address, and kept while the backend lives.
//
//   real   quantized linears on the W4A4 kernels (w4a4.h: FP8 cuBLASLt GEMM for prefill,
//          tensor-core int4 GEMV for decode, fp16 low-rank branch); x is rounded to fp16 for
//          them (outliers saturate at ±65504). FP linears (the LM head, an FP model's
//          linears) in fp16 cuBLAS (fp16 weights, fp32 accumulate and output). A quantized
//          linear the kernels cannot run (not 4-bit symmetric per row, activation groups)
//          runs as in sim.
//   sim    the simulation, as the CPU reference: Ŵ dequantized to fp32 once, Q_a applied and
//          dequantized in fp32, fp32 cuBLAS GEMMs (no TF32), fp32 low-rank branch. FP linears
//          in fp32.
// Everything else in both: fp32 activations; rmsnorm (float64 sum), RoPE (float64 angles),
// attention as fp32 cuBLAS batched GEMMs (S = QKᵀ, causal softmax, O = PV, a block of queries
// at a time), KV quantization, online transforms (signs + Walsh–Hadamard in shared memory,
// then A along the other axis as a GEMM), SwiGLU, NLL rows (float64 sum).
//
// One stream per backend; use a backend from one thread at a time.
#pragma once

#include <string>

#include "lrc/kernels/backend.h"

namespace lrc {

// Throws lrc::Error when no CUDA device `device` is usable. tf32: the fp32 cuBLAS GEMMs (the
// sim linears, the attention, online transforms) on TF32 tensor cores (--gpu-math tf32).
BackendPtr make_cuda_backend(int device, bool real_kernels, bool tf32 = false);

}  // namespace lrc
