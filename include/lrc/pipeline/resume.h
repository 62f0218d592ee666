// Resumable quantization (issue 27): the work area of one `lrc quantize` run, inside its
// output's <out>.partial directory (<out>.partial/resume/):
//   fingerprint.json       what the run depends on (model files' sizes and mtimes, tokenizer,
//                          calibration sha256, every option, lrc version, threads, BLAS core)
//   allocation.json        --rank-alloc error: the probe pass's ranks and its record
//   layer-NNNNN.rec        layer NNNNN as the LayerSink received it (norms, packed Ŵ codes,
//                          scales, zeros, U, V, Q_a, rank) and its linears' reports
//   hidden-NNNNN.rec       the calibration hidden states entering layer NNNNN + 1 (and with
//                          --target fp the FP twin's); only the newest is kept, and not after
//                          every layer when they are large (HiddenPolicy)
// Every file is written to a temporary name, fsync'ed and renamed (then the directory is
// fsync'ed), so a record exists only once complete: a kill -9 at any moment leaves the work area
// consistent. Layer and hidden records are fsync'ed and renamed by a background thread, in
// order, so the pipeline never waits for the disk (a kill loses the records not yet renamed:
// the resume redoes those layers). The pipeline (quantize_model) restores the finished
// layers, hands them to the sink again (the checkpoint is rewritten from the start, byte for byte) and goes on from the
// newest hidden states; CheckpointWriter::finish removes the work area before its rename.
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lrc/model/llama.h"
#include "lrc/pipeline/quantize_model.h"

namespace lrc {

// The work area's folder name inside <out>.partial.
inline constexpr const char* kResumeDirName = "resume";

// The fingerprint of a run: {"lrc_version", "model": {file: "size mtime"}, "tokenizer",
// "calibration_sha256", "options": opt.to_json() + what it leaves out, "threads", "blas_core"}.
// model and tokenizer are paths as given (a directory lists its regular files).
nlohmann::json run_fingerprint(const std::string& model, const std::string& tokenizer,
                               const CalibrationSet& calib, const QuantizeOptions& opt);

// The first difference between two fingerprints as "<what> differs (recorded X, now Y)", or ""
// when they are equal.
std::string fingerprint_difference(const nlohmann::json& recorded, const nlohmann::json& now);

// After which layers the hidden states are recorded. A resume restarts after the newest record,
// so sparser records lose more work to a kill but cost less: at Llama-2-7B's shape over 128 x
// 2048 tokens they are 4.3 GB, ~5 s of download, write and fsync, a quarter of a layer's work on
// an H100. every = N: after layers N-1, 2N-1, ...; every = 0 (auto): after every layer while
// they are at most small_bytes, else after the first layer that ends interval_s seconds or more
// after the last record. Never after the last layer (the checkpoint is written next).
struct HiddenPolicy {
  int every = 0;
  double interval_s = 120;
  size_t small_bytes = size_t{256} << 20;
};

class QuantizeJournal {
 public:
  // out: the final checkpoint directory. resume = false: any <out>.partial is replaced (a fresh
  // run, as without a journal); true: an existing work area must carry the same fingerprint
  // (else lrc::Error naming what differs), a missing one starts from layer 0 (with a note).
  // rank > 0 (several ranks, communicator.h): that rank's own work area,
  // <out>.partial/resume/rank-R (its hidden states are its share of the sequences); a fresh
  // one replaces only that folder, so rank 0's journal is made first.
  QuantizeJournal(const std::string& out, nlohmann::json fingerprint, bool resume, int rank = 0);
  ~QuantizeJournal();  // commits the records still queued
  QuantizeJournal(const QuantizeJournal&) = delete;
  QuantizeJournal& operator=(const QuantizeJournal&) = delete;

  // Layers 0 .. layers_done()-1 were finished by an earlier run (0 for a fresh run), and
  // hidden states after the last of them are there.
  int layers_done() const { return done_; }
  void restore_layer(int i, const LlamaConfig& cfg, LlamaLayer& L,
                     std::vector<LinearReport>& reports, QuantizeReport::LayerTimes& times) const;
  // h [nh] (and hf [nhf] when the record has them; nhf = 0 without) after layer
  // layers_done() - 1, into host memory; sizes must match.
  void restore_hidden(float* h, size_t nh, float* hf, size_t nhf) const;
  void set_hidden_policy(const HiddenPolicy& p) { policy_ = p; }
  // Several ranks: each keeps its two newest hidden records, since a kill can land between two
  // ranks' writes of the same layer, and they resume at the layer all of them finished
  // (restore_to; done <= layers_done(), lrc::Error when the hidden states after it are gone).
  void keep_hidden_records(int n) { keep_ = n < 1 ? 1 : n; }
  void restore_to(int done);
  // Whether record_layer(i, ...) of a model of n_layers layers, whose hidden states take bytes,
  // is to carry them (policy above).
  bool hidden_due(int i, int n_layers, size_t bytes) const;
  // Layer i is final (norms, linears with biases, Q_a): its record, then with `hidden` the
  // hidden states after it, h and hf (empty without --target fp), which the journal keeps
  // until its thread has written them (and the older record goes). A second hidden record
  // waits for the first to be written (at most one copy pending).
  void record_layer(int i, const LlamaConfig& cfg, const LlamaLayer& L,
                    const std::vector<LinearReport>& reports,
                    const QuantizeReport::LayerTimes& times, bool hidden,
                    std::vector<float> h = {}, std::vector<float> hf = {});

  // Waits until every record so far is durable; lrc::Error if one could not be written.
  void flush();

  // --rank-alloc error: the probe's decision, if an earlier run recorded it.
  std::optional<nlohmann::json> allocation() const;
  void record_allocation(const nlohmann::json& a);

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;  // <out>.partial/resume
  int done_ = 0;
  HiddenPolicy policy_;
  int newest_hidden_ = -1;  // the layer after which the newest hidden record was written
  std::vector<int> hidden_;  // the layers whose hidden records exist, ascending
  int keep_ = 1;
  std::chrono::steady_clock::time_point last_hidden_ = std::chrono::steady_clock::now();  // when
  class Committer;                       // the background fsync-and-rename (resume.cpp)
  std::unique_ptr<Committer> committer_;  // started by the first record_layer
};

// Whether the work area under `partial` (a <out>.partial directory) holds a finished layer.
bool work_area_has_layers(const std::string& partial);

}  // namespace lrc
