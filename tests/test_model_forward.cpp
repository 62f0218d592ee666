// The forward pass on small random models: against a naive float64 reference written out
// here, prefill == incremental decode, the hook's inputs, online transforms, NLL.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/kernels/attention.h"
#include "lrc/model/forward.h"
#include "support/random_model.h"

namespace {

using lrc::LlamaModel;

std::vector<int32_t> random_tokens(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> ud(0, vocab - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = ud(rng);
  return t;
}

// ---- naive float64 Llama forward of one sequence: the math with no tricks.
using Vec = std::vector<double>;

Vec matvec(const lrc::Linear& L, const Vec& x) {
  Vec y(L.d_out, 0.0);
  for (int o = 0; o < L.d_out; ++o)
    for (int j = 0; j < L.d_in; ++j) y[o] += double(L.w[o * L.d_in + j]) * x[j];
  return y;
}

Vec rmsnorm_ref(const double* x, const std::vector<float>& w, int d, double eps) {
  double ss = 0;
  for (int j = 0; j < d; ++j) ss += x[j] * x[j];
  const double inv = 1.0 / std::sqrt(ss / d + eps);
  Vec y(d);
  for (int j = 0; j < d; ++j) y[j] = x[j] * inv * w[j];
  return y;
}

void rope_ref(double* v, int hd, int pos, double theta, lrc::RopeStyle style) {
  for (int i = 0; i < hd / 2; ++i) {
    const double a = pos * std::pow(theta, -2.0 * i / hd);
    const int p0 = style == lrc::RopeStyle::HalfSplit ? i : 2 * i;
    const int p1 = style == lrc::RopeStyle::HalfSplit ? i + hd / 2 : 2 * i + 1;
    const double x0 = v[p0], x1 = v[p1];
    v[p0] = x0 * std::cos(a) - x1 * std::sin(a);
    v[p1] = x0 * std::sin(a) + x1 * std::cos(a);
  }
}

std::vector<double> naive_logits(const LlamaModel& m, const std::vector<int32_t>& toks) {
  const auto& c = m.cfg;
  const int T = static_cast<int>(toks.size()), d = c.dim, hd = c.head_dim();
  const int group = c.n_heads / c.n_kv_heads;
  std::vector<Vec> h(T, Vec(d));
  for (int t = 0; t < T; ++t)
    for (int j = 0; j < d; ++j) h[t][j] = m.tok_embeddings[toks[t] * d + j];
  for (const auto& L : m.layers) {
    std::vector<Vec> q(T), k(T), v(T);
    for (int t = 0; t < T; ++t) {
      const Vec x = rmsnorm_ref(h[t].data(), L.attn_norm, d, c.norm_eps);
      q[t] = matvec(L.wq, x);
      k[t] = matvec(L.wk, x);
      v[t] = matvec(L.wv, x);
      for (int hh = 0; hh < c.n_heads; ++hh) rope_ref(&q[t][hh * hd], hd, t, c.rope_theta, c.rope);
      for (int hh = 0; hh < c.n_kv_heads; ++hh)
        rope_ref(&k[t][hh * hd], hd, t, c.rope_theta, c.rope);
    }
    for (int t = 0; t < T; ++t) {
      Vec att(c.n_heads * hd, 0.0);
      for (int hh = 0; hh < c.n_heads; ++hh) {
        const int g = hh / group;
        Vec s(t + 1);
        for (int j = 0; j <= t; ++j) {
          double acc = 0;
          for (int e = 0; e < hd; ++e) acc += q[t][hh * hd + e] * k[j][g * hd + e];
          s[j] = acc / std::sqrt(double(hd));
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double sum = 0;
        for (auto& x : s) sum += (x = std::exp(x - mx));
        for (int j = 0; j <= t; ++j)
          for (int e = 0; e < hd; ++e) att[hh * hd + e] += s[j] / sum * v[j][g * hd + e];
      }
      const Vec o = matvec(L.wo, att);
      for (int j = 0; j < d; ++j) h[t][j] += o[j];
      const Vec x = rmsnorm_ref(h[t].data(), L.ffn_norm, d, c.norm_eps);
      Vec gt = matvec(L.w_gate, x);
      const Vec up = matvec(L.w_up, x);
      for (int j = 0; j < c.hidden_dim; ++j) gt[j] = gt[j] / (1 + std::exp(-gt[j])) * up[j];
      const Vec dn = matvec(L.w_down, gt);
      for (int j = 0; j < d; ++j) h[t][j] += dn[j];
    }
  }
  std::vector<double> logits;
  for (int t = 0; t < T; ++t) {
    const Vec l = matvec(m.lm_head, rmsnorm_ref(h[t].data(), m.final_norm, d, c.norm_eps));
    logits.insert(logits.end(), l.begin(), l.end());
  }
  return logits;
}

// A signed permutation: orthogonal, so applying it to q and k (or to a with W·Pᵀ) is exact.
class SignedPermutation : public lrc::OnlineTransform {
 public:
  SignedPermutation(int n, uint32_t seed) : perm_(n), sign_(n) {
    std::mt19937 rng(seed);
    std::iota(perm_.begin(), perm_.end(), 0);
    std::shuffle(perm_.begin(), perm_.end(), rng);
    for (auto& s : sign_) s = (rng() & 1) ? 1.f : -1.f;
  }
  int size() const override { return static_cast<int>(perm_.size()); }
  void apply(float* x, int64_t n_rows) const override {
    std::vector<float> tmp(perm_.size());
    for (int64_t r = 0; r < n_rows; ++r) {
      float* row = x + r * size();
      for (int i = 0; i < size(); ++i) tmp[i] = sign_[i] * row[perm_[i]];
      std::copy(tmp.begin(), tmp.end(), row);
    }
  }
  // W·Pᵀ: column i of the result is sign_i · column perm_i of W, so (W Pᵀ)(P x) = W x.
  void fuse_into(lrc::Linear& L) const {
    auto w = L.w;
    for (int o = 0; o < L.d_out; ++o)
      for (int i = 0; i < size(); ++i) L.w[o * L.d_in + i] = sign_[i] * w[o * L.d_in + perm_[i]];
  }
  std::string describe() const override { return "signed-permutation"; }

 private:
  std::vector<int> perm_;
  std::vector<float> sign_;
};

void expect_close(const std::vector<float>& a, const std::vector<float>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::fabs(a[i] - b[i])));
  EXPECT_LE(worst, tol);
}

// Decoder fed in uneven chunks (first 7 tokens, then one at a time, then the rest) must give
// the prefill's logits for every position.
void expect_decoder_matches_prefill(const LlamaModel& m) {
  const int n_seq = 2, T = 24, V = m.cfg.vocab_size;
  const auto toks = random_tokens(n_seq * T, V, 11);
  const auto ref = lrc::forward_logits(m, toks.data(), n_seq, T);
  for (int s = 0; s < n_seq; ++s) {
    lrc::Decoder dec(m, T);
    std::vector<float> got(static_cast<size_t>(T) * V);
    const int32_t* ts = toks.data() + s * T;
    dec.forward(ts, 7, got.data());
    for (int t = 7; t < 15; ++t) {
      const auto& l = dec.step(ts[t]);
      std::copy(l.begin(), l.end(), got.begin() + static_cast<size_t>(t) * V);
    }
    const auto& last = dec.forward(ts + 15, T - 15, got.data() + static_cast<size_t>(15) * V);
    EXPECT_EQ(dec.pos(), T);
    EXPECT_TRUE(std::equal(last.begin(), last.end(), got.end() - V));
    expect_close(got, std::vector<float>(ref.begin() + s * T * V, ref.begin() + (s + 1) * T * V),
                 1e-4);
  }
}

}  // namespace

