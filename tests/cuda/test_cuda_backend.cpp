// The CUDA backend (kernels/cuda/backend.h) against the CPU reference: every operation on the
// same inputs, the whole forward of quantized models (sim: same math in fp32, so logits agree
// to float rounding; real: x rounded to fp16 before Q_a, so a few activation codes differ),
// prefill = decode through the device KV cache, token trees, hooks, and the integer
// accumulators of real (pipeline-quantized) layers exact. GPU cases skip without a device;
// the no-device error is checked everywhere.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/core/half.h"
#include "lrc/io/model_loader.h"
#include "cuda/skip_without_gpu.h"
#include "lrc/kernels/cuda/backend.h"
#include "lrc/kernels/cuda/w4a4.h"
#include "lrc/kernels/cuda/w4a4_from_linear.h"
#include "lrc/kernels/registry.h"
#include "lrc/model/forward.h"
#include "lrc/pipeline/quantize_model.h"
#include "lrc/quant/weight_quant.h"
#include "lrc/rotate/online_transforms.h"
#include "support/paths.h"
#include "support/random_calibration.h"
#include "support/random_model.h"

using namespace lrc;

namespace {

std::vector<float> randn(size_t n, uint64_t seed, float sd = 1.f) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> nd(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// max |a - b| / max |a|
double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0, m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    d = std::max(d, std::fabs(double(a[i]) - b[i]));
    m = std::max(m, std::fabs(double(a[i])));
  }
  return m > 0 ? d / m : d;
}

// A host array on the device and back.
template <typename T>
Buffer<T> up(const Backend& be, const std::vector<T>& v) {
  Buffer<T> b(be, v.size());
  be.upload(b.data(), v.data(), v.size() * sizeof(T));
  return b;
}
template <typename T>
std::vector<T> down(const Backend& be, const Buffer<T>& b) {
  std::vector<T> v(b.size());
  be.download(v.data(), b.data(), v.size() * sizeof(T));
  return v;
}

// A W4A4 model (QuaRot with online Hadamards, 4-bit KV cache), quantized in memory.
LlamaModel quantized_model(QuantMethod method, double rank, int kv_bits = 16) {
  LlamaModel m = test::random_model(test::tiny_config(64, 128, 2, 4, 2, 61, 32), 5);
  QuantizeOptions opt;
  opt.method = method;
  opt.rank = rank;
  opt.nsamples = 4;
  opt.seq = 32;
  opt.kv_bits = kv_bits;
  (void)quantize_model(m, test::random_calibration(61, 4, 32, 3), opt);
  return m;
}

}  // namespace

