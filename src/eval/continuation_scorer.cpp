// Continuation log-likelihoods with a shared context (see include/lrc/eval/continuation_scorer.h).
//
// For a context c[0..L) and a continuation x[0..m), lm-eval runs the model once on
// c[0..L) + x[0..m-1) and reads log p(x[j]) from the logits row of the token before x[j].
// The first L rows only depend on the context, so here they are computed once per context:
//
//   the token tree  c[0..L) | x_1[0..m_1-1) | x_2[0..m_2-1) | ...   (tree_hidden_states)
//   -> row of c[L-1] predicts x[0] of every x; each x's rows predict its x[1..m)
//
// where every x_i attends the context and itself only, so L + sum(m-1) token positions are
// forwarded instead of sum(L + m - 1). Trees of many examples go through the model in one
// pass: one GEMM per linear over all their rows. Fed one by one, each context and each
// continuation (a one-word cloze choice: one or two rows) would pay for streaming and packing
// every weight matrix again, which costs more than its arithmetic at a few rows.
#include "lrc/eval/continuation_scorer.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
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
  return score_batch({ScoreRequest{context, continuations}})[0];
}

std::vector<std::vector<ContinuationScore>> ContinuationScorer::score_batch(
    const std::vector<ScoreRequest>& requests) {
  const int vocab = m_.cfg.vocab_size;
  // One item per (request, number of context tokens left truncation drops): lm-eval feeds
  // (context + continuation)[-(max_len+1):][:-1], so continuations of different lengths may
  // see different context windows.
  struct Item {
    size_t req;
    int drop, kept;
    std::vector<size_t> members;
  };
  std::vector<Item> items;
  std::vector<std::vector<ContinuationScore>> out(requests.size());
  for (size_t r = 0; r < requests.size(); ++r) {
    const std::vector<int32_t>& context = requests[r].context;
    const std::vector<std::vector<int32_t>>& continuations = requests[r].continuations;
    const int L = static_cast<int>(context.size());
    if (L == 0) fail("zero-shot scorer", "empty context (encode_request adds BOS or EOS)");
    for (int32_t t : context)
      if (t < 0 || t >= vocab)
        fail("zero-shot scorer", "context token " + std::to_string(t) + " outside the vocabulary");
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
    out[r].resize(continuations.size());
    for (auto& [drop, members] : by_drop) items.push_back({r, drop, L - drop, std::move(members)});
  }
  auto cont = [&](const Item& it, size_t c) -> const std::vector<int32_t>& {
    return requests[it.req].continuations[c];
  };

  if (!share_context_) {  // the lm-eval way: context + continuation, every time
    for (const Item& it : items) {
      const int32_t* ctx = requests[it.req].context.data() + it.drop;
      for (size_t c : it.members) {
        const std::vector<int32_t>& x = cont(it, c);
        const int m = static_cast<int>(x.size());
        Decoder& dec = decoder_for(it.kept + m - 1);
        dec.truncate(0);
        const std::vector<float>& last = dec.forward(ctx, it.kept);
        work_.shared += it.kept;
        ContinuationScore& s = out[it.req][c];
        add_prediction(s, last.data(), row_stats(last.data(), vocab), x[0]);
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

  // Shared context: each item is a token tree (its context, then every continuation but its
  // last token); trees go through the model together, up to kMaxBatchRows rows a pass.
  std::vector<int32_t> tokens;
  std::vector<TokenTree> trees;
  // A logits row that is needed: its row in the pass, the item, the continuation (kContext:
  // the context's last row, which predicts the first token of every member) and the index of
  // the token it predicts.
  constexpr size_t kContext = SIZE_MAX;
  struct Need {
    int64_t row;
    size_t item, c;
    size_t j;
  };
  std::vector<Need> needs;
  std::vector<float> hb, logits;
  const int dim = m_.cfg.dim;
  size_t next = 0;
  while (next < items.size()) {
    tokens.clear();
    trees.clear();
    needs.clear();
    for (; next < items.size(); ++next) {
      const Item& it = items[next];
      int64_t rows = it.kept;
      for (size_t c : it.members) rows += static_cast<int64_t>(cont(it, c).size()) - 1;
      if (!trees.empty() && static_cast<int64_t>(tokens.size()) + rows > kMaxBatchRows) break;
      const std::vector<int32_t>& context = requests[it.req].context;
      TokenTree t;
      t.context = it.kept;
      tokens.insert(tokens.end(), context.begin() + it.drop, context.end());
      needs.push_back({static_cast<int64_t>(tokens.size()) - 1, next, kContext, 0});
      for (size_t c : it.members) {
        const std::vector<int32_t>& x = cont(it, c);
        if (x.size() < 2) continue;
        t.branches.push_back(static_cast<int>(x.size()) - 1);
        for (size_t j = 1; j < x.size(); ++j)
          needs.push_back({static_cast<int64_t>(tokens.size() + j - 1), next, c, j});
        tokens.insert(tokens.end(), x.begin(), x.end() - 1);
      }
      trees.push_back(std::move(t));
    }
    const std::vector<float> h = tree_hidden_states(m_, tokens.data(), trees);
    work_.shared += static_cast<int64_t>(tokens.size());

    // Logits of the needed rows, a block at a time.
    for (size_t n0 = 0; n0 < needs.size(); n0 += kLogitRows) {
      const size_t nb = std::min<size_t>(kLogitRows, needs.size() - n0);
      hb.resize(nb * dim);
      logits.resize(nb * vocab);
      for (size_t i = 0; i < nb; ++i)
        std::copy_n(h.data() + needs[n0 + i].row * dim, dim, hb.data() + i * dim);
      output_logits(m_, hb.data(), static_cast<int64_t>(nb), logits.data());
      for (size_t i = 0; i < nb; ++i) {
        const Need& nd = needs[n0 + i];
        const Item& it = items[nd.item];
        const float* row = logits.data() + i * vocab;
        const RowStats st = row_stats(row, vocab);
        if (nd.c == kContext) {
          for (size_t c : it.members) add_prediction(out[it.req][c], row, st, cont(it, c)[0]);
        } else {
          add_prediction(out[it.req][nd.c], row, st, cont(it, nd.c)[nd.j]);
        }
      }
    }
  }
  return out;
}

ScoreRequest ContinuationScorer::encode(const std::string& context,
                                        const std::vector<std::string>& continuations) const {
  ScoreRequest req;
  for (size_t c = 0; c < continuations.size(); ++c) {
    EncodedRequest r = encode_request(tok_, context, continuations[c]);
    // The context encoding does not depend on the continuation, so all requests share it.
    if (c == 0) req.context = std::move(r.context);
    req.continuations.push_back(std::move(r.continuation));
  }
  return req;
}

std::vector<ContinuationScore> ContinuationScorer::score_text(
    const std::string& context, const std::vector<std::string>& continuations) {
  return score_batch({encode(context, continuations)})[0];
}

}  // namespace lrc
