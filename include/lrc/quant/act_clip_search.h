// Choice of the activation clip ratio c of Q_a (paper §2: "a simple hyper-parameter search
// for c") for a group of linears that share one input X (e.g. q/k/v, or gate/up):
//
//   err(c) = sum_m ‖W_m (X - Q_a^c(X))‖²,   best = argmin_c err(c),
//
// streamed over token batches, accumulated in float64. The products use sgemm on the batch;
// when the group has more outputs than inputs (sum_m d_out_m > d_in) the identity
// sum_m ‖W_m E‖² = tr(E G Eᵀ) with G = sum_m W_mᵀ W_m (precomputed once) is used instead,
// which costs d_in² instead of (sum_m d_out_m)·d_in per token.
#pragma once

#include <cstdint>
#include <vector>

#include "lrc/format/act_quant.h"

namespace lrc {

// 1.00, 0.95, ..., 0.40. (With the grid ending at 0.60, the LRC search picked 0.60 for 27 of
// SmolLM2's 30 o_proj groups: docs/results.md, SmolLM2, "Beyond the paper".)
std::vector<float> default_act_clip_candidates();

class ActClipSearch {
 public:
  // W[m]: [d_outs[m] x d_in] row-major, kept by pointer (must outlive the search when the
  // direct path is used). base: bits and groupsize of Q_a; its clip is ignored.
  ActClipSearch(std::vector<const float*> W, std::vector<int> d_outs, int d_in, ActQuantSpec base,
                std::vector<float> candidates = default_act_clip_candidates());

  void add(const float* x, int64_t n);  // x: [n x d_in] row-major

  float best() const;                  // smallest error; ties go to the earlier candidate
  std::vector<double> errors() const;  // err(c) per candidate, in candidate order
  const std::vector<float>& candidates() const { return candidates_; }
  bool uses_gram() const { return !gram_.empty(); }

 private:
  std::vector<const float*> W_;
  std::vector<int> d_outs_;
  int d_in_;
  ActQuantSpec base_;
  std::vector<float> candidates_;
  std::vector<float> gram_;  // d_in x d_in, sum_m W_mᵀ W_m (only on the Gram path)
  std::vector<double> err_;
  int64_t n_ = 0;
};

}  // namespace lrc
