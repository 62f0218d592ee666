// lrc quantize: FP model -> W4A4 (+ low-rank correction) checkpoint.
#include <cstdio>
#include <iostream>

#include "cli/command_registry.h"
#include "cli/quantize_flags.h"
#include "lrc/core/blas_info.h"
#include "lrc/core/error.h"
#include "lrc/io/model_loader.h"
#include "lrc/pipeline/checkpoint.h"
#include "lrc/pipeline/quantize_model.h"

namespace lrc::cli {

namespace {

// Writes the checkpoint while the pipeline runs (CheckpointWriter), a layer at a time: with
// an HF directory read lazily, no more than the layer being quantized is ever in memory.
class CheckpointSink final : public LayerSink {
 public:
  CheckpointSink(std::string dir, const QuantizeOptions& opt) : dir_(std::move(dir)), opt_(opt) {}

  void begin(const LlamaModel& m, const std::map<std::string, int>& ranks) override {
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
  void layer(int i, const LlamaLayer& L) override { writer_->write_layer(i, L); }
  CheckpointWriter& writer() {
    if (!writer_) fail(dir_, "no layer was quantized");
    return *writer_;
  }

 private:
  std::string dir_;
  const QuantizeOptions& opt_;
  std::unique_ptr<CheckpointWriter> writer_;
};

Registrar reg_quantize(
    "quantize", "quantize a model to W4A4 (rtn | gptq | svd | lrc) and write a checkpoint",
    [](CLI::App& sub) -> std::function<int()> {
      struct Args {
        std::string model, tokenizer, calib, out, method = "lrc";
        QuantizeFlagStrings flags;
        bool json = false;
        QuantizeOptions opt;
      };
      auto a = std::make_shared<Args>();
      sub.add_option("--model", a->model, "FP model (HF dir, llama2.c file, .gguf)")->required();
      sub.add_option("--tokenizer", a->tokenizer, "tokenizer file if not beside the model");
      sub.add_option("--calib", a->calib, "calibration text file")->required();
      sub.add_option("--out", a->out, "output checkpoint directory")->required();
      sub.add_option("--method", a->method, "rtn | gptq | svd | lrc")->capture_default_str();
      add_quantize_options(sub, a->opt, a->flags);
      sub.add_flag("--json", a->json, "print the report as JSON");
      return [a]() {
        a->opt.method = parse_method(a->method);
        finish_quantize_options(a->opt, a->flags);
        LoadedModel lm =
            load_model(a->model, a->tokenizer, /*need_tokenizer=*/true, /*lazy_layers=*/true);
        a->opt.validate_for(lm.model.cfg);
        const CalibrationSet calib = load_calibration(a->calib, *lm.tokenizer, a->opt.nsamples,
                                                      a->opt.seq, lm.model.cfg.max_seq_len);
        std::fprintf(stderr, "calibration: %d x %d tokens from %s\n", calib.n_seq, calib.seq_len,
                     a->calib.c_str());
        CheckpointSink sink(a->out, a->opt);
        const QuantizeReport rep = quantize_model(lm.model, calib, a->opt, &sink);
        CheckpointInfo info;
        info.source_model = a->model;
        info.tokenizer_file = a->tokenizer.empty() ? lm.tokenizer_path : a->tokenizer;
        info.options = a->opt;
        info.calib = &calib;
        info.report = &rep;
        sink.writer().finish(lm.model, info);
        if (a->json) {
          nlohmann::json j = rep.to_json();
          j["out"] = a->out;
          j["blas_core"] = blas_core_name();
          std::cout << j.dump(2) << "\n";
        } else {
          std::printf("method %s  rank %g  W%dA%d  bits/weight %.2f  %.1fs  -> %s\n",
                      method_name(a->opt.method), a->opt.rank, a->opt.wbits, a->opt.abits,
                      rep.bits_per_weight, rep.seconds, a->out.c_str());
        }
        return 0;
      };
    });

}  // namespace

}  // namespace lrc::cli
