// Perplexity over consecutive non-overlapping chunks of a token stream:
//   cut tokens into chunks of seq+1 (the remainder is dropped), keep the first max_chunks
//   (0 = all); in each chunk predict tokens 1..seq from the ones before them;
//   nll = mean over all predicted tokens of -log p,  ppl = exp(nll).
#pragma once

#include <cstdint>
#include <vector>

#include "lrc/io/corpus.h"
#include "lrc/model/llama.h"

namespace lrc {

struct PplResult {
  double ppl = 0;      // exp(nll)
  double nll = 0;      // mean negative log-likelihood per predicted token (nats)
  int64_t tokens = 0;  // predicted tokens = chunks * seq
  int chunks = 0;
  int seq = 0;
  double seconds = 0;  // wall time of the model evaluation
};

// batch = chunks per prefill (0 = automatic); progress lines (chunk i/N, ETA) go to stderr.
PplResult perplexity(const LlamaModel& m, const std::vector<int32_t>& tokens, int seq,
                     int max_chunks, int batch = 0, bool progress = true);

}  // namespace lrc
