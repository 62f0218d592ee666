// QuantizeOptions has one set of defaults: from_json fills absent fields with them, and the CLI
// flags (lrc quantize, lrc demo) leave them alone unless given; lrc demo refuses --rank, which
// its --ranks would silently replace.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lrc/io/json_file.h"
#include "lrc/io/synth_model.h"
#include "lrc/core/error.h"
#include "lrc/pipeline/quantize_model.h"
#include "lrc/pipeline/quantize_options.h"
#include "support/paths.h"
#include "support/random_model.h"
#include "support/run_command.h"

namespace fs = std::filesystem;
using namespace lrc;
using nlohmann::json;

namespace {

TEST(QuantizeOptions, FromJsonFillsAbsentFieldsWithTheStructDefaults) {
  const QuantizeOptions d;
  // Only the fields from_json requires; every other one must come back as the default.
  const json j = {{"method", "lrc"}, {"rank", d.rank},         {"iters", d.iters},
                  {"wbits", d.wbits}, {"abits", d.abits},      {"a_clip", d.a_clip},
                  {"w_groupsize", 0}, {"a_groupsize", 0},      {"kv_bits", d.kv_bits}};
  const QuantizeOptions o = QuantizeOptions::from_json(j);
  EXPECT_EQ(o.reg, d.reg);
  EXPECT_EQ(o.to_json(), d.to_json());
}

TEST(QuantizeOptions, JsonRoundTripKeepsEveryNonDefaultValue) {
  QuantizeOptions o;
  o.method = QuantMethod::SVD;
  o.rank = 32;
  o.rank_alloc = RankAllocation::Error;
  o.alloc_nsamples = 5;
  o.ranks = {{"layers.0.mlp.down_proj", 7}};
  o.iters = 3;
  o.wbits = 3;
  o.abits = 8;
  o.a_clip = 0.8f;
  o.a_clip_search = true;
  o.clip_search_tokens = 100;
  o.w_groupsize = 64;
  o.a_groupsize = 32;
  o.w_symmetric = false;
  o.w_mse_clip = false;
  o.kv_bits = 4;
  o.lrc_use_gptq = false;
  o.reg = LrcRegularization::Paper;
  o.eps_rel = 0.5;
  o.damp = 0.1;
  o.act_order = true;
  o.rotate = false;
  o.calib_act_quant = false;
  o.fp_targets = true;
  o.target_mix = 0.75;
  o.seed = 9;
  o.nsamples = 3;
  o.seq = 33;
  o.stats_precision = StatsPrecision::Mixed;
  o.device = "cuda:1";
  o.gpu_math = "tf32";
  ASSERT_NE(o.to_json(), QuantizeOptions{}.to_json());
  EXPECT_EQ(QuantizeOptions::from_json(o.to_json()).to_json(), o.to_json());
}

// lrc quantize on a small synthetic model: the options it records are the struct's defaults
// when no flag is given, and the flag's value when one is.
class QuantizeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_dir("qopt-cli");
    LlamaConfig c;
    c.dim = 64;
    c.hidden_dim = 96;
    c.n_layers = 1;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.vocab_size = 260;
    c.max_seq_len = 64;
    write_synth_model(c, dir_ + "/model");
    std::ofstream(dir_ + "/calib.txt") << "The quick brown fox jumps over the lazy dog.\n"
                                       << "Pack my box with five dozen liquor jugs.\n";
  }
  void TearDown() override { fs::remove_all(dir_); }
  json run_quantize(const std::string& flags) {
    const std::string out = dir_ + "/q";
    fs::remove_all(out);
    const auto r = test::run_command(test::lrc_binary() + " quantize --model " + dir_ +
                                     "/model --calib " + dir_ + "/calib.txt --out " + out +
                                     " --method rtn --nsamples 2 --seq 16 " + flags + " 2>&1");
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return read_json_file(out + "/lrc_config.json").at("quantization");
  }
  std::string dir_;
};

TEST_F(QuantizeCli, NoFlagsRecordTheStructDefaults) {
  QuantizeOptions want;
  want.method = QuantMethod::RTN;
  want.nsamples = 2;
  want.seq = 16;
  EXPECT_EQ(run_quantize(""), want.to_json());
}

TEST_F(QuantizeCli, GivenFlagsOverrideTheDefaults) {
  const json q = run_quantize("--a-clip 0.5 --reg paper --target quantized --calib-act fp");
  EXPECT_FLOAT_EQ(q.at("a_clip").get<float>(), 0.5f);
  EXPECT_EQ(q.at("reg"), "paper");
  EXPECT_EQ(q.at("calib_act"), "fp");
}

// Every rank is decided and checked before the model is touched: a bad rank of the last layer
// fails with the model as it was (no rotation, no quantized first layer), naming the flag.
TEST(QuantizeRanks, ABadRankFailsBeforeAnyWorkNamingWhere) {
  const LlamaModel orig = test::random_model(test::tiny_config(), 3);
  CalibrationSet calib;
  calib.n_seq = 1;
  calib.seq_len = 8;
  for (int t = 0; t < 8; ++t) calib.tokens.push_back(t);
  auto expect_refused = [&](const QuantizeOptions& opt, const std::string& where) {
    LlamaModel m = orig;
    try {
      quantize_model(m, calib, opt);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(where), std::string::npos) << e.what();
    }
    EXPECT_EQ(m.layers[0].wq.w, orig.layers[0].wq.w) << "touched (rotated) before the check";
  };
  QuantizeOptions opt;
  opt.method = QuantMethod::LRC;
  opt.nsamples = 1;
  opt.ranks["layers.1.mlp.down_proj"] = 1000;  // min(d_out, d_in) = 64
  expect_refused(opt, "ranks['layers.1.mlp.down_proj']");
  opt.ranks.clear();
  opt.rank = 65;
  expect_refused(opt, "--rank");
}

TEST(DemoCli, RankIsRefusedNotSilentlyReplacedByRanks) {
  const std::string model = test::default_model_dir(), data = test::shared("data/debtext-valid.txt");
  if (!fs::exists(model) || !fs::exists(data)) GTEST_SKIP() << "shared assets missing";
  const auto r = test::run_command(test::lrc_binary() + " demo --model " + model + " --data " +
                                   data + " --methods lrc --ranks 0.1 --rank 0.3 2>&1");
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("--rank"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--ranks"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("ppl"), std::string::npos) << "it ran: " << r.out;
}

}  // namespace
