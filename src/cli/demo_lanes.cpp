// `lrc demo --jobs N`: the rows of the table run N at a time, each in a child process of this
// same binary with threads/N OpenMP/OpenBLAS threads. On a few cores this is the faster way to
// spend them: one row's pipeline has serial stretches (LAPACK factorisations, element-wise
// passes between BLAS calls) that leave a second core idle, which a second row fills.
//
// Protocol: the child gets the parent's command line plus `--jobs 1 --row I --row-out FILE`,
// builds the same plan, runs job I alone and writes its row as JSON (demo_row_to_wire) to FILE
// through a temporary name. Rows start largest first (DemoJob::cost); the parent prints one
// line per start and finish and, every 10 s, each running row's latest progress line (layer
// i/L, ETA); it keeps each child's stderr in a log file and shows it when the child fails
// (the other children are then stopped).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>
#include <string>

#include "cli/child_process.h"
#include "cli/demo_rows.h"
#include "lrc/core/error.h"
#include "lrc/io/json_file.h"

namespace lrc::cli {

namespace fs = std::filesystem;

// The gap-closed fields are not sent: they relate rows to each other, and the parent computes
// them once every row is back (fill_gap_closed).
nlohmann::json demo_row_to_wire(const DemoRow& r) {
  nlohmann::json j = {{"method", r.method},
                      {"settings", r.settings},
                      {"rank", r.rank},
                      {"ppl", r.ppl},
                      {"ppl_seeds", r.ppl_seeds},
                      {"clip_searched", r.clip_searched},
                      {"bits_per_weight", r.bits_per_weight},
                      {"size_mb", r.size_mb},
                      {"seconds", r.seconds},
                      {"linears", r.linears}};
  if (r.zero_shot) {
    const ZeroShotResults& z = *r.zero_shot;
    nlohmann::json tasks = nlohmann::json::array();
    for (const TaskResult& t : z.tasks)
      tasks.push_back({{"name", t.name},
                       {"path", t.path},
                       {"kind", static_cast<int>(t.kind)},
                       {"n", t.n},
                       {"acc", t.acc},
                       {"acc_ci", t.acc_ci},
                       {"acc_norm", t.acc_norm},
                       {"acc_norm_ci", t.acc_norm_ci},
                       {"target_ppl", t.target_ppl},
                       {"work", {t.work.shared, t.work.separate}},
                       {"seconds", t.seconds}});
    j["zero_shot"] = {{"tasks", tasks},
                      {"acc_avg", z.acc_avg},
                      {"work", {z.work.shared, z.work.separate}},
                      {"seconds", z.seconds}};
  }
  return j;
}

DemoRow demo_row_from_wire(const nlohmann::json& j) {
  DemoRow r;
  r.method = j.at("method");
  r.settings = j.at("settings");
  r.rank = j.at("rank");
  r.ppl = j.at("ppl");
  r.ppl_seeds = j.at("ppl_seeds").get<std::vector<double>>();
  r.clip_searched = j.at("clip_searched");
  r.bits_per_weight = j.at("bits_per_weight");
  r.size_mb = j.at("size_mb");
  r.seconds = j.at("seconds");
  r.linears = j.at("linears");
  if (j.contains("zero_shot")) {
    const auto& z = j["zero_shot"];
    ZeroShotResults out;
    for (const auto& t : z.at("tasks")) {
      TaskResult tr;
      tr.name = t.at("name");
      tr.path = t.at("path");
      tr.kind = static_cast<TaskKind>(t.at("kind").get<int>());
      tr.n = t.at("n");
      tr.acc = t.at("acc");
      tr.acc_ci = t.at("acc_ci");
      tr.acc_norm = t.at("acc_norm");
      tr.acc_norm_ci = t.at("acc_norm_ci");
      tr.target_ppl = t.at("target_ppl");
      tr.work = {t.at("work").at(0), t.at("work").at(1)};
      tr.seconds = t.at("seconds");
      out.tasks.push_back(tr);
    }
    out.acc_avg = z.at("acc_avg");
    out.work = {z.at("work").at(0), z.at("work").at(1)};
    out.seconds = z.at("seconds");
    r.zero_shot = out;
  }
  return r;
}

namespace {

using Clock = std::chrono::steady_clock;

// The last progress line of a child's log ("[quantize lrc] layer 12/30 ... ETA 300.0s").
std::string last_progress(const fs::path& p) {
  std::ifstream f(p, std::ios::binary | std::ios::ate);
  const std::streamoff size = f.tellg();
  if (size <= 0) return "starting";
  const std::streamoff from = std::max<std::streamoff>(0, size - 400);
  std::string tail(static_cast<size_t>(size - from), '\0');
  f.seekg(from);
  f.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  while (!tail.empty() && (tail.back() == '\r' || tail.back() == '\n' || tail.back() == ' '))
    tail.pop_back();
  const size_t cut = tail.find_last_of("\r\n");
  std::string line = cut == std::string::npos ? tail : tail.substr(cut + 1);
  return line.size() > 80 ? line.substr(0, 80) : line;
}

// A row's child: stdout -> /dev/null, stderr -> its log, threads OpenMP/OpenBLAS threads.
pid_t spawn_row(const std::vector<std::string>& argv, const fs::path& log, int threads) {
  return spawn_self(argv, {}, threads, "/dev/null", log.string(), "demo --jobs");
}

}  // namespace

std::vector<DemoRow> run_demo_lanes(const std::vector<DemoJob>& jobs, int lanes, int threads,
                                    const std::vector<std::string>& argv) {
  const TempDir tmp("demo --jobs");
  const int n = static_cast<int>(jobs.size());
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return jobs[a].cost > jobs[b].cost; });
  auto row_file = [&](int i) { return tmp.path / ("row" + std::to_string(i) + ".json"); };
  auto log_file = [&](int i) { return tmp.path / ("row" + std::to_string(i) + ".log"); };

  std::map<pid_t, std::pair<int, Clock::time_point>> running;  // pid -> job, start
  auto stop_all = [&] {
    for (const auto& [pid, job] : running) ::kill(pid, SIGTERM);
    for (const auto& [pid, job] : running) ::waitpid(pid, nullptr, 0);
    running.clear();
  };
  const auto t0 = Clock::now();
  size_t next = 0;
  int done = 0;
  std::vector<DemoRow> rows(n);
  try {
    while (done < n) {
      while (static_cast<int>(running.size()) < lanes && next < order.size()) {
        const int i = order[next++];
        std::vector<std::string> a = argv;
        for (const std::string& s :
             {std::string("--jobs"), std::string("1"), std::string("--row"), std::to_string(i),
              std::string("--row-out"), row_file(i).string()})
          a.push_back(s);
        running[spawn_row(a, log_file(i), threads)] = {i, Clock::now()};
        std::fprintf(stderr, "demo: [%d/%d] %s started\n", i + 1, n, jobs[i].label.c_str());
      }
      int status = 0;
      pid_t pid = 0;
      bool status_line = false;
      for (int tick = 0; (pid = ::waitpid(-1, &status, WNOHANG)) == 0; ++tick) {
        // Every 10 s: the latest progress line of each running row.
        if (tick % 20 == 19) {
          std::string line;
          for (const auto& [p, job] : running)
            line += " | " + jobs[job.first].label + ": " + last_progress(log_file(job.first));
          std::fprintf(stderr, "\r[demo]%s   ", line.c_str());
          std::fflush(stderr);
          status_line = true;
        }
        ::usleep(500000);
      }
      if (status_line) std::fprintf(stderr, "\n");
      if (pid < 0) fail("demo --jobs", std::string("waitpid: ") + strerror(errno));
      const auto it = running.find(pid);
      if (it == running.end()) continue;
      const auto [i, started] = it->second;
      running.erase(it);
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok) {
        std::fprintf(stderr, "demo: row '%s' failed; its log:\n%s", jobs[i].label.c_str(),
                     log_tail(log_file(i), 30).c_str());
        fail("demo --jobs",
             "row '" + jobs[i].label + "' failed (" +
                 (WIFEXITED(status) ? "exit code " + std::to_string(WEXITSTATUS(status))
                                    : "signal " + std::to_string(WTERMSIG(status))) +
                 ")");
      }
      rows[i] = demo_row_from_wire(read_json_file(row_file(i).string()));
      ++done;
      const double el = std::chrono::duration<double>(Clock::now() - t0).count();
      std::fprintf(stderr, "demo: [%d/%d] %s done in %.1f s: ppl %.4f  (%d of %d rows, %.1f s)\n",
                   i + 1, n, jobs[i].label.c_str(),
                   std::chrono::duration<double>(Clock::now() - started).count(), rows[i].ppl, done,
                   n, el);
    }
  } catch (...) {
    stop_all();
    throw;
  }
  return rows;
}

}  // namespace lrc::cli
