// The picture of `lrc demo --plot FILE.svg` (and `lrc.plot_demo` in Python), from the demo's
// finished rows:
//   * perplexity against rank for the LRC and SVD rows, with QuaRot-GPTQ and FP as levels
//     (the paper's Fig. 2), when those rows have at least two ranks and no two LRC rows share
//     a rank (--ablation's variants do: they get the bars);
//   * gap closed per row as bars, with one point per rotation seed (the seed's own gap
//     against the GPTQ row's same seed), for --ablation, --seeds, or when there is no sweep.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lrc/plot/svg_chart.h"

namespace lrc::plot {

// What the picture reads of a demo row (the fields of `lrc demo --json`'s "rows").
struct DemoPlotRow {
  std::string method;             // "fp", "rtn", "gptq", "svd", "lrc"
  std::string settings;           // "W4A4 clip 0.90 T=1 reg=consistent", ...
  double rank = 0;                // fraction of each matrix, or an integer rank
  double ppl = 0;                 // mean over ppl_seeds
  std::vector<double> ppl_seeds;  // one per rotation seed (empty or one: no seed points)
  bool clip_searched = false;     // --a-clip search (not the gap's GPTQ reference)
  std::optional<double> gap_closed;
};

// The rows of `lrc demo --json` (its "rows" array, or the whole document): method, settings,
// rank, ppl, gap_closed (null for FP), optional ppl_seeds; clip_searched from the settings'
// "clip search". Throws lrc::Error naming `where` and the row for a missing or mistyped field.
std::vector<DemoPlotRow> demo_plot_rows(const nlohmann::json& rows, const std::string& where);

// Throws lrc::Error (naming `where`) when the rows give neither picture.
Figure demo_figure(const std::vector<DemoPlotRow>& rows, const std::string& caption,
                   const std::string& where = "--plot");

}  // namespace lrc::plot
