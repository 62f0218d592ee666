// Top-k eigenpairs of Σ = F Fᵀ for an explicit factor F (rows x cols, row-major), i.e. the
// top-k left singular vectors of F and the squared singular values. Only k eigenpairs are
// computed (LAPACKE_dsyevr with the index range il..iu), on the smaller of the two Grams:
//   rows <= cols:  Σ = F Fᵀ directly;
//   rows >  cols:  FᵀF z = λ z  gives  u = F z / sqrt(λ)  (same nonzero spectrum), after which
//                  U is re-orthonormalised by QR (u from tiny λ loses orthogonality).
// Eigenvalues <= 1e-12 · λ_max (or <= 0) mark directions that reduce ‖(I - UUᵀ) F‖² by nothing:
// their columns of U are returned as zero (and their λ as max(λ, 0)).
#pragma once

#include <vector>

namespace lrc::quant_detail {

struct TopEigen {
  int k = 0;
  std::vector<double> u;       // rows x k row-major, orthonormal nonzero columns
  std::vector<double> lambda;  // k, descending
};

TopEigen top_left_singular(const double* F, int rows, int cols, int k);

}  // namespace lrc::quant_detail
