// The activation clip ratio c of Q_a for LRC (beyond the paper's "simple hyper-parameter
// search for c", §2): for a group of linears sharing one input X (q/k/v, gate/up, ...), choose
//
//   c* = argmin_c  sum_m J_m(c),   J_m(c) = relaxed_objective(W_m, Σ(c), k_m)
//
// i.e. the optimal value of eq. 7 (Prop. 3.4: unconstrained W̃ plus a rank-k_m correction)
// for Y = Q_a^c(X), from the regularised statistics Σx, Σy(c), Σxy(c) of a token subsample.
// It measures what LRC can correct at each c, which a fixed-W error ‖W(X − Q_a^c(X))‖²
// (ActClipSearch, the GPTQ baseline's criterion) does not: the linear map W̃ = W Σxy Σy⁻¹
// undoes part of the clipping bias, so LRC can afford a finer grid (smaller c).
#pragma once

#include <cstdint>
#include <vector>

#include "lrc/format/act_quant.h"
#include "lrc/quant/lrc_solver.h"
#include "lrc/quant/token_subsample.h"

namespace lrc {

class LrcClipSearch {
 public:
  // W[m]: [d_outs[m] x d_in] row-major (kept by pointer), ranks[m]: its k. base: bits and
  // groupsize of Q_a. Tokens: every `stride`-th one, at most max_tokens.
  LrcClipSearch(std::vector<const float*> W, std::vector<int> d_outs, std::vector<int> ranks,
                int d_in, ActQuantSpec base, LrcRegularization reg, double eps_rel, int64_t stride,
                int64_t max_tokens, std::vector<float> candidates);

  void add(const float* x, int64_t n) { sample_.add(x, n); }  // x: [n x d_in]

  // Evaluates J on the kept tokens (float64 statistics, one candidate at a time), coarse to
  // fine: candidates 0, 2, 4, ... first, then the two neighbours of the best of those (J is
  // smooth in c, so on an ordered grid this finds its minimum with about half the solves).
  // Returns the best evaluated candidate; ties go to the earlier one.
  float best();
  // J(c) per candidate after best(); +infinity for candidates the search did not evaluate.
  const std::vector<double>& errors() const { return err_; }
  int64_t tokens() const { return sample_.kept(); }

 private:
  std::vector<const float*> W_;
  std::vector<int> d_outs_, ranks_;
  int d_in_;
  ActQuantSpec base_;
  LrcRegularization reg_;
  double eps_rel_;
  std::vector<float> candidates_;
  TokenSubsample sample_;
  std::vector<double> err_;
};

}  // namespace lrc
