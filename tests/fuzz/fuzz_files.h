// Shared by the libFuzzer targets that read files by path: the input is cut into parts at each
// kFuzzSeparator and part i is written to <dir>/names[i] (missing parts: the file is absent), so
// one input can be a whole model directory (config.json + model.safetensors, ...). Each
// process writes into its own directory, rewritten for every input.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>

namespace lrc::fuzz {

inline constexpr std::string_view kFuzzSeparator = "\n--LRC-FUZZ-PART--\n";

inline const std::string& fuzz_dir() {
  static const std::string d = [] {
    const auto p = std::filesystem::temp_directory_path() / ("lrc-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(p);
    return p.string();
  }();
  return d;
}

// Writes the parts of data[size] as files of fuzz_dir() named `names` (earlier files removed).
inline void write_parts(const uint8_t* data, size_t size, std::initializer_list<const char*> names) {
  namespace fs = std::filesystem;
  for (const auto& e : fs::directory_iterator(fuzz_dir())) fs::remove_all(e.path());
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  for (const char* name : names) {
    const size_t cut = rest.find(kFuzzSeparator);
    const std::string_view part = rest.substr(0, cut);
    if (std::FILE* f = std::fopen((fuzz_dir() + "/" + name).c_str(), "wb")) {
      std::fwrite(part.data(), 1, part.size(), f);
      std::fclose(f);
    }
    if (cut == std::string_view::npos) break;
    rest.remove_prefix(cut + kFuzzSeparator.size());
  }
}

inline std::string path(const char* name) { return fuzz_dir() + "/" + name; }

}  // namespace lrc::fuzz
