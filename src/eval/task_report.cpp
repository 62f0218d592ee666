// Zero-shot results as a table for people and as JSON for scripts.
#include <algorithm>
#include <cstdio>
#include <string>

#include "lrc/eval/zero_shot.h"

namespace lrc {

namespace {

std::string acc_cell(double p, double ci) {
  char b[48];
  std::snprintf(b, sizeof b, "%.4f ± %.4f", p, ci);
  return b;
}

// s padded with spaces to `width` characters as a terminal shows them (UTF-8 code points, so
// "±" counts once); right-aligned when `right`.
std::string pad(const std::string& s, size_t width, bool right = false) {
  size_t shown = 0;
  for (unsigned char ch : s) shown += (ch & 0xC0) != 0x80;
  const std::string fill(shown < width ? width - shown : 0, ' ');
  return right ? fill + s : s + fill;
}

}  // namespace

std::string format_task_table(const ZeroShotResults& r) {
  size_t name_w = 7;  // "average"
  for (const TaskResult& t : r.tasks) name_w = std::max(name_w, t.name.size());
  auto row = [&](const std::string& name, const std::string& kind, const std::string& n,
                 const std::string& acc, const std::string& acc_norm, const std::string& ppl,
                 const std::string& saved) {
    return pad(name, name_w) + "  " + pad(kind, 15) + "  " + pad(n, 6, true) + "  " + pad(acc, 17) +
           "  " + pad(acc_norm, 17) + "  " + pad(ppl, 10, true) + "  " + pad(saved, 9, true) + "\n";
  };
  std::string s =
      row("task", "kind", "n", "acc ± 95% ci", "acc_norm ± 95% ci", "target ppl", "fwd saved");
  for (const TaskResult& t : r.tasks) {
    const bool mc = t.kind == TaskKind::MultipleChoice;
    char ppl[32] = "-";
    if (!mc) std::snprintf(ppl, sizeof ppl, "%.3f", t.target_ppl);
    char saved[16];
    std::snprintf(saved, sizeof saved, "%.1f%%", 100.0 * t.work.saved_share());
    s += row(t.name, task_kind_name(t.kind), std::to_string(t.n), acc_cell(t.acc, t.acc_ci),
             mc ? acc_cell(t.acc_norm, t.acc_norm_ci) : "-", ppl, saved);
  }
  char avg[32];
  std::snprintf(avg, sizeof avg, "%.4f", r.acc_avg);
  s += row("average", "", "", avg, "", "", "");
  char line[256];
  std::snprintf(line, sizeof line,
                "context sharing: %lld token positions forwarded instead of %lld (%.1f%% saved), "
                "%.1f s\n",
                static_cast<long long>(r.work.shared), static_cast<long long>(r.work.separate),
                100.0 * r.work.saved_share(), r.seconds);
  s += line;
  return s;
}

nlohmann::json task_results_json(const ZeroShotResults& r) {
  nlohmann::json j;
  j["acc"] = nlohmann::json::object();
  j["acc_ci95"] = nlohmann::json::object();
  j["acc_norm"] = nlohmann::json::object();
  j["acc_norm_ci95"] = nlohmann::json::object();
  j["target_ppl"] = nlohmann::json::object();
  j["n"] = nlohmann::json::object();
  for (const TaskResult& t : r.tasks) {
    j["acc"][t.name] = t.acc;
    j["acc_ci95"][t.name] = t.acc_ci;
    j["n"][t.name] = t.n;
    if (t.kind == TaskKind::MultipleChoice) {
      j["acc_norm"][t.name] = t.acc_norm;
      j["acc_norm_ci95"][t.name] = t.acc_norm_ci;
    } else {
      j["target_ppl"][t.name] = t.target_ppl;
    }
  }
  j["acc_avg"] = r.acc_avg;
  j["forward_work_saved"] = r.work.saved_share();
  return j;
}

}  // namespace lrc
