// The issue-28 family references (tests/data/arch/<family>.json, scripts/make-arch-refs.py):
// the tiny random-weight HF directory each was made from, rebuilt from the script's counter
// rule so that no weights are stored.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lrc::test {

// tests/data/arch/<family>.json parsed.
nlohmann::json read_arch_ref(const std::string& family);

// Writes config.json, model.safetensors (every tensor of the reference but `skip`) and a byte
// tokenizer (tokenizer.json + tokenizer_config.json) into a fresh temporary directory.
std::string write_arch_hf_dir(const nlohmann::json& ref, const std::string& tag,
                              const std::string& skip = "");

// max |a[i] − b[i]| (the sizes must agree; the shorter length is compared otherwise).
double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace lrc::test
