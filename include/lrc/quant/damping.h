// Numerical guards of the solvers (issue 27). A Cholesky or eigen factorisation that fails
// (GPTQ's H + damping, LRC's Σx / Σy, the FP target's XXᵀ + εx I, their CUDA twins) throws
// FactorizationFailed; its caller retries with the damping (GPTQ's damp, LRC's and the FP
// target's eps_rel) ×10, at most kDampingRetries times, and records what it used in a
// DampingLog (the pipeline prints it and writes it per linear into lrc_config.json). A solve
// that succeeds first time leaves the log empty and its numbers untouched.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "lrc/core/error.h"

namespace lrc {

// A factorisation that failed for want of damping (or on a matrix too ill-conditioned to
// factor). An lrc::Error: uncaught, it reads as before.
class FactorizationFailed : public Error {
 public:
  using Error::Error;
};

// One solve that needed more damping than configured.
struct DampingEvent {
  std::string step;  // "gptq: damp", "lrc: eps_rel", "fp_target: eps_rel"
  double configured = 0, used = 0;
  int retries = 0;
};
using DampingLog = std::vector<DampingEvent>;

inline constexpr int kDampingRetries = 6;
inline constexpr double kDampingGrowth = 10.0;
// A configured 0 grows from here (relative, like the damping itself).
inline constexpr double kDampingFloor = 1e-6;

// solve(value) with value = configured, then configured·10, ... while it throws
// FactorizationFailed (rethrown after kDampingRetries retries, its message telling the values
// tried). A retry is logged in *log, or printed on stderr when log is null.
template <class Solve>
auto with_damping(double configured, const char* step, DampingLog* log, Solve&& solve)
    -> decltype(solve(configured)) {
  double value = configured;
  for (int retry = 0;; ++retry) {
    try {
      auto out = solve(value);
      if (retry > 0) {
        if (log)
          log->push_back({step, configured, value, retry});
        else
          std::fprintf(stderr, "warning: %s %g failed to factor; succeeded with %g\n", step,
                       configured, value);
      }
      return out;
    } catch (const FactorizationFailed& e) {
      if (retry == kDampingRetries)
        throw FactorizationFailed(std::string(e.what()) + " (" + step + " raised from " +
                                  std::to_string(configured) + " to " + std::to_string(value) +
                                  " without success)");
      value = value > 0 ? value * kDampingGrowth : kDampingFloor;
    }
  }
}

}  // namespace lrc