TEST(ModelForward, MatchesNaiveReferenceBothRopeStyles) {
  for (auto style : {lrc::RopeStyle::HalfSplit, lrc::RopeStyle::Interleaved}) {
    auto cfg = lrc::test::tiny_config(32, 48, 2, 4, 2, 29, 32);
    cfg.rope = style;
    cfg.rope_theta = 500.f;  // large angles at small positions
    const auto m = lrc::test::random_model(cfg, 5);
    const auto toks = random_tokens(12, cfg.vocab_size, 2);
    const auto got = lrc::forward_logits(m, toks.data(), 1, 12);
    const auto ref = naive_logits(m, toks);
    ASSERT_EQ(got.size(), ref.size());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], ref[i], 1e-3) << i;
  }
}

TEST(ModelForward, BatchedSequencesAreIndependent) {
  const auto m = lrc::test::random_model(lrc::test::tiny_config(), 2);
  const int T = 16, V = m.cfg.vocab_size;
  const auto toks = random_tokens(3 * T, V, 4);
  const auto all = lrc::forward_logits(m, toks.data(), 3, T);
  for (int s = 0; s < 3; ++s) {
    const auto one = lrc::forward_logits(m, toks.data() + s * T, 1, T);
    expect_close(one, std::vector<float>(all.begin() + s * T * V, all.begin() + (s + 1) * T * V),
                 1e-5);
  }
}

