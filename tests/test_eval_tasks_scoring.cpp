// Zero-shot scoring: the shared-context scorer against a brute-force lm-eval reference (one
// full forward_logits pass per request), batches of requests against one at a time (tiny and
// real model), lm-eval's encoding rule, left truncation, acc vs acc_norm, last-word greedy
// accuracy and target perplexity.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/eval/continuation_scorer.h"
#include "lrc/eval/task_generators.h"
#include "lrc/eval/text_corpus.h"
#include "lrc/eval/zero_shot.h"
#include "lrc/io/model_loader.h"
#include "lrc/model/forward.h"
#include "support/paths.h"
#include "support/random_model.h"

namespace {

// A tiny tokenizer: greedy longest match over a fixed piece list, with sentencepiece's dummy
// prefix (a space before the text), so encode(" sat") on its own differs from " sat" in
// running text — exactly what lm-eval's whole[len(ctx):] rule is about.
class PieceTokenizer : public lrc::Tokenizer {
 public:
  explicit PieceTokenizer(bool bos) : bos_(bos) {
    pieces_ = {"<unk>", "<s>",  "</s>", " the",    " cat", " sat",
               " on",   " mat", " a",   "bcdefgh", " ",    "  "};
    for (char ch = 'a'; ch <= 'z'; ++ch) pieces_.push_back(std::string(1, ch));
    for (char ch = 'A'; ch <= 'Z'; ++ch) pieces_.push_back(std::string(1, ch));
    for (char ch : std::string(".,;:!?'\"-()0123456789")) pieces_.push_back(std::string(1, ch));
  }
  std::vector<int> encode(std::string_view text) const override {
    const std::string s = " " + std::string(text);
    std::vector<int> ids;
    for (size_t i = 0; i < s.size();) {
      int best = 0;  // <unk> for a byte no piece covers
      size_t best_len = 0;
      for (size_t p = 3; p < pieces_.size(); ++p)
        if (pieces_[p].size() > best_len && s.compare(i, pieces_[p].size(), pieces_[p]) == 0)
          best = static_cast<int>(p), best_len = pieces_[p].size();
      ids.push_back(best);
      i += std::max<size_t>(best_len, 1);
    }
    return ids;
  }
  std::string decode(int, int token) const override { return pieces_.at(token); }
  int vocab_size() const override { return static_cast<int>(pieces_.size()); }
  int bos_id() const override { return 1; }
  int eos_id() const override { return 2; }
  bool add_bos() const override { return bos_; }
  std::string kind() const override { return "test-pieces"; }

