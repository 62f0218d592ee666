#include "lrc/pipeline/checkpoint_sink.h"

#include "lrc/core/error.h"

namespace lrc {

CheckpointSink::CheckpointSink(std::string dir, const QuantizeOptions& opt, Progress progress)
    : dir_(std::move(dir)), opt_(opt), progress_(std::move(progress)) {}

void CheckpointSink::begin(const LlamaModel& m, const std::map<std::string, int>& ranks) {
  n_layers_ = m.cfg.n_layers;
  writer_ = std::make_unique<CheckpointWriter>(
      dir_, m.cfg, [&](const std::string& name, int, int) {
        CheckpointLinearLayout l;
        l.quantized = true;  // every method packs all seven linears of every layer
        l.bits = opt_.wbits;
        l.groupsize = opt_.w_groupsize;
        l.rank = ranks.at(name.substr(std::string("model.").size()));
        return l;
      });
  writer_->write_embeddings(m.tok_embeddings);
}

void CheckpointSink::layer(int i, const LlamaLayer& L) {
  writer_->write_layer(i, L);
  if (progress_) progress_(i + 1, n_layers_);
}

CheckpointWriter& CheckpointSink::writer() {
  if (!writer_) fail(dir_, "no layer was quantized");
  return *writer_;
}

}  // namespace lrc
