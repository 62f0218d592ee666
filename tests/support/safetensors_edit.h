// Test helpers that break a safetensors file on purpose (the writers refuse bad weights, so such
// files are made by hand): raw bytes in and out, and one F32 element overwritten.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

namespace lrc::test {

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// Sets element `index` of the F32 tensor `tensor` of the safetensors file at `path`.
inline void poke_f32(const std::string& path, const std::string& tensor, size_t index,
                     float value) {
  std::string b = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, b.data(), 8);
  const nlohmann::json h = nlohmann::json::parse(b.substr(8, n));
  const size_t at = 8 + n + h.at(tensor).at("data_offsets")[0].get<size_t>() + 4 * index;
  std::memcpy(b.data() + at, &value, 4);
  write_bytes(path, b);
}

}  // namespace lrc::test
