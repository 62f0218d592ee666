// Causal grouped-query attention (GQA) for a batch of sequences:
//   out_h = softmax(q_h k_gᵀ / sqrt(hd) + causal mask) v_g,   g = h / (n_heads / n_kv_heads)
// With a sliding window w > 0 (Mistral) the query at position p sees keys p − w + 1 .. p only
// (HF transformers: kv_idx > q_idx − sliding_window).
// Scores and softmax are float32 (max-subtracted).
#pragma once

#include <cstdint>

namespace lrc {

struct AttentionShape {
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int window = 0;  // sliding window in keys; 0 = every earlier key
};

// The first key position that a query at position p sees.
inline int first_visible_key(const AttentionShape& a, int p) {
  return a.window > 0 && p - a.window + 1 > 0 ? p - a.window + 1 : 0;
}

// n_seq sequences of n_q new queries each; query i of a sequence sits at position pos0 + i and
// attends keys 0 .. pos0 + i of its own sequence.
//   q, out: [n_seq*n_q x n_heads*hd] row-major;
//   k, v:   key j of sequence s at k + s*kv_seq_stride + j*(n_kv_heads*hd).
// Calls BLAS: call it from the main thread, not inside an OpenMP region.
void causal_attention(const float* q, const float* k, const float* v, int n_seq, int n_q, int pos0,
                      int64_t kv_seq_stride, const AttentionShape& shape, float* out);

}  // namespace lrc
