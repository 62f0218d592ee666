// The quantization flags shared by `lrc quantize` and `lrc demo`.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "lrc/pipeline/quantize_options.h"

namespace lrc::cli {

// The string-valued flags, parsed by finish_quantize_options. Empty = not given: the option
// keeps its QuantizeOptions default (the one place defaults are written; --help shows them).
struct QuantizeFlagStrings {
  std::string a_clip, reg, update_quant, rank_alloc;
  std::string calib_act, target, stats_precision, rotation;
};

// Adds --rank --rank-alloc --alloc-nsamples --iters --wbits --abits --a-clip --w-groupsize
// --a-groupsize --w-asym --kv-bits --reg --update-quant --calib-act --target --target-mix
// --lrc-eps --stats-precision --damp --act-order --no-rotate --rotation --rotation-steps
// --rotation-objective --rotation-rows --rotation-nsamples --smooth --seed, and with calibration_flags
// --nsamples --seq.
void add_quantize_options(CLI::App& sub, QuantizeOptions& opt, QuantizeFlagStrings& s,
                          bool calibration_flags = true);
// Parses the string-valued flags into opt and validates it (throws lrc::Error).
void finish_quantize_options(QuantizeOptions& opt, const QuantizeFlagStrings& s);

}  // namespace lrc::cli
