#include "lrc/plot/report_figure.h"

#include <map>

#include "lrc/core/error.h"
#include "lrc/model/layer_linears.h"

namespace lrc::plot {

namespace {

// "layers.12.mlp.up_proj" -> (12, "mlp.up_proj").
std::pair<int, std::string> split_name(const std::string& name) {
  const std::string prefix = "layers.";
  const size_t dot = name.find('.', prefix.size());
  if (name.rfind(prefix, 0) != 0 || dot == std::string::npos)
    fail("report", "linear '" + name + "' is not named layers.<i>.<kind>");
  try {
    return {std::stoi(name.substr(prefix.size(), dot - prefix.size())), name.substr(dot + 1)};
  } catch (const std::exception&) {
    fail("report", "linear '" + name + "' has no layer number");
  }
}

// "self_attn.q_proj" -> "q_proj".
std::string short_kind(const std::string& kind) { return kind.substr(kind.rfind('.') + 1); }

}  // namespace

Figure quantize_report_figure(const QuantizeReport& rep, const std::string& method,
                              const std::string& caption) {
  // Per kind: (layer, value) series of the method's and GPTQ's relative error and the rank.
  struct KindData {
    Series err, gptq, rank;
  };
  std::map<std::string, KindData> by_kind;
  std::map<int, std::map<int, double>> clip_by_group;  // group -> layer -> clip
  bool any_objective = false, any_gptq = false, any_rank = false;
  for (const auto& l : rep.linears) {
    const auto [layer, kind] = split_name(l.name);
    KindData& k = by_kind[kind];
    const double x = layer;
    if (l.objective >= 0 && l.objective_fp > 0) {
      k.err.x.push_back(x);
      k.err.y.push_back(l.objective / l.objective_fp);
      any_objective = true;
    }
    if (l.objective_gptq >= 0 && l.objective_fp > 0) {
      k.gptq.x.push_back(x);
      k.gptq.y.push_back(l.objective_gptq / l.objective_fp);
      any_gptq = true;
    }
    k.rank.x.push_back(x);
    k.rank.y.push_back(l.rank);
    any_rank = any_rank || l.rank > 0;
    for (const auto& t : every_layer_linear())
      if (kind == t.name) clip_by_group[t.group][layer] = l.a_clip;
  }
  if (!any_objective)
    fail("report", "no linear has an eq. 2 objective (rtn gathers no statistics): nothing to plot");

  Figure f;
  f.title = "‖WX − ŴQ_a(X) − UVᵀX‖² / ‖WX‖² per layer: " + method +
            (any_gptq ? " vs GPTQ on the same statistics" : "");
  f.caption = caption;
  f.columns = 3;
  f.panel_width = 430;
  f.panel_height = 280;
  for (const auto& t : every_layer_linear()) {
    auto it = by_kind.find(t.name);
    if (it == by_kind.end()) continue;
    Panel p;
    p.title = short_kind(t.name);
    p.x_label = "layer";
    p.y_label = "relative eq. 2 error";
    p.log_y = true;
    Series s = it->second.err;
    s.name = method;
    p.series.push_back(s);
    if (any_gptq) {
      Series g = it->second.gptq;
      g.name = "gptq";
      g.dashed = true;
      p.series.push_back(g);
    }
    f.panels.push_back(std::move(p));
  }
  if (any_rank) {
    Panel p;
    p.title = "rank k";
    p.x_label = "layer";
    p.y_label = "rank";
    for (const auto& t : every_layer_linear()) {
      auto it = by_kind.find(t.name);
      if (it == by_kind.end()) continue;
      Series s = it->second.rank;
      s.name = short_kind(t.name);
      p.series.push_back(s);
    }
    f.panels.push_back(std::move(p));
  }
  Panel clips;
  clips.title = "activation clip c";
  clips.x_label = "layer";
  clips.y_label = "clip ratio";
  static const char* const group_names[] = {"q/k/v input", "o input", "gate/up input",
                                            "down input"};
  for (const auto& [g, layers] : clip_by_group) {
    Series s;
    s.name = g >= 0 && g < 4 ? group_names[g] : "group " + std::to_string(g);
    for (const auto& [layer, c] : layers) {
      s.x.push_back(layer);
      s.y.push_back(c);
    }
    clips.series.push_back(std::move(s));
  }
  f.panels.push_back(std::move(clips));
  return f;
}

}  // namespace lrc::plot
