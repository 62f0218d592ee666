// QuaRot on random tiny models: norm folding and the full rotation leave the logits unchanged,
// for Hadamard and fallback sizes, both RoPE styles, GQA; rotation is reproducible from its seed.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "lrc/core/error.h"
#include "lrc/model/forward.h"
#include "lrc/rotate/quarot.h"
#include "support/random_model.h"

namespace {

using lrc::LlamaModel;
using lrc::RotationKind;

constexpr int kSeqs = 2, kSeqLen = 12;

std::vector<int32_t> tokens_for(const LlamaModel& m) {
  return lrc::test::spread_tokens(m, kSeqs * kSeqLen);
}

std::vector<float> logits(const LlamaModel& m) {
  const auto t = tokens_for(m);
  return lrc::forward_logits(m, t.data(), kSeqs, kSeqLen);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(double(a[i]) - b[i]));
  return d;
}

struct Shape {
  const char* name;
  int dim, hidden, heads, kv_heads;
  lrc::RopeStyle rope;
  bool tied;
  RotationKind residual, down, value_heads, across_heads;  // what rotate_model should pick
};

const Shape kShapes[] = {
    // 48 = 12·4, head_dim 12 = Paley; 4 heads Hadamard.
    {"d48_h4_halfsplit", 48, 96, 4, 2, lrc::RopeStyle::HalfSplit, false, RotationKind::Hadamard,
     RotationKind::Hadamard, RotationKind::Hadamard, RotationKind::Hadamard},
    // 6 heads: no Hadamard of order 6, across-heads falls back to orthogonal.
    {"d48_h6_interleaved", 48, 96, 6, 2, lrc::RopeStyle::Interleaved, false, RotationKind::Hadamard,
     RotationKind::Hadamard, RotationKind::Hadamard, RotationKind::Orthogonal},
    // 40 = 20·2; head_dim 10 has no Hadamard order.
    {"d40_h4_interleaved_tied", 40, 80, 4, 4, lrc::RopeStyle::Interleaved, true,
     RotationKind::Hadamard, RotationKind::Hadamard, RotationKind::Orthogonal,
     RotationKind::Hadamard},
    // 56 = 28·2 has a Hadamard order (Paley q=27 doubled); head_dim 14 does not.
    {"d56_h4_kv1", 56, 112, 4, 1, lrc::RopeStyle::HalfSplit, false, RotationKind::Hadamard,
     RotationKind::Hadamard, RotationKind::Orthogonal, RotationKind::Hadamard},
    // 50 and 70 (≡ 2 mod 4) have none: residual and down_proj fall back to orthogonal.
    {"d50_h5_fallback", 50, 70, 5, 1, lrc::RopeStyle::HalfSplit, true, RotationKind::Orthogonal,
     RotationKind::Orthogonal, RotationKind::Orthogonal, RotationKind::Orthogonal},
};

void PrintTo(const Shape& s, std::ostream* os) { *os << s.name; }

LlamaModel model_for(const Shape& s, uint64_t seed = 1) {
  lrc::LlamaConfig c = lrc::test::tiny_config(s.dim, s.hidden, 2, s.heads, s.kv_heads, 97, 64);
  c.rope = s.rope;
  c.tied_embeddings = s.tied;
  return lrc::test::random_model(c, seed);
}

class RotateQuarotShapes : public ::testing::TestWithParam<Shape> {};

TEST_P(RotateQuarotShapes, NormFoldingLeavesLogitsUnchanged) {
  LlamaModel m = model_for(GetParam());
  const auto ref = logits(m);
  const auto wq_before = m.layers[0].wq.w;
  lrc::fold_norms(m);
  EXPECT_EQ(m.layers[0].attn_norm, std::vector<float>(m.cfg.dim, 1.f));
  EXPECT_NE(m.layers[0].wq.w, wq_before);
  EXPECT_LT(max_abs_diff(logits(m), ref), 1e-4);
}

