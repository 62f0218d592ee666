// QuaRot on the real 22M Llama (6 heads: the across-heads rotation is the orthogonal fallback;
// dim 384 = 12·32 and hidden 1024 are Hadamard): perplexity is unchanged by the rotation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "lrc/io/corpus.h"
#include "lrc/eval/perplexity.h"
#include "lrc/io/model_loader.h"
#include "lrc/rotate/quarot.h"
#include "lrc/rotate/residual_calibration.h"
#include "support/paths.h"

namespace {

// The default model and the tokens of debtext-valid, or a reason to skip.
struct RealModel {
  std::string missing;
  lrc::LoadedModel loaded;
  std::vector<int32_t> tokens;
};
RealModel real_model() {
  RealModel r;
  const std::string dir = lrc::test::default_model_dir();
  const std::string text = lrc::test::shared("data/debtext-valid.txt");
  if (!std::filesystem::exists(dir) || !std::filesystem::exists(text)) {
    r.missing = "needs " + dir + " and " + text;
    return r;
  }
  r.loaded = lrc::load_model(dir);
  r.tokens = lrc::tokenize_corpus(text, *r.loaded.tokenizer);
  return r;
}

TEST(RotateRealModel, PerplexityUnchangedByRotation) {
  RealModel r = real_model();
  if (!r.missing.empty()) GTEST_SKIP() << r.missing;
  lrc::LoadedModel& loaded = r.loaded;
  const std::vector<int32_t>& tokens = r.tokens;
  constexpr int kSeq = 512, kChunks = 24;
  const lrc::PplResult ref = lrc::perplexity(loaded.model, tokens, kSeq, kChunks, 0, false);
  ASSERT_EQ(ref.chunks, kChunks);

  lrc::RotationOptions opt;
  opt.seed = 2024;
  opt.online_qk = true;
  const lrc::RotationInfo info = lrc::rotate_model(loaded.model, opt);
  EXPECT_EQ(loaded.model.online_down->describe(), "hadamard(1x1024)");
  EXPECT_EQ(info.residual->kind, lrc::RotationKind::Hadamard);     // 384 = 12·32
  EXPECT_EQ(info.online_o->kind, lrc::RotationKind::Orthogonal);   // 6 heads
  EXPECT_EQ(info.value_heads->kind, lrc::RotationKind::Hadamard);  // head_dim 64

  const lrc::PplResult rot = lrc::perplexity(loaded.model, tokens, kSeq, kChunks, 0, false);
  std::printf("ppl original %.5f rotated %.5f (%.1f s + %.1f s)\n", ref.ppl, rot.ppl, ref.seconds,
              rot.seconds);
  EXPECT_NEAR(rot.ppl, ref.ppl, 0.01);
}

// --rotation calibrated --smooth 0.5 (issue 31): the searched R and the smoothing scales fused
// into the real model leave its FP perplexity unchanged (float32 rounding of the weights only).
TEST(RotateRealModel, PerplexityUnchangedByCalibratedRotationAndSmoothing) {
  RealModel r = real_model();
  if (!r.missing.empty()) GTEST_SKIP() << r.missing;
  lrc::LoadedModel& loaded = r.loaded;
  const std::vector<int32_t>& tokens = r.tokens;
  constexpr int kSeq = 512, kChunks = 4;
  const lrc::PplResult ref = lrc::perplexity(loaded.model, tokens, kSeq, kChunks, 0, false);

  lrc::QuarotPlan plan = lrc::plan_rotation(loaded.model.cfg, lrc::RotationOptions{});
  lrc::ResidualCalibrationOptions o;
  o.search.steps = 10;
  o.rows = 1024;
  o.n_seq = 2;
  o.smooth_alpha = 0.5;
  // Samples from the last tokens of the file, not the chunks evaluated.
  const int32_t* calib = tokens.data() + tokens.size() - 2 * kSeq;
  lrc::calibrate_plan(plan, loaded.model, calib, 2, kSeq, o);
  ASSERT_TRUE(plan.info.calibrated);
  EXPECT_LT(plan.info.calibrated->after, plan.info.calibrated->before);
  lrc::rotate_model_with_plan(loaded.model, plan);

  const lrc::PplResult rot = lrc::perplexity(loaded.model, tokens, kSeq, kChunks, 0, false);
  std::printf("ppl original %.7f calibrated + smoothed %.7f (relative %.2e)\n", ref.ppl, rot.ppl,
              std::abs(rot.ppl - ref.ppl) / ref.ppl);
  EXPECT_LT(std::abs(rot.ppl - ref.ppl) / ref.ppl, 1e-6);  // measured 3.5e-8
}

}  // namespace
