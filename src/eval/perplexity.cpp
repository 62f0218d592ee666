// Perplexity: chunks of seq+1 tokens, several chunks a prefill (sequences_nll), NLL summed
// in float64.
#include "lrc/eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "lrc/core/error.h"
#include "lrc/model/forward.h"

namespace lrc {

PplResult perplexity(const LlamaModel& m, const std::vector<int32_t>& tokens, int seq,
                     int max_chunks, int batch, bool progress) {
  if (seq < 1) fail("perplexity", "--seq must be >= 1, got " + std::to_string(seq));
  if (max_chunks < 0)
    fail("perplexity", "--max-chunks must be >= 0 (0 = all), got " + std::to_string(max_chunks));
  if (m.cfg.max_seq_len > 0 && seq > m.cfg.max_seq_len)
    fail("perplexity", "--seq " + std::to_string(seq) + " exceeds the model's context length " +
                           std::to_string(m.cfg.max_seq_len));
  const int64_t chunk = static_cast<int64_t>(seq) + 1;
  int64_t n_chunks = static_cast<int64_t>(tokens.size()) / chunk;
  if (n_chunks == 0)
    fail("perplexity", "the corpus has " + std::to_string(tokens.size()) +
                           " tokens, fewer than one chunk of seq+1 = " + std::to_string(chunk));
  if (max_chunks > 0) n_chunks = std::min<int64_t>(n_chunks, max_chunks);
  // About 2048 token rows a prefill keeps sgemm efficient and the activations small.
  if (batch <= 0) batch = static_cast<int>(std::clamp<int64_t>(2048 / seq, 1, 16));

  PplResult r;
  r.seq = seq;
  r.chunks = static_cast<int>(n_chunks);
  const auto t0 = std::chrono::steady_clock::now();
  double total = 0.0;
  for (int64_t c0 = 0; c0 < n_chunks; c0 += batch) {
    const int nb = static_cast<int>(std::min<int64_t>(batch, n_chunks - c0));
    int64_t count = 0;
    // Chunks are consecutive in `tokens`, so nb of them form an [nb x (seq+1)] block.
    total += sequences_nll(m, tokens.data() + c0 * chunk, nb, static_cast<int>(chunk), &count);
    r.tokens += count;
    if (progress) {
      const double el =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const int64_t done = c0 + nb;
      std::fprintf(stderr, "ppl: chunk %lld/%lld  running ppl %.4f  %.1fs elapsed, ETA %.1fs\n",
                   static_cast<long long>(done), static_cast<long long>(n_chunks),
                   std::exp(total / r.tokens), el, el / done * (n_chunks - done));
    }
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.nll = total / r.tokens;
  r.ppl = std::exp(r.nll);
  return r;
}

}  // namespace lrc
