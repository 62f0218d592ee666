// The LayerSink that writes a checkpoint while the pipeline runs (CheckpointWriter), a layer
// at a time: with a model read lazily, no more than the layer being quantized is in memory.
// Shared by `lrc quantize` and the Python package's lrc.quantize; `progress` (optional) hears
// of each finished layer, (layers done, layers in all), after it is written.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "lrc/pipeline/checkpoint.h"
#include "lrc/pipeline/quantize_model.h"

namespace lrc {

class CheckpointSink final : public LayerSink {
 public:
  using Progress = std::function<void(int done, int total)>;
  CheckpointSink(std::string dir, const QuantizeOptions& opt, Progress progress = {});

  void begin(const LlamaModel& m, const std::map<std::string, int>& ranks) override;
  void layer(int i, const LlamaLayer& L) override;
  // The writer, to finish() once the pipeline returns; throws when no layer came.
  CheckpointWriter& writer();

 private:
  std::string dir_;
  const QuantizeOptions& opt_;
  Progress progress_;
  int n_layers_ = 0;
  std::unique_ptr<CheckpointWriter> writer_;
};

}  // namespace lrc
