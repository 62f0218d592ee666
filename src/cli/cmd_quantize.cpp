// lrc quantize: FP model -> W4A4 (+ low-rank correction) checkpoint.
#include <cstdio>
#include <iostream>

#include "cli/command_registry.h"
#include "cli/quantize_flags.h"
#include "lrc/core/blas_info.h"
#include "lrc/core/error.h"
#include "lrc/io/model_loader.h"
#include "lrc/pipeline/checkpoint.h"
#include "lrc/pipeline/checkpoint_sink.h"
#include "lrc/pipeline/quantize_model.h"
#include "lrc/pipeline/resume.h"
#include "lrc/plot/report_figure.h"

namespace lrc::cli {

namespace {

// The command line, for the caption of --report's figure.
std::string command_line() {
  std::string s = "lrc";
  const auto& args = process_args();
  for (size_t i = 1; i < args.size(); ++i) s += " " + args[i];
  return s;
}

// --resume-every N | auto (resume.h, HiddenPolicy).
HiddenPolicy parse_resume_every(const std::string& s) {
  HiddenPolicy p;
  if (s == "auto") return p;
  try {
    size_t used = 0;
    p.every = std::stoi(s, &used);
    if (used == s.size() && p.every >= 1) return p;
  } catch (const std::exception&) {
  }
  fail("--resume-every", "'" + s + "' is not a positive number of layers or 'auto'");
}

Registrar reg_quantize(
    "quantize", "quantize a model to W4A4 (rtn | gptq | svd | lrc) and write a checkpoint",
    [](CLI::App& sub) -> std::function<int()> {
      struct Args {
        std::string model, tokenizer, calib, out, method = "lrc", report, resume_every = "auto";
        QuantizeFlagStrings flags;
        bool json = false, resume = false;
        QuantizeOptions opt;
      };
      auto a = std::make_shared<Args>();
      sub.add_option("--model", a->model, "FP model (HF dir, llama2.c file, .gguf)")->required();
      sub.add_option("--tokenizer", a->tokenizer, "tokenizer file if not beside the model");
      sub.add_option("--calib", a->calib, "calibration text file")->required();
      sub.add_option("--out", a->out, "output checkpoint directory")->required();
      sub.add_option("--method", a->method, "rtn | gptq | svd | lrc")->capture_default_str();
      add_quantize_options(sub, a->opt, a->flags);
      sub.add_option("--report", a->report,
                     "write an SVG of each linear's relative eq. 2 error per layer (and plain "
                     "GPTQ's on the same statistics), ranks and clips");
      sub.add_flag("--json", a->json, "print the report as JSON");
      sub.add_flag("--resume", a->resume,
                   "continue an interrupted run from the layers recorded in <out>.partial (same "
                   "model, calibration file, options, threads and lrc version, else an error)");
      sub.add_option("--resume-every", a->resume_every,
                     "record the calibration hidden states for --resume after every N layers; "
                     "auto: after every layer while they take at most 256 MiB, else every "
                     "120 s of work (at Llama-2-7B's shape they are 4.3 GB, ~5 s to write)")
          ->capture_default_str();
      return [a]() {
        a->opt.method = parse_method(a->method);
        finish_quantize_options(a->opt, a->flags);
        if (!a->report.empty()) {
          if (a->opt.method == QuantMethod::RTN)
            fail("--report", "rtn gathers no statistics, so it has no eq. 2 error to draw; use "
                             "gptq, svd or lrc");
          // The baselines need Σy, Σxy for their own objective (4x their statistics work).
          a->opt.baseline_objective = true;
          a->opt.compare_gptq = true;
        }
        LoadedModel lm =
            load_model(a->model, a->tokenizer, /*need_tokenizer=*/true, /*lazy_layers=*/true);
        a->opt.validate_for(lm.model.cfg);
        const CalibrationSet calib = load_calibration(a->calib, *lm.tokenizer, a->opt.nsamples,
                                                      a->opt.seq, lm.model.cfg.max_seq_len);
        std::fprintf(stderr, "calibration: %d x %d tokens from %s\n", calib.n_seq, calib.seq_len,
                     a->calib.c_str());
        const std::string tokenizer = a->tokenizer.empty() ? lm.tokenizer_path : a->tokenizer;
        QuantizeJournal journal(a->out, run_fingerprint(a->model, tokenizer, calib, a->opt),
                                a->resume);
        journal.set_hidden_policy(parse_resume_every(a->resume_every));
        CheckpointSink sink(a->out, a->opt);
        const QuantizeReport rep = quantize_model(lm.model, calib, a->opt, &sink, &journal);
        CheckpointInfo info;
        info.source_model = a->model;
        info.tokenizer_file = tokenizer;
        info.options = a->opt;
        info.calib = &calib;
        info.report = &rep;
        sink.writer().finish(lm.model, info);
        if (!a->report.empty()) {
          plot::write_svg(plot::quantize_report_figure(rep, method_name(a->opt.method),
                                                       command_line()),
                          a->report);
          std::fprintf(stderr, "report: %s\n", a->report.c_str());
        }
        if (a->json) {
          nlohmann::json j = rep.to_json();
          j["out"] = a->out;
          j["blas_core"] = blas_core_name();
          std::cout << j.dump(2) << "\n";
        } else {
          std::printf("method %s  rank %g  W%dA%d  bits/weight %.2f  %.1fs  -> %s\n",
                      method_name(a->opt.method), a->opt.rank, a->opt.wbits, a->opt.abits,
                      rep.bits_per_weight, rep.seconds, a->out.c_str());
        }
        return 0;
      };
    });

}  // namespace

}  // namespace lrc::cli