TEST(CudaBackend, NoDeviceOrBadNameIsOneClearError) {
  auto message = [](const std::string& device) {
    try {
      (void)make_backend(device, "real");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  std::string why;
  if (!cuda::device_available(&why)) {
    EXPECT_NE(message("cuda").find("--device"), std::string::npos);
  }
  EXPECT_NE(message("cuda:x").find("--device"), std::string::npos);
  EXPECT_NE(message("cuda:").find("--device"), std::string::npos);
  EXPECT_NE(message("cuda:99").find("--device"), std::string::npos);
}

TEST(CudaBackend, ElementAndRowOpsEqualTheReference) {
  SKIP_WITHOUT_GPU();
  const BackendPtr gpu = make_backend("cuda", "sim");
  const Backend& cpu = cpu_reference_backend();
  const int n = 37, d = 200;
  const std::vector<float> x = randn(size_t(n) * d, 1), w = randn(d, 2),
                           u = randn(size_t(n) * d, 3);
  {  // rmsnorm
    std::vector<float> ref(x.size());
    cpu.rmsnorm(x.data(), w.data(), n, d, 1e-5f, ref.data());
    Buffer<float> xb = up(*gpu, x), yb(*gpu, x.size());
    gpu->rmsnorm(xb.data(), w.data(), n, d, 1e-5f, yb.data());
    EXPECT_LT(rel_err(ref, down(*gpu, yb)), 1e-6);
  }
  {  // add, swiglu
    std::vector<float> a = x, g = x;
    cpu.add(a.data(), u.data(), int64_t(a.size()));
    cpu.swiglu(g.data(), u.data(), int64_t(g.size()));
    Buffer<float> ab = up(*gpu, x), gb = up(*gpu, x), ub = up(*gpu, u);
    gpu->add(ab.data(), ub.data(), int64_t(x.size()));
    gpu->swiglu(gb.data(), ub.data(), int64_t(x.size()));
    EXPECT_EQ(a, down(*gpu, ab));
    EXPECT_LT(rel_err(g, down(*gpu, gb)), 1e-5);  // CPU fast_expf vs expf
  }
  {  // rope, both styles, stacked sequences, a table not starting at 0
    for (RopeStyle st : {RopeStyle::HalfSplit, RopeStyle::Interleaved}) {
      const int heads = 5, hd = 40, rows = 12, period = 6;
      const RopeTable t(hd, 10000.f, 7, 9);
      std::vector<float> q = randn(size_t(rows) * heads * hd, 4);
      Buffer<float> qb = up(*gpu, q);
      cpu.rope(q.data(), rows, heads, hd, st, t, period, 2);
      gpu->rope(qb.data(), rows, heads, hd, st, t, period, 2);
      EXPECT_LT(rel_err(q, down(*gpu, qb)), 1e-6);
    }
  }
  {  // kv quantization (4 bits, clip)
    std::vector<float> k = randn(size_t(n) * 64, 5);
    Buffer<float> kb = up(*gpu, k);
    KvQuantSpec spec;
    spec.bits = 4;
    spec.clip = 0.95f;
    cpu.kv_quantize(k.data(), n, 64, spec);
    gpu->kv_quantize(kb.data(), n, 64, spec);
    EXPECT_EQ(k, down(*gpu, kb));
  }
  {  // embed, nll_rows
    const int vocab = 301, dim = 24;
    const std::vector<float> table = randn(size_t(vocab) * dim, 6);
    std::vector<int32_t> tok = {0, 5, 300, 5, 17};
    std::vector<float> h(tok.size() * dim);
    cpu.embed(table.data(), vocab, dim, tok.data(), int64_t(tok.size()), h.data());
    Buffer<int32_t> tb = up(*gpu, tok);
    Buffer<float> hb(*gpu, h.size());
    gpu->embed(table.data(), vocab, dim, tb.data(), int64_t(tok.size()), hb.data());
    EXPECT_EQ(h, down(*gpu, hb));
    const std::vector<float> logits = randn(tok.size() * vocab, 7, 4.f);
    std::vector<double> nll(tok.size());
    cpu.nll_rows(logits.data(), int64_t(tok.size()), vocab, tok.data(), nll.data());
    Buffer<float> lb = up(*gpu, logits);
    Buffer<double> nb(*gpu, tok.size());
    gpu->nll_rows(lb.data(), int64_t(tok.size()), vocab, tb.data(), nb.data());
    const std::vector<double> got = down(*gpu, nb);
    for (size_t i = 0; i < nll.size(); ++i) EXPECT_NEAR(nll[i], got[i], 1e-5 * nll[i]);
  }
}

TEST(CudaBackend, AttentionEqualsTheReference) {
  SKIP_WITHOUT_GPU();
  const BackendPtr gpu = make_backend("cuda", "sim");
  const Backend& cpu = cpu_reference_backend();
  const AttentionShape a{6, 2, 32};
  const int q_dim = 6 * 32, kv_dim = 2 * 32;
  // Prefill: 3 sequences of 40; decode: 3 new queries after 50 cached keys.
  for (auto [n_seq, n_q, pos0] :
       {std::tuple{3, 40, 0}, std::tuple{1, 3, 50}, std::tuple{1, 1, 0}}) {
    const int keys = pos0 + n_q;
    const std::vector<float> q = randn(size_t(n_seq) * n_q * q_dim, 8);
    const std::vector<float> k = randn(size_t(n_seq) * keys * kv_dim, 9);
    const std::vector<float> v = randn(size_t(n_seq) * keys * kv_dim, 10);
    std::vector<float> ref(q.size());
    cpu.attention(q.data(), k.data(), v.data(), n_seq, n_q, pos0, int64_t(keys) * kv_dim, a,
                  ref.data());
    Buffer<float> qb = up(*gpu, q), kb = up(*gpu, k), vb = up(*gpu, v), ob(*gpu, q.size());
    gpu->attention(qb.data(), kb.data(), vb.data(), n_seq, n_q, pos0, int64_t(keys) * kv_dim, a,
                   ob.data());
    EXPECT_LT(rel_err(ref, down(*gpu, ob)), 1e-5) << n_seq << " x " << n_q << " from " << pos0;
  }
}

TEST(CudaBackend, OnlineTransformsEqualApply) {
  SKIP_WITHOUT_GPU();
  const BackendPtr gpu = make_backend("cuda", "sim");
  // Hadamard 12 x 32 (Walsh + dense H_12), pure Walsh 128, order 12 alone (signs only),
  // dense orthogonal 20, across heads 4 x 16.
  const std::vector<OnlineSpec> specs = {{RotationKind::Hadamard, 384, 1, 3},
                                         {RotationKind::Hadamard, 128, 1, 4},
                                         {RotationKind::Hadamard, 12, 1, 5},
                                         {RotationKind::Orthogonal, 20, 1, 6},
                                         {RotationKind::Hadamard, 4, 16, 7}};
  for (const OnlineSpec& spec : specs) {
    const OnlineTransformPtr t = make_online_transform(spec);
    std::vector<float> x = randn(size_t(9) * t->size(), 11);
    Buffer<float> xb = up(*gpu, x);
    t->apply(x.data(), 9);
    gpu->online_transform(*t, xb.data(), 9);
    EXPECT_LT(rel_err(x, down(*gpu, xb)), 1e-5) << t->describe();
  }
}

TEST(CudaBackend, LinearsEqualTheReference) {
  SKIP_WITHOUT_GPU();
  const BackendPtr sim = make_backend("cuda", "sim"), real = make_backend("cuda", "real");
  const Backend& cpu = cpu_reference_backend();
  const int d_out = 72, d_in = 256, n = 21;
  const std::vector<float> W = randn(size_t(d_out) * d_in, 12, 0.05f);
  const std::vector<float> x = randn(size_t(n) * d_in, 13);
  Linear fp;
  fp.d_out = d_out;
  fp.d_in = d_in;
  fp.w = W;
  Linear q = fp;
  q.w.clear();
  q.packed = quantize_rtn(W.data(), d_out, d_in, WeightQuantSpec{});
  q.act.bits = 4;
  q.act.clip = 0.9f;
  q.lr.rank = 5;
  q.lr.u = randn(size_t(d_out) * 5, 14, 0.05f);
  q.lr.v = randn(size_t(d_in) * 5, 15, 0.05f);
  Linear grouped = q;  // activation groups: the W4A4 kernels cannot, real falls back to sim
  grouped.act.groupsize = 64;
  for (const Linear* L : {&fp, &q, &grouped}) {
    std::vector<float> ref(size_t(n) * d_out);
    cpu.linear(*L, x.data(), n, ref.data());
    for (const BackendPtr& be : {sim, real}) {
      Buffer<float> xb = up(*be, x), yb(*be, ref.size());
      be->linear(*L, xb.data(), n, yb.data());
      // sim: same codes, fp32 sums in another order. real: fp16 x (a few codes move by one
      // step), fp16 weights for the FP linear, fp16 low-rank branch.
      const double tol = be == sim ? 1e-5 : 2e-2;
      EXPECT_LT(rel_err(ref, down(*be, yb)), tol)
          << be->name() << " rank " << L->lr.rank << " groups " << L->act.groupsize;
    }
  }
  // Decode shapes take the GEMV path.
  for (int rows : {1, 3, 16}) {
    std::vector<float> ref(size_t(rows) * d_out);
    cpu.linear(q, x.data(), rows, ref.data());
    Buffer<float> xb = up(*real, std::vector<float>(x.begin(), x.begin() + size_t(rows) * d_in));
    Buffer<float> yb(*real, ref.size());
    real->linear(q, xb.data(), rows, yb.data());
    EXPECT_LT(rel_err(ref, down(*real, yb)), 2e-2) << rows << " rows";
  }
}

// The whole forward of quantized models (RTN; LRC 10% with a 16- and a 4-bit KV cache; QuaRot
// online transforms): logits, NLL, decode = prefill, token trees, the hook's inputs.
TEST(CudaBackend, QuantizedModelForwardMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  for (auto [method, rank, kv] :
       {std::tuple{QuantMethod::RTN, 0.0, 16}, std::tuple{QuantMethod::LRC, 0.1, 16},
        std::tuple{QuantMethod::LRC, 0.1, 4}}) {
    LlamaModel m = quantized_model(method, rank, kv);
    const CalibrationSet probe = test::random_calibration(61, 3, 24, 9);
    m.backend = make_backend("cpu", "sim");
    const std::vector<float> ref = forward_logits(m, probe.tokens.data(), 3, 24);
    int64_t count = 0;
    const double nll_ref = sequences_nll(m, probe.tokens.data(), 3, 24, &count);
    for (const std::string variant : {"sim", "real", "real-split"}) {
      const char* kernels = variant == "sim" ? "sim" : "real";
      // W4A4 is chaotic: a last-bit change moves an activation code by one step, which moves
      // later layers by far more than the change (docs/results.md, "Backend seam"). sim: the
      // CPU integer kernels' test bound (1e-3 of the largest logit). real: Q_a reads the fp32 x
      // and the integer sums are exact (H100: 2.4e-4 without a low-rank branch), but the
      // branch's t = x·V is an fp16 tensor-core product: ~5e-4 of that term, enough to flip
      // codes, and the flips reach the logits (H100: 0.10 at rank 10%, both KV widths, while
      // the NLL moves 4e-4..7e-4).
      // real-split: the prefill's low-rank branch in near-fp32 (LRC_CUDA_LOWRANK=split), so
      // the rank-0 bound again.
      const bool sim = variant == "sim", split = variant == "real-split";
      if (split) setenv("LRC_CUDA_LOWRANK", "split", 1);
      m.backend = make_backend("cuda", kernels);
      unsetenv("LRC_CUDA_LOWRANK");
      const std::vector<float> got = forward_logits(m, probe.tokens.data(), 3, 24);
      const double e_logits = rel_err(ref, got);
      EXPECT_LT(e_logits, sim                  ? 1e-3
                          : rank > 0 && !split ? 0.25
                                               : 3e-2)
          << variant << " rank " << rank;
      const double nll = sequences_nll(m, probe.tokens.data(), 3, 24, &count);
      const double e_nll = std::fabs(nll - nll_ref) / nll_ref;
      EXPECT_LT(e_nll, sim ? 1e-3 : 1e-2) << variant;

      // Decode one token at a time through the device KV cache = the prefill's rows.
      Decoder dec(m, 24);
      const int32_t* t0 = probe.tokens.data();
      std::vector<float> all(size_t(24) * 61);
      dec.forward(t0, 10, all.data());
      for (int i = 10; i < 24; ++i) {
        const std::vector<float>& last = dec.step(t0[i]);
        std::copy(last.begin(), last.end(), all.begin() + size_t(i) * 61);
      }
      const std::vector<float> pre(got.begin(), got.begin() + all.size());
      const double e_decode = rel_err(pre, all);
      // (split: decode runs the GEMV path, whose branch stays fp16, so it meets the chaos of
      // the fp16 branch against the near-fp32 prefill.)
      EXPECT_LT(e_decode, sim ? 1e-3 : split && rank > 0 ? 0.25 : 3e-2) << variant;
      std::printf("%s rank %.1f kv %d: logits %.2e, nll %.2e, decode vs prefill %.2e\n",
                  variant.c_str(), rank, kv, e_logits, e_nll, e_decode);
    }
  }
}

TEST(CudaBackend, TreesAndHooksSeeTheCpuValues) {
  SKIP_WITHOUT_GPU();
  LlamaModel m = quantized_model(QuantMethod::RTN, 0.0);
  const CalibrationSet probe = test::random_calibration(61, 1, 20, 4);
  const std::vector<TokenTree> trees = {{8, {5, 3}}, {4, {}}};
  m.backend = make_backend("cpu", "sim");
  const std::vector<float> ref = tree_hidden_states(m, probe.tokens.data(), trees);
  m.backend = make_backend("cuda", "sim");
  EXPECT_LT(rel_err(ref, tree_hidden_states(m, probe.tokens.data(), trees)), 1e-4);

  struct Capture : LinearInputHook {
    std::vector<std::vector<float>> xs;
    void on_input(int, LinearGroup, const float* x, int64_t n, int d) override {
      xs.emplace_back(x, x + n * d);
    }
  };
  std::vector<float> h_cpu(size_t(20) * 64), h_gpu(h_cpu.size());
  m.backend = make_backend("cpu", "sim");
  embed_tokens(m, probe.tokens.data(), 20, h_cpu.data());
  Capture c_cpu, c_gpu;
  layer_forward(m, 0, h_cpu.data(), 1, 20, &c_cpu);
  m.backend = make_backend("cuda", "sim");
  embed_tokens(m, probe.tokens.data(), 20, h_gpu.data());
  layer_forward(m, 0, h_gpu.data(), 1, 20, &c_gpu);
  ASSERT_EQ(c_cpu.xs.size(), 4u);
  ASSERT_EQ(c_gpu.xs.size(), 4u);
  for (size_t i = 0; i < 4; ++i)
    EXPECT_LT(rel_err(c_cpu.xs[i], c_gpu.xs[i]), 1e-4) << "group " << i;
  EXPECT_LT(rel_err(h_cpu, h_gpu), 1e-4);
}

// Real layers from the pipeline: the W4A4 kernels' integer accumulators equal the int64 sum
// of the weight codes times the CPU quantizer's activation codes, on the layer's real inputs.
TEST(CudaBackend, RealLayerAccumulatorsAreExact) {
  SKIP_WITHOUT_GPU();
  LlamaModel m = quantized_model(QuantMethod::LRC, 0.1);
  const CalibrationSet probe = test::random_calibration(61, 1, 20, 4);
  std::vector<float> h(size_t(20) * 64);
  embed_tokens(m, probe.tokens.data(), 20, h.data());
  struct Capture : LinearInputHook {
    std::vector<std::vector<float>> xs;
    void on_input(int, LinearGroup, const float* x, int64_t n, int d) override {
      xs.emplace_back(x, x + n * d);
    }
  } cap;
  layer_forward(m, 0, h.data(), 1, 20, &cap);
  const LlamaLayer& L = m.layers[0];
  const std::vector<std::pair<const Linear*, int>> lins = {
      {&L.wq, 0}, {&L.wo, 1}, {&L.w_up, 2}, {&L.w_down, 3}};
  for (auto [lin, group] : lins) {
    const std::vector<float>& x = cap.xs[size_t(group)];
    const int k = lin->d_in, n = lin->d_out, rows = 20;
    // The device quantizes fp16(x): give both sides the same fp16-rounded input.
    std::vector<uint16_t> x16(x.size());
    std::vector<float> xr(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      x16[i] = f32_to_f16(x[i]);
      xr[i] = f16_to_f32(x16[i]);
    }
    for (int path : {0, 1}) {  // GEMM (FP8 tensor cores), GEMV (int4 mma)
      cuda::W4A4Linear dev(cuda::w4a4_layout_from_linear(*lin, "layer 0"));
      const int m_rows = path == 0 ? rows : 16;
      uint16_t* xd = nullptr;
      float* acc = nullptr;
      ASSERT_EQ(cudaMalloc(&xd, x16.size() * 2), cudaSuccess);
      ASSERT_EQ(cudaMalloc(&acc, size_t(m_rows) * n * 4), cudaSuccess);
      ASSERT_EQ(cudaMemcpy(xd, x16.data(), x16.size() * 2, cudaMemcpyHostToDevice), cudaSuccess);
      cuda::ForwardOptions opt;
      opt.path = path == 0 ? cuda::ForwardOptions::Path::kGemm : cuda::ForwardOptions::Path::kGemv;
      opt.raw_accumulators = acc;
      dev.forward(xd, m_rows, nullptr, (n + 7) / 8 * 8, nullptr, opt);
      std::vector<float> got(size_t(m_rows) * n);
      ASSERT_EQ(cudaMemcpy(got.data(), acc, got.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
      cudaFree(xd);
      cudaFree(acc);
      std::vector<int8_t> codes(k);
      std::vector<float> scales(1);
      for (int r = 0; r < m_rows; ++r) {
        quantize_activation_row(xr.data() + size_t(r) * k, k, lin->act, codes.data(),
                                scales.data());
        for (int o = 0; o < n; ++o) {
          int64_t sum = 0;
          for (int j = 0; j < k; ++j) sum += int64_t(lin->packed->code(o, j) - 8) * codes[j];
          ASSERT_EQ(got[size_t(r) * n + o], float(sum)) << "path " << path << " row " << r;
        }
      }
    }
  }
}

// The default model (../shared), FP: the GPU forward (sim: fp32 throughout) gives the CPU's
// NLL to 1e-5 relative.
TEST(CudaBackend, DefaultModelNllMatches) {
  SKIP_WITHOUT_GPU();
  if (!std::filesystem::exists(test::default_model_dir())) GTEST_SKIP() << "no default model";
  LoadedModel lm = load_model(test::default_model_dir(), "");
  std::vector<int32_t> tokens(2 * 129);
  std::mt19937 rng(3);
  for (auto& t : tokens) t = int32_t(rng() % 32000);
  int64_t count = 0;
  const double ref = sequences_nll(lm.model, tokens.data(), 2, 129, &count);
  lm.model.backend = make_backend("cuda", "sim");
  const double got = sequences_nll(lm.model, tokens.data(), 2, 129, &count);
  EXPECT_NEAR(got, ref, 1e-5 * ref);
}
