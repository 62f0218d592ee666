// Log-likelihood of continuations given a context, the primitive under every zero-shot task
// (lm-evaluation-harness's `loglikelihood` request), with the context computed once and
// shared by all its continuations through the Decoder's KV cache.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lrc/io/tokenizer.h"
#include "lrc/model/forward.h"
#include "lrc/model/llama.h"

namespace lrc {

// One lm-eval loglikelihood request as tokens.
struct EncodedRequest {
  std::vector<int32_t> context;       // never empty (BOS, or the EOS prefix for "")
  std::vector<int32_t> continuation;  // the tokens that are scored
};

// lm-eval's encoding rule (HFLM._encode_pair), so token boundaries match the harness:
//   1. trailing whitespace of the context moves to the front of the continuation
//      ("Paris " + "is" -> "Paris" + " is"),
//   2. whole = encode(context + continuation), ctx = encode(context),
//      continuation tokens = whole[len(ctx):]  (not encode(continuation): a word-initial
//      piece then gets the same merge it gets in running text),
//   3. BOS goes first when tokenizer.add_bos() (lm-eval's add_bos_token); an empty context
//      without BOS becomes [EOS], lm-eval's prefix token.
// If merges across the boundary leave `whole` no longer than ctx (never seen with real
// tokenizers), encode(continuation) is used so the request is still scored.
EncodedRequest encode_request(const Tokenizer& tok, const std::string& context,
                              const std::string& continuation);

struct ContinuationScore {
  double logprob = 0.0;  // sum of log p(token | all before it) over the continuation
  int n_tokens = 0;
  bool greedy = true;  // argmax at every continuation position was the continuation token
};

// Forward token-work (token positions pushed through the model).
struct ForwardWork {
  int64_t shared = 0;    // what the scorer did: each context once, then each continuation
  int64_t separate = 0;  // one full (context + continuation) pass per request, as lm-eval does
  double saved_share() const {
    return separate > 0 ? 1.0 - static_cast<double>(shared) / static_cast<double>(separate) : 0.0;
  }
  ForwardWork& operator+=(const ForwardWork& o) {
    shared += o.shared;
    separate += o.separate;
    return *this;
  }
};

// One context and the continuations to score after it.
struct ScoreRequest {
  std::vector<int32_t> context;
  std::vector<std::vector<int32_t>> continuations;
};

class ContinuationScorer {
 public:
  // max_len: the model's context window (default cfg.max_seq_len). share_context = false
  // forwards each (context + continuation) from scratch (the lm-eval way; for benchmarks).
  ContinuationScorer(const LlamaModel& m, const Tokenizer& tok, int max_len = -1,
                     bool share_context = true);

  // Scores every continuation after the same context tokens: the context is forwarded once,
  // with each continuation's tokens but the last after it as a branch of a token tree
  // (tree_hidden_states). The logits row of the last context token predicts the first
  // continuation token; so a one-token continuation costs no forward at all.
  //
  // Left truncation, as lm-eval: when context + continuation is longer than max_len + 1, the
  // model sees the last max_len + 1 tokens minus the last one (which is only a target), i.e.
  // the context loses tokens from its left (BOS included). Continuations of different
  // lengths may lose different amounts; each distinct amount gets its own context pass.
  std::vector<ContinuationScore> score(const std::vector<int32_t>& context,
                                       const std::vector<std::vector<int32_t>>& continuations);

  // score() of many requests at once (scores[request][continuation]): their token trees go
  // through the model together, so the weights are streamed once for many examples. The
  // same results as one score() per request, up to float rounding.
  std::vector<std::vector<ContinuationScore>> score_batch(
      const std::vector<ScoreRequest>& requests);

  // encode_request(context, continuation) for each continuation, as one request.
  ScoreRequest encode(const std::string& context,
                      const std::vector<std::string>& continuations) const;

  // Text form: encode(), then score().
  std::vector<ContinuationScore> score_text(const std::string& context,
                                            const std::vector<std::string>& continuations);

  const ForwardWork& work() const { return work_; }
  int max_len() const { return max_len_; }
  const Tokenizer& tokenizer() const { return tok_; }

 private:
  Decoder& decoder_for(int n_positions);  // grows the KV cache on demand, up to max_len

  static constexpr int kMaxBatchRows = 2048;  // token rows of one pass (a bigger tree goes alone)
  static constexpr int kLogitRows = 256;      // logits rows computed at a time

  const LlamaModel& m_;
  const Tokenizer& tok_;
  int max_len_;
  bool share_context_;
  std::optional<Decoder> dec_;
  int dec_capacity_ = 0;
  ForwardWork work_;
  std::vector<float> rows_;  // logits of continuation positions [n x vocab]
};

}  // namespace lrc
