// --device / --kernels / --lm-head, the same on every command that runs a model (eval,
// generate, speed): which backend runs the forward (lrc/kernels/registry.h), and how the LM
// head is stored.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "lrc/core/error.h"
#include "lrc/model/layer_linears.h"
#include "lrc/model/llama.h"
#include "lrc/pipeline/linear_quantizer.h"
#include "lrc/quant/weight_quant.h"

namespace lrc::cli {

inline void add_backend_options(CLI::App& sub, std::string& device, std::string& kernels,
                                std::string& gpu_math) {
  sub.add_option("--device", device, "cpu, or cuda[:N] (the whole forward on a GPU)")
      ->capture_default_str();
  sub.add_option("--kernels", kernels,
                 "real: integer W4A4 kernels for the quantized linears; sim: the fp32 simulation")
      ->capture_default_str();
  sub.add_option("--gpu-math", gpu_math,
                 "a GPU's fp32 products (sim linears, attention): fp32 (TF32 off) | tf32 "
                 "(tensor cores: faster, other rounding)")
      ->capture_default_str();
}

inline void add_lm_head_option(CLI::App& sub, std::string& lm_head) {
  sub.add_option("--lm-head", lm_head,
                 "fp: the LM head as stored (fp32; fp16 values in an lrc checkpoint); q8: "
                 "8-bit codes, one absmax scale per row (a model change: docs/results.md)")
      ->capture_default_str();
}

// --lm-head q8: the LM head [vocab x dim] becomes 8-bit symmetric codes with one absmax scale
// per row (zero point 128, no clip search), and its fp32 weights are released. A decode step
// then reads a quarter of the bytes (SmolLM2: 28 MB instead of 113); both backends run it
// with the same arithmetic (kernels/cpu_int/w8.h), so it is a change of the model, not of
// the backend. The embedding table stays fp32.
inline void apply_lm_head_option(LlamaModel& m, const std::string& lm_head) {
  if (lm_head == "fp") return;
  if (lm_head != "q8") fail("--lm-head", "expected fp or q8, got '" + lm_head + "'");
  Linear& h = m.lm_head;
  if (h.packed) fail("--lm-head", "the LM head is already quantized");
  WeightQuantSpec spec;
  spec.bits = 8;
  spec.symmetric = true;
  spec.mse_clip = false;
  h.packed = quantize_rtn(h.w.data(), h.d_out, h.d_in, spec);
  std::vector<float>().swap(h.w);
}

// The layers' linears once handed to the model's backend (Backend::take_over: the integer CPU
// kernels keep the only copy of the codes and of fp16 U, V), in MB: what they occupy (the
// model's remaining arrays plus what the backend holds) beside lrc inspect's bits-per-weight
// accounting (4-bit codes, 16-bit scales and U, V).
struct LinearMemory {
  double resident_mb = 0, accounted_mb = 0;
  double rss_before_mb = 0, rss_after_mb = 0;  // the process's VmRSS around the hand-over
};

// The process's resident set now (VmRSS of /proc/self/status), MB; 0 where it is not readable.
inline double current_rss_mb() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  double kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmRSS: %lf kB", &kb) == 1) break;
  std::fclose(f);
  return kb / 1e3;
}
inline LinearMemory hand_over_and_measure(LlamaModel& m) {
  LinearMemory out;
  for (const LlamaLayer& L : m.layers)  // before: take_over frees the scales it counts
    for (const auto& t : layer_linears(m.cfg)) out.accounted_mb += linear_bits(t.of(L)) / 8 / 1e6;
  out.rss_before_mb = current_rss_mb();
  double bytes = static_cast<double>(hand_over_linears(m));
  out.rss_after_mb = current_rss_mb();
  for (const LlamaLayer& L : m.layers)
    for (const auto& t : layer_linears(m.cfg))
      bytes += static_cast<double>(t.of(L).resident_bytes());
  out.resident_mb = bytes / 1e6;
  return out;
}

}  // namespace lrc::cli