TEST(ModelForward, DecoderMatchesPrefillHalfSplitGqa) {
  auto cfg = lrc::test::tiny_config(64, 96, 2, 4, 2, 97, 64);
  cfg.rope = lrc::RopeStyle::HalfSplit;
  expect_decoder_matches_prefill(lrc::test::random_model(cfg, 3));
}

TEST(ModelForward, DecoderMatchesPrefillInterleavedGqa) {
  auto cfg = lrc::test::tiny_config(64, 96, 2, 8, 2, 97, 64);
  cfg.rope = lrc::RopeStyle::Interleaved;
  cfg.tied_embeddings = true;
  expect_decoder_matches_prefill(lrc::test::random_model(cfg, 4));
}

TEST(ModelForward, DecoderMatchesPrefillWithKvQuantAndOnlineTransforms) {
  auto cfg = lrc::test::tiny_config(64, 96, 2, 4, 4, 97, 64);
  auto m = lrc::test::random_model(cfg, 6);
  m.kv.bits = 4;
  m.online_qk = std::make_shared<SignedPermutation>(cfg.head_dim(), 1);
  expect_decoder_matches_prefill(m);
}

TEST(ModelForward, DecoderTruncateRecomputes) {
  const auto m = lrc::test::random_model(lrc::test::tiny_config(), 8);
  const auto a = random_tokens(10, m.cfg.vocab_size, 1);
  auto b = a;
  b[6] = (b[6] + 1) % m.cfg.vocab_size;
  b[9] = (b[9] + 5) % m.cfg.vocab_size;
  lrc::Decoder dec(m, 16);
  dec.forward(a.data(), 10);
  dec.truncate(6);
  const auto got = dec.forward(b.data() + 6, 4);
  const auto ref = lrc::forward_logits(m, b.data(), 1, 10);
  expect_close(got, std::vector<float>(ref.end() - m.cfg.vocab_size, ref.end()), 1e-4);
  EXPECT_THROW(dec.truncate(11), lrc::Error);
  EXPECT_THROW(dec.forward(a.data(), 7), lrc::Error);  // 10 + 7 > 16
}

