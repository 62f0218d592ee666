#include "support/arch_refs.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "lrc/io/safetensors_writer.h"
#include "lrc/io/synth_model.h"
#include "support/paths.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace lrc::test {

namespace {

uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// scripts/make-arch-refs.py's rule: tensor t, element i -> float32(offset + scale·(k/2^23 − 1)),
// k = splitmix64(seed·2^48 + (t+1)·2^32 + i) >> 40 (computed in float64, rounded once).
std::vector<float> rule_values(uint64_t seed, uint64_t t, int64_t n, double scale, double offset) {
  std::vector<float> v(static_cast<size_t>(n));
  const uint64_t base = (seed << 48) + ((t + 1) << 32);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t k = splitmix64(base + static_cast<uint64_t>(i)) >> 40;
    v[static_cast<size_t>(i)] =
        static_cast<float>(offset + scale * (static_cast<double>(k) / 8388608.0 - 1.0));
  }
  return v;
}

}  // namespace

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = a.size() == b.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    d = std::max(d, std::fabs(static_cast<double>(a[i]) - b[i]));
  return d;
}

json read_arch_ref(const std::string& family) {
  const fs::path p = fs::path(LRC_SOURCE_DIR) / "tests" / "data" / "arch" / (family + ".json");
  std::ifstream f(p);
  if (!f) throw std::runtime_error(p.string() + " missing (scripts/make-arch-refs.py)");
  return json::parse(f);
}

std::string write_arch_hf_dir(const json& ref, const std::string& tag, const std::string& skip) {
  const std::string dir = temp_dir("arch-" + tag);
  std::ofstream(fs::path(dir) / "config.json") << ref.at("config").dump(2);
  SafetensorsWriter w;
  const uint64_t seed = ref.at("seed").get<uint64_t>();
  uint64_t t = 0;
  for (const json& e : ref.at("tensors")) {
    if (e.at("name") == skip) {  // the index stays the reference's
      ++t;
      continue;
    }
    const std::vector<int64_t> shape = e.at("shape").get<std::vector<int64_t>>();
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    w.add_f32(e.at("name").get<std::string>(), shape,
              rule_values(seed, t++, n, e.at("scale").get<double>(), e.at("offset").get<double>()));
  }
  w.write((fs::path(dir) / "model.safetensors").string());
  // Byte ids < 258 <= the references' 264 tokens: the CLI's calibration and evaluation text.
  std::ofstream(fs::path(dir) / "tokenizer.json") << byte_tokenizer_json();
  std::ofstream(fs::path(dir) / "tokenizer_config.json")
      << R"({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true})";
  return dir;
}

}  // namespace lrc::test
