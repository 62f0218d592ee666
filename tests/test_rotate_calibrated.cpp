// Calibrated residual rotation and smoothing (issue 31) on random tiny models and synthetic
// samples: the searched R is orthogonal to rounding and, fused like QuaRot's, leaves the FP
// model's logits and NLL unchanged (with and without --smooth); the search lowers its objective
// step by step; the quant objective is lrc's own Q_a error and the kurtosis gradient is the
// derivative of the kurtosis; the record survives JSON.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/format/act_quant.h"
#include "lrc/model/forward.h"
#include "lrc/pipeline/quantize_model.h"
#include "lrc/pipeline/quantize_options.h"
#include "lrc/rotate/residual_calibration.h"
#include "rotate/seeded_random.h"
#include "support/random_calibration.h"
#include "support/random_model.h"

namespace {

using lrc::LlamaModel;

constexpr int kSeqs = 3, kSeqLen = 16;

std::vector<int32_t> tokens_for(const LlamaModel& m) {
  return lrc::test::spread_tokens(m, kSeqs * kSeqLen);
}

// A random tiny model whose residual stream has outlier channels (as real ones do), so that
// the search has something to flatten.
LlamaModel outlier_model() {
  lrc::LlamaConfig c = lrc::test::tiny_config(48, 96, 2, 4, 2, 97, 64);
  LlamaModel m = lrc::test::random_model(c, 3);
  for (int v = 0; v < c.vocab_size; ++v)
    for (int j : {5, 17}) m.tok_embeddings[static_cast<size_t>(v) * c.dim + j] *= 12.f;
  return m;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(double(a[i]) - b[i]));
  return d;
}

double orthogonality_error(const std::vector<double>& r, int n) {
  double e = 0;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double s = 0;
      for (int k = 0; k < n; ++k) s += r[static_cast<size_t>(k) * n + i] * r[static_cast<size_t>(k) * n + j];
      e = std::max(e, std::abs(s - (i == j ? 1.0 : 0.0)));
    }
  return e;
}

struct Fp {
  std::vector<float> logits;
  double nll = 0;
};
Fp fp_outputs(const LlamaModel& m) {
  const auto t = tokens_for(m);
  Fp f;
  f.logits = lrc::forward_logits(m, t.data(), kSeqs, kSeqLen);
  int64_t count = 0;
  f.nll = lrc::sequences_nll(m, t.data(), kSeqs, kSeqLen, &count) / static_cast<double>(count);
  return f;
}

lrc::ResidualCalibrationOptions calib_options(double smooth) {
  lrc::ResidualCalibrationOptions o;
  o.search.steps = 25;
  o.smooth_alpha = smooth;
  o.rows = 40;
  o.seed = 7;
  return o;
}

class CalibratedFusion : public ::testing::TestWithParam<double> {};  // param: --smooth α

TEST_P(CalibratedFusion, RIsOrthogonalAndTheFpModelIsUnchanged) {
  const double alpha = GetParam();
  LlamaModel m = outlier_model();
  const Fp ref = fp_outputs(m);
  lrc::RotationOptions ro;
  ro.seed = 11;
  lrc::QuarotPlan plan = lrc::plan_rotation(m.cfg, ro);
  const std::vector<double> r0 = plan.r_res->dense();
  const auto t = tokens_for(m);
  lrc::calibrate_plan(plan, m, t.data(), kSeqs, kSeqLen, calib_options(alpha));
  const int n = m.cfg.dim;
  ASSERT_EQ(plan.r_res->kind, lrc::RotationKind::Orthogonal);
  EXPECT_LT(orthogonality_error(plan.r_res->q, n), 1e-10);
  EXPECT_GT(max_abs_diff(std::vector<float>(plan.r_res->q.begin(), plan.r_res->q.end()),
                         std::vector<float>(r0.begin(), r0.end())),
            1e-3);  // the search moved R
  ASSERT_TRUE(plan.info.calibrated);
  EXPECT_LT(plan.info.calibrated->after, plan.info.calibrated->before);

  const lrc::RotationInfo info = lrc::rotate_model_with_plan(m, plan);
  const Fp out = fp_outputs(m);
  EXPECT_LT(max_abs_diff(out.logits, ref.logits), 1e-3);
  EXPECT_LT(std::abs(out.nll - ref.nll) / ref.nll, 1e-5);
  if (alpha > 0)  // the norms carry the smoothing scales ν (fp16 values), not 1
    EXPECT_GT(max_abs_diff(m.layers[1].ffn_norm, std::vector<float>(n, 1.f)), 0.05);
  else
    EXPECT_EQ(m.layers[1].ffn_norm, std::vector<float>(n, 1.f));

  // The record: JSON round trip; the residual spec still names R₀, where the search began.
  const nlohmann::json j = info;
  EXPECT_EQ(j.at("calibrated").at("objective").get<std::string>(), "kurtosis");
  EXPECT_EQ(j.at("residual").at("kind").get<std::string>(), "hadamard");
  EXPECT_EQ(j.get<lrc::RotationInfo>(), info);
}

