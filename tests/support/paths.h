// Where tests find the real assets: ../shared beside the checkout (LRC_SHARED overrides),
// and the model cache of scripts/fetch-models.sh (LRC_CACHE, default ~/.cache/lrc).
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace lrc::test {

inline std::string shared_dir() {
  if (const char* s = std::getenv("LRC_SHARED"); s && *s) return s;
  return (std::filesystem::path(LRC_SOURCE_DIR) / ".." / "shared").lexically_normal().string();
}
inline std::string shared(const std::string& rel) { return shared_dir() + "/" + rel; }
inline std::string default_model_dir() { return shared("models/llama-22m-debtext"); }

inline std::string cache_dir() {
  if (const char* s = std::getenv("LRC_CACHE"); s && *s) return s;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/root") + "/.cache/lrc";
}
inline std::string smollm2_gguf() { return cache_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf"; }

inline std::string lrc_binary() { return LRC_BINARY; }

// A fresh empty temporary directory for one test.
inline std::string temp_dir(const std::string& tag) {
  auto p = std::filesystem::temp_directory_path() /
           ("lrc-test-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

}  // namespace lrc::test
