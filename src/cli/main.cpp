// lrc — W4A4 quantization with low-rank correction. Subcommands live in cmd_*.cpp.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>

#include "cli/command_registry.h"
#include "lrc/core/error.h"

namespace lrc::cli {
std::vector<CommandSpec>& command_registry() {
  static std::vector<CommandSpec> r;
  return r;
}
std::vector<std::string>& process_args() {
  static std::vector<std::string> a;
  return a;
}
}  // namespace lrc::cli

// OpenMP threads that spin while waiting steal the cores OpenBLAS and the next parallel region
// need (measured: 4x the CPU time of a quantization run on 2 shared cores). libgomp reads
// OMP_WAIT_POLICY once, before main, so lrc sets it and re-executes itself; a value the user
// set is left alone.
static void ensure_passive_openmp_wait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
}

int main(int argc, char** argv) {
  ensure_passive_openmp_wait(argv);
  // Past a file-size limit (ulimit -f) the kernel sends SIGXFSZ, which kills the process before
  // it can remove a half-written output. Ignored, the write fails with EFBIG instead and the
  // writer reports it and cleans up, as for a full disk.
  std::signal(SIGXFSZ, SIG_IGN);
  using namespace lrc::cli;
  process_args().assign(argv, argv + argc);
  CLI::App app{"lrc: W4A4 post-training quantization with low-rank correction (LRC)"};
  app.set_version_flag("--version", std::string(LRC_VERSION));
  app.require_subcommand(1);
  auto& reg = command_registry();
  std::sort(reg.begin(), reg.end(), [](auto& a, auto& b) { return a.name < b.name; });
  std::map<CLI::App*, std::function<int()>> runs;
  for (auto& c : reg) {
    CLI::App* sub = app.add_subcommand(c.name, c.description);
    runs[sub] = c.setup(*sub);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, run] : runs)
      if (sub->parsed()) return run();
  } catch (const lrc::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 1;
}