 private:
  bool bos_;
  std::vector<std::string> pieces_;
};

constexpr int kVocab = 128;

lrc::LlamaModel tiny_model(int max_seq = 64, uint64_t seed = 7) {
  return lrc::test::random_model(lrc::test::tiny_config(64, 96, 2, 4, 2, kVocab, max_seq), seed);
}

// lm-eval's loglikelihood, brute force: model input (ctx + cont)[-(max_len+1):][:-1], one full
// forward_logits pass, log-softmax in double over the last |cont| rows.
lrc::ContinuationScore reference_score(const lrc::LlamaModel& m, int max_len,
                                       const std::vector<int32_t>& ctx,
                                       const std::vector<int32_t>& cont) {
  std::vector<int32_t> whole = ctx;
  whole.insert(whole.end(), cont.begin(), cont.end());
  const size_t keep = std::min(whole.size(), static_cast<size_t>(max_len) + 1);
  std::vector<int32_t> input(whole.end() - static_cast<std::ptrdiff_t>(keep), whole.end() - 1);
  const int T = static_cast<int>(input.size());
  const std::vector<float> logits = lrc::forward_logits(m, input.data(), 1, T);
  const int V = m.cfg.vocab_size, n = static_cast<int>(cont.size());
  lrc::ContinuationScore s;
  for (int j = 0; j < n; ++j) {
    const float* row = logits.data() + static_cast<size_t>(T - n + j) * V;
    double mx = row[0];
    int arg = 0;
    for (int v = 1; v < V; ++v)
      if (row[v] > mx) mx = row[v], arg = v;
    double sum = 0;
    for (int v = 0; v < V; ++v) sum += std::exp(double(row[v]) - mx);
    s.logprob += double(row[cont[j]]) - mx - std::log(sum);
    s.greedy = s.greedy && arg == cont[j];
    s.n_tokens++;
  }
  return s;
}

TEST(EvalTasksScoring, EncodeRequestFollowsLmEvalRule) {
  PieceTokenizer tok(/*bos=*/true);
  // Trailing whitespace moves into the continuation; continuation tokens come from the
  // whole encoding, so " sat" is the single piece " sat", not encode(" sat") = ["  ", "s",...].
  const lrc::EncodedRequest r = encode_request(tok, "the cat ", "sat");
  std::vector<int> ctx = tok.encode("the cat");
  ctx.insert(ctx.begin(), tok.bos_id());
  EXPECT_EQ(std::vector<int32_t>(ctx.begin(), ctx.end()), r.context);
  const std::vector<int> whole = tok.encode("the cat sat");
  EXPECT_EQ(std::vector<int32_t>(whole.begin() + (ctx.size() - 1), whole.end()), r.continuation);
  ASSERT_EQ(r.continuation.size(), 1u);      // " sat"
  EXPECT_NE(tok.encode(" sat").size(), 1u);  // standalone it would be "  " + s a t
  // Same request written the usual way (context without space, continuation " sat").
  const lrc::EncodedRequest r2 = encode_request(tok, "the cat", " sat");
  EXPECT_EQ(r.context, r2.context);
  EXPECT_EQ(r.continuation, r2.continuation);

  // No BOS: the context is just its tokens; an empty context becomes [EOS].
  PieceTokenizer nobos(/*bos=*/false);
  EXPECT_EQ(encode_request(nobos, "the cat", " sat").context.size(), tok.encode("the cat").size());
  EXPECT_EQ(encode_request(nobos, "", "the").context, std::vector<int32_t>{2});
}

TEST(EvalTasksScoring, SharedContextEqualsBruteForce) {
  const lrc::LlamaModel m = tiny_model();
  PieceTokenizer tok(true);
  lrc::ContinuationScorer scorer(m, tok);
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"the cat sat on the", {" mat", " cat", " a dog and a bird", " x"}},
      {"Once, a cat (2 of them) sat", {" on the mat.", " there", " qq"}},
      {"A", {" abcdefgh", " the cat sat on the mat and the cat sat on it again"}},
  };
  for (const auto& [context, conts] : cases) {
    std::vector<int32_t> ctx;
    std::vector<std::vector<int32_t>> enc;
    for (const std::string& c : conts) {
      auto r = encode_request(tok, context, c);
      ctx = r.context;
      enc.push_back(r.continuation);
    }
    const lrc::ForwardWork before = scorer.work();
    const auto got = scorer.score(ctx, enc);
    ASSERT_EQ(got.size(), conts.size());
    int64_t shared = static_cast<int64_t>(ctx.size()), separate = 0;
    for (size_t i = 0; i < enc.size(); ++i) {
      const auto want = reference_score(m, m.cfg.max_seq_len, ctx, enc[i]);
      EXPECT_NEAR(got[i].logprob, want.logprob, 1e-5) << context << " |" << conts[i];
      EXPECT_EQ(got[i].n_tokens, want.n_tokens);
      EXPECT_EQ(got[i].greedy, want.greedy);
      EXPECT_LT(got[i].logprob, 0.0);
      shared += static_cast<int64_t>(enc[i].size()) - 1;
      separate += static_cast<int64_t>(ctx.size() + enc[i].size()) - 1;
    }
    // Work accounting: context once + each continuation but its last token.
    EXPECT_EQ(scorer.work().shared - before.shared, shared);
    EXPECT_EQ(scorer.work().separate - before.separate, separate);
  }
  EXPECT_GT(scorer.work().saved_share(), 0.2);

  // Without sharing the scores are the same and the work is the lm-eval work.
  lrc::ContinuationScorer plain(m, tok, -1, /*share_context=*/false);
  const auto a = scorer.score_text("the cat sat on the", {" mat", " a dog"});
  const auto b = plain.score_text("the cat sat on the", {" mat", " a dog"});
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i].logprob, b[i].logprob, 1e-5);
  EXPECT_EQ(plain.work().shared, plain.work().separate);
}

