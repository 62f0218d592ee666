#include "cli/demo_plot.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "lrc/core/error.h"

namespace lrc::cli {

namespace {

std::vector<std::string> words(std::string s) {
  // "clip 0.90" is one setting: keep its value with it.
  for (size_t p = s.find("clip "); p != std::string::npos; p = s.find("clip ", p + 1))
    s[p + 4] = '=';
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::string rank_text(double r) {
  char b[32];
  if (r > 0 && r < 1)
    std::snprintf(b, sizeof b, "%g%%", 100 * r);
  else
    std::snprintf(b, sizeof b, "%g", r);
  return b;
}

// A row's name in the picture: method, rank, and the settings in which it differs from the
// other rows of its method (an ablation's variants; a lone row of a method needs none).
std::vector<std::string> row_labels(const std::vector<const DemoRow*>& rows) {
  std::map<std::string, std::map<std::string, size_t>> count;  // method -> word -> rows
  std::map<std::string, size_t> rows_of;
  for (const DemoRow* r : rows) {
    ++rows_of[r->method];
    const auto ws = words(r->settings);
    for (const auto& w : std::set<std::string>(ws.begin(), ws.end())) ++count[r->method][w];
  }
  std::vector<std::string> labels;
  for (const DemoRow* r : rows) {
    std::string l = r->method;
    if (r->method == "lrc" || r->method == "svd") l += " " + rank_text(r->rank);
    for (const auto& w : words(r->settings))
      if (count[r->method][w] < rows_of[r->method]) l += " " + w;
    labels.push_back(l);
  }
  return labels;
}

}  // namespace

plot::Figure demo_figure(const std::vector<DemoRow>& rows, const std::string& caption) {
  const DemoRow* fp = nullptr;
  const DemoRow* gptq = nullptr;
  for (const auto& r : rows) {
    if (r.method == "fp" && !fp) fp = &r;
    if (r.method == "gptq" && !r.clip_searched && !gptq) gptq = &r;
  }
  plot::Figure f;
  f.caption = caption;
  f.columns = 2;
  f.panel_width = 560;
  f.panel_height = 360;

  // Perplexity against rank: one series per (method, settings) of the LRC and SVD rows.
  std::set<double> ranks;
  std::map<std::pair<std::string, std::string>, std::vector<const DemoRow*>> groups;
  for (const auto& r : rows)
    if (r.method == "lrc" || r.method == "svd") {
      ranks.insert(r.rank);
      groups[{r.method, r.settings}].push_back(&r);
    }
  const bool percent = !ranks.empty() && *ranks.rbegin() < 1;
  // Variants at one rank (--ablation): a bar each rather than a line through them.
  bool ablation = false;
  std::multiset<double> lrc_ranks;
  for (const auto& r : rows)
    if (r.method == "lrc") {
      ablation = ablation || lrc_ranks.count(r.rank) > 0;
      lrc_ranks.insert(r.rank);
    }
  if (!ablation && ranks.size() >= 2) {
    plot::Panel p;
    p.title = "Perplexity against rank";
    p.x_label = percent ? "rank (% of each matrix)" : "rank k";
    p.y_label = "perplexity";
    std::map<std::string, int> per_method;
    for (const auto& [key, g] : groups) ++per_method[key.first];
    int color = 0;
    for (const auto& [key, g] : groups) {
      plot::Series s;
      s.name = key.first == "lrc" ? "LRC" : "SVD";
      if (per_method[key.first] > 1) s.name += " " + key.second;
      std::vector<const DemoRow*> sorted = g;
      std::sort(sorted.begin(), sorted.end(),
                [](const DemoRow* a, const DemoRow* b) { return a->rank < b->rank; });
      for (const DemoRow* r : sorted) {
        s.x.push_back(percent ? 100 * r->rank : r->rank);
        s.y.push_back(r->ppl);
      }
      s.color = plot::palette(key.first == "lrc" ? 0 : 1);
      if (per_method[key.first] > 1) s.color = plot::palette(2 + color++);
      p.series.push_back(std::move(s));
    }
    if (gptq) {
      plot::Series s;
      s.name = "QuaRot-GPTQ";
      s.level = true;
      s.dashed = true;
      s.y = {gptq->ppl};
      s.color = plot::palette(4);
      p.series.push_back(std::move(s));
    }
    if (fp) {
      plot::Series s;
      s.name = "FP";
      s.level = true;
      s.y = {fp->ppl};
      s.color = "#000000";
      p.series.push_back(std::move(s));
    }
    f.panels.push_back(std::move(p));
  }

  bool seeds = false;
  for (const auto& r : rows) seeds = seeds || r.ppl_seeds.size() > 1;
  if (ablation || seeds || f.panels.empty()) {
    std::vector<const DemoRow*> shown;
    for (const auto& r : rows)
      if (&r != fp && r.gap_closed) shown.push_back(&r);
    if (!shown.empty()) {
      plot::Panel p;
      p.title = "Gap closed (share of the QuaRot-GPTQ gap to FP)";
      p.y_label = "gap closed";
      p.y_percent = true;
      const auto labels = row_labels(shown);
      for (size_t i = 0; i < shown.size(); ++i) {
        const DemoRow& r = *shown[i];
        plot::Bar b;
        b.label = labels[i];
        b.value = *r.gap_closed;
        // Each seed against the GPTQ row's same seed (the FP model has no seed).
        if (fp && gptq && r.ppl_seeds.size() > 1 && gptq->ppl_seeds.size() == r.ppl_seeds.size())
          for (size_t s = 0; s < r.ppl_seeds.size(); ++s)
            b.points.push_back((gptq->ppl_seeds[s] - r.ppl_seeds[s]) /
                               (gptq->ppl_seeds[s] - fp->ppl));
        b.color = plot::palette(r.method == "lrc" ? 0 : r.method == "svd" ? 1 : 4);
        p.bars.push_back(std::move(b));
      }
      plot::Series full;
      full.name = "FP (100%)";
      full.level = true;
      full.dashed = true;
      full.y = {1.0};
      full.color = "#000000";
      p.series.push_back(std::move(full));
      f.panels.push_back(std::move(p));
    }
  }
  if (f.panels.empty())
    fail("--plot", "nothing to draw: give LRC/SVD rows at two or more ranks, or keep the FP and "
                   "GPTQ rows for gap closed");
  f.columns = static_cast<int>(f.panels.size());
  return f;
}

}  // namespace lrc::cli
