#include "lrc/plot/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "lrc/core/error.h"
#include "lrc/io/json_file.h"

namespace lrc::plot {

namespace {

// Layout of one panel (pixels): the plot area, a legend column on the right.
constexpr double kLeft = 64, kTop = 30, kBottom = 46, kLegendWidth = 150;
constexpr double kFont = 12, kSmallFont = 10.5;

// Numbers in the SVG: short, locale-independent ("C" formatting of printf).
std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  std::string s = b;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

// Data values in data-* attributes: enough digits to read the number back.
std::string full(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.10g", v);
  return b;
}

std::string tick_label(double v, bool percent, double step) {
  char b[40];
  if (percent) {
    const double p = 100 * v, ps = 100 * step;
    std::snprintf(b, sizeof b, "%.*f%%", ps >= 1 || ps == 0 ? 0 : 1, p);
  } else {
    std::snprintf(b, sizeof b, "%g", std::abs(v) < 1e-12 * std::max(1.0, step) ? 0.0 : v);
  }
  return b;
}

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return !(lo <= hi); }
};

// A value's place on an axis: linear, or log10 for a log axis (values <= 0 have none).
struct Axis {
  double lo = 0, hi = 1;  // in axis units (log10 for a log axis)
  double px0 = 0, px1 = 1;
  bool log = false;
  bool has(double v) const { return std::isfinite(v) && (!log || v > 0); }
  double unit(double v) const { return log ? std::log10(v) : v; }
  double map(double v) const { return px0 + (unit(v) - lo) / (hi - lo) * (px1 - px0); }
};

// [lo, hi] widened so that the data do not touch the frame, and never empty.
void pad(double& lo, double& hi, double frac) {
  if (hi - lo <= 1e-12 * std::max(std::abs(lo), std::abs(hi))) {
    const double d = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= d;
    hi += d;
    return;
  }
  const double d = (hi - lo) * frac;
  lo -= d;
  hi += d;
}

class Writer {
 public:
  std::ostringstream out;
  void text(double x, double y, const std::string& s, double size, const char* anchor,
            const std::string& extra = "") {
    out << "<text x=\"" << num(x) << "\" y=\"" << num(y) << "\" font-size=\"" << num(size)
        << "\" text-anchor=\"" << anchor << "\"" << extra << ">" << xml_escape(s) << "</text>\n";
  }
  void line(double x0, double y0, double x1, double y1, const std::string& style) {
    out << "<line x1=\"" << num(x0) << "\" y1=\"" << num(y0) << "\" x2=\"" << num(x1)
        << "\" y2=\"" << num(y1) << "\" " << style << "/>\n";
  }
};

void legend_entry(Writer& w, double x, double y, const std::string& name, const std::string& color,
                  bool dashed, bool marker, bool line) {
  if (line)
    w.line(x, y, x + 22, y,
           "stroke=\"" + color + "\" stroke-width=\"2\"" +
               (dashed ? " stroke-dasharray=\"6 4\"" : ""));
  if (marker)
    w.out << "<circle cx=\"" << num(x + 11) << "\" cy=\"" << num(y) << "\" r=\"3.2\" fill=\""
          << color << "\"/>\n";
  w.text(x + 28, y + 4, name, kSmallFont, "start");
}

// Room under the plot area: axis labels, or a bar chart's category labels, written upwards
// (vertical, so that long labels neither overlap nor run off the left edge).
double bottom_room(const Panel& p) {
  size_t longest = 0;
  for (const auto& b : p.bars) longest = std::max(longest, b.label.size());
  return p.bars.empty() ? kBottom : 16 + 5.7 * static_cast<double>(longest);
}

// A panel's height: the figure's, plus whatever its bar labels need beyond the usual room.
double panel_height(const Panel& p, double base) {
  return base + std::max(0.0, bottom_room(p) - kBottom);
}

