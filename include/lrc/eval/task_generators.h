// Zero-shot task generators: LAMBADA-, HellaSwag- and WinoGrande-style task files from any
// text file (one paragraph a line; WikiText markup handled by text_corpus.h). Deterministic in
// the seed: the same file, n and seed give the same examples on every machine (own PRNG, no
// std:: distributions). The rules are in src/eval/task_generators.cpp and docs/zero-shot.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lrc/eval/tasks.h"
#include "lrc/eval/text_corpus.h"

namespace lrc {

enum class GeneratorKind { LastWord, Continuation, Cloze };
// "lastword" | "continuation" | "cloze"; anything else throws lrc::Error.
GeneratorKind parse_generator_kind(const std::string& name);
const char* generator_kind_name(GeneratorKind k);
TaskKind generated_task_kind(GeneratorKind k);  // lastword -> LastWord, others MultipleChoice

// lastword: paragraphs of >= 40 words whose last word is alphabetic; context = the paragraph
// before its last word, target = that word (the final punctuation is dropped).
std::vector<TaskExample> generate_lastword(const TextCorpus& corpus, int64_t n, uint64_t seed);

// continuation: context = the first 1-3 sentences of a paragraph; choices = its true next
// sentence and 3 length-matched non-first sentences of other paragraphs; label shuffled.
std::vector<TaskExample> generate_continuation(const TextCorpus& corpus, int64_t n, uint64_t seed);

// cloze: a sentence with one content word blanked; context = the sentence before the blank;
// choices = [word + rest of sentence, distractor + rest of sentence] in shuffled order, the
// distractor a content word of the same document with the same capitalisation and suffix
// class and a similar corpus frequency.
std::vector<TaskExample> generate_cloze(const TextCorpus& corpus, int64_t n, uint64_t seed);

std::vector<TaskExample> generate_tasks(GeneratorKind kind, const TextCorpus& corpus, int64_t n,
                                        uint64_t seed);

}  // namespace lrc
