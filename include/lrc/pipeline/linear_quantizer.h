// Quantizes one Linear in place with the chosen method, from its input statistics:
//   rtn  : Ŵ = RTN(W)                                   (no statistics needed)
//   gptq : Ŵ = GPTQ(W, H = XXᵀ)                          (QuaRot's baseline)
//   svd  : Ŵ = GPTQ(W, XXᵀ), U Vᵀ = best rank-k of W − Ŵ (LQER-style)
//   lrc  : Algorithm 1 of the paper (Init-LR, then T x [Update-Quant, Update-LR])
// and sets the activation quantizer Q_a. FP16 storage is applied here: scales, zeros, U and
// V are rounded to half precision and Ŵ is recomputed from the rounded scales, so the
// in-memory model equals the saved checkpoint bit for bit.
#pragma once

#include <string>
#include <vector>

#include "lrc/format/linear.h"
#include "lrc/pipeline/quantize_options.h"
#include "lrc/quant/solver_backend.h"
#include "lrc/quant/stats.h"

namespace lrc {

struct LinearReport {
  std::string name;
  int d_out = 0, d_in = 0, rank = 0;
  float a_clip = 1.f;
  double objective = -1;     // eq. 2 from statistics (-1 without Σy, Σxy: see baseline_objective)
  double objective_fp = -1;  // ‖WX‖², for a relative error
  double objective_gptq = -1;  // eq. 2 of plain GPTQ on the same statistics (compare_gptq)
  double seconds = 0;
  std::vector<double> spectrum;  // LRC: Update-LR's eigenvalues (see LrcOptions::spectrum_rank)
};

// The rank of linear `name`: opt.ranks[name] if given, else from opt.rank (0 for rtn/gptq).
int rank_for(const QuantizeOptions& opt, const std::string& name, int d_out, int d_in);

// stats may be null for RTN. act is the activation quantizer this linear will use.
// spectrum_rank: see LrcOptions (0 = none). solver: where the solves run (solver_backend.h;
// null = the CPU).
LinearReport quantize_linear(Linear& lin, const std::string& name, const LayerStats* stats,
                             const ActQuantSpec& act, int rank, const QuantizeOptions& opt,
                             int spectrum_rank = 0, const SolverBackend* solver = nullptr);

// Bits per weight of the linear layers, the paper's accounting (C.2: 4 + overhead): integer
// codes + fp16 scales (and zeros when asymmetric) + fp16 U and V.
double linear_bits(const Linear& lin);

}  // namespace lrc
