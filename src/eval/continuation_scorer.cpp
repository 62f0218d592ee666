// Continuation log-likelihoods with a shared context (see include/lrc/eval/continuation_scorer.h).
//
// For a context c[0..L) and a continuation x[0..m), lm-eval runs the model once on
// c[0..L) + x[0..m-1) and reads log p(x[j]) from the logits row of the token before x[j].
// The first L rows only depend on the context, so here they are computed once per context:
//
//   decoder.forward(c, L)            -> row of c[L-1], predicts x[0]  (kept)
//   for each continuation x:
//     decoder.forward(x, m-1, rows)  -> rows predict x[1..m)
//     decoder.truncate(L)            -> back to the bare context for the next choice
//
// which costs L + sum(m-1) token positions instead of sum(L + m - 1).
#include "lrc/eval/continuation_scorer.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "lrc/core/error.h"

namespace lrc {

EncodedRequest encode_request(const Tokenizer& tok, const std::string& context,
                              const std::string& continuation) {
  // 1. Trailing whitespace of the context belongs to the continuation.
  size_t keep = context.size();
  while (keep > 0 && std::isspace(static_cast<unsigned char>(context[keep - 1]))) --keep;
  const std::string ctx_text = context.substr(0, keep);
  const std::string cont_text = context.substr(keep) + continuation;

  // 2. Continuation tokens = encode(whole)[len(encode(context)):].
  const std::vector<int> ctx_ids = ctx_text.empty() ? std::vector<int>{} : tok.encode(ctx_text);
  const std::vector<int> whole = tok.encode(ctx_text + cont_text);
  std::vector<int> cont_ids;
  if (whole.size() > ctx_ids.size())
    cont_ids.assign(whole.begin() + static_cast<std::ptrdiff_t>(ctx_ids.size()), whole.end());
  else
    cont_ids = tok.encode(cont_text);

  // 3. BOS first when the tokenizer wants it; otherwise "" -> [EOS] (lm-eval's prefix token).
  EncodedRequest r;
  if (tok.add_bos()) r.context.push_back(tok.bos_id());
  r.context.insert(r.context.end(), ctx_ids.begin(), ctx_ids.end());
  if (r.context.empty()) r.context.push_back(tok.eos_id());
  r.continuation.assign(cont_ids.begin(), cont_ids.end());
  return r;
}

namespace {

// log-softmax pieces of one logits row: log-sum-exp and argmax.
struct RowStats {
  double lse = 0.0;
  int argmax = 0;
};

RowStats row_stats(const float* x, int vocab) {
  RowStats s;
  float mx = x[0];
  for (int i = 1; i < vocab; ++i)
    if (x[i] > mx) mx = x[i], s.argmax = i;
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(x[i] - mx));
  s.lse = static_cast<double>(mx) + std::log(sum);
  return s;
}

// Adds the prediction of `token` by a logits row to the running score.
void add_prediction(ContinuationScore& s, const float* row, const RowStats& st, int32_t token) {
  s.logprob += static_cast<double>(row[token]) - st.lse;
  s.greedy = s.greedy && st.argmax == token;
  s.n_tokens += 1;
}

}  // namespace

ContinuationScorer::ContinuationScorer(const LlamaModel& m, const Tokenizer& tok, int max_len,
                                       bool share_context)
    : m_(m),
      tok_(tok),
      max_len_(max_len > 0 ? max_len : m.cfg.max_seq_len),
      share_context_(share_context) {
  if (max_len_ < 2) fail("zero-shot scorer", "model context length must be >= 2");
}

Decoder& ContinuationScorer::decoder_for(int n_positions) {
  if (!dec_ || n_positions > dec_capacity_) {
    // Grow by doubling (a few reallocations at most) instead of always holding a KV cache
    // for the full window: a model with an 8k window rarely needs more than a few hundred.
    int cap = std::max(dec_capacity_, 256);
    while (cap < n_positions) cap *= 2;
    cap = std::min(cap, max_len_);
    dec_.reset();
    dec_.emplace(m_, cap);
    dec_capacity_ = cap;
  }
  return *dec_;
}

std::vector<ContinuationScore> ContinuationScorer::score(
    const std::vector<int32_t>& context, const std::vector<std::vector<int32_t>>& continuations) {
  const int L = static_cast<int>(context.size());
  const int vocab = m_.cfg.vocab_size;
  if (L == 0) fail("zero-shot scorer", "empty context (encode_request adds BOS or EOS)");
  for (int32_t t : context)
    if (t < 0 || t >= vocab)
      fail("zero-shot scorer", "context token " + std::to_string(t) + " outside the vocabulary");

  // Group continuations by how many context tokens left truncation drops:
  // lm-eval feeds (context + continuation)[-(max_len+1):][:-1].
  std::map<int, std::vector<size_t>> by_drop;
  for (size_t c = 0; c < continuations.size(); ++c) {
    const int m = static_cast<int>(continuations[c].size());
    if (m == 0) fail("zero-shot scorer", "empty continuation");
    if (m > max_len_)
      fail("zero-shot scorer", "continuation of " + std::to_string(m) +
                                   " tokens is longer than the model context " +
                                   std::to_string(max_len_));
    for (int32_t t : continuations[c])
      if (t < 0 || t >= vocab)
        fail("zero-shot scorer",
             "continuation token " + std::to_string(t) + " outside the vocabulary");
    const int drop = std::max(0, L + m - 1 - max_len_);  // < L since m <= max_len
    by_drop[drop].push_back(c);
    work_.separate += (L - drop) + (m - 1);
  }

  std::vector<ContinuationScore> out(continuations.size());
  std::vector<float> ctx_row(vocab);
  for (const auto& [drop, members] : by_drop) {
    const int kept = L - drop;  // context tokens the model sees
    int longest = 0;
    for (size_t c : members) longest = std::max(longest, static_cast<int>(continuations[c].size()));
    Decoder& dec = decoder_for(kept + longest - 1);

    RowStats ctx_stats;
    auto run_context = [&] {
      dec.truncate(0);
      const std::vector<float>& last = dec.forward(context.data() + drop, kept);
      std::copy(last.begin(), last.begin() + vocab, ctx_row.begin());
      ctx_stats = row_stats(ctx_row.data(), vocab);
      work_.shared += kept;
    };
    if (share_context_) run_context();

    for (size_t c : members) {
      const std::vector<int32_t>& x = continuations[c];
      const int m = static_cast<int>(x.size());
      if (share_context_)
        dec.truncate(kept);
      else
        run_context();
      ContinuationScore& s = out[c];
      add_prediction(s, ctx_row.data(), ctx_stats, x[0]);
      if (m > 1) {
        rows_.resize(static_cast<size_t>(m - 1) * vocab);
        dec.forward(x.data(), m - 1, rows_.data());
        work_.shared += m - 1;
        for (int j = 1; j < m; ++j) {
          const float* row = rows_.data() + static_cast<size_t>(j - 1) * vocab;
          add_prediction(s, row, row_stats(row, vocab), x[j]);
        }
      }
    }
  }
  return out;
}

std::vector<ContinuationScore> ContinuationScorer::score_text(
    const std::string& context, const std::vector<std::string>& continuations) {
  std::vector<int32_t> ctx;
  std::vector<std::vector<int32_t>> conts;
  for (size_t c = 0; c < continuations.size(); ++c) {
    EncodedRequest r = encode_request(tok_, context, continuations[c]);
    // The context encoding does not depend on the continuation, so all requests share it.
    if (c == 0) ctx = std::move(r.context);
    conts.push_back(std::move(r.continuation));
  }
  return score(ctx, conts);
}

}  // namespace lrc
