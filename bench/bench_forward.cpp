// Prefill throughput of the FP32 forward pass against OpenBLAS sgemm on the same machine.
//
//   BM_Prefill/<n_seq>  forward_logits on n_seq sequences of 512 tokens of the 22M model
//                       (real weights from ../shared if present, else random of that shape)
//   BM_PrefillSmolLM2   one sequence of 2048 tokens of SmolLM2-135M (the GGUF of
//                       scripts/fetch-models.sh; skipped when it is absent)
//   BM_Sgemm/<M>/<N>/<K> C[M x N] = A[M x K] · B[N x K]ᵀ, the layout Linear::forward uses
//
// FLOPs counted: 2 · (linear params incl. lm_head) · tokens for the projections, plus the
// causal attention products QKᵀ and PV: 2 · 2 · dim · T(T+1)/2 a layer and sequence. After the
// run, the ratio of prefill GFLOP/s to sgemm GFLOP/s is printed.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "lrc/io/model_loader.h"
#include "lrc/kernels/attention.h"
#include "lrc/model/forward.h"

namespace {

constexpr int kSeq = 512;
std::map<std::string, double> g_gflops;  // benchmark name -> achieved GFLOP/s

std::string model_dir() {
  if (const char* s = std::getenv("LRC_SHARED"); s && *s)
    return std::string(s) + "/models/llama-22m-debtext";
  return LRC_SOURCE_DIR "/../shared/models/llama-22m-debtext";
}

// Same shape as llama-22m-debtext (tied embeddings), weights ~ N(0, 1/d_in).
lrc::LlamaModel random_22m() {
  lrc::LlamaModel m;
  auto& c = m.cfg;
  c.dim = 384, c.hidden_dim = 1024, c.n_layers = 6, c.n_heads = 6, c.n_kv_heads = 2;
  c.vocab_size = 32000, c.max_seq_len = 512, c.tied_embeddings = true;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  auto fill = [&](std::vector<float>& v, size_t n, float sd) {
    v.resize(n);
    for (auto& x : v) x = sd * nd(rng);
  };
  auto lin = [&](lrc::Linear& l, int d_out, int d_in) {
    l.d_out = d_out, l.d_in = d_in;
    fill(l.w, size_t(d_out) * d_in, 1.f / std::sqrt(float(d_in)));
  };
  fill(m.tok_embeddings, size_t(c.vocab_size) * c.dim, 1.f);
  m.final_norm.assign(c.dim, 1.f);
  m.layers.resize(c.n_layers);
  for (auto& L : m.layers) {
    L.attn_norm.assign(c.dim, 1.f), L.ffn_norm.assign(c.dim, 1.f);
    lin(L.wq, c.dim, c.dim), lin(L.wk, 128, c.dim), lin(L.wv, 128, c.dim), lin(L.wo, c.dim, c.dim);
    lin(L.w_gate, c.hidden_dim, c.dim), lin(L.w_up, c.hidden_dim, c.dim);
    lin(L.w_down, c.dim, c.hidden_dim);
  }
  m.lm_head.d_out = c.vocab_size, m.lm_head.d_in = c.dim, m.lm_head.w = m.tok_embeddings;
  return m;
}

std::string smollm2_path() {
  const char* c = std::getenv("LRC_CACHE");
  const char* home = std::getenv("HOME");
  return (c && *c ? std::string(c) : std::string(home ? home : "/root") + "/.cache/lrc") +
         "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

const lrc::LlamaModel& model() {
  static const lrc::LlamaModel m = [] {
    const std::string dir = model_dir();
    if (std::filesystem::exists(dir + "/config.json")) {
      std::fprintf(stderr, "bench_forward: real weights from %s\n", dir.c_str());
      return lrc::load_model(dir, "", false).model;
    }
    std::fprintf(stderr, "bench_forward: %s absent, random model of the same shape\n", dir.c_str());
    return random_22m();
  }();
  return m;
}

double prefill_flops(const lrc::LlamaModel& m, int n_seq, int T) {
  auto lin = [](const lrc::Linear& l) { return double(l.d_out) * l.d_in; };
  double params = lin(m.lm_head);
  for (const auto& L : m.layers)
    params +=
        lin(L.wq) + lin(L.wk) + lin(L.wv) + lin(L.wo) + lin(L.w_gate) + lin(L.w_up) + lin(L.w_down);
  const double tokens = double(n_seq) * T;
  const double attn = 2.0 * 2.0 * m.cfg.dim * (double(T) * (T + 1) / 2) * m.cfg.n_layers * n_seq;
  return 2.0 * params * tokens + attn;
}

// forward_logits (embed, layers, lm_head) over n_seq random sequences of `seq` tokens.
void run_prefill(benchmark::State& state, const lrc::LlamaModel& m, int n_seq, int T,
                 const std::string& name) {
  std::mt19937 rng(1);
  std::vector<int32_t> toks(static_cast<size_t>(n_seq) * T);
  for (auto& t : toks) t = static_cast<int32_t>(rng() % m.cfg.vocab_size);
  const double flops = prefill_flops(m, n_seq, T);
  const int64_t N = int64_t(n_seq) * T;
  std::vector<float> h(N * m.cfg.dim), logits(N * m.cfg.vocab_size);
  double secs = 0;
  for (auto _ : state) {  // forward_logits, minus allocating the logits afresh each time
    const auto t0 = std::chrono::steady_clock::now();
    lrc::embed_tokens(m, toks.data(), N, h.data());
    for (int l = 0; l < m.cfg.n_layers; ++l) lrc::layer_forward(m, l, h.data(), n_seq, T);
    lrc::output_logits(m, h.data(), N, logits.data());
    benchmark::DoNotOptimize(logits.data());
    secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const double it = double(state.iterations());
  state.counters["tokens/s"] = double(N) * it / secs;
  state.counters["GFLOP/s"] = flops * it / secs / 1e9;
  g_gflops[name] = flops * it / secs / 1e9;
}

void BM_Prefill(benchmark::State& state) {
  const int n_seq = static_cast<int>(state.range(0));
  run_prefill(state, model(), n_seq, kSeq, "prefill/" + std::to_string(n_seq));
}
BENCHMARK(BM_Prefill)->Arg(1)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_PrefillSmolLM2(benchmark::State& state) {
  static const bool present = std::filesystem::exists(smollm2_path());
  if (!present) {
    state.SkipWithError(("absent: " + smollm2_path()).c_str());
    return;
  }
  static const lrc::LlamaModel m = lrc::load_model(smollm2_path(), "", false).model;
  run_prefill(state, m, 1, 2048, "smollm2-prefill/2048");
}
BENCHMARK(BM_PrefillSmolLM2)->Unit(benchmark::kMillisecond)->UseRealTime();

// What `lrc eval` runs: n_seq chunks of 513 tokens -> summed NLL of the last 512 (prefill,
// then lm_head + log-softmax a block of rows at a time).
void BM_PerplexityChunks(benchmark::State& state) {
  const auto& m = model();
  const int n_seq = static_cast<int>(state.range(0));
  std::mt19937 rng(2);
  std::vector<int32_t> toks(static_cast<size_t>(n_seq) * (kSeq + 1));
  for (auto& t : toks) t = static_cast<int32_t>(rng() % m.cfg.vocab_size);
  const double flops = prefill_flops(m, n_seq, kSeq);
  double secs = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    int64_t count = 0;
    benchmark::DoNotOptimize(lrc::sequences_nll(m, toks.data(), n_seq, kSeq + 1, &count));
    secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const double it = double(state.iterations());
  state.counters["tokens/s"] = n_seq * kSeq * it / secs;
  state.counters["GFLOP/s"] = flops * it / secs / 1e9;
  g_gflops["nll/" + std::to_string(n_seq)] = flops * it / secs / 1e9;
}
BENCHMARK(BM_PerplexityChunks)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();

// Causal attention alone (6 heads, 2 KV heads, hd 64) over n_seq x 512 tokens.
void BM_Attention(benchmark::State& state) {
  const int n_seq = static_cast<int>(state.range(0));
  const lrc::AttentionShape a{6, 2, 64};
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> q(size_t(n_seq) * kSeq * 384), k(size_t(n_seq) * kSeq * 128), v(k.size()),
      out(q.size());
  for (auto* x : {&q, &k, &v})
    for (auto& e : *x) e = nd(rng);
  double secs = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    lrc::causal_attention(q.data(), k.data(), v.data(), n_seq, kSeq, 0, kSeq * 128, a, out.data());
    benchmark::DoNotOptimize(out.data());
    secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const double flops = 2.0 * 2.0 * 384 * (double(kSeq) * (kSeq + 1) / 2) * n_seq;
  state.counters["GFLOP/s"] = flops * double(state.iterations()) / secs / 1e9;
}
BENCHMARK(BM_Attention)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Sgemm(benchmark::State& state) {
  const int M = static_cast<int>(state.range(0)), N = static_cast<int>(state.range(1)),
            K = static_cast<int>(state.range(2));
  std::vector<float> A(size_t(M) * K, 0.5f), B(size_t(N) * K, 0.25f), C(size_t(M) * N);
  double secs = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f, A.data(), K, B.data(), K,
                0.f, C.data(), N);
    benchmark::DoNotOptimize(C.data());
    secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const double flops = 2.0 * M * N * K * double(state.iterations());
  state.counters["GFLOP/s"] = flops / secs / 1e9;
  g_gflops["sgemm/" + std::to_string(M) + "/" + std::to_string(N) + "/" + std::to_string(K)] =
      flops / secs / 1e9;
}
// The FFN up/gate projection and the lm_head of the 22M model over 4 x 512 tokens, and
// SmolLM2's up/gate projection over 2048 tokens.
BENCHMARK(BM_Sgemm)
    ->Args({2048, 1024, 384})
    ->Args({2048, 32000, 384})
    ->Args({2048, 1536, 576})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  // Each model's forward against the sgemm of its own FFN shape.
  const struct {
    std::vector<std::string> prefixes;
    const char* ref;
  } refs[] = {{{"prefill/", "nll/"}, "sgemm/2048/1024/384"}, {{"smollm2-"}, "sgemm/2048/1536/576"}};
  for (const auto& r : refs) {
    if (!g_gflops.count(r.ref)) continue;
    const double ref = g_gflops[r.ref];
    std::printf("\n%s (reference): %.1f GFLOP/s\n", r.ref, ref);
    for (const auto& [name, gf] : g_gflops)
      for (const auto& p : r.prefixes)
        if (name.rfind(p, 0) == 0)
          std::printf("%-28s %.1f GFLOP/s = %.0f%% of sgemm\n", name.c_str(), gf, 100.0 * gf / ref);
  }
  return 0;
}
