#include "cli/child_process.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "lrc/core/error.h"

extern char** environ;

namespace lrc::cli {

namespace fs = std::filesystem;

TempDir::TempDir(const char* who) {
  std::string tmpl = (fs::temp_directory_path() / "lrc-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) fail(who, "cannot create a temporary directory");
  path = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path, ec);
}

std::string log_tail(const fs::path& p, size_t max_lines) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string text = ss.str();
  std::replace(text.begin(), text.end(), '\r', '\n');  // progress lines
  std::vector<std::string> lines;
  std::stringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) lines.push_back(l);
  std::string out;
  for (size_t i = lines.size() > max_lines ? lines.size() - max_lines : 0; i < lines.size(); ++i)
    out += "  | " + lines[i] + "\n";
  return out;
}

pid_t spawn_self(const std::vector<std::string>& argv, const std::vector<std::string>& extra,
                 int threads, const std::string& stdout_path, const std::string& stderr_path,
                 const char* who) {
  std::vector<std::string> env = extra;
  env.push_back("OMP_NUM_THREADS=" + std::to_string(threads));
  env.push_back("OPENBLAS_NUM_THREADS=" + std::to_string(threads));
  const auto named = [&](const std::string& s) {
    const std::string key = s.substr(0, s.find('=') + 1);
    return std::any_of(env.begin(), env.end(),
                       [&](const std::string& e) { return e.rfind(key, 0) == 0; });
  };
  for (char** e = environ; *e; ++e)
    if (!named(*e)) env.push_back(*e);
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const auto& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (!stdout_path.empty())
    posix_spawn_file_actions_addopen(&fa, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
  if (!stderr_path.empty())
    posix_spawn_file_actions_addopen(&fa, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) fail(who, std::string("cannot start a child process: ") + std::strerror(rc));
  return pid;
}

}  // namespace lrc::cli
