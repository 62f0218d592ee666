// The end-to-end W4A4 pipeline (paper §3.2, "Application of LRC on LLMs"):
//   1. QuaRot: fold norms, rotate the residual stream, online Hadamards (src/rotate);
//   2. FP16 for what stays unquantized (embeddings, norms, LM head);
//   3. layer by layer, group by group (q/k/v -> o -> gate/up -> down): gather the group's
//      input statistics on the calibration set AS PRODUCED BY THE ALREADY-QUANTIZED MODEL
//      (quantized weights and activations before it), quantize the group's linears,
//      then push the calibration hidden states through the finished layer.
// Only the calibration hidden states and one group's statistics are resident.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lrc/model/llama.h"
#include "lrc/pipeline/linear_quantizer.h"
#include "lrc/pipeline/quantize_options.h"
#include "lrc/quant/solver_backend.h"

namespace lrc {

// A calibration set: n_seq sequences of seq_len tokens, row-major.
struct CalibrationSet {
  std::vector<int32_t> tokens;
  int n_seq = 0;
  int seq_len = 0;
  std::string source;  // file path
  std::string sha256;  // of the file
};

// The first `nsamples` consecutive chunks of `seq_len` tokens of `file`, tokenized with the
// protocol of `lrc eval` (BOS per line, or line + "\n" when the tokenizer adds no BOS).
// seq_len 0 = min(model context, 2048). Throws when not even one sequence fits.
CalibrationSet load_calibration(const std::string& file, const class Tokenizer& tok, int nsamples,
                                int seq_len, int model_context);

struct QuantizeReport {
  std::vector<LinearReport> linears;
  nlohmann::json rotation;  // RotationInfo as JSON (empty when not rotated)
  double seconds = 0;
  double seconds_forward = 0;      // calibration passes through the layers (capture + update)
  double seconds_stats = 0;        // of which: accumulating Σx, Σy, Σxy (float64)
  double seconds_clip_search = 0;  // --a-clip search (its capture passes and objectives)
  double seconds_solve = 0;        // the per-linear solvers (rtn / gptq / svd / lrc)
  double seconds_gptq = 0;         // of which: GPTQ (alone, and in LRC's Update-Quant)
  SolverTimes solver_times;        // the solver backend's own split (solver_backend.h)
  // Per layer, the same sums (forward includes stats; solve includes gptq).
  // One layer's seconds: all of it, the calibration forward (capture passes and residual
  // updates, statistics included), the statistics, the solves (GPTQ included), GPTQ, reading
  // and rotating the layer (a streamed model); after `seconds`, not in it: recording it in the
  // resume journal and handing it to the sink (the checkpoint writer).
  struct LayerTimes {
    double seconds = 0, forward = 0, stats = 0, solve = 0, gptq = 0, load = 0, journal = 0,
           write = 0;
    // Several ranks: the layer's all-reduces of statistics (seconds, payload bytes; stats
    // includes them) and broadcasts of solved linears (solve includes them).
    double allreduce = 0, allreduce_bytes = 0, broadcast = 0;
  };
  std::vector<LayerTimes> layers;
  std::string solver = "cpu";      // where statistics and solves ran (SolverBackend::name)
  int64_t peak_device_bytes = 0;   // that backend's peak device memory (0 on the CPU)
  double bits_per_weight = 0;      // over the quantized linears
  nlohmann::json allocation;       // --rank-alloc error: budget, probe, ranks (null otherwise)
  int ranks = 1;                   // processes that shared the work (communicator.h)
  std::string communicator;        // their Communicator::name(), empty for one
  nlohmann::json to_json() const;
};

// Receives the layers as the pipeline finishes them (a CheckpointWriter), so that a model read
// a layer at a time (LlamaModel::layer_source) never sits whole in memory: begin() once the
// embeddings are final (rotated, fp16), with every linear's rank; layer() for each layer in
// order, quantized and final. With a layer source the pipeline releases each layer after it.
class LayerSink {
 public:
  virtual ~LayerSink() = default;
  virtual void begin(const LlamaModel& m, const std::map<std::string, int>& ranks) = 0;
  virtual void layer(int i, const LlamaLayer& L) = 0;
};

class QuantizeJournal;  // resume.h
class Communicator;     // lrc/core/communicator.h

// With opt.rank_alloc == Error (and no explicit opt.ranks) a probe pass on the first
// alloc_nsamples sequences runs first (quantize_model.cpp); the sink sees the final pass.
// journal (optional, resume.h): every finished layer is recorded there, and the layers an
// earlier run recorded are restored (and handed to the sink) instead of recomputed.
// comm (optional, communicator.h; issue 30): this process is rank comm->rank() of several that
// run the same call. Each forwards its share of the calibration sequences (contiguous blocks,
// rank order) and sums their statistics; an all-reduce gives every rank the full sums; each
// group's linears are solved round-robin over the ranks and broadcast, so every rank ends with
// the same quantized model (rank 0 alone should pass a sink; no journal). The same output as
// one rank up to the order of the float64 additions; byte-identical for a fixed rank count.
QuantizeReport quantize_model(LlamaModel& m, const CalibrationSet& calib,
                              const QuantizeOptions& opt, LayerSink* sink = nullptr,
                              QuantizeJournal* journal = nullptr,
                              const Communicator* comm = nullptr);

// Rounds embeddings, norms and the LM head to fp16 values (they stay 16-bit, as in the paper).
void round_fp_parts_to_half(LlamaModel& m);

// Bits per weight over all quantized linears (codes + scales + U,V); 16 for an FP model.
double model_bits_per_weight(const LlamaModel& m);

}  // namespace lrc
