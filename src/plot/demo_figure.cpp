#include "lrc/plot/demo_figure.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "lrc/core/error.h"

namespace lrc::plot {

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
std::vector<std::string> row_labels(const std::vector<const DemoPlotRow*>& rows) {
  std::map<std::string, std::map<std::string, size_t>> count;  // method -> word -> rows
  std::map<std::string, size_t> rows_of;
  for (const DemoPlotRow* r : rows) {
    ++rows_of[r->method];
    const auto ws = words(r->settings);
    for (const auto& w : std::set<std::string>(ws.begin(), ws.end())) ++count[r->method][w];
  }
  std::vector<std::string> labels;
  for (const DemoPlotRow* r : rows) {
    std::string l = r->method;
    if (r->method == "lrc" || r->method == "svd") l += " " + rank_text(r->rank);
    for (const auto& w : words(r->settings))
      if (count[r->method][w] < rows_of[r->method]) l += " " + w;
    labels.push_back(l);
  }
  return labels;
}

}  // namespace

Figure demo_figure(const std::vector<DemoPlotRow>& rows, const std::string& caption,
                   const std::string& where) {
  const DemoPlotRow* fp = nullptr;
  const DemoPlotRow* gptq = nullptr;
  for (const auto& r : rows) {
    if (r.method == "fp" && !fp) fp = &r;
    if (r.method == "gptq" && !r.clip_searched && !gptq) gptq = &r;
  }
  Figure f;
  f.caption = caption;
  f.columns = 2;
  f.panel_width = 560;
  f.panel_height = 360;

  // Perplexity against rank: one series per (method, settings) of the LRC and SVD rows.
  std::set<double> ranks;
  std::map<std::pair<std::string, std::string>, std::vector<const DemoPlotRow*>> groups;
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
    Panel p;
    p.title = "Perplexity against rank";
    p.x_label = percent ? "rank (% of each matrix)" : "rank k";
    p.y_label = "perplexity";
    std::map<std::string, int> per_method;
    for (const auto& [key, g] : groups) ++per_method[key.first];
    int color = 0;
    for (const auto& [key, g] : groups) {
      Series s;
      s.name = key.first == "lrc" ? "LRC" : "SVD";
      if (per_method[key.first] > 1) s.name += " " + key.second;
      std::vector<const DemoPlotRow*> sorted = g;
      std::sort(sorted.begin(), sorted.end(),
                [](const DemoPlotRow* a, const DemoPlotRow* b) { return a->rank < b->rank; });
      for (const DemoPlotRow* r : sorted) {
        s.x.push_back(percent ? 100 * r->rank : r->rank);
        s.y.push_back(r->ppl);
      }
      s.color = palette(key.first == "lrc" ? 0 : 1);
      if (per_method[key.first] > 1) s.color = palette(2 + color++);
      p.series.push_back(std::move(s));
    }
    if (gptq) {
      Series s;
      s.name = "QuaRot-GPTQ";
      s.level = true;
      s.dashed = true;
      s.y = {gptq->ppl};
      s.color = palette(4);
      p.series.push_back(std::move(s));
    }
    if (fp) {
      Series s;
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
    std::vector<const DemoPlotRow*> shown;
    for (const auto& r : rows)
      if (&r != fp && r.gap_closed) shown.push_back(&r);
    if (!shown.empty()) {
      Panel p;
      p.title = "Gap closed (share of the QuaRot-GPTQ gap to FP)";
      p.y_label = "gap closed";
      p.y_percent = true;
      const auto labels = row_labels(shown);
      for (size_t i = 0; i < shown.size(); ++i) {
        const DemoPlotRow& r = *shown[i];
        Bar b;
        b.label = labels[i];
        b.value = *r.gap_closed;
        // Each seed against the GPTQ row's same seed (the FP model has no seed).
        if (fp && gptq && r.ppl_seeds.size() > 1 && gptq->ppl_seeds.size() == r.ppl_seeds.size())
          for (size_t s = 0; s < r.ppl_seeds.size(); ++s)
            b.points.push_back((gptq->ppl_seeds[s] - r.ppl_seeds[s]) /
                               (gptq->ppl_seeds[s] - fp->ppl));
        b.color = palette(r.method == "lrc" ? 0 : r.method == "svd" ? 1 : 4);
        p.bars.push_back(std::move(b));
      }
      Series full;
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
    fail(where,
         "nothing to draw: give LRC/SVD rows at two or more ranks, or keep the FP and "
         "GPTQ rows for gap closed");
  f.columns = static_cast<int>(f.panels.size());
  return f;
}

std::vector<DemoPlotRow> demo_plot_rows(const nlohmann::json& doc, const std::string& where) {
  const nlohmann::json& rows = doc.is_object() && doc.contains("rows") ? doc.at("rows") : doc;
  if (!rows.is_array())
    fail(where, "expected the demo's rows (a list, or an object with \"rows\")");
  std::vector<DemoPlotRow> out;
  for (size_t i = 0; i < rows.size(); ++i) {
    const nlohmann::json& j = rows[i];
    const std::string at = "row " + std::to_string(i);
    auto need = [&](const char* key) -> const nlohmann::json& {
      if (!j.is_object() || !j.contains(key)) fail(where, at + " has no \"" + key + "\"");
      return j.at(key);
    };
    try {
      DemoPlotRow r;
      r.method = need("method").get<std::string>();
      r.settings = j.value("settings", std::string());
      r.rank = need("rank").get<double>();
      r.ppl = need("ppl").get<double>();
      if (j.contains("ppl_seeds")) r.ppl_seeds = j.at("ppl_seeds").get<std::vector<double>>();
      r.clip_searched = j.contains("clip_searched")
                            ? j.at("clip_searched").get<bool>()
                            : r.settings.find("clip search") != std::string::npos;
      if (j.contains("gap_closed") && !j.at("gap_closed").is_null())
        r.gap_closed = j.at("gap_closed").get<double>();
      out.push_back(std::move(r));
    } catch (const nlohmann::json::exception& e) {
      fail(where, at + ": " + e.what());
    }
  }
  return out;
}

}  // namespace lrc::plot
