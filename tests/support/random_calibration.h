// Test helpers for the pipeline: a calibration set of uniform random token ids, and a whole
// file read into a string (to compare checkpoints byte for byte).
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "lrc/pipeline/quantize_model.h"

namespace lrc::test {

inline CalibrationSet random_calibration(int vocab, int n_seq, int seq_len, uint64_t seed) {
  CalibrationSet c;
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::uniform_int_distribution<int> tok(0, vocab - 1);
  c.n_seq = n_seq;
  c.seq_len = seq_len;
  c.tokens.resize(static_cast<size_t>(n_seq) * seq_len);
  for (auto& t : c.tokens) t = tok(rng);
  return c;
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace lrc::test
