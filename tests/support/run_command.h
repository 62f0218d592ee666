// Runs a shell command from a test: its exit code and everything it wrote to stdout (add
// "2>&1" to the command to capture stderr too).
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace lrc::test {

struct RunResult {
  int exit_code = -1;
  std::string out;
};

inline RunResult run_command(const std::string& cmd) {
  RunResult r;
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace lrc::test
