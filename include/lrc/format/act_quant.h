// Q_a: on-the-fly activation quantizer of the paper (§2, "Activation Quantization"):
// per token (row), symmetric round-to-nearest, scale = c * max|x| / (2^(b-1) - 1),
// codes clamped to [-2^(b-1), 2^(b-1) - 1] as in QuaRot. Optional groups along features.
#pragma once

#include <cstdint>

namespace lrc {

struct ActQuantSpec {
  int bits = 16;      // >= 16 means "not quantized" (identity)
  float clip = 1.0f;  // clip ratio c
  int groupsize = 0;  // 0 = one scale per token; otherwise one per `groupsize` features
  bool enabled() const { return bits < 16; }
};

// y = Q_a(x) (dequantized, i.e. scale * code), x and y are [n x d] row-major; y may alias x.
void quantize_activations(const float* x, int64_t n, int d, const ActQuantSpec& spec, float* y);

// Per-head KV-cache quantization after RoPE (QuaRot): asymmetric, one scale/zero per head and
// token (kernels/kv_quant.h). bits >= 16 = off.
struct KvQuantSpec {
  int bits = 16;
  float clip = 1.0f;
  bool enabled() const { return bits < 16; }
};

// Integer form of Q_a for one row: codes[d] and one scale per group (d / groupsize, or 1).
void quantize_activation_row(const float* x, int d, const ActQuantSpec& spec, int8_t* codes,
                             float* scales);

}  // namespace lrc
