// The CUDA SolverBackend (solver_backend.h): statistics, GPTQ, LRC (Init-LR, Update-Quant,
// Update-LR), the SVD baseline, FP targets and the eq. 2 objective on one GPU, float64
// throughout, with cuBLAS and cuSOLVER. The algorithms are those of the CPU files named at each
// function, step for step; what differs is the order of cuBLAS/cuSOLVER's reductions, and:
//   * Init-LR factors M = Σx − Σxy Σy⁻¹ Σyx by its eigendecomposition (cuSOLVER has no pivoted
//     Cholesky): F = W Q_r Λ_r^½ over the eigenvalues above the tolerance the CPU's dpstrf
//     stops at (d·eps·max diag Σx), so a singular M drops the same directions.
//   * The regularised covariances, their Cholesky factors and M's factor are kept for the
//     group (the q/k/v or gate/up linears share them) while its statistics are the same.
#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <numeric>
#include <optional>
#include <string>

#include "lrc/core/error.h"
#include "lrc/format/code_packing.h"
#include "lrc/quant/damping.h"
#include "lrc/quant/rank.h"
#include "lrc/quant/solver_backend.h"
#include "quant/cuda/device_linalg.cuh"
#include "quant/finite_check.h"

namespace lrc {

using qcuda::DeviceArray;
using qcuda::DeviceMatrix;
using qcuda::Gpu;
using qcuda::Prof;

namespace {

using Clock = std::chrono::steady_clock;

// Stream-ordered work is synchronised before the clock is read.
class GpuTimer {
 public:
  GpuTimer(const Gpu& g, double& acc) : g_(g), acc_(acc), t0_(Clock::now()) {}
  ~GpuTimer() {
    cudaStreamSynchronize(g_.stream());
    acc_ += std::chrono::duration<double>(Clock::now() - t0_).count();
  }

 private:
  const Gpu& g_;
  double& acc_;
  Clock::time_point t0_;
};

// (quant_detail::require_finite: one pass on every core, the first bad entry named.)
void require_finite_host(const float* p, int64_t rows, int64_t cols, const char* where,
                         const char* what) {
  quant_detail::require_finite(p, rows, cols, where, what);
}

void gemm(const Gpu& g, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
          double alpha, const double* A, int lda, const double* B, int ldb, double beta,
          double* C, int ldc) {
  if (m == 0 || n == 0) return;
  LRC_CU(cublasDgemm(g.blas(), ta, tb, m, n, k, &alpha, A, lda, B, ldb, &beta, C, ldc));
}

// ------------------------------------------------------------------ statistics

constexpr int64_t kChunkTokens = 4096;  // tokens per cuBLAS call (scratch ~ 24 B x tokens x d)

class CudaStatsSink final : public StatsSink {
 public:
  CudaStatsSink(std::shared_ptr<Gpu> gpu, int d, const ActQuantSpec& act, bool cross,
                StatsPrecision p, double& seconds)
      : gpu_(std::move(gpu)), d_(d), act_(act), cross_(cross), precision_(p), seconds_(seconds) {
    if (d <= 0)
      fail("StatsAccumulator", "feature size d must be positive, got " + std::to_string(d));
    if (act.enabled()) {
      if (act.bits < 2 || act.bits > 8)
        fail("StatsAccumulator", "activation bits must be in 2..8 (or >= 16 for none), got " +
                                     std::to_string(act.bits));
      if (act.groupsize < 0 || (act.groupsize > 0 && d % act.groupsize != 0))
        fail("StatsAccumulator", "activation groupsize " + std::to_string(act.groupsize) +
                                     " does not divide d = " + std::to_string(d));
    }
    quantized_ = act.enabled() && cross;
  }

  // Paper Alg. 1 lines 3-5 (unregularised), streamed: XXᵀ, YYᵀ (DSYRK), XYᵀ, X̄Xᵀ (DGEMM).
  void add(const float* x, int64_t n_tokens, const float* x_fp) override {
    sum(x, n_tokens, x_fp, /*on_device=*/false);
  }
  bool takes_device_memory() const override { return true; }
  void add_device(const float* x, int64_t n_tokens, const float* x_fp) override {
    sum(x, n_tokens, x_fp, /*on_device=*/true);
    LRC_CU(cudaStreamSynchronize(gpu_->stream()));  // the caller may reuse x now
  }

