// --device / --kernels, the same on every command that runs a model (eval, generate, speed):
// which backend runs the forward (lrc/kernels/registry.h).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace lrc::cli {

inline void add_backend_options(CLI::App& sub, std::string& device, std::string& kernels) {
  sub.add_option("--device", device, "cpu, or cuda[:N] (the whole forward on a GPU)")
      ->capture_default_str();
  sub.add_option("--kernels", kernels,
                 "real: integer W4A4 kernels for the quantized linears; sim: the fp32 simulation")
      ->capture_default_str();
}

}  // namespace lrc::cli
