// End to end on the real default model: perplexity ordering FP < LRC 30% < GPTQ at W4A4.
#include <gtest/gtest.h>

#include <filesystem>

#include "lrc/eval/perplexity.h"
#include "lrc/io/model_loader.h"
#include "lrc/pipeline/quantize_model.h"
#include "support/paths.h"

using namespace lrc;

TEST(PipelineRealModel, PerplexityOrderingFpLrcGptq) {
  const std::string dir = test::default_model_dir();
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no " << dir;
  LoadedModel fp = load_model(dir);
  const auto valid = tokenize_corpus(test::shared("data/debtext-valid.txt"), *fp.tokenizer);
  const int seq = 512, chunks = 8;
  const double ppl_fp = perplexity(fp.model, valid, seq, chunks).ppl;
  const CalibrationSet calib =
      load_calibration(test::shared("data/debtext-calib.txt"), *fp.tokenizer, 16, seq, 512);

  auto run = [&](QuantMethod method, double rank) {
    LoadedModel lm = load_model(dir);
    QuantizeOptions o;
    o.method = method;
    o.rank = rank;
    o.a_clip = 0.9f;
    quantize_model(lm.model, calib, o);
    return perplexity(lm.model, valid, seq, chunks).ppl;
  };
  const double ppl_gptq = run(QuantMethod::GPTQ, 0);
  const double ppl_lrc = run(QuantMethod::LRC, 0.3);
  std::printf("ppl fp %.3f  lrc30 %.3f  gptq %.3f\n", ppl_fp, ppl_lrc, ppl_gptq);
  EXPECT_LT(ppl_fp, ppl_lrc);
  EXPECT_LT(ppl_lrc, ppl_gptq);
}
