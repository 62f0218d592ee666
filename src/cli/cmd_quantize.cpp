// lrc quantize: FP model -> W4A4 (+ low-rank correction) checkpoint.
#include <omp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>

#include "cli/child_process.h"
#include "cli/command_registry.h"
#include "cli/quantize_flags.h"
#include "lrc/core/blas_info.h"
#include "lrc/core/communicator.h"
#include "lrc/core/error.h"
#include "lrc/io/model_loader.h"
#include "lrc/pipeline/checkpoint.h"
#include "lrc/pipeline/checkpoint_sink.h"
#include "lrc/pipeline/quantize_model.h"
#include "lrc/pipeline/resume.h"
#include "lrc/plot/report_figure.h"
#include "lrc/quant/solver_backend.h"

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

// `--nproc N` (issue 30): this process launches N ranks of the same command, each a child with
// threads/N OpenMP/OpenBLAS threads, meeting on a Unix socket in a temporary directory
// (LRC_COMM_ADDRESS, LRC_RANK, LRC_WORLD_SIZE). Rank 0 prints and writes as a single run would;
// the other ranks' stderr goes to logs, shown when one fails (the others are then stopped).
// Returns the exit code.
int launch_ranks(int nproc) {
  const TempDir tmp("--nproc");
  const int threads = std::max(1, omp_get_max_threads() / nproc);
  std::fprintf(stderr, "[quantize] %d ranks, %d thread%s each\n", nproc, threads,
               threads == 1 ? "" : "s");
  const std::string address = "unix:" + (tmp.path / "ranks.sock").string();
  auto log = [&](int r) { return (tmp.path / ("rank" + std::to_string(r) + ".log")).string(); };
  std::vector<pid_t> pids;
  for (int r = 0; r < nproc; ++r)
    pids.push_back(spawn_self(process_args(),
                              {"LRC_COMM_ADDRESS=" + address, "LRC_RANK=" + std::to_string(r),
                               "LRC_WORLD_SIZE=" + std::to_string(nproc),
                               "LRC_LOCAL_RANK=" + std::to_string(r)},
                              threads, r == 0 ? "" : "/dev/null", r == 0 ? "" : log(r),
                              "--nproc"));
  // Each rank's end: -1 running, else its exit code (128 + signal when killed).
  std::vector<int> code(pids.size(), -1);
  bool stopping = false;
  for (size_t left = pids.size(); left > 0; --left) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) break;
    const auto it = std::find(pids.begin(), pids.end(), pid);
    if (it == pids.end()) continue;
    const size_t r = static_cast<size_t>(it - pids.begin());
    code[r] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code[r] == 0 || stopping) continue;
    stopping = true;  // the others would only fail on their next collective
    for (size_t q = 0; q < pids.size(); ++q)
      if (code[q] < 0) ::kill(pids[q], SIGTERM);
  }
  // Rank 0's errors are on stderr already; another rank's that failed by itself (not stopped
  // here) are in its log.
  int rc = 0;
  for (size_t r = 0; r < code.size(); ++r) {
    if (code[r] == 0) continue;
    if (rc == 0) rc = code[r] > 0 && code[r] < 128 ? code[r] : 1;
    if (r == 0 || code[r] == 128 + SIGTERM) continue;
    const std::string how = code[r] < 128 ? "exit code " + std::to_string(code[r])
                                          : "signal " + std::to_string(code[r] - 128);
    std::fprintf(stderr, "error: rank %zu of %d failed (%s); its log:\n%s", r, nproc,
                 how.c_str(), log_tail(log(static_cast<int>(r)), 20).c_str());
  }
  return rc;
}