// Token trees in one pass == each (context + branch) sequence on its own. Trees of different
// context lengths, branches that use both attention paths (a loop below 16 queries, sgemm from
// 16), a one-token branch, a tree without branches; quantized KV and an online q/k transform.
TEST(ModelForward, TokenTreesEqualSeparateSequences) {
  auto cfg = lrc::test::tiny_config(64, 96, 2, 4, 2, 97, 128);
  auto m = lrc::test::random_model(cfg, 12);
  m.kv.bits = 4;
  m.online_qk = std::make_shared<SignedPermutation>(cfg.head_dim(), 3);
  const int V = cfg.vocab_size, dim = cfg.dim;
  const std::vector<lrc::TokenTree> trees = {{9, {5, 1, 20}}, {3, {}}, {17, {3, 17}}, {1, {2}}};
  int n = 0;
  for (const auto& t : trees) {
    n += t.context;
    for (int b : t.branches) n += b;
  }
  const auto toks = random_tokens(n, V, 22);
  const auto h = lrc::tree_hidden_states(m, toks.data(), trees);
  ASSERT_EQ(h.size(), static_cast<size_t>(n) * dim);
  std::vector<float> got(static_cast<size_t>(n) * V);
  lrc::output_logits(m, h.data(), n, got.data());

  int row = 0;
  for (const auto& t : trees) {
    const int32_t* ctx = toks.data() + row;
    const auto ref_ctx = lrc::forward_logits(m, ctx, 1, t.context);
    expect_close(std::vector<float>(got.begin() + row * V, got.begin() + (row + t.context) * V),
                 ref_ctx, 1e-4);
    int b0 = row + t.context;
    for (int len : t.branches) {
      std::vector<int32_t> seq(ctx, ctx + t.context);
      seq.insert(seq.end(), toks.begin() + b0, toks.begin() + b0 + len);
      const auto ref = lrc::forward_logits(m, seq.data(), 1, static_cast<int>(seq.size()));
      expect_close(std::vector<float>(got.begin() + b0 * V, got.begin() + (b0 + len) * V),
                   std::vector<float>(ref.begin() + t.context * V, ref.end()), 1e-4);
      b0 += len;
    }
    row = b0;
  }
  EXPECT_THROW(lrc::tree_hidden_states(m, toks.data(), {{0, {3}}}), lrc::Error);
  EXPECT_THROW(lrc::tree_hidden_states(m, toks.data(), {{3, {0}}}), lrc::Error);
}

TEST(ModelForward, OrthogonalOnlineTransformsPreserveLogits) {
  auto cfg = lrc::test::tiny_config(64, 96, 2, 4, 2, 97, 64);
  const auto m = lrc::test::random_model(cfg, 9);
  auto r = m;  // the rotated model: transforms online, inverses fused into o_proj / down_proj
  auto po = std::make_shared<SignedPermutation>(cfg.dim, 2);
  auto pd = std::make_shared<SignedPermutation>(cfg.hidden_dim, 3);
  r.online_o = po;
  r.online_down = pd;
  r.online_qk = std::make_shared<SignedPermutation>(cfg.head_dim(), 4);
  for (auto& L : r.layers) {
    po->fuse_into(L.wo);
    pd->fuse_into(L.w_down);
  }
  const auto toks = random_tokens(20, cfg.vocab_size, 3);
  expect_close(lrc::forward_logits(r, toks.data(), 1, 20),
               lrc::forward_logits(m, toks.data(), 1, 20), 1e-4);
}

namespace {
struct Recorder : lrc::LinearInputHook {
  struct Call {
    int layer;
    lrc::LinearGroup group;
    int64_t n;
    int d;
    std::vector<float> x;
  };
  std::vector<Call> calls;
  void on_input(int layer, lrc::LinearGroup g, const float* x, int64_t n, int d) override {
    calls.push_back({layer, g, n, d, std::vector<float>(x, x + n * d)});
  }
};
}  // namespace

