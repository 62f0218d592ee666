// QuaRot on the real 22M Llama (6 heads: the across-heads rotation is the orthogonal fallback;
// dim 384 = 12·32 and hidden 1024 are Hadamard): perplexity is unchanged by the rotation.
#include <gtest/gtest.h>

#include <filesystem>

#include "lrc/io/corpus.h"
#include "lrc/eval/perplexity.h"
#include "lrc/io/model_loader.h"
#include "lrc/rotate/quarot.h"
#include "support/paths.h"

namespace {

TEST(RotateRealModel, PerplexityUnchangedByRotation) {
  const std::string dir = lrc::test::default_model_dir();
  const std::string text = lrc::test::shared("data/debtext-valid.txt");
  if (!std::filesystem::exists(dir) || !std::filesystem::exists(text))
    GTEST_SKIP() << "needs " << dir << " and " << text;
  lrc::LoadedModel loaded = lrc::load_model(dir);
  const std::vector<int32_t> tokens = lrc::tokenize_corpus(text, *loaded.tokenizer);
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

}  // namespace
