// Generation loop of llama2.c run.c (semantics in include/lrc/eval/generate.h).
#include "lrc/eval/generate.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <random>

#include "lrc/core/error.h"
#include "lrc/model/forward.h"

namespace lrc {

namespace {

int argmax(const std::vector<float>& l) {
  return static_cast<int>(std::max_element(l.begin(), l.end()) - l.begin());
}

float top2_margin(const std::vector<float>& l) {
  float a = -INFINITY, b = -INFINITY;
  for (float x : l) {
    if (x > a) {
      b = a;
      a = x;
    } else if (x > b) {
      b = x;
    }
  }
  return a - b;
}

// Sample from softmax(l / temperature) (probabilities in float64).
int sample(const std::vector<float>& l, float temperature, std::mt19937_64& rng) {
  const float mx = *std::max_element(l.begin(), l.end());
  std::vector<double> p(l.size());
  double z = 0;
  for (size_t i = 0; i < l.size(); ++i) z += (p[i] = std::exp((l[i] - mx) / temperature));
  double u = std::uniform_real_distribution<double>(0.0, z)(rng);
  for (size_t i = 0; i < p.size(); ++i)
    if ((u -= p[i]) <= 0) return static_cast<int>(i);
  return static_cast<int>(p.size()) - 1;
}

// run.c's safe_printf: skip pieces that are one unprintable byte (raw control bytes).
bool printable(const std::string& piece) {
  if (piece.size() != 1) return true;
  const auto c = static_cast<unsigned char>(piece[0]);
  return std::isprint(c) || std::isspace(c);
}

}  // namespace

GenerateResult generate(const LlamaModel& m, const Tokenizer& tok, const std::string& prompt,
                        const GenerateOptions& opt,
                        const std::function<void(const std::string&)>& on_piece) {
  if (opt.temperature < 0) fail("generate", "temperature must be >= 0");
  if (opt.max_tokens < 0)
    fail("--max-tokens", "must be >= 0, got " + std::to_string(opt.max_tokens));
  if (opt.steps < 0)
    fail("--steps", "must be >= 0 (0: use --max-tokens), got " + std::to_string(opt.steps));
  GenerateResult r;
  if (tok.add_bos()) r.tokens.push_back(tok.bos_id());
  for (int id : tok.encode(prompt)) r.tokens.push_back(id);
  if (r.tokens.empty()) fail("generate", "empty prompt (and the tokenizer adds no BOS)");
  r.n_prompt = static_cast<int>(r.tokens.size());
  for (int32_t t : r.tokens)
    if (t < 0 || t >= m.cfg.vocab_size)
      fail("generate", "prompt token id " + std::to_string(t) + " outside the model's vocabulary");

  int steps = opt.steps > 0 ? opt.steps : r.n_prompt - 1 + opt.max_tokens;
  if (m.cfg.max_seq_len > 0) steps = std::min(steps, m.cfg.max_seq_len);  // as run.c
  if (steps <= 0) return r;

  Decoder dec(m, steps);
  std::mt19937_64 rng(opt.seed);
  int32_t token = r.tokens[0];
  if (!tok.add_bos()) {  // the first prompt token is text, not a BOS: show it too
    const std::string piece = tok.decode(tok.bos_id(), token);
    if (printable(piece)) {
      r.text += piece;
      if (on_piece) on_piece(piece);
    }
  }
  for (int pos = 0; pos < steps; ++pos) {
    const std::vector<float>& logits = dec.step(token);
    int32_t next;
    if (pos < r.n_prompt - 1) {
      next = r.tokens[pos + 1];
    } else {
      next = opt.temperature == 0.f ? argmax(logits) : sample(logits, opt.temperature, rng);
      r.top2_margins.push_back(top2_margin(logits));
      r.tokens.push_back(next);
    }
    // Stop when the model predicts BOS or EOS (prompt tokens, e.g. a chat template's
    // <|im_end|>, are forced, not predicted).
    if (pos >= r.n_prompt - 1 && (next == m.cfg.bos_id || next == m.cfg.eos_id)) {
      r.stopped = true;
      break;
    }
    const std::string piece = tok.decode(token, next);
    if (printable(piece)) {
      r.text += piece;
      if (on_piece) on_piece(piece);
    }
    token = next;
  }
  return r;
}

}  // namespace lrc