void render_panel(Writer& w, const Panel& p, double ox, double oy, double width, double height) {
  const bool bars = !p.bars.empty();
  const double bottom = bottom_room(p);
  Axis xa, ya;
  xa.px0 = ox + kLeft;
  xa.px1 = ox + width - kLegendWidth;
  ya.px0 = oy + height - bottom;  // y grows downwards in SVG
  ya.px1 = oy + kTop;
  ya.log = p.log_y;

  // Ranges over everything drawn.
  Range xr, yr;
  for (const auto& s : p.series)
    for (size_t i = 0; i < s.y.size(); ++i) {
      if (!ya.has(s.y[i])) continue;
      yr.add(ya.unit(s.y[i]));
      if (s.level) break;
      if (i < s.x.size()) xr.add(s.x[i]);
    }
  for (const auto& b : p.bars) {
    if (ya.has(b.value)) yr.add(ya.unit(b.value));
    for (double v : b.points)
      if (ya.has(v)) yr.add(ya.unit(v));
  }
  if (bars && !ya.log) yr.add(0);  // bars stand on zero
  if (yr.empty()) {  // nothing to draw: an axis of 0 .. 1 (1 .. 10 on a log axis)
    yr.add(0);
    yr.add(1);
  }
  if (xr.empty()) {
    xr.add(0);
    xr.add(1);
  }
  ya.lo = yr.lo;
  ya.hi = yr.hi;
  pad(ya.lo, ya.hi, 0.06);
  if (bars && !ya.log && yr.lo >= 0) ya.lo = 0;
  xa.lo = xr.lo;
  xa.hi = xr.hi;
  pad(xa.lo, xa.hi, 0.04);
  const size_t nb = p.bars.size();
  if (bars) {  // categories at 0 .. n-1
    xa.lo = -0.6;
    xa.hi = static_cast<double>(nb) - 0.4;
  }

  std::vector<double> yt;
  double ystep = 0;
  if (ya.log && ya.hi - ya.lo < 0.8) {
    // Less than a decade: round values of the data's own size, placed on the log axis.
    yt = nice_ticks(std::pow(10.0, ya.lo), std::pow(10.0, ya.hi), 4);
  } else if (ya.log) {
    for (int e = static_cast<int>(std::floor(ya.lo)); e <= static_cast<int>(std::ceil(ya.hi)); ++e)
      for (double m : {1.0, 2.0, 5.0}) {
        const double v = m * std::pow(10.0, e);
        const double u = std::log10(v);
        // Few decades: 1, 2, 5 each; many: powers of ten only.
        if (u >= ya.lo && u <= ya.hi && (m == 1.0 || ya.hi - ya.lo < 2.5)) yt.push_back(v);
      }
  } else {
    yt = nice_ticks(ya.lo, ya.hi);
    ystep = yt.size() > 1 ? yt[1] - yt[0] : 0;
  }
  std::vector<std::string> ylabels;
  size_t widest = 0;
  for (double v : yt) {
    std::string label = tick_label(v, p.y_percent, ystep);
    if (ya.log) {
      char b[32];
      std::snprintf(b, sizeof b, "%.3g", v);
      label = b;
    }
    widest = std::max(widest, label.size());
    ylabels.push_back(label);
  }
  // The plot area starts right of the widest tick label, so the axis title never runs into it.
  xa.px0 = ox + std::max(kLeft, 30 + 6.4 * static_cast<double>(widest));

  w.out << "<g class=\"panel\" data-title=\"" << xml_escape(p.title) << "\">\n";
  // Frame, grid and ticks.
  w.out << "<rect x=\"" << num(xa.px0) << "\" y=\"" << num(ya.px1) << "\" width=\""
        << num(xa.px1 - xa.px0) << "\" height=\"" << num(ya.px0 - ya.px1)
        << "\" fill=\"white\" stroke=\"#444\" stroke-width=\"1\"/>\n";
  for (size_t i = 0; i < yt.size(); ++i) {
    const double y = ya.map(yt[i]);
    w.line(xa.px0, y, xa.px1, y, "stroke=\"#e3e3e3\" stroke-width=\"1\"");
    w.text(xa.px0 - 6, y + 4, ylabels[i], kSmallFont, "end");
  }
  if (!bars) {
    for (double v : nice_ticks(xa.lo, xa.hi, 6)) {
      const double x = xa.map(v);
      w.line(x, ya.px0, x, ya.px0 + 4, "stroke=\"#444\"");
      w.text(x, ya.px0 + 16, tick_label(v, false, 0), kSmallFont, "middle");
    }
  }
  // Labels and title.
  w.text((xa.px0 + xa.px1) / 2, oy + 18, p.title, kFont + 1, "middle", " font-weight=\"bold\"");
  if (!p.x_label.empty())
    w.text((xa.px0 + xa.px1) / 2, oy + height - 8, p.x_label, kFont, "middle");
  if (!p.y_label.empty()) {
    const double cx = ox + 14, cy = (ya.px0 + ya.px1) / 2;
    w.text(cx, cy, p.y_label, kFont, "middle",
           " transform=\"rotate(-90 " + num(cx) + " " + num(cy) + ")\"");
  }

  // Bars, each with its per-seed points spread a little sideways so that equal values show.
  for (size_t i = 0; i < nb; ++i) {
    const Bar& b = p.bars[i];
    const std::string color = b.color.empty() ? palette(0) : b.color;
    const double cx = xa.map(static_cast<double>(i));
    const double half = 0.32 * (xa.map(1.0) - xa.map(0.0));
    w.out << "<g class=\"bar\" data-label=\"" << xml_escape(b.label) << "\" data-value=\""
          << full(b.value) << "\">\n";
    if (ya.has(b.value)) {
      const double base = ya.log ? ya.px0 : ya.map(std::clamp(0.0, ya.lo, ya.hi));
      const double top = ya.map(b.value);
      w.out << "<rect x=\"" << num(cx - half) << "\" y=\"" << num(std::min(base, top))
            << "\" width=\"" << num(2 * half) << "\" height=\"" << num(std::abs(base - top))
            << "\" fill=\"" << color << "\" fill-opacity=\"0.55\" stroke=\"" << color << "\"/>\n";
    }
    const size_t np = b.points.size();
    for (size_t k = 0; k < np; ++k) {
      if (!ya.has(b.points[k])) continue;
      const double dx =
          np > 1 ? (static_cast<double>(k) / static_cast<double>(np - 1) - 0.5) * half : 0.0;
      w.out << "<circle class=\"point\" cx=\"" << num(cx + dx) << "\" cy=\""
            << num(ya.map(b.points[k])) << "\" r=\"3\" fill=\"#222\"/>\n";
    }
    const double lx = cx + 4, ly = ya.px0 + 8;
    w.text(lx, ly, b.label, kSmallFont, "end",
           " transform=\"rotate(-90 " + num(lx) + " " + num(ly) + ")\"");
    w.out << "</g>\n";
  }

  // Series: levels first (under the data), then lines with their markers; legend beside.
  double legend_y = ya.px1 + 10;
  const double legend_x = xa.px1 + 12;
  for (size_t si = 0; si < p.series.size(); ++si) {
    const Series& s = p.series[si];
    const std::string color = s.color.empty() ? palette(static_cast<int>(si)) : s.color;
    const std::string dash = s.dashed ? " stroke-dasharray=\"6 4\"" : "";
    if (s.level) {
      if (s.y.empty() || !ya.has(s.y[0])) continue;
      const double y = ya.map(s.y[0]);
      w.out << "<g class=\"level\" data-name=\"" << xml_escape(s.name) << "\" data-value=\""
            << full(s.y[0]) << "\">\n";
      w.line(xa.px0, y, xa.px1, y, "stroke=\"" + color + "\" stroke-width=\"1.6\"" + dash);
      w.out << "</g>\n";
      legend_entry(w, legend_x, legend_y, s.name, color, s.dashed, false, true);
      legend_y += 18;
      continue;
    }
    std::vector<std::pair<double, double>> pts;
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
      if (std::isfinite(s.x[i]) && ya.has(s.y[i])) pts.emplace_back(xa.map(s.x[i]), ya.map(s.y[i]));
    w.out << "<g class=\"series\" data-name=\"" << xml_escape(s.name) << "\" data-points=\""
          << pts.size() << "\">\n";
    if (pts.size() > 1) {
      w.out << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\"" << dash
            << " points=\"";
      for (size_t i = 0; i < pts.size(); ++i)
        w.out << (i ? " " : "") << num(pts[i].first) << "," << num(pts[i].second);
      w.out << "\"/>\n";
    }
    for (const auto& [x, y] : pts)
      w.out << "<circle class=\"point\" cx=\"" << num(x) << "\" cy=\"" << num(y) << "\" r=\""
            << (s.markers ? "3.2" : "0") << "\" fill=\"" << color << "\"/>\n";
    w.out << "</g>\n";
    legend_entry(w, legend_x, legend_y, s.name, color, s.dashed, s.markers, pts.size() > 1);
    legend_y += 18;
  }
  w.out << "</g>\n";
}

}  // namespace

