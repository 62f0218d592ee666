// Rotary position embedding (RoFormer, Su et al. 2021). Each pair (a, b) of a head vector at
// position p is rotated by the angle p · θ^(-2i/hd), i = 0 .. hd/2-1:
//   a' = a cos − b sin,   b' = a sin + b cos
// The two layouts differ only in which features form pair i:
//   HalfSplit   (HF rotate_half): (i, i + hd/2)
//   Interleaved (llama2.c, GGUF): (2i, 2i + 1)
// A HalfSplit checkpoint is the Interleaved one with the q/k rows of each head permuted.
#pragma once

#include <cstdint>
#include <vector>

namespace lrc {

enum class RopeStyle {
  HalfSplit,    // HF "rotate_half": pairs (i, i + head_dim/2)
  Interleaved,  // llama2.c / GGUF: pairs (2i, 2i+1)
};

// cos/sin of every (position, pair) for positions [pos0, pos0 + n_pos): [n_pos x hd/2] each.
struct RopeTable {
  int pos0 = 0, n_pos = 0, half = 0;
  float theta = 0.f;  // what the table was made from (a device backend builds its own)
  std::vector<float> cos, sin;
  RopeTable(int head_dim, float theta, int pos0, int n_pos);
};

// Rotates x [n_rows x n_heads*hd] in place. Row r is at position pos0 + first + (r % period)
// (period = tokens per sequence when several sequences are stacked); the table must cover
// those positions.
void apply_rope(float* x, int64_t n_rows, int n_heads, int head_dim, RopeStyle style,
                const RopeTable& table, int period, int first = 0);

}  // namespace lrc
