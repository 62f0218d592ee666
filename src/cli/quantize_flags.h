// The quantization flags shared by `lrc quantize` and `lrc demo`.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "lrc/pipeline/quantize_options.h"

namespace lrc::cli {

// Adds --rank --iters --wbits --abits --a-clip --w-groupsize --a-groupsize --w-asym --kv-bits
// --reg --update-quant --damp --act-order --no-rotate --seed, and with calibration_flags
// --nsamples --seq.
void add_quantize_options(CLI::App& sub, QuantizeOptions& opt, std::string& a_clip,
                          std::string& reg, std::string& update_quant,
                          bool calibration_flags = true);
// Parses the string-valued flags into opt and validates it (throws lrc::Error).
void finish_quantize_options(QuantizeOptions& opt, const std::string& a_clip,
                             const std::string& reg, const std::string& update_quant);

}  // namespace lrc::cli
