// Small random Llama models of any shape, for tests that must not depend on real weights.
#pragma once

#include <cstdint>
#include <vector>

#include "lrc/model/llama.h"

namespace lrc::test {

LlamaConfig tiny_config(int dim = 64, int hidden = 96, int n_layers = 2, int n_heads = 4,
                        int n_kv_heads = 2, int vocab = 97, int max_seq = 64);

// Weights ~ N(0, 1/sqrt(d_in)), norms ~ 1 + N(0, 0.1); deterministic in seed.
LlamaModel random_model(const LlamaConfig& cfg, uint64_t seed = 1);

// n fixed token ids spread over the model's vocabulary ((37 i + 5) mod vocab).
std::vector<int32_t> spread_tokens(const LlamaModel& m, int n);

}  // namespace lrc::test
