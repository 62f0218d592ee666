#include "lrc/io/json_file.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "lrc/core/error.h"

namespace lrc {

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, "cannot read (missing or unreadable)");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("bad JSON: ") + e.what());
  }
}

void write_file_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, std::vector<std::string_view>{text});
}

void write_file_atomic(const std::string& path, const std::vector<std::string_view>& parts) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(path, "cannot open '" + tmp + "' for writing");
  bool ok = true;
  for (std::string_view part : parts)
    ok = ok && std::fwrite(part.data(), 1, part.size(), f) == part.size();
  ok = (std::fclose(f) == 0) && ok;
  std::error_code ec;
  if (ok) std::filesystem::rename(tmp, path, ec);
  if (!ok || ec) {
    std::filesystem::remove(tmp, ec);
    fail(path, "write failed (disk full or not writable?)");
  }
}

}  // namespace lrc
