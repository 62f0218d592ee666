// The SVG charts of plot/ (svg_chart.h, report_figure.h): the series, levels and bars a
// figure is given come out as the groups a reader counts, with the right number of points;
// non-finite values and log-axis values <= 0 are left out; text is escaped. (The Python tests
// parse the CLI's pictures as XML.)
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "lrc/core/error.h"
#include "lrc/model/layer_linears.h"
#include "lrc/plot/report_figure.h"
#include "lrc/plot/svg_chart.h"

namespace lrc::plot {
namespace {

Series line(const std::string& name, std::vector<double> x, std::vector<double> y) {
  Series s;
  s.name = name;
  s.x = std::move(x);
  s.y = std::move(y);
  return s;
}

Series level(const std::string& name, double v) {
  Series s;
  s.name = name;
  s.y = {v};
  s.level = true;
  return s;
}

Bar bar(const std::string& label, double value, std::vector<double> points) {
  Bar b;
  b.label = label;
  b.value = value;
  b.points = std::move(points);
  return b;
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

// The text of the first <g ... data-name="name" ...> group up to its </g>.
std::string group(const std::string& svg, const std::string& attr) {
  const size_t b = svg.find(attr);
  EXPECT_NE(b, std::string::npos) << attr;
  if (b == std::string::npos) return "";
  return svg.substr(b, svg.find("</g>", b) - b);
}

TEST(PlotSvg, NiceTicksAreRoundAndInside) {
  EXPECT_EQ(nice_ticks(0, 1), (std::vector<double>{0, 0.2, 0.4, 0.6, 0.8, 1.0}));
  const auto t = nice_ticks(11.31, 12.42);
  ASSERT_GE(t.size(), 3u);
  for (double v : t) {
    EXPECT_GE(v, 11.31);
    EXPECT_LE(v, 12.42);
  }
  EXPECT_NEAR(t[1] - t[0], 0.2, 1e-12);
  EXPECT_TRUE(nice_ticks(1, 1).empty());
}

TEST(PlotSvg, SeriesLevelsAndPointsAreCounted) {
  Figure f;
  f.title = "t";
  Panel p;
  p.title = "Perplexity against rank";
  p.series = {line("LRC", {0, 5, 10, 20, 30}, {12.4, 12.1, 11.9, 11.8, 11.7}),
              line("SVD", {0, 5, 10}, {12.4, std::numeric_limits<double>::quiet_NaN(), 12.2}),
              level("FP", 11.35)};
  f.panels = {p};
  const std::string svg = render_svg(f);
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_EQ(count(svg, "<svg "), 1u);
  EXPECT_EQ(count(svg, "</svg>"), 1u);
  EXPECT_EQ(count(svg, "<g "), count(svg, "</g>"));
  const std::string l = group(svg, "data-name=\"LRC\"");
  EXPECT_NE(l.find("data-points=\"5\""), std::string::npos);
  EXPECT_EQ(count(l, "class=\"point\""), 5u);
  EXPECT_EQ(count(l, "<polyline"), 1u);
  const std::string s = group(svg, "data-name=\"SVD\"");  // the NaN point is left out
  EXPECT_NE(s.find("data-points=\"2\""), std::string::npos);
  EXPECT_EQ(count(s, "class=\"point\""), 2u);
  EXPECT_NE(svg.find("class=\"level\" data-name=\"FP\" data-value=\"11.35\""), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
}

TEST(PlotSvg, PointsMoveWithTheirValues) {
  // Larger y is drawn higher (smaller SVG y); larger x further right.
  Figure f;
  Panel p;
  p.series = {line("s", {1, 2}, {1, 3})};
  f.panels = {p};
  const std::string svg = render_svg(f);
  const std::string g = group(svg, "data-name=\"s\"");
  auto coord = [&](size_t i, const char* a) {
    size_t pos = 0;
    for (size_t k = 0; k <= i; ++k) pos = g.find("<circle", pos + 1);
    const size_t b = g.find(a, pos) + std::string(a).size();
    return std::stod(g.substr(b, g.find('"', b) - b));
  };
  EXPECT_LT(coord(0, "cx=\""), coord(1, "cx=\""));
  EXPECT_GT(coord(0, "cy=\""), coord(1, "cy=\""));
}

TEST(PlotSvg, BarsCarryTheirSeedPoints) {
  Figure f;
  Panel p;
  p.y_percent = true;
  p.bars = {bar("gptq", 0.0, {0, 0, 0}), bar("lrc 10% reg=paper", 0.41, {0.38, 0.45, 0.40}),
            bar("lrc 30%", -0.1, {})};
  f.panels = {p};
  const std::string svg = render_svg(f);
  EXPECT_EQ(count(svg, "class=\"bar\""), 3u);
  EXPECT_EQ(count(group(svg, "data-label=\"lrc 10% reg=paper\""), "class=\"point\""), 3u);
  EXPECT_EQ(count(group(svg, "data-label=\"lrc 30%\""), "class=\"point\""), 0u);
  EXPECT_NE(svg.find("data-value=\"-0.1\""), std::string::npos);
  EXPECT_NE(svg.find(">40%<"), std::string::npos);  // percent tick labels
}

TEST(PlotSvg, LogAxisDropsNonPositiveValues) {
  Figure f;
  Panel p;
  p.log_y = true;
  p.series = {line("err", {0, 1, 2}, {1e-3, 0, 2e-2})};
  f.panels = {p};
  EXPECT_EQ(count(group(render_svg(f), "data-name=\"err\""), "class=\"point\""), 2u);
}

TEST(PlotSvg, TextIsEscaped) {
  Figure f;
  f.caption = "lrc demo --plot \"a b\" <x> & y";
  Panel p;
  p.series = {line("a<b & 'c'", {0}, {1})};
  f.panels = {p};
  const std::string svg = render_svg(f);
  EXPECT_NE(svg.find("a&lt;b &amp; &apos;c&apos;"), std::string::npos);
  EXPECT_NE(svg.find("&quot;a b&quot; &lt;x&gt; &amp; y"), std::string::npos);
  EXPECT_EQ(svg.find("<x>"), std::string::npos);
}

TEST(PlotSvg, EmptyFigureIsAnError) { EXPECT_THROW(render_svg(Figure{}), Error); }

QuantizeReport two_layer_report(bool with_objectives) {
  QuantizeReport rep;
  for (int i = 0; i < 2; ++i)
    for (const auto& t : kLayerLinears) {
      LinearReport l;
      l.name = layer_linear_name(i, t);
      l.rank = 8 + i;
      l.a_clip = t.group == 3 ? 0.8f : 0.9f;
      if (with_objectives) {
        l.objective_fp = 100;
        l.objective = 1 + i;
        l.objective_gptq = 3 + i;
      }
      rep.linears.push_back(l);
    }
  return rep;
}

TEST(PlotReport, OnePanelPerLinearKindThenRanksAndClips) {
  const Figure f = quantize_report_figure(two_layer_report(true), "lrc", "cmd");
  ASSERT_EQ(f.panels.size(), 9u);  // 7 kinds, rank, clip
  for (size_t k = 0; k < 7; ++k) {
    const Panel& p = f.panels[k];
    EXPECT_TRUE(p.log_y);
    ASSERT_EQ(p.series.size(), 2u) << p.title;
    EXPECT_EQ(p.series[0].name, "lrc");
    EXPECT_EQ(p.series[1].name, "gptq");
    EXPECT_EQ(p.series[0].y, (std::vector<double>{0.01, 0.02}));
    EXPECT_EQ(p.series[1].y, (std::vector<double>{0.03, 0.04}));
  }
  EXPECT_EQ(f.panels[0].title, "q_proj");
  EXPECT_EQ(f.panels[6].title, "down_proj");
  EXPECT_EQ(f.panels[7].series.size(), 7u);
  EXPECT_EQ(f.panels[7].series[0].y, (std::vector<double>{8, 9}));
  ASSERT_EQ(f.panels[8].series.size(), 4u);  // the four input groups
  EXPECT_FLOAT_EQ(static_cast<float>(f.panels[8].series[3].y[0]), 0.8f);
  const std::string svg = render_svg(f);
  EXPECT_EQ(count(svg, "class=\"panel\""), 9u);
  EXPECT_EQ(count(svg, "class=\"series\""), 7u * 2 + 7 + 4);
}

TEST(PlotReport, NoObjectivesIsAnError) {
  EXPECT_THROW(quantize_report_figure(two_layer_report(false), "rtn"), Error);
  QuantizeReport bad = two_layer_report(true);
  bad.linears[0].name = "lm_head";
  EXPECT_THROW(quantize_report_figure(bad, "lrc"), Error);
}

}  // namespace
}  // namespace lrc::plot
