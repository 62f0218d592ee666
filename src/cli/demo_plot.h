// The picture of `lrc demo --plot FILE.svg`, from the finished rows (gap closed filled in):
//   * perplexity against rank for the LRC and SVD rows, with QuaRot-GPTQ and FP as levels
//     (the paper's Fig. 2), when those rows have at least two ranks and no two LRC rows share
//     a rank (--ablation's variants do: they get the bars);
//   * gap closed per row as bars, with one point per rotation seed (the seed's own gap
//     against the GPTQ row's same seed), for --ablation, --seeds, or when there is no sweep.
#pragma once

#include <string>
#include <vector>

#include "cli/demo_rows.h"
#include "lrc/plot/svg_chart.h"

namespace lrc::cli {

// Throws lrc::Error (naming --plot) when the rows give neither picture.
plot::Figure demo_figure(const std::vector<DemoRow>& rows, const std::string& caption);

}  // namespace lrc::cli
