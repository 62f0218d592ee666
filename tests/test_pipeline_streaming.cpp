// Streaming quantization (a model read a layer at a time, the checkpoint written as layers
// finish) gives the checkpoint of the in-memory pipeline byte for byte, keeps no finished
// layer in memory, and never leaves a partial checkpoint under the final name.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>

#include "lrc/core/error.h"
#include "lrc/io/gguf_loader.h"
#include "lrc/io/gguf_writer.h"
#include "lrc/io/hf_writer.h"
#include "lrc/io/model_loader.h"
#include "lrc/model/layer_linears.h"
#include "lrc/pipeline/checkpoint.h"
#include "lrc/pipeline/quantize_model.h"
#include "support/paths.h"
#include "support/random_calibration.h"
#include "support/random_model.h"
#include "support/safetensors_edit.h"

namespace fs = std::filesystem;
using namespace lrc;

namespace {

// The sink lrc quantize uses, over a CheckpointWriter; checks what is resident as it goes.
class Sink final : public LayerSink {
 public:
  Sink(std::string dir, const QuantizeOptions& opt) : dir_(std::move(dir)), opt_(opt) {}
  void begin(const LlamaModel& m, const std::map<std::string, int>& ranks) override {
    model_ = &m;
    writer = std::make_unique<CheckpointWriter>(dir_, m.cfg, [&](const std::string& name, int,
                                                                 int) {
      CheckpointLinearLayout l;
      l.quantized = true;
      l.bits = opt_.wbits;
      l.rank = ranks.at(name.substr(6));  // "model." + the pipeline's name
      return l;
    });
    writer->write_embeddings(m.tok_embeddings);
  }
  void layer(int i, const LlamaLayer& L) override {
    for (int j = 0; j < static_cast<int>(model_->layers.size()); ++j)
      max_resident = std::max(max_resident, model_->layer_resident(j) ? j == i ? 1 : 2 : 0);
    writer->write_layer(i, L);
  }
  std::unique_ptr<CheckpointWriter> writer;
  int max_resident = 0;  // 2: a layer other than the current one was in memory

 private:
  std::string dir_;
  const QuantizeOptions& opt_;
  const LlamaModel* model_ = nullptr;
};

}  // namespace

TEST(Streaming, SameCheckpointAsInMemoryAndOneLayerResident) {
  const std::string root = test::temp_dir("streaming");
  const LlamaModel fp = test::random_model(test::tiny_config(48, 96, 3, 4, 2, 61, 32), 3);
  save_hf_model(fp, root + "/hf");
  const CalibrationSet calib = test::random_calibration(61, 4, 32, 1);
  // fancy: FP targets (the twin streams too); calibrated: --rotation calibrated --smooth (the
  // residual samples come from the streamed layers, each smoothed as it is loaded).
  for (const std::string tag : {"plain", "fancy", "calibrated"}) {
    const bool fancy = tag == "fancy";
    QuantizeOptions opt;
    opt.method = QuantMethod::LRC;
    opt.rank = 0.25;
    opt.fp_targets = fancy;
    opt.a_clip_search = fancy;
    if (tag == "calibrated") {
      opt.rotation_calibrated = true;
      opt.rotation_steps = 10;
      opt.rotation_rows = 64;
      opt.smooth_alpha = 0.5;
    }

    LlamaModel mem = load_hf_model(root + "/hf");
    const QuantizeReport rm = quantize_model(mem, calib, opt);
    CheckpointInfo info;
    info.options = opt;
    info.calib = &calib;
    info.report = &rm;
    save_checkpoint(mem, root + "/mem-" + tag, info);

    LlamaModel lazy = load_hf_model(root + "/hf", /*lazy_layers=*/true);
    ASSERT_TRUE(lazy.layer_source);
    EXPECT_FALSE(lazy.layer_resident(0));
    Sink sink(root + "/stream-" + tag, opt);
    const QuantizeReport rs = quantize_model(lazy, calib, opt, &sink);
    EXPECT_EQ(sink.max_resident, 1) << tag;  // only the layer being finished
    for (int i = 0; i < 3; ++i) EXPECT_FALSE(lazy.layer_resident(i));
    info.report = &rs;
    sink.writer->finish(lazy, info);

    EXPECT_EQ(rs.bits_per_weight, rm.bits_per_weight);
    EXPECT_EQ(test::read_file(root + "/mem-" + tag + "/model.safetensors"),
              test::read_file(root + "/stream-" + tag + "/model.safetensors"))
        << tag;
    lazy.load_layer(1);  // a released layer comes back from its source
    EXPECT_TRUE(lazy.layer_resident(1));
  }
  // The calibrated rotation and smoothing did change the weights.
  EXPECT_NE(test::read_file(root + "/mem-plain/model.safetensors"),
            test::read_file(root + "/mem-calibrated/model.safetensors"));
}

