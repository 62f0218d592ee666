// Multiple-choice scoring, lm-eval's `multiple_choice` output type: each choice is a
// continuation " " + choice of the context; acc takes the most likely continuation, acc_norm the
// most likely per character of the choice (so long choices are not penalised for their length).
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/eval/zero_shot.h"

namespace lrc {

namespace {

// Python's len(str): UTF-8 code points (continuation bytes 10xxxxxx are not counted).
double text_length(const std::string& s) {
  int64_t n = 0;
  for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;
  return static_cast<double>(n);
}

// numpy.argmax: the first maximum.
int first_argmax(const std::vector<double>& v) {
  int best = 0;
  for (int i = 1; i < static_cast<int>(v.size()); ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

}  // namespace

std::vector<std::string> multiple_choice_continuations(const TaskExample& ex) {
  if (ex.choices.empty()) fail("multiple choice", "example without choices");
  std::vector<std::string> continuations;
  for (const std::string& c : ex.choices) continuations.push_back(" " + c);
  return continuations;
}

MultipleChoiceScore multiple_choice_result(const TaskExample& ex,
                                           const std::vector<ContinuationScore>& s) {
  if (s.size() != ex.choices.size()) fail("multiple choice", "one score per choice expected");
  MultipleChoiceScore r;
  for (size_t i = 0; i < s.size(); ++i) {
    r.logprob.push_back(s[i].logprob);
    // An empty choice has length 0; lm-eval would divide by zero (-inf/nan). Use 1 instead.
    const double len = text_length(ex.choices[i]);
    r.logprob_norm.push_back(s[i].logprob / (len > 0 ? len : 1.0));
  }
  r.pred = first_argmax(r.logprob);
  r.pred_norm = first_argmax(r.logprob_norm);
  return r;
}

MultipleChoiceScore score_multiple_choice(ContinuationScorer& scorer, const TaskExample& ex) {
  return multiple_choice_result(ex,
                                scorer.score_text(ex.context, multiple_choice_continuations(ex)));
}

}  // namespace lrc
