// Rotary position embedding (RoFormer, Su et al. 2021). Each pair (a, b) of a head vector at
// position p is rotated by the angle p · θ^(-2i/hd), i = 0 .. hd/2-1:
//   a' = a cos − b sin,   b' = a sin + b cos
// The two layouts differ only in which features form pair i:
//   HalfSplit   (HF rotate_half): (i, i + hd/2)
//   Interleaved (llama2.c, GGUF): (2i, 2i + 1)
// A HalfSplit checkpoint is the Interleaved one with the q/k rows of each head permuted.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace lrc {

enum class RopeStyle {
  HalfSplit,    // HF "rotate_half": pairs (i, i + head_dim/2)
  Interleaved,  // llama2.c / GGUF: pairs (2i, 2i+1)
};

// Frequencies other than θ^(-2i/hd), as HF transformers computes them (modeling_rope_utils):
//   Llama3   (Llama-3.1): f_i kept where the wavelength 2π/f_i < original/high_freq_factor,
//            divided by `factor` where it is > original/low_freq_factor, interpolated between
//            (s = (original/wavelength − low) / (high − low): (1 − s)·f/factor + s·f);
//   LongRope (Phi-3 "longrope"/"su"): f_i / short_factor[i], or / long_factor[i] once the
//            positions reach past `original` (original_max_position_embeddings), and cos/sin
//            times attention_factor;
//   FreqFactors (GGUF `rope_freqs.weight`, llama.cpp's Llama-3.1 form): f_i / short_factor[i].
struct RopeScaling {
  enum class Kind { None, Llama3, LongRope, FreqFactors };
  Kind kind = Kind::None;
  float factor = 1.f, low_freq_factor = 1.f, high_freq_factor = 4.f;  // Llama3
  int original = 0;                                 // original_max_position_embeddings
  std::vector<float> short_factor, long_factor;     // LongRope, hd/2 each
  float attention_factor = 1.f;                     // LongRope
  bool enabled() const { return kind != Kind::None; }
};
const char* rope_scaling_name(RopeScaling::Kind k);  // "none" | "llama3" | "longrope" | "freq_factors"

// The hd/2 frequencies f_i of a table whose last position is end_pos − 1 (float64; plain
// θ^(-2i/hd) without scaling).
std::vector<double> rope_frequencies(int head_dim, double theta, const RopeScaling& s,
                                     int end_pos);

// cos/sin of every (position, pair) for positions [pos0, pos0 + n_pos): [n_pos x hd/2] each.
struct RopeTable {
  int pos0 = 0, n_pos = 0, half = 0;
  float theta = 0.f;  // what the table was made from (a device backend builds its own ...
  bool scaled = false;  // ... unless the frequencies are scaled: then it uses cos/sin below)
  std::vector<float> cos, sin;
  RopeTable(int head_dim, float theta, int pos0, int n_pos, const RopeScaling* scaling = nullptr);
};

// The same table, made once and shared (the last 8 asked for, up to 16 MB each): a forward
// asks for the same table at every layer of every prefill, and making one at 2048 positions
// (65,536 cos/sin pairs in float64) takes 1.5-2.8 ms of host time (bench_rope): at every layer
// of 141 chunks x 30 layers of a SmolLM2 evaluation, more than the GPU's own work. Thread-safe.
std::shared_ptr<const RopeTable> shared_rope_table(int head_dim, float theta, int pos0, int n_pos,
                                                   const RopeScaling* scaling = nullptr);

// Rotates x [n_rows x n_heads*hd] in place. Row r is at position pos0 + first + (r % period)
// (period = tokens per sequence when several sequences are stacked); the table must cover
// those positions.
void apply_rope(float* x, int64_t n_rows, int n_heads, int head_dim, RopeStyle style,
                const RopeTable& table, int period, int first = 0);

}  // namespace lrc