// A layer that cannot be read (a NaN weight in layer 1, found when it is loaded: on the
// prefetch thread while layer 0 is quantized) stops the run with the loader's error naming the
// tensor, when layer 1 is due; until then one layer at a time was resident.
TEST(Streaming, ALayerThatFailsToLoadStopsTheRunNamingIt) {
  const std::string root = test::temp_dir("streaming_bad");
  save_hf_model(test::random_model(test::tiny_config(48, 96, 3, 4, 2, 61, 32), 4), root + "/hf");
  test::poke_f32(root + "/hf/model.safetensors", "model.layers.1.mlp.up_proj.weight", 5,
                 std::numeric_limits<float>::quiet_NaN());
  LlamaModel lazy = load_hf_model(root + "/hf", /*lazy_layers=*/true);
  QuantizeOptions opt;
  opt.method = QuantMethod::GPTQ;
  Sink sink(root + "/out", opt);
  std::string what;
  try {
    (void)quantize_model(lazy, test::random_calibration(61, 2, 16, 1), opt, &sink);
  } catch (const Error& e) {
    what = e.what();
  }
  EXPECT_NE(what.find("layers.1.mlp.up_proj"), std::string::npos) << what;
  EXPECT_NE(what.find("NaN"), std::string::npos) << what;
  EXPECT_EQ(sink.max_resident, 1);
  fs::remove_all(root);
}

// A GGUF file streams too: each lazily read layer equals the eager loader's (q/k rows
// un-permuted the same way), and the streamed checkpoint equals the in-memory one.
TEST(Streaming, GgufLayersOnDemandEqualEagerLoad) {
  const std::string root = test::temp_dir("streaming_gguf");
  const LlamaModel fp = test::random_model(test::tiny_config(48, 96, 3, 4, 2, 61, 32), 5);
  save_gguf_model(fp, nullptr, root + "/m.gguf");
  const LlamaModel eager = load_gguf_model(root + "/m.gguf");
  LlamaModel lazy = load_gguf_model(root + "/m.gguf", /*lazy_layers=*/true);
  ASSERT_TRUE(lazy.layer_source);
  EXPECT_EQ(lazy.tok_embeddings, eager.tok_embeddings);
  EXPECT_EQ(lazy.source_dtypes, eager.source_dtypes);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(lazy.layer_resident(i));
    lazy.load_layer(i);
    const LlamaLayer &a = lazy.layers[static_cast<size_t>(i)], &b = eager.layers[static_cast<size_t>(i)];
    EXPECT_EQ(a.attn_norm, b.attn_norm);
    EXPECT_EQ(a.ffn_norm, b.ffn_norm);
    for (const LayerLinearInfo& t : kLayerLinears) {
      EXPECT_EQ(t.of(a).w, t.of(b).w) << i << " " << t.name;
      EXPECT_EQ(t.of(a).d_out, t.of(b).d_out);
    }
    lazy.release_layer(i);
  }

  QuantizeOptions opt;
  opt.method = QuantMethod::GPTQ;
  const CalibrationSet calib = test::random_calibration(61, 4, 32, 1);
  LlamaModel mem = load_gguf_model(root + "/m.gguf");
  const QuantizeReport rm = quantize_model(mem, calib, opt);
  CheckpointInfo info;
  info.options = opt;
  info.calib = &calib;
  info.report = &rm;
  save_checkpoint(mem, root + "/mem", info);
  Sink sink(root + "/stream", opt);
  const QuantizeReport rs = quantize_model(lazy, calib, opt, &sink);
  EXPECT_EQ(sink.max_resident, 1);
  info.report = &rs;
  sink.writer->finish(lazy, info);
  EXPECT_EQ(test::read_file(root + "/mem/model.safetensors"),
            test::read_file(root + "/stream/model.safetensors"));
}

TEST(Streaming, WriterRefusesDisorderAndLeavesNoPartialCheckpoint) {
  const std::string root = test::temp_dir("streaming_writer");
  const LlamaModel m = test::random_model(test::tiny_config(48, 96, 2, 4, 2, 61, 32), 3);
  const std::string dir = root + "/q";
  {
    CheckpointWriter w(dir, m.cfg, [](const std::string&, int, int) {
      return CheckpointLinearLayout{};
    });
    w.write_embeddings(m.tok_embeddings);
    EXPECT_THROW(w.write_layer(1, m.layers[1]), Error);  // layer 0 first
    w.write_layer(0, m.layers[0]);
    EXPECT_THROW(w.finish(m, CheckpointInfo{}), Error);  // layer 1 missing
    EXPECT_TRUE(fs::exists(dir + ".partial"));
  }
  EXPECT_FALSE(fs::exists(dir + ".partial"));  // an unfinished writer cleans up
  EXPECT_FALSE(fs::exists(dir));
}