Registrar reg_quantize(
    "quantize", "quantize a model to W4A4 (rtn | gptq | svd | lrc) and write a checkpoint",
    [](CLI::App& sub) -> std::function<int()> {
      struct Args {
        std::string model, tokenizer, calib, out, method = "lrc", report, resume_every = "auto";
        QuantizeFlagStrings flags;
        bool json = false, resume = false;
        int nproc = 1;
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
      sub.add_option("--nproc", a->nproc,
                     "spread the run over N processes on this host (ranks: each forwards 1/N of "
                     "the calibration sequences with 1/N of the threads, the float64 statistics "
                     "are summed over them, the solves go round-robin); with --device cuda rank "
                     "r uses GPU r. A torchrun/Slurm launch (RANK, WORLD_SIZE, MASTER_ADDR, "
                     "MASTER_PORT) makes each process a rank without it")
          ->capture_default_str()
          ->check(CLI::Range(1, 1024));
      return [a]() {
        a->opt.method = parse_method(a->method);
        const char* as_rank = std::getenv("LRC_COMM_ADDRESS");
        if (a->nproc > 1 && !(as_rank && *as_rank)) return launch_ranks(a->nproc);
        // A rank of several (launched by --nproc, or by torchrun/Slurm's variables), or null.
        CommunicatorPtr comm = communicator_from_environment();
        const bool lead = !comm || comm->rank() == 0;  // prints, writes the checkpoint
        if (comm && comm->size() > 1) {
          if (a->opt.device.rfind("cuda", 0) == 0 && a->opt.device.find(':') == std::string::npos) {
            const char* lr = std::getenv("LRC_LOCAL_RANK");
            if (!lr) lr = std::getenv("LOCAL_RANK");
            a->opt.device = "cuda:" + std::string(lr && *lr ? lr : "0");
          }
          // On GPUs the statistics are all-reduced by NCCL where every rank can load it
          // (LRC_NCCL=0: through host memory and the sockets instead).
          const char* use_nccl = std::getenv("LRC_NCCL");
          if (a->opt.device.rfind("cuda:", 0) == 0 && !(use_nccl && std::string(use_nccl) == "0")) {
            try {
              comm = make_nccl_communicator(comm, std::stoi(a->opt.device.substr(5)));
            } catch (const std::exception& e) {
              if (lead)
                std::fprintf(stderr, "warning: %s; the statistics go through host memory\n",
                             e.what());
            }
          }
        }
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
        if (lead)
          std::fprintf(stderr, "calibration: %d x %d tokens from %s\n", calib.n_seq,
                       calib.seq_len, a->calib.c_str());
        const std::string tokenizer = a->tokenizer.empty() ? lm.tokenizer_path : a->tokenizer;
        // The resume journal: with several ranks one per rank (each records its own share of
        // the hidden states), rank 0's first (a fresh one replaces <out>.partial).
        const int rank = comm ? comm->rank() : 0, ranks = comm ? comm->size() : 1;
        nlohmann::json fingerprint = run_fingerprint(a->model, tokenizer, calib, a->opt);
        if (ranks > 1) fingerprint["ranks"] = ranks;
        std::optional<QuantizeJournal> journal;
        if (rank > 0) (void)comm->broadcast_string("", 0);  // after rank 0's journal
        journal.emplace(a->out, fingerprint, a->resume, rank);
        journal->set_hidden_policy(parse_resume_every(a->resume_every));
        if (rank == 0 && ranks > 1) (void)comm->broadcast_string("", 0);
        if (!lead) {  // the other ranks compute and share; rank 0 writes
          (void)quantize_model(lm.model, calib, a->opt, nullptr, &*journal, comm.get());
          return 0;
        }
        CheckpointSink sink(a->out, a->opt);
        QuantizeReport rep;
        try {
          rep = quantize_model(lm.model, calib, a->opt, &sink, &*journal, comm.get());
        } catch (const Error&) {
          try {
            journal->flush();  // the finished layers' records, for a resume
          } catch (const Error&) {
          }
          // Stopped before any layer was finished (a bad option, a rank that failed): nothing
          // to resume, so no work area is left behind.
          if (!work_area_has_layers(a->out + ".partial")) {
            std::error_code ec;
            std::filesystem::remove_all(a->out + ".partial", ec);
          }
          throw;
        }
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