// Many requests in one score_batch (several passes of token trees: more rows than one pass
// takes) == one score() per request, and the work is the sum of theirs.
TEST(EvalTasksScoring, BatchEqualsOneRequestAtATime) {
  const lrc::LlamaModel m = tiny_model();
  PieceTokenizer tok(true);
  lrc::ContinuationScorer batch(m, tok), single(m, tok);
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"the cat sat on the", {" mat", " cat", " a dog and a bird", " x"}},
      {"Once, a cat (2 of them) sat", {" on the mat.", " there", " qq"}},
      {"A", {" abcdefgh", " the cat sat on the mat and the cat sat on it again"}},
      {"the mat", {" sat"}},
  };
  std::vector<lrc::ScoreRequest> reqs;
  for (int rep = 0; rep < 40; ++rep)
    for (const auto& [context, conts] : cases) reqs.push_back(batch.encode(context, conts));
  int64_t rows = 0;
  for (const auto& r : reqs) {
    rows += static_cast<int64_t>(r.context.size());
    for (const auto& c : r.continuations) rows += static_cast<int64_t>(c.size()) - 1;
  }
  ASSERT_GT(rows, 2048);  // more than one pass
  const auto got = batch.score_batch(reqs);
  ASSERT_EQ(got.size(), reqs.size());
  for (size_t r = 0; r < reqs.size(); ++r) {
    const auto want = single.score(reqs[r].context, reqs[r].continuations);
    ASSERT_EQ(got[r].size(), want.size());
    for (size_t c = 0; c < want.size(); ++c) {
      EXPECT_NEAR(got[r][c].logprob, want[c].logprob, 1e-5) << r << " " << c;
      EXPECT_EQ(got[r][c].n_tokens, want[c].n_tokens);
      EXPECT_EQ(got[r][c].greedy, want[c].greedy);
    }
  }
  EXPECT_EQ(batch.work().shared, single.work().shared);
  EXPECT_EQ(batch.work().separate, single.work().separate);
  EXPECT_EQ(batch.work().shared, rows);
}

// On the real 22M model and generated WikiText examples of all three kinds: the batched token
// trees give the log-likelihoods and greedy flags of the lm-eval way (each context +
// continuation forwarded from scratch), so the accuracies are the same.
TEST(EvalTasksScoring, RealModelTreesEqualLmEvalWay) {
  const std::string model_dir = lrc::test::default_model_dir();
  const std::string text = lrc::test::shared("data/wikitext2-test.txt");
  if (!std::filesystem::exists(model_dir + "/config.json") || !std::filesystem::exists(text))
    GTEST_SKIP() << "llama-22m-debtext or wikitext2-test.txt absent";
  const lrc::LoadedModel lm = lrc::load_model(model_dir);
  const lrc::TextCorpus corpus = lrc::read_text_corpus(text);
  lrc::ContinuationScorer trees(lm.model, *lm.tokenizer);
  lrc::ContinuationScorer lm_eval(lm.model, *lm.tokenizer, -1, /*share_context=*/false);
  std::vector<lrc::ScoreRequest> reqs;
  for (const auto& ex : lrc::generate_continuation(corpus, 6, 1))
    reqs.push_back(trees.encode(ex.context, lrc::multiple_choice_continuations(ex)));
  for (const auto& ex : lrc::generate_cloze(corpus, 6, 1))
    reqs.push_back(trees.encode(ex.context, lrc::multiple_choice_continuations(ex)));
  for (const auto& ex : lrc::generate_lastword(corpus, 6, 1))
    reqs.push_back(trees.encode(ex.context, lrc::last_word_continuations(ex)));
  const auto got = trees.score_batch(reqs);
  const auto want = lm_eval.score_batch(reqs);
  for (size_t r = 0; r < reqs.size(); ++r)
    for (size_t c = 0; c < reqs[r].continuations.size(); ++c) {
      EXPECT_NEAR(got[r][c].logprob, want[r][c].logprob,
                  2e-3 + 1e-5 * std::fabs(want[r][c].logprob))
          << r << " " << c;
      EXPECT_EQ(got[r][c].greedy, want[r][c].greedy) << r << " " << c;
    }
  EXPECT_LT(trees.work().shared, lm_eval.work().shared);
  EXPECT_EQ(trees.work().separate, lm_eval.work().shared);
}

