// lrc synth: a synthetic HF Llama directory of a real model's shapes (random bf16 weights with
// outlier channels), for time and memory measurements at 7B+ scale. Recipe:
// include/lrc/io/synth_model.h.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command_registry.h"
#include "lrc/core/error.h"
#include "lrc/io/synth_model.h"

namespace lrc::cli {

namespace {

constexpr const char* kRecipe =
    "Random weights of a real model's shapes, written tensor by tensor (memory stays at about "
    "64 MB): Kaiming N(0, 1/d_in) linears; "
    "embedding N(0, 0.02^2) and input/post-attention norm weights |N(1, 0.1^2)| with "
    "max(2, 0.2% of dim) outlier channels (the same in every layer) times a gain log-uniform "
    "in [10, 100]; the same share of v_proj and up_proj rows times such a gain, so the inputs "
    "of o_proj and down_proj have outliers too. Deterministic in --seed; a --layers N model is "
    "the first N layers of the full one.";

Registrar reg_synth(
    "synth",
    "write a synthetic HF model (random bf16 weights with outlier channels) of a real model's "
    "shapes",
    [](CLI::App& sub) -> std::function<int()> {
      struct Args {
        std::string preset, out, tokenizer;
        int layers = 0;
        uint64_t seed = 0;
        double shard_gb = 4.0;
        bool no_outliers = false, json = false;
      };
      auto a = std::make_shared<Args>();
      sub.footer(kRecipe);
      std::string names;
      for (const auto& p : synth_presets()) names += (names.empty() ? "" : " | ") + p.name;
      sub.add_option("--preset", a->preset, names)->required();
      sub.add_option("--out", a->out, "output directory")->required();
      sub.add_option("--layers", a->layers, "transformer layers (0 = the preset's)")
          ->capture_default_str();
      sub.add_option("--seed", a->seed, "random seed")->capture_default_str();
      sub.add_option("--shard-gb", a->shard_gb, "largest shard, GB (1e9 bytes)")
          ->capture_default_str();
      sub.add_option("--tokenizer", a->tokenizer,
                     "tokenizer.model / tokenizer.json to copy in (default: a generated "
                     "byte-level tokenizer.json; lrc accepts a vocabulary smaller than the "
                     "model's)");
      sub.add_flag("--no-outliers", a->no_outliers, "all gains 1 (the control)");
      sub.add_flag("--json", a->json, "print the report as JSON");
      return [a]() {
        LlamaConfig cfg = synth_preset(a->preset).cfg;
        if (a->layers < 0) fail("--layers", "must be >= 0");
        if (a->layers > 0) cfg.n_layers = a->layers;
        if (!(a->shard_gb > 0)) fail("--shard-gb", "must be > 0");
        SynthOptions opt;
        opt.seed = a->seed;
        opt.outliers = !a->no_outliers;
        opt.shard_bytes = static_cast<uint64_t>(a->shard_gb * 1e9);
        opt.tokenizer = a->tokenizer;
        opt.progress = stderr;
        const SynthReport rep = write_synth_model(cfg, a->out, opt);
        if (a->json) {
          nlohmann::json j = {{"out", a->out},         {"preset", a->preset},
                              {"layers", cfg.n_layers}, {"seed", a->seed},
                              {"params", rep.n_params}, {"weight_bytes", rep.weight_bytes},
                              {"files", rep.files},     {"seconds", rep.seconds}};
          std::cout << j.dump(2) << "\n";
        } else {
          std::printf("%s: %s, %d layers, %lld parameters, %.2f GB bf16 in %zu files, %.1f s\n",
                      a->out.c_str(), a->preset.c_str(), cfg.n_layers,
                      static_cast<long long>(rep.n_params),
                      static_cast<double>(rep.weight_bytes) / 1e9, rep.files.size(), rep.seconds);
        }
        return 0;
      };
    });

}  // namespace

}  // namespace lrc::cli
