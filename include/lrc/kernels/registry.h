// Choosing a backend by name, for the CLI's --device and --kernels:
//   cpu  + sim   the CPU reference (kernels/backend.h): W4A4 simulated in fp32, the numbers of
//                docs/results.md
//   cpu  + real  the integer CPU kernels (kernels/cpu_int): 4-bit codes times 4-bit
//                activation codes in int32 (AVX-512 VNNI / AVX2 / scalar), fp32 low-rank
//                branch; a linear they cannot run (other bit widths, activation groups, an FP
//                linear) runs on the reference
//   cuda[:N] + real  the whole forward on GPU N (kernels/cuda/backend.h): quantized linears on
//                    the W4A4 kernels (FP8 cuBLASLt prefill, int4 tensor-core GEMV decode, fp16
//                    low-rank branch), FP linears in fp16 cuBLAS
//   cuda[:N] + sim   the simulation on the GPU: Ŵ dequantized, Q_a applied and dequantized,
//                    fp32 cuBLAS
// In a build without CUDA (-DLRC_CUDA=OFF, or AUTO without nvcc) --device cuda fails with one
// error saying so.
#pragma once

#include <string>

#include "lrc/kernels/backend.h"

namespace lrc {

// Throws lrc::Error naming the option for an unknown or unavailable choice. decoding: the
// model will mostly decode (one token a pass), so the reference keeps dequantized weights.
// gpu_math (--gpu-math): "fp32", or "tf32" (a CUDA backend's fp32 GEMMs on TF32 tensor cores:
// the sim linears and the attention; refused on the CPU).
BackendPtr make_backend(const std::string& device, const std::string& kernels,
                        bool decoding = false, const std::string& gpu_math = "fp32");

}  // namespace lrc
