// The seam between the layer pipeline and the float64 linear algebra of the quantization core
// (issue 24): one linear group's statistics, then per linear GPTQ, the LRC solves, the SVD
// baseline, FP targets and the eq. 2 objective. Implementations:
//   cpu_solver_backend()           the functions of stats.h, gptq.h, lrc_solver.h,
//                                  svd_baseline.h, fp_target.h, objective.h (OpenBLAS,
//                                  LAPACKE), called unchanged: the CPU numbers stay bit for bit
//   make_solver_backend("cuda[:N]")  src/quant/cuda: the same algorithms on one GPU with cuBLAS
//                                  (DSYRK/DGEMM/TRSM) and cuSOLVER (potrf/potrs/trtri, syevdx,
//                                  geqrf), a GPTQ sweep kernel and a Q_a kernel. Same math, other
//                                  summation orders: not bit-identical to the CPU
//                                  (tests/cuda/test_cuda_solver.cpp bounds the difference).
// A device backend's statistics stay resident on the device (LayerStats::device) while the
// group's linears are solved, so each solve starts from device memory; host copies of the
// matrices are filled as well (checks, reports, the CPU fallbacks).
// Not thread-safe: one backend object serves one pipeline at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lrc/core/communicator.h"
#include "lrc/format/packed_weight.h"
#include "lrc/quant/gptq.h"
#include "lrc/quant/lrc_solver.h"
#include "lrc/quant/objective.h"
#include "lrc/quant/stats.h"
#include "lrc/quant/weight_quant.h"

namespace lrc {

// Streams one linear group's inputs into LayerStats (the interface of StatsAccumulator).
class StatsSink {
 public:
  virtual ~StatsSink() = default;
  // x [n_tokens x d] row-major host memory; x_fp the FP model's inputs (LayerStats::fx).
  virtual void add(const float* x, int64_t n_tokens, const float* x_fp = nullptr) = 0;
  // The same with x and x_fp in the memory of the GPU this backend runs on (the calibration
  // forward's own buffers: nothing crosses PCIe); only where takes_device_memory(). Returns
  // once the sink has read them.
  virtual bool takes_device_memory() const { return false; }
  virtual void add_device(const float* x, int64_t n_tokens, const float* x_fp = nullptr);
  virtual LayerStats finish() = 0;  // once, after the last add
  // The caller needs the statistics only through this backend's solvers: finish() may leave
  // the host matrices out (LayerStats::device_only). A no-op where they are the only copy.
  virtual void skip_host_copy() {}
};

// Seconds spent in each kind of work since the backend was made (device work synchronised
// before the clock is read). GPTQ inside LRC's Update-Quant counts as gptq.
struct SolverTimes {
  double stats = 0, gptq = 0, lrc = 0, svd = 0, objective = 0, fp_target = 0;
};

class SolverBackend {
 public:
  virtual ~SolverBackend() = default;
  virtual std::string name() const = 0;  // "cpu", or "cuda:0 (NVIDIA H100 80GB HBM3)"

  // The statistics of one group (arguments as StatsAccumulator's).
  virtual std::unique_ptr<StatsSink> stats(int d, const ActQuantSpec& act, bool cross,
                                           StatsPrecision precision) const = 0;
  // GPTQ with H = stats.xx (the QuaRot baseline; gptq.h).
  virtual PackedWeight gptq(const float* W, int d_out, int d_in, const LayerStats& stats,
                            const WeightQuantSpec& spec, const GptqOptions& opt) const = 0;
  // Algorithm 1 (lrc_solver.h).
  virtual LowRankQuantized lrc(const float* W, int d_out, int d_in, const LayerStats& stats,
                               const LrcOptions& opt) const = 0;
  // GPTQ on XXᵀ, then the best rank-k approximation of W − Ŵ (svd_baseline.h).
  virtual LowRankQuantized svd(const float* W, int d_out, int d_in, const LayerStats& stats,
                               int rank, const WeightQuantSpec& spec,
                               const GptqOptions& opt) const = 0;
  // FP-model targets (fp_target.h; a raised eps_rel goes to *log).
  virtual std::vector<float> fp_target(const float* W, int d_out, int d_in,
                                       const LayerStats& stats, double eps_rel, const char* where,
                                       double mix, DampingLog* log = nullptr) const = 0;
  // Eq. 2 from statistics and ‖WX‖² (objective.h).
  virtual double objective(const float* W, const float* w_hat, const float* u, const float* v,
                           int rank, int d_out, int d_in, const LayerStats& stats) const = 0;
  virtual double output_energy(const float* W, int d_out, int d_in,
                               const LayerStats& stats) const = 0;
  // Eq. 2 of each candidate for W and (energy non-null) ‖WX‖², as the pipeline reports them
  // (objective.h: eq2_objectives). This default calls objective() and output_energy(); a
  // backend may share the products with the statistics between them.
  virtual std::vector<double> objectives(const float* W, int d_out, int d_in,
                                         const std::vector<Eq2Candidate>& candidates,
                                         const LayerStats& stats, double* energy) const;

  // A promise from the caller: W [d_out x d_in] (host memory) stays unchanged until the
  // returned handle is released. Meanwhile a device backend keeps one device copy of it for
  // every call given this pointer and shape (each would upload W again: a linear's LRC, its
  // GPTQ guard and its eq. 2 reports). The CPU keeps nothing (null).
  virtual std::shared_ptr<const void> keep_resident(const float* W, int d_out, int d_in) const {
    (void)W;
    (void)d_out;
    (void)d_in;
    return nullptr;
  }

  // Several ranks (communicator.h): stats, each rank's sums over its share of the calibration
  // tokens, become the sums over every rank's (float64, added in rank order): the matrices,
  // their diagonals and n. This default reduces the host arrays; a device backend reduces its
  // device copies (through NCCL where comm has device memory, else through the host).
  virtual void all_reduce(LayerStats& stats, const Communicator& comm) const;

  const SolverTimes& times() const { return times_; }
  // Peak device memory this backend's process has had allocated (bytes), 0 on the CPU.
  virtual int64_t peak_device_bytes() const { return 0; }

 protected:
  // all_reduce's host part: the host matrices (those present), diagonals and n.
  static void all_reduce_host(LayerStats& stats, const Communicator& comm);
  mutable SolverTimes times_;
};

using SolverBackendPtr = std::shared_ptr<const SolverBackend>;

// The CPU backend: today's functions, bit for bit.
SolverBackendPtr cpu_solver_backend();
// "cpu" or "cuda" / "cuda:N". Throws lrc::Error naming --device for anything else, when this
// build has no CUDA (-DLRC_CUDA=OFF or no nvcc) or when no usable GPU is present.
SolverBackendPtr make_solver_backend(const std::string& device);
// Whether this binary was built with the CUDA solver backend.
bool cuda_solver_built();

// Several ranks on GPUs (issue 30): an NCCL communicator for this rank's GPU `device`, set up
// through `bootstrap` (which keeps carrying the host-memory collectives). lrc::Error when NCCL
// cannot be loaded (libnccl.so.2 is opened at run time) or this build has no CUDA.
CommunicatorPtr make_nccl_communicator(CommunicatorPtr bootstrap, int device);

}  // namespace lrc
