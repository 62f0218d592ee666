#include "lrc/quant/solver_backend.h"

#include <chrono>

#include "lrc/core/error.h"
#include "lrc/quant/fp_target.h"
#include "lrc/quant/objective.h"
#include "lrc/quant/svd_baseline.h"

namespace lrc {

#ifdef LRC_HAVE_CUDA_SOLVER
// src/quant/cuda/solver_backend_cuda.cu
SolverBackendPtr make_cuda_solver_backend(int device);
CommunicatorPtr make_nccl_communicator_cuda(CommunicatorPtr bootstrap, int device);
#endif

void StatsSink::add_device(const float*, int64_t, const float*) {
  fail("StatsSink::add_device", "these statistics are summed in host memory");
}

namespace {

using Clock = std::chrono::steady_clock;

// Adds the seconds since it was made to *acc when it goes out of scope.
class Timer {
 public:
  explicit Timer(double& acc) : acc_(acc), t0_(Clock::now()) {}
  ~Timer() { acc_ += std::chrono::duration<double>(Clock::now() - t0_).count(); }

 private:
  double& acc_;
  Clock::time_point t0_;
};

class CpuStatsSink final : public StatsSink {
 public:
  CpuStatsSink(int d, const ActQuantSpec& act, bool cross, StatsPrecision p, double& seconds)
      : acc_(d, act, cross, p), seconds_(seconds) {}
  void add(const float* x, int64_t n, const float* x_fp) override {
    Timer t(seconds_);
    acc_.add(x, n, x_fp);
  }
  LayerStats finish() override { return acc_.take(); }

 private:
  StatsAccumulator acc_;
  double& seconds_;
};

// Today's functions, unchanged: the CPU numbers are those before the seam, bit for bit.
class CpuSolverBackend final : public SolverBackend {
 public:
  std::string name() const override { return "cpu"; }
  std::unique_ptr<StatsSink> stats(int d, const ActQuantSpec& act, bool cross,
                                   StatsPrecision precision) const override {
    return std::make_unique<CpuStatsSink>(d, act, cross, precision, times_.stats);
  }
  PackedWeight gptq(const float* W, int d_out, int d_in, const LayerStats& stats,
                    const WeightQuantSpec& spec, const GptqOptions& opt) const override {
    Timer t(times_.gptq);
    return lrc::gptq(W, d_out, d_in, stats.xx.data(), spec, opt);
  }
  LowRankQuantized lrc(const float* W, int d_out, int d_in, const LayerStats& stats,
                       const LrcOptions& opt) const override {
    LrcOptions o = opt;
    double g = 0;
    o.gptq_seconds = &g;
    const auto t0 = Clock::now();
    LowRankQuantized r = lrc_quantize(W, d_out, d_in, stats, o);
    times_.lrc += std::chrono::duration<double>(Clock::now() - t0).count() - g;
    times_.gptq += g;
    if (opt.gptq_seconds) *opt.gptq_seconds += g;
    return r;
  }
  LowRankQuantized svd(const float* W, int d_out, int d_in, const LayerStats& stats, int rank,
                       const WeightQuantSpec& spec, const GptqOptions& opt) const override {
    Timer t(times_.svd);
    return svd_quantize(W, d_out, d_in, stats, rank, spec, opt);
  }
  std::vector<float> fp_target(const float* W, int d_out, int d_in, const LayerStats& stats,
                               double eps_rel, const char* where, double mix,
                               DampingLog* log) const override {
    Timer t(times_.fp_target);
    return fp_target_weights(W, d_out, d_in, stats, eps_rel, where, mix, log);
  }
  double objective(const float* W, const float* w_hat, const float* u, const float* v, int rank,
                   int d_out, int d_in, const LayerStats& stats) const override {
    Timer t(times_.objective);
    return lrc_objective(W, w_hat, u, v, rank, d_out, d_in, stats);
  }
  std::vector<double> objectives(const float* W, int d_out, int d_in,
                                 const std::vector<Eq2Candidate>& candidates,
                                 const LayerStats& stats, double* energy) const override {
    Timer t(times_.objective);
    return eq2_objectives(W, d_out, d_in, candidates, stats, energy);
  }
  double output_energy(const float* W, int d_out, int d_in,
                       const LayerStats& stats) const override {
    Timer t(times_.objective);
    return lrc::output_energy(W, d_out, d_in, stats);
  }
};

}  // namespace

std::vector<double> SolverBackend::objectives(const float* W, int d_out, int d_in,
                                              const std::vector<Eq2Candidate>& candidates,
                                              const LayerStats& stats, double* energy) const {
  std::vector<double> out;
  for (const Eq2Candidate& c : candidates)
    out.push_back(objective(W, c.w_hat, c.u, c.v, c.rank, d_out, d_in, stats));
  if (energy) *energy = output_energy(W, d_out, d_in, stats);
  return out;
}

void SolverBackend::all_reduce(LayerStats& s, const Communicator& comm) const {
  if (comm.size() == 1) return;
  if (s.device) fail(name(), "this solver backend cannot all-reduce device statistics");
  all_reduce_host(s, comm);
}

void SolverBackend::all_reduce_host(LayerStats& s, const Communicator& comm) {
  for (std::vector<double>* v : {&s.xx, &s.yy, &s.xy, &s.fx, &s.xx_diag, &s.yy_diag})
    comm.all_reduce_sum(v->data(), v->size());  // every rank has the same arrays (or none)
  double n = static_cast<double>(s.n);  // exact below 2^53 tokens
  comm.all_reduce_sum(&n, 1);
  s.n = static_cast<int64_t>(n);
}

SolverBackendPtr cpu_solver_backend() { return std::make_shared<CpuSolverBackend>(); }

CommunicatorPtr make_nccl_communicator(CommunicatorPtr bootstrap, int device) {
#ifdef LRC_HAVE_CUDA_SOLVER
  return make_nccl_communicator_cuda(std::move(bootstrap), device);
#else
  (void)bootstrap;
  (void)device;
  fail("nccl", "this lrc was built without CUDA");
#endif
}

bool cuda_solver_built() {
#ifdef LRC_HAVE_CUDA_SOLVER
  return true;
#else
  return false;
#endif
}

SolverBackendPtr make_solver_backend(const std::string& device) {
  if (device == "cpu") return cpu_solver_backend();
  if (device.rfind("cuda", 0) != 0)
    fail("--device", "expected cpu or cuda[:N], got '" + device + "'");
  int index = 0;
  if (device.size() > 4) {
    const std::string n = device.substr(5);
    if (device[4] != ':' || n.empty() || n.size() > 3 ||
        n.find_first_not_of("0123456789") != std::string::npos)
      fail("--device", "expected cuda or cuda:N, got '" + device + "'");
    index = std::stoi(n);
  }
#ifdef LRC_HAVE_CUDA_SOLVER
  return make_cuda_solver_backend(index);
#else
  (void)index;
  fail("--device", "'" + device +
                       "': this lrc was built without CUDA (-DLRC_CUDA=OFF or no nvcc found); "
                       "rebuild with -DLRC_CUDA=ON or use --device cpu");
#endif
}

}  // namespace lrc
