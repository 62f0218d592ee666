// The picture of `lrc quantize --report FILE.svg`: where the error of a quantized model is.
// One panel per linear kind (q, k, v, o, gate, up, down) with the relative eq. 2 error
// ‖WX − ŴQ_a(X) − UVᵀX‖² / ‖WX‖² per layer, for the method and (when the report has it,
// QuantizeOptions::compare_gptq) for QuaRot-GPTQ on the same statistics; then the chosen rank
// of every linear per layer, and the activation clip of each input group per layer.
#pragma once

#include <string>

#include "lrc/pipeline/quantize_model.h"
#include "lrc/plot/svg_chart.h"

namespace lrc::plot {

// method: the legend name of the report's method ("lrc"); caption: a line under the figure.
// Throws lrc::Error when no linear of the report carries an objective (RTN gathers no
// statistics) or a linear's name is not "layers.<i>.<kind>".
Figure quantize_report_figure(const QuantizeReport& rep, const std::string& method,
                              const std::string& caption = "");

}  // namespace lrc::plot