INSTANTIATE_TEST_SUITE_P(Smooth, CalibratedFusion, ::testing::Values(0.0, 0.5));

TEST(CalibratedFusion, SmoothingAloneKeepsTheHadamardAndTheFpModel) {
  LlamaModel m = outlier_model();
  const Fp ref = fp_outputs(m);
  lrc::QuarotPlan plan = lrc::plan_rotation(m.cfg, lrc::RotationOptions{});
  lrc::ResidualCalibrationOptions o = calib_options(0.5);
  o.rotate = false;
  const auto t = tokens_for(m);
  lrc::calibrate_plan(plan, m, t.data(), kSeqs, kSeqLen, o);
  EXPECT_EQ(plan.r_res->kind, lrc::RotationKind::Hadamard);
  lrc::rotate_model_with_plan(m, plan);
  EXPECT_LT(std::abs(fp_outputs(m).nll - ref.nll) / ref.nll, 1e-5);
}

// Rows [rows x n]: Gaussian, two channels 8x larger (outliers before any rotation).
std::vector<double> outlier_rows(int64_t rows, int n, uint64_t seed) {
  lrc::detail::SplitMix64 rng(seed);
  std::vector<double> x(static_cast<size_t>(rows) * n);
  for (int64_t t = 0; t < rows; ++t)
    for (int j = 0; j < n; ++j) x[t * n + j] = rng.normal() * (j == 3 || j == 20 ? 8.0 : 1.0);
  return x;
}

std::vector<double> identity(int n) {
  std::vector<double> r(static_cast<size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i) r[static_cast<size_t>(i) * n + i] = 1.0;
  return r;
}

TEST(RotationSearch, ObjectiveDecreasesOverTheSteps) {
  const int n = 32;
  const int64_t rows = 1500;
  const auto x = outlier_rows(rows, n, 5);
  for (auto obj : {lrc::RotationObjective::Quant, lrc::RotationObjective::Kurtosis}) {
    lrc::RotationSearchOptions o;
    o.objective = obj;
    o.steps = 40;
    // From the identity (outliers untouched: a large drop) and from a random Hadamard (already
    // flattened: a smaller one).
    const std::pair<std::vector<double>, double> starts[] = {
        {identity(n), 0.6}, {lrc::make_rotation(lrc::RotationKind::Hadamard, n, 9).dense(), 0.97}};
    for (const auto& [r0, factor] : starts) {
      const auto res = lrc::search_rotation(x.data(), rows, n, r0, o);
      ASSERT_GE(res.history.size(), 2u);
      for (size_t i = 1; i < res.history.size(); ++i)
        EXPECT_LE(res.history[i], res.history[i - 1]) << lrc::rotation_objective_name(obj) << i;
      EXPECT_LT(res.history.back(), factor * res.history.front()) << lrc::rotation_objective_name(obj);
      EXPECT_LT(orthogonality_error(res.r, n), 1e-10);
      // The recorded value is the objective of the returned R.
      EXPECT_NEAR(lrc::rotation_objective(x.data(), rows, n, res.r, o), res.history.back(),
                  1e-9 * res.history.back());
    }
  }
}

TEST(RotationSearch, QuantObjectiveIsLrcsOwnActivationQuantizerError) {
  const int n = 32;
  const int64_t rows = 200;
  const auto x = outlier_rows(rows, n, 6);
  const auto r = lrc::make_rotation(lrc::RotationKind::Hadamard, n, 4).dense();
  lrc::RotationSearchOptions o;
  o.objective = lrc::RotationObjective::Quant;
  o.clip = 0.8;
  o.bits = 4;
  lrc::ActQuantSpec spec;
  spec.bits = 4;
  spec.clip = 0.8f;
  double want = 0;
  for (int64_t t = 0; t < rows; ++t) {
    std::vector<float> y(n);
    double s2 = 0;
    for (int i = 0; i < n; ++i) {
      double v = 0;
      for (int k = 0; k < n; ++k) v += r[static_cast<size_t>(i) * n + k] * x[t * n + k];
      y[i] = static_cast<float>(v);
      s2 += v * v;
    }
    std::vector<int8_t> codes(n);
    float scale = 0;
    lrc::quantize_activation_row(y.data(), n, spec, codes.data(), &scale);
    double e = 0;
    for (int i = 0; i < n; ++i) e += std::pow(y[i] - scale * codes[i], 2);
    want += e / s2;
  }
  want /= rows;
  EXPECT_NEAR(lrc::rotation_objective(x.data(), rows, n, r, o), want, 1e-4 * want);
}

