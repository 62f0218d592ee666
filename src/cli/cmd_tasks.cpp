// `lrc tasks make`: writes a zero-shot task file (JSONL) generated from a text file.
//   lrc tasks make --kind lastword|continuation|cloze --input FILE --out FILE.jsonl
//                  [--n 1000] [--seed 0]
#include <cstdio>
#include <memory>
#include <string>

#include "cli/command_registry.h"
#include "lrc/core/error.h"
#include "lrc/eval/task_generators.h"
#include "lrc/eval/tasks.h"
#include "lrc/eval/text_corpus.h"

namespace lrc::cli {
namespace {

struct MakeOptions {
  std::string kind, input, out;
  int64_t n = 1000;
  uint64_t seed = 0;
};

int run_make(const MakeOptions& o) {
  const GeneratorKind kind = parse_generator_kind(o.kind);
  const TextCorpus corpus = read_text_corpus(o.input);
  const std::vector<TaskExample> examples = generate_tasks(kind, corpus, o.n, o.seed);
  if (examples.empty())
    fail(o.input, std::string("no paragraph yields a ") + generator_kind_name(kind) + " example");
  write_task_file(o.out, generated_task_kind(kind), examples);
  std::printf("wrote %zu %s examples to %s (from %zu paragraphs of %s, seed %llu)\n",
              examples.size(), generator_kind_name(kind), o.out.c_str(), corpus.paragraphs.size(),
              o.input.c_str(), static_cast<unsigned long long>(o.seed));
  if (static_cast<int64_t>(examples.size()) < o.n)
    std::fprintf(stderr, "warning: only %zu of the %lld examples asked for: the text has no more\n",
                 examples.size(), static_cast<long long>(o.n));
  return 0;
}

const Registrar reg(
    "tasks", "Zero-shot task files: `lrc tasks make` generates one from text",
    [](CLI::App& sub) -> std::function<int()> {
      sub.require_subcommand(1);
      auto o = std::make_shared<MakeOptions>();
      CLI::App* make =
          sub.add_subcommand("make", "Generate a JSONL task file (lastword, continuation, cloze)");
      make->add_option("--kind", o->kind,
                       "lastword (LAMBADA-style), continuation "
                       "(HellaSwag-style) or cloze (WinoGrande-style)")
          ->required()
          ->check(CLI::IsMember({"lastword", "continuation", "cloze"}));
      make->add_option("--input", o->input, "Text file, one paragraph a line")->required();
      make->add_option("--out", o->out, "Output task file (.jsonl)")->required();
      make->add_option("--n", o->n, "Number of examples")
          ->capture_default_str()
          ->check(CLI::PositiveNumber);
      make->add_option("--seed", o->seed, "Random seed")->capture_default_str();
      return [o, make]() { return make->parsed() ? run_make(*o) : 1; };
    });

}  // namespace
}  // namespace lrc::cli