  // x, x_fp [n_tokens x d] in host memory (uploaded chunk by chunk) or device memory (read in
  // place).
  void sum(const float* x, int64_t n_tokens, const float* x_fp, bool on_device) {
    const Gpu& g = *gpu_;
    GpuTimer t(g, seconds_);
    const Prof prof(g, "stats (sum)");
    if (n_tokens < 0) fail("StatsAccumulator::add", "negative token count");
    if ((x_fp != nullptr) != static_cast<bool>(fx_) && n_ > 0)
      fail("StatsAccumulator::add", "FP-model inputs must come with every call or with none");
    if (n_tokens == 0) return;
    start();
    if (x_fp && !fx_) fx_ = zero_matrix();
    const int d = d_;
    const int64_t chunk = std::min(n_tokens, kChunkTokens);
    const size_t cap = static_cast<size_t>(chunk) * d;
    if (xf_.size() < cap) {
      xf_ = DeviceArray<float>();
      xd_ = DeviceArray<double>();
      yf_ = DeviceArray<float>();
      yd_ = DeviceArray<double>();
      ff_ = DeviceArray<float>();
      fd_ = DeviceArray<double>();
      xf_ = DeviceArray<float>(cap, g.stream());
      if (quantized_) yf_ = DeviceArray<float>(cap, g.stream());
      if (precision_ == StatsPrecision::Float64) {
        xd_ = DeviceArray<double>(cap, g.stream());
        if (quantized_) yd_ = DeviceArray<double>(cap, g.stream());
      }
    }
    if (x_fp && ff_.size() < cap) {
      ff_ = DeviceArray<float>(cap, g.stream());
      if (precision_ == StatsPrecision::Float64) fd_ = DeviceArray<double>(cap, g.stream());
    }
    if (precision_ == StatsPrecision::Mixed && c_.size() == 0)
      c_ = DeviceArray<float>(static_cast<size_t>(d) * d, g.stream());
    const double one = 1.0;
    const float onef = 1.f, zerof = 0.f;
    for (int64_t t0 = 0; t0 < n_tokens; t0 += chunk) {
      const int m = static_cast<int>(std::min(chunk, n_tokens - t0));
      const size_t len = static_cast<size_t>(m) * d;
      // Tokens are rows of x, so the chunk is the paper's X (d x m) in column-major order.
      const float* xc = x + t0 * d;  // the chunk in device memory
      const float* fc = x_fp ? x_fp + t0 * d : nullptr;
      if (on_device) {
        check_finite(xc, len, "activations x");
        if (fc) check_finite(fc, len, "FP activations");
      } else {
        upload_checked(xc, xf_.data(), len, "activations x");
        xc = xf_.data();
        if (fc) upload_checked(fc, ff_.data(), len, "FP activations");
        if (fc) fc = ff_.data();
      }
      if (quantized_)
        qcuda::quantize_activations(xc, m, d, act_.bits, act_.clip, act_.groupsize, yf_.data(),
                                    g.stream());
      if (precision_ == StatsPrecision::Float64) {
        qcuda::widen(xc, xd_.data(), len, g.stream());
        if (x_fp) {
          qcuda::widen(fc, fd_.data(), len, g.stream());
          gemm(g, CUBLAS_OP_N, CUBLAS_OP_T, d, d, m, 1.0, fd_.data(), d, xd_.data(), d, 1.0,
               fx_->data(), d);
        }
        LRC_CU(cublasDsyrk(g.blas(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, d, m, &one, xd_.data(),
                           d, &one, xx_->data(), d));
        if (!quantized_) continue;
        qcuda::widen(yf_.data(), yd_.data(), len, g.stream());
        LRC_CU(cublasDsyrk(g.blas(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, d, m, &one, yd_.data(),
                           d, &one, yy_->data(), d));
        gemm(g, CUBLAS_OP_N, CUBLAS_OP_T, d, d, m, 1.0, xd_.data(), d, yd_.data(), d, 1.0,
             xy_->data(), d);
      } else {  // float32 within the chunk, float64 across chunks
        if (x_fp) {
          LRC_CU(cublasSgemm(g.blas(), CUBLAS_OP_N, CUBLAS_OP_T, d, d, m, &onef, fc, d, xc, d,
                             &zerof, c_.data(), d));
          qcuda::accumulate(c_.data(), fx_->data(), d, false, g.stream());
        }
        LRC_CU(cublasSsyrk(g.blas(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, d, m, &onef, xc, d,
                           &zerof, c_.data(), d));
        qcuda::accumulate(c_.data(), xx_->data(), d, true, g.stream());
        if (!quantized_) continue;
        LRC_CU(cublasSsyrk(g.blas(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, d, m, &onef, yf_.data(),
                           d, &zerof, c_.data(), d));
        qcuda::accumulate(c_.data(), yy_->data(), d, true, g.stream());
        LRC_CU(cublasSgemm(g.blas(), CUBLAS_OP_N, CUBLAS_OP_T, d, d, m, &onef, xc, d,
                           yf_.data(), d, &zerof, c_.data(), d));
        qcuda::accumulate(c_.data(), xy_->data(), d, false, g.stream());
      }
    }
    n_ += n_tokens;
  }

  LayerStats finish() override {
    const Gpu& g = *gpu_;
    GpuTimer t(g, seconds_);
    const Prof prof(g, "stats (finish)");
    xf_ = DeviceArray<float>();
    xd_ = DeviceArray<double>();
    yf_ = DeviceArray<float>();
    yd_ = DeviceArray<double>();
    ff_ = DeviceArray<float>();
    fd_ = DeviceArray<double>();
    c_ = DeviceArray<float>();
    start();
    auto dev = std::make_shared<DeviceStats>();
    dev->gpu = gpu_;
    dev->device = g.device();
    dev->d = d_;
    g.symmetrize_lower(*xx_);
    LayerStats s;
    s.d = d_;
    s.n = n_;
    s.device_only = !host_copy_;
    s.device_cross = cross_;
    // (skip_host_copy: only the diagonals come back; every input chunk was checked finite on
    // the device, and float products summed in float64 cannot overflow.)
    auto host = [&](const DeviceMatrix& m) {
      return host_copy_ ? g.download(m) : std::vector<double>();
    };
    s.xx = host(*xx_);
    if (!host_copy_) s.xx_diag = diagonal(*xx_);
    dev->xx = xx_;
    if (fx_) {
      s.fx = host(*fx_);
      dev->fx = fx_;
    }
    if (cross_) {
      if (act_.enabled()) {
        g.symmetrize_lower(*yy_);
        s.yy = host(*yy_);
        s.xy = host(*xy_);
        if (!host_copy_) s.yy_diag = diagonal(*yy_);
        dev->yy = yy_;
        dev->xy = xy_;
      } else {
        s.yy = s.xx;
        s.xy = s.xx;
        s.yy_diag = s.xx_diag;
        dev->yy = dev->xy = xx_;
        dev->y_is_x = true;
      }
    }
    s.device = std::move(dev);
    // The matrices now belong to the LayerStats; a later add() starts new sums (the CPU's
    // finish() is a snapshot, but no caller adds after it).
    xx_.reset();
    yy_.reset();
    xy_.reset();
    fx_.reset();
    n_ = 0;
    return s;
  }

 private:
  void start() {
    if (xx_) return;
    xx_ = zero_matrix();
    if (quantized_) {
      yy_ = zero_matrix();
      xy_ = zero_matrix();
    }
  }

  void skip_host_copy() override { host_copy_ = false; }

  // The diagonal of a d x d device matrix, [d] on the host.
  std::vector<double> diagonal(const DeviceMatrix& m) const {
    std::vector<double> out(static_cast<size_t>(d_));
    LRC_CU(cudaMemcpy2DAsync(out.data(), sizeof(double), m.data(),
                             (static_cast<size_t>(d_) + 1) * sizeof(double), sizeof(double),
                             static_cast<size_t>(d_), cudaMemcpyDeviceToHost, gpu_->stream()));
    LRC_CU(cudaStreamSynchronize(gpu_->stream()));
    return out;
  }

  std::shared_ptr<DeviceMatrix> zero_matrix() const {
    auto m = std::make_shared<DeviceMatrix>(gpu_->matrix(d_, d_));
    LRC_CU(cudaMemsetAsync(m->data(), 0, m->size() * sizeof(double), gpu_->stream()));
    return m;
  }

  // A non-finite value in device memory stops with its position (Inf/NaN in activations mean
  // the model or the calibration diverged; summing them would poison every solve).
  void check_finite(const float* dev, size_t len, const char* what) const {
    const int64_t bad = qcuda::first_non_finite(dev, len, gpu_->stream());
    if (bad < 0) return;
    float v = 0;
    LRC_CU(cudaMemcpy(&v, dev + bad, sizeof v, cudaMemcpyDeviceToHost));
    fail("StatsAccumulator::add", std::string(what) + " has a non-finite value (" +
                                      std::to_string(static_cast<double>(v)) + ") at [" +
                                      std::to_string(bad / d_) + ", " +
                                      std::to_string(bad % d_) + "]");
  }

  void upload_checked(const float* host, float* dev, size_t len, const char* what) const {
    LRC_CU(cudaMemcpyAsync(dev, host, len * sizeof(float), cudaMemcpyHostToDevice,
                           gpu_->stream()));
    const int64_t bad = qcuda::first_non_finite(dev, len, gpu_->stream());
    if (bad >= 0)
      fail("StatsAccumulator::add",
           std::string(what) + " has a non-finite value (" +
               std::to_string(static_cast<double>(host[bad])) + ") at [" +
               std::to_string(bad / d_) + ", " + std::to_string(bad % d_) + "]");
  }

  std::shared_ptr<Gpu> gpu_;
  int d_;
  ActQuantSpec act_;
  bool cross_, quantized_ = false, host_copy_ = true;
  StatsPrecision precision_;
  double& seconds_;
  int64_t n_ = 0;
  std::shared_ptr<DeviceMatrix> xx_, yy_, xy_, fx_;  // lower triangles valid until finish()
  DeviceArray<float> xf_, yf_, ff_, c_;
  DeviceArray<double> xd_, yd_, fd_;
};

// ------------------------------------------------------------------ solvers

// U [rows x k] and Σ's top-k eigenvalues (quant_detail::TopEigen on the device).
struct DevEigen {
  DeviceMatrix u;
  std::vector<double> lambda;
};

// The regularised covariances of one group and what is derived from them (lrc_solver.cpp).
struct GroupCov {
  std::shared_ptr<const DeviceStats> key;  // held: its address stays this group's
  LrcRegularization reg{};
  double eps_rel = -1;
  int d = 0;
  double eps_x = 0, eps_y = 0;
  DeviceMatrix sx, sy, sxy;  // Σx, Σy, Σxy (= XYᵀ + ridge)
  DeviceMatrix Ly, Lx;       // lower Cholesky factors of Σy, Σx (empty until needed)
  DeviceMatrix mq;           // M's factor Q_r Λ_r^½ (d x r), empty until needed
  bool have_mq = false;
};

class CudaSolverBackend final : public SolverBackend {
 public:
  explicit CudaSolverBackend(int device) : gpu_(std::make_shared<Gpu>(device)) {}
  ~CudaSolverBackend() override { cov_.reset(); }

  std::string name() const override { return gpu_->name(); }
  int64_t peak_device_bytes() const override { return qcuda::device_bytes_peak(); }

  std::unique_ptr<StatsSink> stats(int d, const ActQuantSpec& act, bool cross,
                                   StatsPrecision precision) const override {
    drop_group();
    return std::make_unique<CudaStatsSink>(gpu_, d, act, cross, precision, times_.stats);
  }

  // Several ranks: the host arrays as on the CPU, the device matrices through NCCL where comm
  // has device memory, else down to the host, all-reduced there and up again (same order of
  // additions as the host arrays: rank 0 sums in rank order).
  void all_reduce(LayerStats& s, const Communicator& comm) const override {
    if (comm.size() == 1) return;
    all_reduce_host(s, comm);  // host arrays (diagonals at least) and n
    const std::shared_ptr<const DeviceStats>& dev = s.device;
    if (!dev) return;
    std::vector<DeviceMatrix*> ms;  // each distinct matrix once (yy = xy = xx without Q_a)
    for (const auto& m : {dev->xx, dev->yy, dev->xy, dev->fx})
      if (m && m->size() > 0 && std::find(ms.begin(), ms.end(), m.get()) == ms.end())
        ms.push_back(m.get());
    gpu_->sync();
    const Prof prof(*gpu_, "all-reduce");
    std::vector<double> host;
    for (DeviceMatrix* m : ms) {
      if (comm.device_memory()) {
        comm.all_reduce_sum_device(m->data(), m->size());
        continue;
      }
      host.resize(m->size());
      LRC_CU(cudaMemcpy(host.data(), m->data(), host.size() * sizeof(double),
                        cudaMemcpyDeviceToHost));
      comm.all_reduce_sum(host.data(), host.size());
      LRC_CU(cudaMemcpy(m->data(), host.data(), host.size() * sizeof(double),
                        cudaMemcpyHostToDevice));
    }
  }

  PackedWeight gptq(const float* W, int d_out, int d_in, const LayerStats& stats,
                    const WeightQuantSpec& spec, const GptqOptions& opt) const override {
    const char* where = "gptq";
    check_shape(d_out, d_in, where);
    check_weight_quant_spec(spec, d_in, where);
    check_gptq_options(opt);
    require_finite_host(W, d_out, d_in, where, "W");
    check_stats(stats, d_in, where, /*xx_only=*/true);
    const auto held = resident_ptr(stats);
    const DeviceStats& ds = *held;
    GpuTimer t(*gpu_, times_.gptq);
    DeviceMatrix w = weight_copy(W, d_out, d_in);
    return gptq_device(w, *ds.xx, spec, opt);
  }

  // Algorithm 1 (lrc_solver.cpp, lrc_quantize).
  LowRankQuantized lrc(const float* W, int d_out, int d_in, const LayerStats& stats,
                       const LrcOptions& opt) const override {
    const char* where = "lrc_quantize";
    check_shape(d_out, d_in, where);
    check_weight_quant_spec(opt.w, d_in, where);
    check_rank(opt.rank, d_out, d_in, where);
    if (opt.iters < 1)
      fail(where, "LrcOptions.iters must be >= 1, got " + std::to_string(opt.iters));
    require_finite_host(W, d_out, d_in, where, "W");
    check_stats(stats, d_in, where);
    if (opt.use_gptq) check_gptq_options(opt.gptq);
    // A failed factorisation reruns the whole algorithm with eps_rel ×10 (damping.h).
    return with_damping(opt.eps_rel, "lrc: eps_rel", opt.log, [&](double eps_rel) {
      LrcOptions o = opt;
      o.eps_rel = eps_rel;
      return lrc_at(W, d_out, d_in, stats, o);
    });
  }

  // Algorithm 1 at opt.eps_rel (lrc() has checked its arguments).
  LowRankQuantized lrc_at(const float* W, int d_out, int d_in, const LayerStats& stats,
                          const LrcOptions& opt) const {
    const int k = opt.rank;
    const Gpu& g = *gpu_;
    const double t_gptq0 = times_.gptq;
    const auto t0 = Clock::now();
    const Prof prof(g, "lrc");
    GroupCov& cov = [&]() -> GroupCov& {
      const Prof p(g, "lrc: covariances");
      return covariances(stats, opt.reg, opt.eps_rel);  // lines 3-5
    }();
    const std::shared_ptr<const DeviceMatrix> Wp = weight(W, d_out, d_in);
    const DeviceMatrix& Wd = *Wp;
    DevEigen lr;
    DeviceMatrix V;
    {
      const Prof p(g, "lrc: init-lr");
      init_lr(Wd, cov, k, lr, V);  // line 6
    }
    LowRankQuantized out;
    out.w_hat.resize(static_cast<size_t>(d_out) * d_in);
    const int k_spec = std::min(std::max(k, opt.spectrum_rank), std::min(d_out, d_in));
    for (int it = 0; it < opt.iters; ++it) {
      // line 8: Update-Quant, Ŵ = Q(W̃) against H = Σy.
      DeviceMatrix target = [&] {
        const Prof p(g, "lrc: update-quant target");
        return update_quant_target(Wd, lr.u, V, k, cov);
      }();
      DeviceMatrix Wh;  // Ŵ dequantized
      if (opt.use_gptq) {
        GpuTimer tq(g, times_.gptq);
        out.packed = gptq_device(target, cov.sy, opt.w, opt.gptq, &Wh);
      } else {
        const std::vector<float> tf = g.download_float(target);
        out.packed = quantize_rtn(tf.data(), d_out, d_in, opt.w);
        const Prof p(g, "lrc: dequantize + upload");
        dequantize(out.packed, d_out, d_in, out.w_hat.data());
        Wh = g.upload(out.w_hat.data(), d_out, d_in);
      }
      // line 9: Update-LR given Ŵ (the last one with the longer spectrum, if asked for).
      const bool last = it + 1 == opt.iters;
      const Prof p(g, "lrc: update-lr");
      update_lr(Wd, Wh, cov, last ? k_spec : k, lr, V);
    }
    if (opt.use_gptq) dequantize(out.packed, d_out, d_in, out.w_hat.data());  // the host copy
    g.sync();
    const double tg = times_.gptq - t_gptq0;
    times_.lrc += std::chrono::duration<double>(Clock::now() - t0).count() - tg;
    if (opt.gptq_seconds) *opt.gptq_seconds += tg;
    out.rank = k;
    if (k > 0) {
      // keep_leading_factors: the first k columns (column-major: the first k·rows entries).
      out.u = leading_columns(lr.u, k);
      out.v = leading_columns(V, k);
    }
    out.eigenvalues = std::move(lr.lambda);
    out.objective = opt.compute_objective
                        ? objective(W, out.w_hat.data(), out.u.data(), out.v.data(), k, d_out,
                                    d_in, stats)
                        : -1.0;
    return out;
  }

  // The SVD baseline (svd_baseline.cpp): GPTQ on XXᵀ, then U = top-k left singular vectors of
  // E = W − Ŵ, V = EᵀU.
  LowRankQuantized svd(const float* W, int d_out, int d_in, const LayerStats& stats, int rank,
                       const WeightQuantSpec& spec, const GptqOptions& gopt) const override {
    const char* where = "svd_quantize";
    check_shape(d_out, d_in, where);
    check_rank(rank, d_out, d_in, where);
    check_stats(stats, d_in, where, /*xx_only=*/true);
    LowRankQuantized out;
    out.packed = gptq(W, d_out, d_in, stats, spec, gopt);
    const Gpu& g = *gpu_;
    GpuTimer t(g, times_.svd);
    out.w_hat.resize(static_cast<size_t>(d_out) * d_in);
    dequantize(out.packed, d_out, d_in, out.w_hat.data());
    out.rank = rank;
    if (rank > 0) {
      DeviceMatrix E = weight_copy(W, d_out, d_in);
      const DeviceMatrix Wh = g.upload(out.w_hat.data(), d_out, d_in);
      const double one = 1.0, minus = -1.0;
      LRC_CU(cublasDgeam(g.blas(), CUBLAS_OP_N, CUBLAS_OP_N, d_out, d_in, &one, E.data(), d_out,
                         &minus, Wh.data(), d_out, E.data(), d_out));
      DevEigen te = top_left_singular(E, rank);
      DeviceMatrix v = g.matrix(d_in, rank);
      gemm(g, CUBLAS_OP_T, CUBLAS_OP_N, d_in, rank, d_out, 1.0, E.data(), d_out, te.u.data(),
           d_out, 0.0, v.data(), d_in);
      const std::vector<double> u = g.download(te.u), vh = g.download(v);
      out.u.assign(u.begin(), u.end());
      out.v.assign(vh.begin(), vh.end());
      out.eigenvalues = std::move(te.lambda);
    }
    out.objective = stats.has_cross() ? objective(W, out.w_hat.data(), out.u.data(),
                                                  out.v.data(), rank, d_out, d_in, stats)
                                      : std::nan("");
    return out;
  }

  // fp_target.cpp: W_t = W (X̄Xᵀ + εx I)(XXᵀ + εx I)⁻¹, mixed with W.
  std::vector<float> fp_target(const float* W, int d_out, int d_in, const LayerStats& stats,
                               double eps_rel, const char* where, double mix,
                               DampingLog* log) const override {
    const int d = d_in;
    const size_t dd = static_cast<size_t>(d) * d;
    if (stats.d != d || (!stats.device_only && stats.xx.size() != dd))
      fail(where, "FP targets need XXᵀ of size " + std::to_string(d) + "²");
    if (!stats.device_only && stats.fx.size() != dd)
      fail(where, "FP targets need X̄Xᵀ (LayerStats.fx) of size " + std::to_string(d) + "²");
    for (double v : stats.fx)
      if (!std::isfinite(v)) fail(where, "LayerStats.fx has a non-finite value");
    const auto held = resident_ptr(stats);
    const DeviceStats& ds = *held;
    if (!ds.fx) fail(where, "FP targets need X̄Xᵀ (LayerStats.fx)");
    const Gpu& g = *gpu_;
    GpuTimer t(g, times_.fp_target);
    double eps = 0;
    DeviceMatrix L = with_damping(eps_rel, "fp_target: eps_rel", log, [&](double e) {
      eps = ridge_eps(stats, false, e);
      DeviceMatrix f = g.copy(*ds.xx);
      g.add_diagonal(f, eps);
      g.potrf(f, CUBLAS_FILL_MODE_LOWER, where, "XXᵀ + εx I");  // FactorizationFailed: retried
      return f;
    });
    DeviceMatrix xf = g.transpose(*ds.fx);  // X X̄ᵀ
    g.add_diagonal(xf, eps);
    const std::shared_ptr<const DeviceMatrix> Wd = weight(W, d_out, d);
    DeviceMatrix T = g.matrix(d, d_out);  // (X X̄ᵀ + εx I) Wᵀ, then Σx⁻¹ T = W_tᵀ
    gemm(g, CUBLAS_OP_N, CUBLAS_OP_T, d, d_out, d, 1.0, xf.data(), d, Wd->data(), d_out, 0.0,
         T.data(), d);
    g.potrs(L, T);
    std::vector<double> Th(T.size());  // column-major W_tᵀ = row-major W_t
    LRC_CU(cudaMemcpyAsync(Th.data(), T.data(), Th.size() * sizeof(double),
                           cudaMemcpyDeviceToHost, g.stream()));
    g.sync();
    std::vector<float> out(static_cast<size_t>(d_out) * d);
    for (size_t i = 0; i < out.size(); ++i)
      out[i] = static_cast<float>((1 - mix) * static_cast<double>(W[i]) + mix * Th[i]);
    return out;
  }

  // Eq. 2 from statistics (objective.cpp): tr(A XXᵀ Aᵀ) − 2 tr(A XYᵀ Ŵᵀ) + tr(Ŵ YYᵀ Ŵᵀ).
  double objective(const float* W, const float* w_hat, const float* u, const float* v, int rank,
                   int d_out, int d_in, const LayerStats& stats) const override {
    const char* where = "lrc_objective";
    check_shape(d_out, d_in, where);
    check_rank(rank, d_out, d_in, where);
    check_stats(stats, d_in, where);
    require_finite_host(W, d_out, d_in, where, "W");
    require_finite_host(w_hat, d_out, d_in, where, "w_hat");
    if (rank > 0) {
      require_finite_host(u, d_out, rank, where, "u");
      require_finite_host(v, d_in, rank, where, "v");
    }
    const auto held = resident_ptr(stats);
    const DeviceStats& ds = *held;
    const Gpu& g = *gpu_;
    GpuTimer t(g, times_.objective);
    const Prof prof(g, "objective");
    DeviceMatrix A = weight_copy(W, d_out, d_in);
    if (rank > 0) {
      const DeviceMatrix U = g.upload(u, d_out, rank), V = g.upload(v, d_in, rank);
      gemm(g, CUBLAS_OP_N, CUBLAS_OP_T, d_out, d_in, rank, -1.0, U.data(), d_out, V.data(),
           d_in, 1.0, A.data(), d_out);
    }
    const DeviceMatrix Wh = g.upload(w_hat, d_out, d_in);
    DeviceMatrix T = g.matrix(d_out, d_in);
    auto trace_abct = [&](const DeviceMatrix& a, const DeviceMatrix& b, const DeviceMatrix& c) {
      gemm(g, CUBLAS_OP_N, CUBLAS_OP_N, d_out, d_in, d_in, 1.0, a.data(), d_out, b.data(), d_in,
           0.0, T.data(), d_out);
      return g.dot(T, c);
    };
    double total;
    if (ds.y_is_x) {  // ‖(A − Ŵ) X‖², no cancellation
      const double one = 1.0, minus = -1.0;
      LRC_CU(cublasDgeam(g.blas(), CUBLAS_OP_N, CUBLAS_OP_N, d_out, d_in, &one, A.data(), d_out,
                         &minus, Wh.data(), d_out, A.data(), d_out));
      total = trace_abct(A, *ds.xx, A);
    } else {
      total = trace_abct(A, *ds.xx, A) - 2.0 * trace_abct(A, *ds.xy, Wh) +
              trace_abct(Wh, *ds.yy, Wh);
    }
    return std::max(total, 0.0);
  }

  double output_energy(const float* W, int d_out, int d_in,
                       const LayerStats& stats) const override {
    check_stats(stats, d_in, "output_energy");
    const auto held = resident_ptr(stats);
    const DeviceStats& ds = *held;
    const Gpu& g = *gpu_;
    GpuTimer t(g, times_.objective);
    const std::shared_ptr<const DeviceMatrix> A = weight(W, d_out, d_in);
    DeviceMatrix T = g.matrix(d_out, d_in);
    gemm(g, CUBLAS_OP_N, CUBLAS_OP_N, d_out, d_in, d_in, 1.0, A->data(), d_out, ds.xx->data(),
         d_in, 0.0, T.data(), d_out);
    return g.dot(T, *A);
  }

  // eq2_objectives (objective.cpp) on the device: P = W XXᵀ and Q = W XYᵀ shared between the
  // candidates and ‖WX‖², the rank-k terms expanded (8 d_out d_in² flops for the pipeline's
  // LRC + guard + energy instead of 14). With Y = X, objective() per candidate as the CPU.
  std::vector<double> objectives(const float* W, int d_out, int d_in,
                                 const std::vector<Eq2Candidate>& candidates,
                                 const LayerStats& stats, double* energy) const override {
    const char* where = "eq2_objectives";
    check_shape(d_out, d_in, where);
    check_stats(stats, d_in, where);
    const auto held = resident_ptr(stats);
    const DeviceStats& ds = *held;
    if (ds.y_is_x) return SolverBackend::objectives(W, d_out, d_in, candidates, stats, energy);
    require_finite_host(W, d_out, d_in, where, "W");
    for (const Eq2Candidate& c : candidates) check_eq2_candidate(c, d_out, d_in, where);
    const Gpu& g = *gpu_;
    GpuTimer t(g, times_.objective);
    const Prof prof(g, "objectives");
    const int d = d_in;
    const std::shared_ptr<const DeviceMatrix> Wp = weight(W, d_out, d);
    const DeviceMatrix& Wd = *Wp;
    DeviceMatrix P = g.matrix(d_out, d), Q = g.matrix(d_out, d), S = g.matrix(d_out, d);
    gemm(g, CUBLAS_OP_N, CUBLAS_OP_N, d_out, d, d, 1.0, Wd.data(), d_out, ds.xx->data(), d, 0.0,
         P.data(), d_out);  // P = W XXᵀ
    gemm(g, CUBLAS_OP_N, CUBLAS_OP_N, d_out, d, d, 1.0, Wd.data(), d_out, ds.xy->data(), d, 0.0,
         Q.data(), d_out);  // Q = W XYᵀ
    const double pw = g.dot(P, Wd);
    std::vector<double> out;
    for (const Eq2Candidate& c : candidates) {
      const DeviceMatrix Hc = g.upload(c.w_hat, d_out, d);
      gemm(g, CUBLAS_OP_N, CUBLAS_OP_N, d_out, d, d, 1.0, Hc.data(), d_out, ds.yy->data(), d, 0.0,
           S.data(), d_out);  // S = Ŵ YYᵀ
      double o = pw - 2.0 * g.dot(Q, Hc) + g.dot(S, Hc);
      const int k = c.rank;
      if (k > 0) {
        const DeviceMatrix U = g.upload(c.u, d_out, k), V = g.upload(c.v, d, k);
        DeviceMatrix Z = g.matrix(k, d), SV = g.matrix(d, k), VSV = g.matrix(k, k),
                     UtU = g.matrix(k, k), T = g.matrix(d_out, k);
        gemm(g, CUBLAS_OP_T, CUBLAS_OP_N, k, d, d, 1.0, V.data(), d, ds.xy->data(), d, 0.0,
             Z.data(), k);  // Z = Vᵀ XYᵀ
        gemm(g, CUBLAS_OP_N, CUBLAS_OP_N, d, k, d, 1.0, ds.xx->data(), d, V.data(), d, 0.0,
             SV.data(), d);
        gemm(g, CUBLAS_OP_T, CUBLAS_OP_N, k, k, d, 1.0, V.data(), d, SV.data(), d, 0.0,
             VSV.data(), k);
        gemm(g, CUBLAS_OP_T, CUBLAS_OP_N, k, k, d_out, 1.0, U.data(), d_out, U.data(), d_out,
             0.0, UtU.data(), k);
        o += g.dot(UtU, VSV);  // <UᵀU, Vᵀ XXᵀ V>
        // -2 <P V − Ŵ Zᵀ, U>
        gemm(g, CUBLAS_OP_N, CUBLAS_OP_N, d_out, k, d, 1.0, P.data(), d_out, V.data(), d, 0.0,
             T.data(), d_out);
        gemm(g, CUBLAS_OP_N, CUBLAS_OP_T, d_out, k, d, -1.0, Hc.data(), d_out, Z.data(), k, 1.0,
             T.data(), d_out);
        o -= 2.0 * g.dot(T, U);
      }
      out.push_back(std::max(o, 0.0));  // sums of squares: the roundoff clamped at 0
    }
    if (energy) *energy = pw;
    return out;
  }

  // keep_resident: one device copy of W while the caller's handle lives.
  std::shared_ptr<const void> keep_resident(const float* W, int d_out, int d_in) const override {
    check_shape(d_out, d_in, "keep_resident");
    resident_ = ResidentWeight{W, d_out, d_in,
                               std::make_shared<DeviceMatrix>(gpu_->upload(W, d_out, d_in))};
    // The handle forgets the copy when released (unless another W took its place meanwhile).
    return std::shared_ptr<const void>(W, [this](const void* w) {
      if (resident_.host == w) resident_ = ResidentWeight{};
    });
  }

 private:
  static void check_shape(int d_out, int d_in, const char* where) {
    if (d_out <= 0 || d_in <= 0)
      fail(where, "bad shape " + std::to_string(d_out) + " x " + std::to_string(d_in));
  }
  static void check_gptq_options(const GptqOptions& opt) {
    if (opt.block < 1)
      fail("gptq", "GptqOptions.block must be >= 1, got " + std::to_string(opt.block));
    if (!(opt.damp >= 0) || !std::isfinite(opt.damp))
      fail("gptq", "GptqOptions.damp must be finite and >= 0, got " + std::to_string(opt.damp));
  }

  // check_layer_stats, or for statistics kept on the device (skip_host_copy) their size and
  // the diagonals the ridge ε reads (the sink checked every input chunk finite).
  static void check_stats(const LayerStats& s, int d, const char* where, bool xx_only = false) {
    if (!s.device_only) return check_layer_stats(s, d, where, xx_only);
    if (s.d != d)
      fail(where,
           "LayerStats.d = " + std::to_string(s.d) + " does not match d_in = " + std::to_string(d));
    const size_t n = static_cast<size_t>(d);
    if (!s.device || s.xx_diag.size() != n || (s.has_cross() && s.yy_diag.size() != n))
      fail(where, "device statistics without their matrices or diagonals");
    if (!xx_only && !s.has_cross()) fail(where, "LRC needs YYᵀ and XYᵀ; these statistics have XXᵀ only");
  }

  void drop_group() const { cov_.reset(); }

  // Whether W [d_out x d_in] is the keep_resident matrix.
  bool resident(const float* W, int d_out, int d_in) const {
    return resident_.dev && resident_.host == W && resident_.rows == d_out &&
           resident_.cols == d_in;
  }
  // W on the device: the keep_resident copy when W is that matrix, else uploaded.
  std::shared_ptr<const DeviceMatrix> weight(const float* W, int d_out, int d_in) const {
    if (resident(W, d_out, d_in)) return resident_.dev;
    return std::make_shared<const DeviceMatrix>(gpu_->upload(W, d_out, d_in));
  }
  // The same as a matrix of the caller's own (to be changed in place).
  DeviceMatrix weight_copy(const float* W, int d_out, int d_in) const {
    return resident(W, d_out, d_in) ? gpu_->copy(*resident_.dev) : gpu_->upload(W, d_out, d_in);
  }

  // ridge_epsilon of XXᵀ (y = false) or YYᵀ, from the host matrix or the diagonal a sink
  // without host copies kept (the same sum, bit for bit).
  static double ridge_eps(const LayerStats& s, bool y, double eps_rel) {
    if (s.device_only) return ridge_epsilon_from_diagonal(y ? s.yy_diag : s.xx_diag, eps_rel);
    return ridge_epsilon(y ? s.yy : s.xx, s.d, eps_rel);
  }

  // The statistics in device memory: the sink's copy, or else the host matrices uploaded
  // (again at every call: tests and LayerStats made on the CPU).
  std::shared_ptr<const DeviceStats> resident_ptr(const LayerStats& s) const {
    if (s.device && s.device->device == gpu_->device() && s.device->d == s.d) return s.device;
    if (s.device_only)
      fail("statistics", "they are on another GPU and were not copied to the host");
    const Gpu& g = *gpu_;
    auto dev = std::make_shared<DeviceStats>();
    dev->gpu = gpu_;
    dev->device = g.device();
    dev->d = s.d;
    auto up = [&](const std::vector<double>& m) {
      return std::make_shared<DeviceMatrix>(g.upload(m.data(), s.d, s.d));
    };
    dev->xx = up(s.xx);
    if (s.has_cross()) {
      dev->y_is_x = s.yy == s.xx && s.xy == s.xx;
      if (dev->y_is_x) {
        dev->yy = dev->xy = dev->xx;
      } else {
        dev->yy = up(s.yy);
        dev->xy = up(s.xy);
      }
    }
    if (!s.fx.empty()) dev->fx = up(s.fx);
    cov_.reset();
    return dev;
  }

  // regularized_covariances, kept for the group.
  GroupCov& covariances(const LayerStats& stats, LrcRegularization reg, double eps_rel) const {
    const char* where = "regularized_covariances";
    if (!std::isfinite(eps_rel) || eps_rel < 0)
      fail(where, "eps_rel must be finite and >= 0, got " + std::to_string(eps_rel));
    if (cov_ && cov_->key == stats.device && cov_->reg == reg && cov_->eps_rel == eps_rel)
      return *cov_;
    cov_.reset();
    std::shared_ptr<const DeviceStats> held = resident_ptr(stats);
    const DeviceStats& ds = *held;
    const Gpu& g = *gpu_;
    auto c = std::make_unique<GroupCov>();
    c->key = std::move(held);
    c->reg = reg;
    c->eps_rel = eps_rel;
    c->d = ds.d;
    c->eps_x = ridge_eps(stats, false, eps_rel);
    c->eps_y = ridge_eps(stats, true, eps_rel);
    const double exy = reg == LrcRegularization::Consistent ? std::sqrt(c->eps_x * c->eps_y) : 0.0;
    c->sx = g.copy(*ds.xx);
    g.add_diagonal(c->sx, c->eps_x);
    c->sy = g.copy(*ds.yy);
    g.add_diagonal(c->sy, c->eps_y);
    c->sxy = g.copy(*ds.xy);
    g.add_diagonal(c->sxy, exy);  // Consistent: X̄Ȳᵀ of X̄ = [X, √εx I], Ȳ = [Y, √εy I]
    cov_ = std::move(c);
    return *cov_;
  }

  const DeviceMatrix& chol_y(GroupCov& c) const {
    if (!c.Ly.size()) {  // cached only once factored (a failure is retried: damping.h)
      DeviceMatrix L = gpu_->copy(c.sy);
      gpu_->potrf(L, CUBLAS_FILL_MODE_LOWER, "init_lr", "Σy = YYᵀ + εy I");
      c.Ly = std::move(L);
    }
    return c.Ly;
  }
  const DeviceMatrix& chol_x(GroupCov& c) const {
    if (!c.Lx.size()) {
      DeviceMatrix L = gpu_->copy(c.sx);
      gpu_->potrf(L, CUBLAS_FILL_MODE_LOWER, "update_lr", "Σx = XXᵀ + εx I");
      c.Lx = std::move(L);
    }
    return c.Lx;
  }

  // Alg. 4 line 4 / Prop. 3.4: M = Σx − Σxy Σy⁻¹ Σyx = Σx − SᵀS with S = L_y⁻¹ Σyx, factored
  // as M = (Q_r Λ_r^½)(Q_r Λ_r^½)ᵀ over its eigenvalues above d·eps·max diag Σx (none: Σx's).
  const DeviceMatrix& schur_factor(GroupCov& c) const {
    if (c.have_mq) return c.mq;
    const Gpu& g = *gpu_;
    const int d = c.d;
    const DeviceMatrix& Ly = chol_y(c);
    DeviceMatrix S = g.transpose(c.sxy);  // Σyx
    const double one = 1.0, minus = -1.0;
    LRC_CU(cublasDtrsm(g.blas(), CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N,
                       CUBLAS_DIAG_NON_UNIT, d, d, &one, Ly.data(), d, S.data(), d));
    DeviceMatrix M = g.copy(c.sx);
    LRC_CU(cublasDsyrk(g.blas(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, d, d, &minus, S.data(), d,
                       &one, M.data(), d));
    S = DeviceMatrix();
    std::vector<double> lam = g.eigen_all(M);  // ascending; M holds Q
    const std::vector<double> diag = g.diagonal(c.sx);
    const double max_diag = *std::max_element(diag.begin(), diag.end());
    const double tol = d * DBL_EPSILON * max_diag;
    auto first_kept = [&] {  // eigenvalues [first, d) are kept
      int first = 0;
      while (first < d && !(lam[first] > tol)) ++first;
      return first;
    };
    int first = first_kept();
    if (first == d) {  // M = 0 to rounding (no Q_a): Σx in its place (lrc_solver.cpp, SchurFactor)
      M = g.copy(c.sx);
      lam = g.eigen_all(M);
      first = first_kept();
    }
    const int r = d - first;
    c.mq = g.matrix(d, r);
    if (r > 0) {
      LRC_CU(cudaMemcpyAsync(c.mq.data(), M.data() + static_cast<size_t>(first) * d,
                             static_cast<size_t>(d) * r * sizeof(double),
                             cudaMemcpyDeviceToDevice, g.stream()));
      std::vector<double> sq(r);
      for (int j = 0; j < r; ++j) sq[j] = std::sqrt(lam[first + j]);
      DeviceArray<double> dsq(r, g.stream());
      LRC_CU(cudaMemcpyAsync(dsq.data(), sq.data(), r * sizeof(double), cudaMemcpyHostToDevice,
                             g.stream()));
      qcuda::scale_columns(c.mq.data(), d, r, dsq.data(), g.stream());
      g.sync();
    }
    c.have_mq = true;
    return c.mq;
  }

  // Descending eigenvalues lambda into out (clamped at 0); returns how many lead the spectrum
  // above 1e-12 λ_max (the eigenvectors kept; quant_detail::top_left_singular's rule).
  static int keep_eigenvalues(const std::vector<double>& lambda, std::vector<double>& out) {
    const double thr = 1e-12 * std::max(lambda[0], 0.0);
    int kept = 0;
    for (size_t j = 0; j < lambda.size(); ++j) {
      out[j] = std::max(lambda[j], 0.0);
      if (lambda[j] > thr && lambda[j] > 0) kept = static_cast<int>(j) + 1;
    }
    return kept;
  }

  // Top-k eigenpairs of the Gram matrix G [n x n] (lower triangle read, G destroyed),
  // descending; eigenvalues clamped at 0, eigenvectors of those at or below 1e-12 λ_max zeroed
  // (quant_detail::top_left_singular's rule).
  DevEigen top_eigen_of_gram(DeviceMatrix& G, int k) const {
    const Gpu& g = *gpu_;
    const int n = G.rows;
    DevEigen out;
    out.u = g.matrix(n, k);
    out.lambda.assign(k, 0.0);
    LRC_CU(cudaMemsetAsync(out.u.data(), 0, out.u.size() * sizeof(double), g.stream()));
    if (k == 0) return out;
    DeviceMatrix z;
    std::vector<double> lambda;
    g.top_eigenpairs(G, k, z, lambda);
    const int kept = keep_eigenvalues(lambda, out.lambda);
    LRC_CU(cudaMemcpyAsync(out.u.data(), z.data(), static_cast<size_t>(n) * kept * sizeof(double),
                           cudaMemcpyDeviceToDevice, g.stream()));
    return out;
  }

  // quant_detail::top_left_singular on the device: top-k eigenpairs of Σ = F Fᵀ, F [rows x cols].
  DevEigen top_left_singular(const DeviceMatrix& F, int k) const {
    const Gpu& g = *gpu_;
    const int rows = F.rows, cols = F.cols;
    DevEigen out;
    out.u = g.matrix(rows, k);
    out.lambda.assign(k, 0.0);
    LRC_CU(cudaMemsetAsync(out.u.data(), 0, out.u.size() * sizeof(double), g.stream()));
    if (k == 0) return out;
    if (k > rows)
      fail("top eigenvectors",
           "rank " + std::to_string(k) + " exceeds " + std::to_string(rows) + " rows");
    const double one = 1.0, zero = 0.0;
    DeviceMatrix z;
    std::vector<double> lambda;
    if (rows <= cols) {  // Σ = F Fᵀ, eigenvectors are U directly
      DeviceMatrix G = g.matrix(rows, rows);
      LRC_CU(cublasDsyrk(g.blas(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, rows, cols, &one,
                         F.data(), rows, &zero, G.data(), rows));
      return top_eigen_of_gram(G, k);
    }
    // rows > cols: the nonzero spectrum of F Fᵀ is that of FᵀF.
    const int kc = std::min(k, cols);
    if (kc == 0) return out;
    DeviceMatrix G = g.matrix(cols, cols);
    LRC_CU(cublasDsyrk(g.blas(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, cols, rows, &one, F.data(),
                       rows, &zero, G.data(), cols));
    g.top_eigenpairs(G, kc, z, lambda);
    const int kept = keep_eigenvalues(lambda, out.lambda);
    if (kept == 0) return out;
    // U_kept = F Z_kept diag(1/sqrt(λ)), then re-orthonormalised by QR with diag(R) > 0.
    std::vector<double> inv(kept);
    for (int j = 0; j < kept; ++j) inv[j] = 1.0 / std::sqrt(lambda[j]);
    DeviceArray<double> dinv(kept, g.stream());
    LRC_CU(cudaMemcpyAsync(dinv.data(), inv.data(), kept * sizeof(double), cudaMemcpyHostToDevice,
                           g.stream()));
    qcuda::scale_columns(z.data(), cols, kept, dinv.data(), g.stream());
    DeviceMatrix uk = g.matrix(rows, kept);
    gemm(g, CUBLAS_OP_N, CUBLAS_OP_N, rows, kept, cols, 1.0, F.data(), rows, z.data(), cols, 0.0,
         uk.data(), rows);
    const std::vector<double> rdiag = g.qr_q(uk);
    std::vector<double> sign(kept);
    for (int j = 0; j < kept; ++j) sign[j] = rdiag[j] < 0 ? -1.0 : 1.0;
    DeviceArray<double> dsign(kept, g.stream());
    LRC_CU(cudaMemcpyAsync(dsign.data(), sign.data(), kept * sizeof(double),
                           cudaMemcpyHostToDevice, g.stream()));
    qcuda::scale_columns(uk.data(), rows, kept, dsign.data(), g.stream());
    LRC_CU(cudaMemcpyAsync(out.u.data(), uk.data(), uk.size() * sizeof(double),
                           cudaMemcpyDeviceToDevice, g.stream()));
    g.sync();
    return out;
  }

  // Alg. 4 line 4 (Prop. 3.4) for d_out <= d: U = eig_k(W M Wᵀ) from the d_out x d_out
  // G = W Σx Wᵀ − TᵀT, T = L_y⁻¹ Σyx Wᵀ, so M (d x d) is never formed or decomposed (for
  // down_proj a 4096² eigenproblem instead of an 11008² one). The factor route drops M's
  // eigenvalues at or below d·eps·max diag Σx; here they stay: a difference of rounding size.
  // Not with Y = X, where M is 0 up to rounding and Σx takes its place (schur_factor).
  DevEigen init_lr_direct(const DeviceMatrix& W, GroupCov& c, int k) const {
    const Gpu& g = *gpu_;
    const int d_out = W.rows, d = W.cols;
    const DeviceMatrix& Ly = chol_y(c);
    const double one = 1.0, minus = -1.0;
    DeviceMatrix T = g.matrix(d, d_out);  // Σyx Wᵀ, then L_y⁻¹ Σyx Wᵀ
    gemm(g, CUBLAS_OP_T, CUBLAS_OP_T, d, d_out, d, 1.0, c.sxy.data(), d, W.data(), d_out, 0.0,
         T.data(), d);
    LRC_CU(cublasDtrsm(g.blas(), CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N,
                       CUBLAS_DIAG_NON_UNIT, d, d_out, &one, Ly.data(), d, T.data(), d));
    DeviceMatrix A = g.matrix(d, d_out);  // Σx Wᵀ
    gemm(g, CUBLAS_OP_N, CUBLAS_OP_T, d, d_out, d, 1.0, c.sx.data(), d, W.data(), d_out, 0.0,
         A.data(), d);
    DeviceMatrix G = g.matrix(d_out, d_out);
    gemm(g, CUBLAS_OP_N, CUBLAS_OP_N, d_out, d_out, d, 1.0, W.data(), d_out, A.data(), d, 0.0,
         G.data(), d_out);
    A = DeviceMatrix();
    LRC_CU(cublasDsyrk(g.blas(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, d_out, d, &minus, T.data(),
                       d, &one, G.data(), d_out));
    T = DeviceMatrix();
    return top_eigen_of_gram(G, k);
  }

  // Alg. 4 (Init-LR, Prop. 3.4): U = eig_k(W M Wᵀ) via F = W Q_r Λ_r^½, V = WᵀU.
  void init_lr(const DeviceMatrix& W, GroupCov& c, int k, DevEigen& lr, DeviceMatrix& V) const {
    const Gpu& g = *gpu_;
    const int d_out = W.rows, d = W.cols;
    if (k == 0) {
      lr = DevEigen{};
      V = DeviceMatrix();
      return;
    }
    if (d_out <= d && !c.key->y_is_x) {
      lr = init_lr_direct(W, c, k);
    } else {
      const DeviceMatrix& mq = schur_factor(c);
      const int r = mq.cols;
      DeviceMatrix F = g.matrix(d_out, r);
      gemm(g, CUBLAS_OP_N, CUBLAS_OP_N, d_out, r, d, 1.0, W.data(), d_out, mq.data(), d, 0.0,
           F.data(), d_out);
      lr = top_left_singular(F, k);
    }
    V = g.matrix(d, k);
    gemm(g, CUBLAS_OP_T, CUBLAS_OP_N, d, k, d_out, 1.0, W.data(), d_out, lr.u.data(), d_out, 0.0,
         V.data(), d);
  }

  // Alg. 2 line 4 (Prop. 3.1): W̃ = (W − UVᵀ) Σxy Σy⁻¹ via Cholesky solves, rounded to float
  // (the CPU hands GPTQ a float target).
  DeviceMatrix update_quant_target(const DeviceMatrix& W, const DeviceMatrix& U,
                                   const DeviceMatrix& V, int k, GroupCov& c) const {
    const Gpu& g = *gpu_;
    const int d_out = W.rows, d = W.cols;
    DeviceMatrix A = g.copy(W);
    if (k > 0)
      gemm(g, CUBLAS_OP_N, CUBLAS_OP_T, d_out, d, k, -1.0, U.data(), d_out, V.data(), d, 1.0,
           A.data(), d_out);
    const DeviceMatrix& Ly = chol_y(c);
    DeviceMatrix T = g.matrix(d, d_out);  // Σyx Aᵀ, then Σy⁻¹ Σyx Aᵀ = W̃ᵀ
    gemm(g, CUBLAS_OP_T, CUBLAS_OP_T, d, d_out, d, 1.0, c.sxy.data(), d, A.data(), d_out, 0.0,
         T.data(), d);
    g.potrs(Ly, T);
    DeviceMatrix target = g.transpose(T);
    qcuda::round_to_float(target.data(), target.size(), g.stream());
    return target;
  }

  // Alg. 3 (Update-LR, Prop. 3.3): F = W L_x − (Ŵ Σyx) L_x⁻ᵀ, U = eig_k(F Fᵀ),
  // V = L_x⁻ᵀ (Fᵀ U) (lrc_solver.cpp, update_lr).
  void update_lr(const DeviceMatrix& W, const DeviceMatrix& Wh, GroupCov& c, int k, DevEigen& lr,
                 DeviceMatrix& V) const {
    const Gpu& g = *gpu_;
    const int d_out = W.rows, d = W.cols;
    if (k == 0) {
      lr = DevEigen{};
      V = DeviceMatrix();
      return;
    }
    const DeviceMatrix& Lx = chol_x(c);
    const double one = 1.0, minus = -1.0;
    DeviceMatrix G = g.matrix(d_out, d);  // Ŵ Σyx, then · L_x⁻ᵀ
    gemm(g, CUBLAS_OP_N, CUBLAS_OP_T, d_out, d, d, 1.0, Wh.data(), d_out, c.sxy.data(), d, 0.0,
         G.data(), d_out);
    LRC_CU(cublasDtrsm(g.blas(), CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T,
                       CUBLAS_DIAG_NON_UNIT, d_out, d, &one, Lx.data(), d, G.data(), d_out));
    DeviceMatrix F = g.matrix(d_out, d);
    LRC_CU(cublasDtrmm(g.blas(), CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N,
                       CUBLAS_DIAG_NON_UNIT, d_out, d, &one, Lx.data(), d, W.data(), d_out,
                       F.data(), d_out));
    LRC_CU(cublasDgeam(g.blas(), CUBLAS_OP_N, CUBLAS_OP_N, d_out, d, &one, F.data(), d_out,
                       &minus, G.data(), d_out, F.data(), d_out));
    G = DeviceMatrix();
    lr = top_left_singular(F, k);
    V = g.matrix(d, k);
    gemm(g, CUBLAS_OP_T, CUBLAS_OP_N, d, k, d_out, 1.0, F.data(), d_out, lr.u.data(), d_out, 0.0,
         V.data(), d);
    LRC_CU(cublasDtrsm(g.blas(), CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T,
                       CUBLAS_DIAG_NON_UNIT, d, k, &one, Lx.data(), d, V.data(), d));
  }

  // The first k columns of a column-major matrix, as host row-major float.
  std::vector<float> leading_columns(const DeviceMatrix& M, int k) const {
    DeviceMatrix lead = gpu_->matrix(M.rows, k);
    LRC_CU(cudaMemcpyAsync(lead.data(), M.data(), lead.size() * sizeof(double),
                           cudaMemcpyDeviceToDevice, gpu_->stream()));
    const std::vector<double> h = gpu_->download(lead);
    return std::vector<float>(h.begin(), h.end());
  }

  // GPTQ (gptq.cpp) on the device; w (d_out x n, column-major) is consumed, H is not changed.
  // w_hat: also Ŵ dequantized on the device (PackedWeight::dequantize's values), if asked.
  PackedWeight gptq_device(DeviceMatrix& w, const DeviceMatrix& H, const WeightQuantSpec& spec,
                           const GptqOptions& opt, DeviceMatrix* w_hat = nullptr) const {
    const Gpu& g = *gpu_;
    const Prof prof(g, "gptq");
    const int d_out = w.rows, n = w.cols;
    const int ng = weight_groups_per_row(spec, n);
    const bool grouped = spec.groupsize > 0;
    qcuda::GridSpec gs{spec.bits, spec.groupsize, spec.symmetric, spec.mse_clip};
    DeviceMatrix h = g.copy(H);
    // Dead inputs: H_jj := 1 and W[:, j] := 0.
    qcuda::gptq_dead_columns(h.data(), w.data(), d_out, n, g.stream());
    const size_t np = static_cast<size_t>(d_out) * ng;
    DeviceArray<float> scales(np, g.stream()), zeros(np, g.stream());
    const bool static_grids = !grouped || opt.act_order;
    if (static_grids)
      qcuda::gptq_static_grids(w.data(), d_out, n, gs, scales.data(), zeros.data(), g.stream());
    // act_order: columns by decreasing H_jj (stable).
    std::vector<int> perm(n);
    std::iota(perm.begin(), perm.end(), 0);
    DeviceArray<int> dperm;
    if (opt.act_order) {
      const std::vector<double> hd = g.diagonal(h);
      std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) { return hd[a] > hd[b]; });
      dperm = DeviceArray<int>(n, g.stream());
      LRC_CU(cudaMemcpyAsync(dperm.data(), perm.data(), n * sizeof(int), cudaMemcpyHostToDevice,
                             g.stream()));
      DeviceMatrix hp = g.matrix(n, n), wp = g.matrix(d_out, n);
      qcuda::permute_symmetric(h.data(), hp.data(), n, dperm.data(), g.stream());
      qcuda::permute_columns(w.data(), wp.data(), d_out, n, dperm.data(), g.stream());
      h = std::move(hp);
      w = std::move(wp);
    }
    // Damping: H += damp · mean(diag H) · I.
    const std::vector<double> hd = g.diagonal(h);
    double mean_diag = 0.0;
    for (int j = 0; j < n; ++j) mean_diag += hd[j];
    mean_diag /= n;
    // R: the upper Cholesky factor of H⁻¹ (H⁻¹ = RᵀR). With P the order reversal, P H P = L Lᵀ
    // gives H⁻¹ = P L⁻ᵀ L⁻¹ P = RᵀR for R = P L⁻¹ P, upper with a positive diagonal: the same
    // factor as gptq.cpp's Cholesky, inverse, Cholesky, from one Cholesky and one triangular
    // inverse (half the flops). The damping raised ×10 while it fails (damping.h).
    h = with_damping(opt.damp, "gptq: damp", opt.log, [&](double damp) {
      const Prof p(g, "gptq: H⁻¹ factor");
      DeviceMatrix f = g.reversed(h);
      g.add_diagonal(f, damp * mean_diag);
      int info = 0;
      g.potrf(f, CUBLAS_FILL_MODE_LOWER, "gptq", "H", &info);
      if (info > 0)
        throw FactorizationFailed(
            "gptq: H + damping is not positive definite (Cholesky failed at leading minor " +
            std::to_string(info) + " of " + std::to_string(n) + "); is H a Gram matrix X Xᵀ?");
      g.trtri_lower(f, "gptq");
      return g.reversed(f);
    });
    // The sweep: blocks of B columns, then the lazy batch update W[:, i2:] -= E R[i1:i2, i2:].
    DeviceArray<uint8_t> codes(static_cast<size_t>(d_out) * n, g.stream());
    const int B = opt.block;
    DeviceMatrix err = g.matrix(d_out, std::min(B, n));
    std::optional<Prof> sweep(std::in_place, g, "gptq: sweep");
    for (int i1 = 0; i1 < n; i1 += B) {
      const int i2 = std::min(i1 + B, n);
      qcuda::gptq_block(w.data(), d_out, n, h.data(), i1, i2,
                        opt.act_order ? dperm.data() : nullptr, gs, static_grids, scales.data(),
                        zeros.data(), codes.data(), err.data(), g.stream());
      if (i2 < n)
        gemm(g, CUBLAS_OP_N, CUBLAS_OP_N, d_out, n - i2, i2 - i1, -1.0, err.data(), d_out,
             h.data() + i1 + static_cast<size_t>(i2) * n, n, 1.0,
             w.data() + static_cast<size_t>(i2) * d_out, d_out);
    }
    sweep.reset();
    if (w_hat) {
      *w_hat = g.matrix(d_out, n);
      qcuda::dequantize_codes(codes.data(), scales.data(), zeros.data(), d_out, n, ng,
                              w_hat->data(), g.stream());
    }
    const Prof codes_prof(g, "gptq: codes to host");
    std::vector<uint8_t> hc(static_cast<size_t>(d_out) * n);
    PackedWeight p;
    p.d_out = d_out;
    p.d_in = n;
    p.bits = spec.bits;
    p.groupsize = spec.groupsize;
    p.symmetric = spec.symmetric;
    p.scales.resize(np);
    p.zeros.resize(np);
    LRC_CU(cudaMemcpyAsync(hc.data(), codes.data(), hc.size(), cudaMemcpyDeviceToHost,
                           g.stream()));
    LRC_CU(cudaMemcpyAsync(p.scales.data(), scales.data(), np * sizeof(float),
                           cudaMemcpyDeviceToHost, g.stream()));
    LRC_CU(cudaMemcpyAsync(p.zeros.data(), zeros.data(), np * sizeof(float),
                           cudaMemcpyDeviceToHost, g.stream()));
    g.sync();
    p.codes = pack_codes(hc.data(), static_cast<int64_t>(d_out) * n, spec.bits);
    return p;
  }

  struct ResidentWeight {  // keep_resident's copy of a host W
    const float* host = nullptr;
    int rows = 0, cols = 0;
    std::shared_ptr<const DeviceMatrix> dev;
  };

  std::shared_ptr<Gpu> gpu_;
  mutable std::unique_ptr<GroupCov> cov_;  // the current group's covariances
  mutable ResidentWeight resident_;
};

}  // namespace

SolverBackendPtr make_cuda_solver_backend(int device) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    const std::string why = e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device";
    cudaGetLastError();
    fail("--device", "cuda:" + std::to_string(device) + ": no usable GPU (" + why + ")");
  }
  if (device >= count)
    fail("--device", "cuda:" + std::to_string(device) + ": only " + std::to_string(count) +
                         " CUDA device(s)");
  return std::make_shared<CudaSolverBackend>(device);
}

}  // namespace lrc