TEST_P(RotateQuarotShapes, FullRotationLeavesLogitsUnchanged) {
  const Shape& s = GetParam();
  LlamaModel m = model_for(s);
  const auto ref = logits(m);
  lrc::RotationOptions opt;
  opt.seed = 123;
  opt.online_qk = true;
  const lrc::RotationInfo info = lrc::rotate_model(m, opt);
  ASSERT_TRUE(info.residual && info.online_down && info.value_heads && info.online_o &&
              info.online_qk);
  EXPECT_EQ(info.residual->kind, s.residual);
  EXPECT_EQ(info.online_down->kind, s.down);
  EXPECT_EQ(info.value_heads->kind, s.value_heads);
  EXPECT_EQ(info.online_o->kind, s.across_heads);
  ASSERT_TRUE(m.online_o && m.online_down && m.online_qk);
  EXPECT_EQ(m.online_o->size(), s.dim);
  EXPECT_FALSE(m.cfg.tied_embeddings);
  const auto out = logits(m);
  EXPECT_LT(max_abs_diff(out, ref), 1e-3) << s.name;
  // ... and the online transforms of o_proj and down_proj are needed: dropping one changes the
  // logits (online_qk is not: it rotates q and k alike, qᵀk is unchanged either way).
  for (auto field : {&LlamaModel::online_o, &LlamaModel::online_down}) {
    LlamaModel broken = m;
    broken.*field = nullptr;
    EXPECT_GT(max_abs_diff(logits(broken), ref), 1e-2) << s.name;
  }

  // The rotation is not a no-op: the residual stream itself is rotated.
  const LlamaModel orig = model_for(s);
  EXPECT_GT(max_abs_diff(m.tok_embeddings, orig.tok_embeddings), 0.1);
}

