// Byte-level BPE throughput (MB/s of UTF-8 input) on wikitext2-test.txt with SmolLM2's
// vocabulary from the GGUF (scripts/fetch-models.sh):
//   EncodeWholeFile/cold  a fresh tokenizer (empty piece cache) per iteration
//   EncodeWholeFile/warm  one tokenizer, every piece cached after the first pass
//   EncodeLines           the eval protocol: each line + "\n" encoded separately (warm)
//   Decode                ids back to bytes
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "lrc/io/bpe_tokenizer.h"
#include "lrc/io/gguf.h"
#include "lrc/io/gguf_loader.h"

namespace {

std::string gguf_path() {
  const char* c = std::getenv("LRC_CACHE");
  const char* home = std::getenv("HOME");
  const std::string cache = c && *c ? c : std::string(home ? home : "/root") + "/.cache/lrc";
  return cache + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

const std::string& text() {
  static const std::string t = [] {
    const char* s = std::getenv("LRC_SHARED");
    const std::string shared = s && *s ? s : std::string(LRC_SOURCE_DIR) + "/../shared";
    std::ifstream f(shared + "/data/wikitext2-test.txt", std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }();
  return t;
}

const lrc::BpeVocab& vocab() {
  static const lrc::BpeVocab v = lrc::load_gguf_bpe_vocab(lrc::gguf::GgufFile(gguf_path()));
  return v;
}

void EncodeWholeFile(benchmark::State& state) {
  const bool warm = state.range(0) != 0;
  auto tok = std::make_unique<lrc::BpeTokenizer>(vocab(), "smollm2");
  if (warm) benchmark::DoNotOptimize(tok->encode(text()));
  size_t n_tokens = 0;
  for (auto _ : state) {
    if (!warm) {
      state.PauseTiming();
      tok = std::make_unique<lrc::BpeTokenizer>(vocab(), "smollm2");
      state.ResumeTiming();
    }
    const auto ids = tok->encode(text());
    n_tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text().size()));
  state.counters["tokens"] = static_cast<double>(n_tokens);
  state.SetLabel(warm ? "warm" : "cold");
}
BENCHMARK(EncodeWholeFile)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

void EncodeLines(benchmark::State& state) {
  lrc::BpeTokenizer tok(vocab(), "smollm2");
  std::vector<std::string> lines;
  for (size_t s = 0, e; s < text().size(); s = e + 1) {
    e = text().find('\n', s);
    if (e == std::string::npos) e = text().size();
    lines.push_back(text().substr(s, e - s) + "\n");
  }
  for (auto _ : state)
    for (const auto& l : lines) benchmark::DoNotOptimize(tok.encode(l).data());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text().size()));
}
BENCHMARK(EncodeLines)->Unit(benchmark::kMillisecond);

void Decode(benchmark::State& state) {
  lrc::BpeTokenizer tok(vocab(), "smollm2");
  const auto ids = tok.encode(text());
  for (auto _ : state) {
    std::string out;
    out.reserve(text().size());
    for (int id : ids) out += tok.decode(-1, id);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text().size()));
}
BENCHMARK(Decode)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