TEST(RotationSearch, KurtosisGradientIsItsDerivative) {
  const int n = 16;
  const int64_t rows = 300;
  const auto x = outlier_rows(rows, n, 8);
  lrc::RotationSearchOptions o;
  o.objective = lrc::RotationObjective::Kurtosis;
  const auto r = lrc::make_rotation(lrc::RotationKind::Hadamard, n, 2).dense();
  std::vector<double> g;
  lrc::rotation_objective(x.data(), rows, n, r, o, &g);
  lrc::detail::SplitMix64 rng(3);
  std::vector<double> e(r.size());
  double dot = 0;
  for (size_t i = 0; i < e.size(); ++i) {
    e[i] = rng.normal();
    dot += g[i] * e[i];
  }
  const double eps = 1e-6;
  auto at = [&](double s) {
    std::vector<double> rr = r;
    for (size_t i = 0; i < rr.size(); ++i) rr[i] += s * e[i];
    return lrc::rotation_objective(x.data(), rows, n, rr, o);
  };
  const double fd = (at(eps) - at(-eps)) / (2 * eps);
  EXPECT_NEAR(fd, dot, 1e-5 * std::max(1.0, std::abs(dot)));
}

TEST(RotationSearch, BadOptionsFailWithTheirFlag) {
  auto fails_with = [](const lrc::QuantizeOptions& o, const std::string& flag) {
    try {
      o.validate();
      ADD_FAILURE() << "no error for " << flag;
    } catch (const lrc::Error& e) {
      EXPECT_NE(std::string(e.what()).find(flag), std::string::npos) << e.what();
    }
  };
  lrc::QuantizeOptions o;
  o.rotation_objective = "max";
  fails_with(o, "--rotation-objective");
  o = {};
  o.rotation_steps = -1;
  fails_with(o, "--rotation-steps");
  o = {};
  o.smooth_alpha = 1.5;
  fails_with(o, "--smooth");
  o = {};
  o.rotation_calibrated = true;
  o.rotate = false;
  fails_with(o, "--no-rotate");
  o = {};
  o.rotation_rows = 1;
  fails_with(o, "--rotation-rows");
  EXPECT_THROW(lrc::parse_rotation_objective("max"), lrc::Error);

  // The options round-trip through the checkpoint's JSON; the default writes none of them.
  o = {};
  EXPECT_FALSE(o.to_json().contains("rotation"));
  EXPECT_FALSE(o.to_json().contains("smooth"));
  o.rotation_calibrated = true;
  o.rotation_steps = 7;
  o.rotation_objective = "kurtosis";
  o.smooth_alpha = 0.25;
  const auto back = lrc::QuantizeOptions::from_json(o.to_json());
  EXPECT_TRUE(back.rotation_calibrated);
  EXPECT_EQ(back.rotation_steps, 7);
  EXPECT_EQ(back.rotation_objective, "kurtosis");
  EXPECT_EQ(back.smooth_alpha, 0.25);
}

}  // namespace

// --rank-alloc error with --rotation calibrated: the rotation is searched once (on the whole
// calibration set) for the probe pass and the real pass, and the checkpoint records it.
TEST(CalibratedFusion, RankAllocationSearchesTheRotationOnce) {
  LlamaModel m = outlier_model();
  lrc::QuantizeOptions opt;
  opt.method = lrc::QuantMethod::LRC;
  opt.rank = 0.25;
  opt.rank_alloc = lrc::RankAllocation::Error;
  opt.rotation_calibrated = true;
  opt.rotation_steps = 5;
  opt.rotation_nsamples = 4;
  opt.rotation_rows = 40;
  testing::internal::CaptureStderr();
  const lrc::QuantizeReport rep =
      lrc::quantize_model(m, lrc::test::random_calibration(m.cfg.vocab_size, 8, 16, 5), opt);
  const std::string err = testing::internal::GetCapturedStderr();
  size_t searches = 0;
  for (size_t at = err.find("[rotation] calibrating R"); at != std::string::npos;
       at = err.find("[rotation] calibrating R", at + 1))
    ++searches;
  EXPECT_EQ(searches, 1u) << err;
  EXPECT_TRUE(rep.rotation.contains("calibrated")) << rep.rotation.dump();
  EXPECT_TRUE(rep.allocation.contains("ranks"));
}