TEST_P(RotateQuarotShapes, EachStepAloneLeavesLogitsUnchanged) {
  const Shape& s = GetParam();
  const auto ref = logits(model_for(s));
  for (int step = 0; step < 4; ++step) {
    LlamaModel m = model_for(s);
    lrc::RotationOptions opt;
    opt.seed = 9;
    opt.rotate_residual = step == 0;
    opt.online_down = step == 1;
    opt.rotate_attn_out = step == 2;
    opt.online_qk = step == 3;
    lrc::rotate_model(m, opt);
    EXPECT_LT(max_abs_diff(logits(m), ref), 1e-3) << s.name << " step " << step;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, RotateQuarotShapes, ::testing::ValuesIn(kShapes),
                         [](const auto& p) { return std::string(p.param.name); });

TEST(RotateQuarot, SameSeedSameWeightsOtherSeedOther) {
  const Shape& s = kShapes[1];
  LlamaModel a = model_for(s), b = model_for(s), c = model_for(s);
  lrc::RotationOptions opt;
  opt.seed = 77;
  const auto ia = lrc::rotate_model(a, opt), ib = lrc::rotate_model(b, opt);
  opt.seed = 78;
  lrc::rotate_model(c, opt);
  EXPECT_EQ(ia, ib);
  EXPECT_EQ(a.tok_embeddings, b.tok_embeddings);
  for (int l = 0; l < a.cfg.n_layers; ++l) {
    const auto &A = a.layers[l], &B = b.layers[l];
    EXPECT_EQ(A.wq.w, B.wq.w);
    EXPECT_EQ(A.wk.w, B.wk.w);
    EXPECT_EQ(A.wv.w, B.wv.w);
    EXPECT_EQ(A.wo.w, B.wo.w);
    EXPECT_EQ(A.w_gate.w, B.w_gate.w);
    EXPECT_EQ(A.w_up.w, B.w_up.w);
    EXPECT_EQ(A.w_down.w, B.w_down.w);
  }
  EXPECT_EQ(a.lm_head.w, b.lm_head.w);
  EXPECT_NE(a.tok_embeddings, c.tok_embeddings);
  EXPECT_NE(a.layers[0].w_down.w, c.layers[0].w_down.w);
}

TEST(RotateQuarot, OrthogonalOnlyOptionLeavesLogitsUnchanged) {
  LlamaModel m = model_for(kShapes[0]);
  const auto ref = logits(m);
  lrc::RotationOptions opt;
  opt.hadamard = false;
  const auto info = lrc::rotate_model(m, opt);
  for (const auto& s : {info.residual, info.online_down, info.value_heads, info.online_o})
    EXPECT_EQ(s->kind, RotationKind::Orthogonal);
  EXPECT_EQ(m.online_down->describe(), "dense:orthogonal(96)");
  EXPECT_LT(max_abs_diff(logits(m), ref), 1e-3);
}

TEST(RotateQuarot, InfoJsonRoundTripRecreatesTheOnlineTransforms) {
  const Shape& s = kShapes[1];
  LlamaModel m = model_for(s);
  lrc::RotationOptions opt;
  opt.seed = 0xfedcba9876543210ull;  // full 64 bits survive JSON
  opt.online_qk = true;
  const auto info = lrc::rotate_model(m, opt);
  const nlohmann::json j = info;
  const std::string text = j.dump();
  const auto back = nlohmann::json::parse(text).get<lrc::RotationInfo>();
  EXPECT_EQ(back, info);
  EXPECT_EQ(j.at("online_o").at("block").get<int>(), s.dim / s.heads);
  EXPECT_EQ(j.at("online_o").at("kind").get<std::string>(), "orthogonal");

  // A "loaded checkpoint": same weights, no online transforms until attached from the JSON.
  LlamaModel loaded = m;
  loaded.online_o = loaded.online_down = loaded.online_qk = nullptr;
  lrc::attach_online_transforms(loaded, back);
  EXPECT_EQ(logits(loaded), logits(m));

  nlohmann::json bad = j;
  bad["online_down"]["kind"] = "fourier";
  EXPECT_THROW(bad.get<lrc::RotationInfo>(), lrc::Error);
  bad = j;
  bad["online_down"]["n"] = s.hidden + 4;
  EXPECT_THROW(lrc::attach_online_transforms(loaded, bad.get<lrc::RotationInfo>()), lrc::Error);
}

TEST(RotateQuarot, DecoderMatchesPrefillAfterRotation) {
  LlamaModel m = model_for(kShapes[0]);
  const auto t = tokens_for(m);
  std::vector<float> ref(kSeqLen * m.cfg.vocab_size);
  {
    lrc::Decoder d(m, kSeqLen);
    d.forward(t.data(), kSeqLen, ref.data());
  }
  lrc::RotationOptions opt;
  opt.online_qk = true;
  lrc::rotate_model(m, opt);
  lrc::Decoder d(m, kSeqLen);
  std::vector<float> out;
  for (int i = 0; i < kSeqLen; ++i) {
    const auto& row = d.step(t[i]);
    out.insert(out.end(), row.begin(), row.end());
  }
  EXPECT_LT(max_abs_diff(out, ref), 1e-3);
}

TEST(RotateQuarot, RefusesRotatedOrQuantizedModels) {
  LlamaModel m = model_for(kShapes[0]);
  lrc::rotate_model(m, {});
  EXPECT_THROW(lrc::rotate_model(m, {}), lrc::Error);  // already has online transforms
  LlamaModel q = model_for(kShapes[0]);
  q.layers[1].wo.lr.rank = 2;
  q.layers[1].wo.lr.u.assign(q.layers[1].wo.d_out * 2, 0.f);
  q.layers[1].wo.lr.v.assign(q.layers[1].wo.d_in * 2, 0.f);
  EXPECT_THROW(lrc::rotate_model(q, {}), lrc::Error);
  EXPECT_THROW(lrc::fold_norms(q), lrc::Error);
}

}  // namespace
