#include "lrc/core/scope_profile.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace lrc::scope_profile {

namespace {

struct Table {
  std::mutex mu;
  std::map<std::string, std::pair<int64_t, double>> rows;  // name -> calls, seconds
  double last_print = now();
  ~Table() { print(); }
  void print() const {  // mu held (or the process ending)
    if (rows.empty()) return;
    std::vector<std::pair<std::string, std::pair<int64_t, double>>> v(rows.begin(), rows.end());
    std::sort(v.begin(), v.end(),
              [](const auto& a, const auto& b) { return a.second.second > b.second.second; });
    std::fprintf(stderr, "\nLRC_CUDA_PROFILE (scopes, inclusive, seconds):\n");
    for (const auto& [name, r] : v)
      std::fprintf(stderr, "  %-32s %8lld calls %10.3f s\n", name.c_str(),
                   static_cast<long long>(r.first), r.second);
  }
};

Table& table() {
  static Table t;
  return t;
}

}  // namespace

bool enabled() {
  static const bool on = [] {
    const char* e = std::getenv("LRC_CUDA_PROFILE");
    const bool set = e && *e && std::string(e) != "0";
    if (set) table();  // constructed before any later static it must outlive
    return set;
  }();
  return on;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void add(const char* name, double seconds) {
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  auto& r = t.rows[name];
  r.first += 1;
  r.second += seconds;
  if (now() - t.last_print >= 60) {
    t.print();
    t.last_print = now();
  }
}

Scope::Scope(const char* name, Sync sync, const void* ctx) {
  if (!enabled()) return;
  name_ = name;
  sync_ = sync;
  ctx_ = ctx;
  sync_(ctx_);
  t0_ = now();
}

Scope::~Scope() {
  if (!name_) return;
  sync_(ctx_);
  add(name_, now() - t0_);
}

}  // namespace lrc::scope_profile
