// Last-word scoring, LAMBADA as lm-eval scores it: the target " " + word is a continuation of
// the context; the example is correct when greedy decoding would produce exactly the target
// tokens (argmax at every target position), and its log-likelihood feeds the task's target
// perplexity.
#include "lrc/core/error.h"
#include "lrc/eval/zero_shot.h"

namespace lrc {

std::vector<std::string> last_word_continuations(const TaskExample& ex) {
  if (ex.target.empty()) fail("last word", "example without target");
  return {" " + ex.target};
}

LastWordScore last_word_result(const std::vector<ContinuationScore>& s) {
  if (s.size() != 1) fail("last word", "one score expected");
  LastWordScore r;
  r.logprob = s[0].logprob;
  r.n_tokens = s[0].n_tokens;
  r.correct = s[0].greedy;
  return r;
}

LastWordScore score_last_word(ContinuationScorer& scorer, const TaskExample& ex) {
  return last_word_result(scorer.score_text(ex.context, last_word_continuations(ex)));
}

}  // namespace lrc
