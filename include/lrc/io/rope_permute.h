// Row order of q_proj / k_proj under the two RoPE conventions.
//
// RoPE rotates pairs of query/key features within each head. llama2.c and GGUF rotate
// adjacent pairs (2i, 2i+1) (RopeStyle::Interleaved); HF rotates (i, i + hd/2)
// (RopeStyle::HalfSplit). The same model therefore stores q/k rows in different orders;
// within each head of size hd:
//
//   HF row i          <->  interleaved row 2i         (i < hd/2)
//   HF row i + hd/2   <->  interleaved row 2i + 1
//
// (HF's convert_llama_weights_to_hf.py `permute` is interleaved -> half-split.)
#pragma once

#include <vector>

namespace lrc {

// w is [n_heads*hd x d_in] row-major; returns the rows reordered.
std::vector<float> interleaved_to_halfsplit_rows(const std::vector<float>& w, int n_heads, int hd,
                                                 int d_in);
std::vector<float> halfsplit_to_interleaved_rows(const std::vector<float>& w, int n_heads, int hd,
                                                 int d_in);

}  // namespace lrc