const char* palette(int i) {
  static const char* const colors[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                       "#E69F00", "#56B4E9", "#000000", "#999999"};
  return colors[static_cast<size_t>(i) % (sizeof colors / sizeof colors[0])];
}

std::string xml_escape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      default:
        // Control characters other than tab/newline are not allowed in XML 1.0.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') o += ' ';
        else o += c;
    }
  }
  return o;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(lo < hi) || !std::isfinite(lo) || !std::isfinite(hi) || target < 1) return {};
  // The step among 1, 2, 5 x 10^k whose tick count is nearest the target.
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (std::abs((hi - lo) / (m * mag) - target) < std::abs((hi - lo) / step - target))
      step = m * mag;
  std::vector<double> t;
  const auto first = static_cast<long long>(std::ceil(lo / step - 1e-9));
  for (long long k = first; static_cast<double>(k) * step <= hi + 1e-9 * step; ++k) {
    // k·step printed to 12 digits and read back: 0.6, not 0.6000000000000001.
    char b[40];
    std::snprintf(b, sizeof b, "%.12g", static_cast<double>(k) * step);
    t.push_back(std::strtod(b, nullptr));
  }
  return t;
}

std::string render_svg(const Figure& f) {
  if (f.panels.empty()) fail("plot", "a figure needs at least one panel");
  const int cols = std::max(1, std::min(f.columns, static_cast<int>(f.panels.size())));
  const int rows = (static_cast<int>(f.panels.size()) + cols - 1) / cols;
  const double head = f.title.empty() ? 8 : 34;
  // The caption (a command line, say) broken at spaces to the figure's width.
  const double W = cols * f.panel_width;
  std::vector<std::string> caption;
  {
    const size_t per_line = static_cast<size_t>(std::max(20.0, W / 6.3));
    std::istringstream in(f.caption);
    std::string line;
    for (std::string word; in >> word;) {
      if (!line.empty() && line.size() + 1 + word.size() > per_line) {
        caption.push_back(line);
        line.clear();
      }
      line += (line.empty() ? "" : " ") + word;
    }
    if (!line.empty()) caption.push_back(line);
  }
  const double foot = caption.empty() ? 8 : 12 + 15 * static_cast<double>(caption.size());
  // Each row as tall as its tallest panel.
  std::vector<double> row_y(static_cast<size_t>(rows) + 1, head), row_h(static_cast<size_t>(rows), 0);
  for (size_t i = 0; i < f.panels.size(); ++i) {
    double& h = row_h[i / static_cast<size_t>(cols)];
    h = std::max(h, panel_height(f.panels[i], f.panel_height));
  }
  for (int r = 0; r < rows; ++r) row_y[static_cast<size_t>(r) + 1] = row_y[static_cast<size_t>(r)] + row_h[static_cast<size_t>(r)];
  const double H = row_y.back() + foot;
  Writer w;
  w.out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << num(W) << "\" height=\""
        << num(H) << "\" viewBox=\"0 0 " << num(W) << " " << num(H)
        << "\" font-family=\"DejaVu Sans, Arial, Helvetica, sans-serif\">\n"
        << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  if (!f.title.empty()) w.text(W / 2, 23, f.title, 15, "middle", " font-weight=\"bold\"");
  for (size_t i = 0; i < f.panels.size(); ++i) {
    const size_t r = i / static_cast<size_t>(cols);
    const double ox = static_cast<double>(i % static_cast<size_t>(cols)) * f.panel_width;
    render_panel(w, f.panels[i], ox, row_y[r], f.panel_width,
                 panel_height(f.panels[i], f.panel_height));
  }
  for (size_t i = 0; i < caption.size(); ++i)
    w.text(8, row_y.back() + 18 + 15 * static_cast<double>(i), caption[i], kSmallFont, "start",
           " fill=\"#555\"");
  w.out << "</svg>\n";
  return w.out.str();
}

void write_svg(const Figure& f, const std::string& path) { write_file_atomic(path, render_svg(f)); }

}  // namespace lrc::plot