TEST(ModelForward, HookSeesEachGroupInOrderWithShapes) {
  auto cfg = lrc::test::tiny_config(64, 96, 2, 4, 2, 97, 64);
  auto m = lrc::test::random_model(cfg, 10);
  const int n_seq = 2, T = 9;
  const auto toks = random_tokens(n_seq * T, cfg.vocab_size, 5);
  std::vector<float> h(n_seq * T * cfg.dim);
  lrc::embed_tokens(m, toks.data(), n_seq * T, h.data());
  Recorder rec;
  lrc::layer_forward(m, 1, h.data(), n_seq, T, &rec);
  ASSERT_EQ(rec.calls.size(), 4u);
  const lrc::LinearGroup order[] = {lrc::LinearGroup::QKV, lrc::LinearGroup::O,
                                    lrc::LinearGroup::GateUp, lrc::LinearGroup::Down};
  const int dims[] = {cfg.dim, cfg.dim, cfg.dim, cfg.hidden_dim};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(rec.calls[i].layer, 1);
    EXPECT_EQ(rec.calls[i].group, order[i]) << lrc::linear_group_name(order[i]);
    EXPECT_EQ(rec.calls[i].n, n_seq * T);
    EXPECT_EQ(rec.calls[i].d, dims[i]);
  }
  // The hook sees x after the online transform: with P on o and Pᵀ fused into o_proj the
  // layer output is unchanged and the hooked O input is P applied to the plain one.
  auto p = std::make_shared<SignedPermutation>(cfg.dim, 7);
  auto r = m;
  r.online_o = p;
  p->fuse_into(r.layers[1].wo);
  std::vector<float> h2(n_seq * T * cfg.dim);
  lrc::embed_tokens(m, toks.data(), n_seq * T, h2.data());
  Recorder rec2;
  lrc::layer_forward(r, 1, h2.data(), n_seq, T, &rec2);
  auto expect_o = rec.calls[1].x;
  p->apply(expect_o.data(), n_seq * T);
  EXPECT_EQ(rec2.calls[1].x, expect_o);
  expect_close(h2, h, 1e-5);
}

TEST(ModelForward, SequencesNllMatchesLogits) {
  const auto m = lrc::test::random_model(lrc::test::tiny_config(), 12);
  const int n_seq = 2, L = 13, V = m.cfg.vocab_size;
  const auto toks = random_tokens(n_seq * L, V, 6);
  for (int first : {1, 5}) {
    double ref = 0;
    for (int s = 0; s < n_seq; ++s) {
      const auto lg = lrc::forward_logits(m, toks.data() + s * L, 1, L - 1);
      for (int t = first; t < L; ++t) {
        const float* l = lg.data() + (t - 1) * V;
        double z = 0;
        for (int j = 0; j < V; ++j) z += std::exp(double(l[j]));
        ref += std::log(z) - l[toks[s * L + t]];
      }
    }
    int64_t count = 0;
    const double got = lrc::sequences_nll(m, toks.data(), n_seq, L, &count, first);
    EXPECT_EQ(count, n_seq * (L - first));
    EXPECT_NEAR(got, ref, 1e-4 * std::fabs(ref));
  }
}

TEST(ModelAttention, MatchesNaiveWithCachePrefixAndStrides) {
  // Two sequences, 5 cached positions then 70 new queries (more than one block of rows).
  const lrc::AttentionShape a{4, 2, 8};
  const int n_seq = 2, n_q = 70, pos0 = 5, kv_dim = 16, q_dim = 32;
  const int64_t stride = 80 * kv_dim;  // room for 80 positions a sequence
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> q(n_seq * n_q * q_dim), k(n_seq * stride), v(n_seq * stride), out(q.size());
  for (auto* vec : {&q, &k, &v})
    for (auto& x : *vec) x = nd(rng);
  lrc::causal_attention(q.data(), k.data(), v.data(), n_seq, n_q, pos0, stride, a, out.data());
  for (int s = 0; s < n_seq; ++s)
    for (int i = 0; i < n_q; ++i)
      for (int h = 0; h < a.n_heads; ++h) {
        const int g = h / 2, n_keys = pos0 + i + 1;
        std::vector<double> sc(n_keys);
        for (int j = 0; j < n_keys; ++j) {
          double acc = 0;
          for (int e = 0; e < 8; ++e)
            acc += double(q[(s * n_q + i) * q_dim + h * 8 + e]) *
                   k[s * stride + j * kv_dim + g * 8 + e];
          sc[j] = acc / std::sqrt(8.0);
        }
        const double mx = *std::max_element(sc.begin(), sc.end());
        double z = 0;
        for (auto& x : sc) z += (x = std::exp(x - mx));
        for (int e = 0; e < 8; ++e) {
          double ref = 0;
          for (int j = 0; j < n_keys; ++j)
            ref += sc[j] / z * v[s * stride + j * kv_dim + g * 8 + e];
          ASSERT_NEAR(out[(s * n_q + i) * q_dim + h * 8 + e], ref, 1e-5);
        }
      }
}