TEST(EvalTasksScoring, LeftTruncationMatchesLmEval) {
  // A 24-token window and a context longer than it: each continuation length drops a
  // different number of context tokens (BOS included), as lm-eval's [-(max_len+1):][:-1].
  const lrc::LlamaModel m = tiny_model(/*max_seq=*/24);
  PieceTokenizer tok(true);
  lrc::ContinuationScorer scorer(m, tok);
  ASSERT_EQ(scorer.max_len(), 24);
  const std::string context =
      "the cat sat on the mat; the cat sat on a mat, then the cat sat on the mat again and again";
  const std::vector<std::string> conts = {" on", " on the mat", " quietly on the warm mat"};
  std::vector<int32_t> ctx;
  std::vector<std::vector<int32_t>> enc;
  for (const std::string& c : conts) {
    auto r = encode_request(tok, context, c);
    ctx = r.context;
    enc.push_back(r.continuation);
  }
  ASSERT_GT(ctx.size(), 24u);
  const lrc::LlamaModel wide = tiny_model(/*max_seq=*/128);
  const auto got = scorer.score(ctx, enc);
  for (size_t i = 0; i < enc.size(); ++i) {
    const auto want = reference_score(m, 24, ctx, enc[i]);
    EXPECT_NEAR(got[i].logprob, want.logprob, 1e-5) << conts[i];
    // Equivalently: drop the left of the context by hand, no truncation needed.
    const size_t drop = ctx.size() + enc[i].size() - 1 - 24;
    const std::vector<int32_t> cut(ctx.begin() + static_cast<std::ptrdiff_t>(drop), ctx.end());
    EXPECT_NEAR(got[i].logprob, reference_score(m, 1000, cut, enc[i]).logprob, 1e-5);
    // And truncation matters: with the full context (a 64-token model) the score differs.
    if (drop > 0) {
      EXPECT_GT(std::fabs(got[i].logprob - reference_score(wide, 128, ctx, enc[i]).logprob), 1e-4);
    }
  }
  // A continuation longer than the window cannot be scored.
  std::vector<int32_t> too_long(30, 5);
  EXPECT_THROW(scorer.score(ctx, std::vector<std::vector<int32_t>>{too_long}), lrc::Error);
}

// A model whose lm_head is zero predicts the uniform distribution: every token has
// log p = -log V exactly, so scores are known in closed form.
lrc::LlamaModel uniform_model() {
  lrc::LlamaModel m = tiny_model();
  std::fill(m.lm_head.w.begin(), m.lm_head.w.end(), 0.f);
  return m;
}

TEST(EvalTasksScoring, AccAndAccNormDisagreeOnHandMadeExample) {
  const lrc::LlamaModel m = uniform_model();
  PieceTokenizer tok(true);
  lrc::ContinuationScorer scorer(m, tok);
  const double logv = std::log(double(kVocab));
  // " a" is one token (1 character), " abcdefgh" two tokens (" a" + "bcdefgh", 8 characters):
  // acc prefers the short one (-log V > -2 log V), acc_norm the long one (-log V / 1 <
  // -2 log V / 8).
  lrc::TaskExample ex;
  ex.context = "the cat";
  ex.choices = {"a", "abcdefgh"};
  ex.label = 1;
  const lrc::MultipleChoiceScore s = score_multiple_choice(scorer, ex);
  EXPECT_NEAR(s.logprob[0], -logv, 1e-4);
  EXPECT_NEAR(s.logprob[1], -2 * logv, 1e-4);
  EXPECT_NEAR(s.logprob_norm[1], -2 * logv / 8, 1e-4);
  EXPECT_EQ(s.pred, 0);
  EXPECT_EQ(s.pred_norm, 1);

  // Over a task set: this example counts for acc_norm only; a second one ("the" vs "ab",
  // label 0: 1 token vs 2 tokens, 3 vs 2 characters) counts for both.
  lrc::TaskSet set;
  set.name = "hand";
  set.examples = {ex, ex};
  set.examples[1].choices = {"the", "ab"};
  set.examples[1].label = 0;
  const lrc::TaskResult r = evaluate_task_set(scorer, set);
  EXPECT_EQ(r.n, 2);
  EXPECT_DOUBLE_EQ(r.acc, 0.5);
  EXPECT_DOUBLE_EQ(r.acc_norm, 1.0);
  EXPECT_NEAR(r.acc_ci, 1.96 * std::sqrt(0.25 / 2), 1e-12);
  EXPECT_DOUBLE_EQ(r.acc_norm_ci, 0.0);
}

