// Child processes of this same binary: `lrc demo --jobs N` (one table row each) and
// `lrc quantize --nproc N` (one rank each).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace lrc::cli {

// A temporary directory (logs, rows, a socket) removed with everything in it at scope exit.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const char* who);  // who: named in the error when it cannot be made
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// The last max_lines non-empty lines of a log (progress "\r" lines split), each as "  | line\n".
std::string log_tail(const std::filesystem::path& p, size_t max_lines);

// Starts /proc/self/exe with argv and this environment plus `env` ("NAME=value", replacing any
// of the same name), OMP_NUM_THREADS and OPENBLAS_NUM_THREADS set to threads. stdout and stderr
// go to the files named (created or truncated), or are inherited where the name is empty.
// who: named in the error when the process cannot be started.
pid_t spawn_self(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                 int threads, const std::string& stdout_path, const std::string& stderr_path,
                 const char* who);

}  // namespace lrc::cli
