// Self-contained SVG charts, written without a plotting library: the pictures of `lrc demo
// --plot` (perplexity against rank, gap closed per variant) and `lrc quantize --report`
// (per-layer error, ranks and clips). A Figure is a grid of Panels; a panel is either a line
// chart (Series: points joined by a line, or a level drawn across the panel) or a bar chart
// (Bars, each with optional per-seed points on it).
//
// The SVG is meant to be read by programs too: every panel is a <g class="panel"
// data-title=...>, every series a <g class="series" data-name=... data-points=N> holding one
// <circle class="point"> per finite point, every level a <g class="level" data-name=...
// data-value=...>, every bar a <g class="bar" data-label=... data-value=...> with one
// <circle class="point"> per seed. Non-finite values are left out (and not counted).
#pragma once

#include <string>
#include <vector>

namespace lrc::plot {

struct Series {
  std::string name;          // legend text
  std::vector<double> x, y;  // one point each; a level reads y[0] only
  bool level = false;        // a horizontal line across the panel (e.g. FP, GPTQ)
  bool dashed = false;
  bool markers = true;
  std::string color;  // "" = the palette colour of its index in the panel
};

struct Bar {
  std::string label;
  double value = 0;            // the bar's height (e.g. mean over seeds)
  std::vector<double> points;  // drawn as dots on the bar (e.g. one per seed)
  std::string color;           // "" = the palette's first colour
};

struct Panel {
  std::string title, x_label, y_label;
  bool log_y = false;        // base-10 axis; values <= 0 are left out
  bool y_percent = false;    // tick labels as percentages of 1 (0.25 -> 25%)
  std::vector<Series> series;
  std::vector<Bar> bars;     // non-empty: a bar chart (levels in `series` still drawn)
};

struct Figure {
  std::string title;
  std::string caption;  // a line under the figure (the command that made it, say)
  int columns = 1;
  int panel_width = 520, panel_height = 330;  // pixels, legend column included
  std::vector<Panel> panels;
};

// The SVG document. Throws lrc::Error when the figure has no panel.
std::string render_svg(const Figure& f);
// render_svg written to `path` (atomically: a failed write leaves no file).
void write_svg(const Figure& f, const std::string& path);

// Axis ticks between lo and hi (lo < hi): about `target` round values (1, 2, 5 x 10^k)
// inside [lo, hi]. Exposed for tests.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

// Text for SVG (& < > " ' escaped).
std::string xml_escape(const std::string& s);

// The palette (colour-blind safe, Okabe-Ito order) colour i.
const char* palette(int i);

}  // namespace lrc::plot