TEST(EvalTasksScoring, LastWordGreedyAndPerplexity) {
  PieceTokenizer tok(true);
  // Uniform model: argmax is token 0 (<unk>) everywhere, so nothing is "greedy", and the
  // target perplexity is exactly V.
  const lrc::LlamaModel u = uniform_model();
  lrc::ContinuationScorer us(u, tok);
  lrc::TaskSet set;
  set.kind = lrc::TaskKind::LastWord;
  set.examples = {{"the cat sat on the", {}, 0, "mat"}, {"the", {}, 0, "cat sat"}};
  const lrc::TaskResult r = evaluate_task_set(us, set);
  EXPECT_DOUBLE_EQ(r.acc, 0.0);
  EXPECT_NEAR(r.target_ppl, double(kVocab), 1e-3);

  // Random model: correct == the brute-force greedy check of every target token.
  const lrc::LlamaModel m = tiny_model();
  lrc::ContinuationScorer scorer(m, tok);
  for (const lrc::TaskExample& ex : set.examples) {
    const auto req = encode_request(tok, ex.context, " " + ex.target);
    const auto want = reference_score(m, m.cfg.max_seq_len, req.context, req.continuation);
    const lrc::LastWordScore s = score_last_word(scorer, ex);
    EXPECT_EQ(s.correct, want.greedy);
    EXPECT_NEAR(s.logprob, want.logprob, 1e-5);
  }
  // A target that the model's own greedy choice spells out is correct: take the argmax
  // token after the context and use its text as the target.
  const auto req = encode_request(tok, "the cat sat on the", " mat");
  lrc::Decoder dec(m, 64);
  const std::vector<float>& row = dec.forward(req.context.data(), int(req.context.size()));
  const int arg = int(std::max_element(row.begin(), row.end()) - row.begin());
  const lrc::ContinuationScore g =
      scorer.score(req.context, std::vector<std::vector<int32_t>>{{arg}})[0];
  EXPECT_TRUE(g.greedy);
}

TEST(EvalTasksScoring, JsonAndTable) {
  lrc::ZeroShotResults z;
  lrc::TaskResult a;
  a.name = "cloze";
  a.n = 10;
  a.acc = 0.7;
  a.acc_norm = 0.6;
  lrc::TaskResult b;
  b.name = "lastword";
  b.kind = lrc::TaskKind::LastWord;
  b.n = 10;
  b.acc = 0.3;
  b.target_ppl = 12.5;
  z.tasks = {a, b};
  z.acc_avg = 0.5;
  const nlohmann::json j = task_results_json(z);
  EXPECT_DOUBLE_EQ(j["acc"]["cloze"].get<double>(), 0.7);
  EXPECT_DOUBLE_EQ(j["acc_norm"]["cloze"].get<double>(), 0.6);
  EXPECT_FALSE(j["acc_norm"].contains("lastword"));
  EXPECT_DOUBLE_EQ(j["target_ppl"]["lastword"].get<double>(), 12.5);
  EXPECT_DOUBLE_EQ(j["acc_avg"].get<double>(), 0.5);
  const std::string t = format_task_table(z);
  EXPECT_NE(t.find("cloze"), std::string::npos);
  EXPECT_NE(t.find("12.500"), std::string::npos);
}

}  // namespace
