// Internals of the CUDA SolverBackend (src/quant/cuda): device buffers, one GPU's cuBLAS /
// cuSOLVER handles, and the kernels of quant_kernels.cu. Device matrices are COLUMN-major
// (cuBLAS's order): a host row-major r x c matrix uploads to a device c x r matrix, its
// transpose, which the upload helpers turn back with one geam.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lrc/core/scope_profile.h"

namespace lrc {

namespace qcuda {

[[noreturn]] void cuda_fail(const char* call, const std::string& why);
void check(cudaError_t e, const char* call);
void check(cublasStatus_t s, const char* call);
void check(cusolverStatus_t s, const char* call);
#define LRC_CU(x) ::lrc::qcuda::check((x), #x)

// Bytes lrc has allocated on the device now and at most (all DeviceBuffers).
int64_t device_bytes_now();
int64_t device_bytes_peak();

// Stream-ordered device memory (cudaMallocAsync on the backend's stream).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(size_t bytes, cudaStream_t s);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept { swap(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    DeviceBuffer t(std::move(o));
    swap(t);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return p_; }
  size_t bytes() const { return bytes_; }

 private:
  void swap(DeviceBuffer& o) noexcept;
  void* p_ = nullptr;
  size_t bytes_ = 0;
  cudaStream_t s_ = nullptr;
};

template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(size_t n, cudaStream_t s) : buf_(n * sizeof(T), s), n_(n) {}
  T* data() const { return static_cast<T*>(buf_.get()); }
  size_t size() const { return n_; }

 private:
  DeviceBuffer buf_;
  size_t n_ = 0;
};

// rows x cols, column-major, ld = rows.
struct DeviceMatrix {
  int rows = 0, cols = 0;
  DeviceArray<double> a;
  DeviceMatrix() = default;
  DeviceMatrix(int r, int c, cudaStream_t s)
      : rows(r), cols(c), a(static_cast<size_t>(r) * static_cast<size_t>(c), s) {}
  double* data() const { return a.data(); }
  size_t size() const { return a.size(); }
};

// One GPU: its stream, handles and solver scratch.
class Gpu {
 public:
  explicit Gpu(int device);
  ~Gpu();
  Gpu(const Gpu&) = delete;
  Gpu& operator=(const Gpu&) = delete;

  int device() const { return device_; }
  const std::string& name() const { return name_; }
  cudaStream_t stream() const { return stream_; }
  cublasHandle_t blas() const { return blas_; }
  cusolverDnHandle_t solver() const { return solver_; }
  void sync() const;

  DeviceMatrix matrix(int rows, int cols) const { return DeviceMatrix(rows, cols, stream_); }
  DeviceMatrix copy(const DeviceMatrix& m) const;
  // Host row-major A [r x c] -> device column-major A [r x c] (float inputs widened exactly).
  DeviceMatrix upload(const float* A, int r, int c) const;
  DeviceMatrix upload(const double* A, int r, int c) const;
  // Device column-major A [r x c] -> host row-major.
  std::vector<double> download(const DeviceMatrix& A) const;
  // The same rounded to float.
  std::vector<float> download_float(const DeviceMatrix& A) const;
  // Transpose: B = Aᵀ.
  DeviceMatrix transpose(const DeviceMatrix& A) const;
  std::vector<double> diagonal(const DeviceMatrix& A) const;
  void add_diagonal(DeviceMatrix& A, double v) const;
  // Fills the strict upper triangle from the lower one.
  void symmetrize_lower(DeviceMatrix& A) const;
  // sum_ij A_ij B_ij.
  double dot(const DeviceMatrix& A, const DeviceMatrix& B) const;

  // Lower Cholesky factor in place (the upper triangle is left as it was). On failure:
  // lrc::Error "<where>: <what> is not positive definite (...)" unless info_out is given,
  // which then receives LAPACK's info.
  void potrf(DeviceMatrix& A, cublasFillMode_t uplo, const char* where, const char* what,
             int* info_out = nullptr) const;
  // B := A⁻¹ B given A's lower factor L.
  void potrs(const DeviceMatrix& L, DeviceMatrix& B) const;
  // L⁻¹ of the lower triangular L (non-unit diagonal) in place; the strict upper triangle is
  // not read.
  void trtri_lower(DeviceMatrix& L, const char* where) const;
  // B_ij = A_{n-1-i, n-1-j}: rows and columns in reverse order (permute_symmetric).
  DeviceMatrix reversed(const DeviceMatrix& A) const;
  // Top-k eigenpairs of the symmetric G (lower triangle read, G destroyed), descending:
  // z [n x k] column-major, lambda [k].
  void top_eigenpairs(DeviceMatrix& G, int k, DeviceMatrix& z, std::vector<double>& lambda) const;
  // All eigenpairs of the symmetric G (lower triangle), ascending; G becomes the eigenvectors.
  std::vector<double> eigen_all(DeviceMatrix& G) const;
  // Q of A's thin QR in place (m x n, m >= n), and diag(R).
  std::vector<double> qr_q(DeviceMatrix& A) const;

  double* scratch(size_t n) const;  // solver workspace, grown on demand
  int* info() const { return info_.data(); }
  int read_info() const;

 private:
  int device_ = 0;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cusolverDnHandle_t solver_ = nullptr;
  mutable DeviceArray<double> work_;
  mutable DeviceArray<int> info_;
};

// LRC_CUDA_PROFILE=1 (a diagnostic, off by default): each Prof scope synchronises the GPU's
// stream where it starts and ends and adds the wall time between to its name's row of
// lrc/core/scope_profile.h's table (inclusive, so rows overlap). Off, a scope costs one branch.
class Prof {
 public:
  Prof(const Gpu& g, const char* name);

 private:
  scope_profile::Scope scope_;
};

// ---- kernels (quant_kernels.cu); all launched on the given stream ----

// dst[i] = (double) src[i].
void widen(const float* src, double* dst, size_t n, cudaStream_t s);
// a[i] = (double)(float) a[i].
void round_to_float(double* a, size_t n, cudaStream_t s);
void narrow(const double* src, float* dst, size_t n, cudaStream_t s);
// Index of the first non-finite value of x[n], or -1.
int64_t first_non_finite(const float* x, size_t n, cudaStream_t s);
// Q_a on x [n x d] row-major (a token a row): y = scale · code, the arithmetic of
// lrc::quantize_activation_row (same codes and scales, bit for bit).
void quantize_activations(const float* x, int64_t n, int d, int bits, float clip, int groupsize,
                          float* y, cudaStream_t s);
// acc += c on the lower triangle (lower_only) or every entry of the n x n matrices.
void accumulate(const float* c, double* acc, int n, bool lower_only, cudaStream_t s);
// A[:, j] *= scale[j] for the rows x cols column-major A.
void scale_columns(double* A, int rows, int cols, const double* scale, cudaStream_t s);
// z[:, j] = src[:, k-1-j] (n x k column-major).
void reverse_columns(const double* src, double* z, int n, int k, cudaStream_t s);
// B (n x n) = A[perm, perm] (perm may be null for copy); W (rows x n) = W_in[:, perm].
void permute_symmetric(const double* A, double* B, int n, const int* perm, cudaStream_t s);
void permute_columns(const double* W, double* out, int rows, int n, const int* perm,
                     cudaStream_t s);
// Ŵ (d_out x n, column-major) from codes [d_out x n] row-major and the grids [d_out x ng]:
// PackedWeight::dequantize's float arithmetic, widened.
void dequantize_codes(const uint8_t* codes, const float* scales, const float* zeros, int d_out,
                      int n, int ng, double* out, cudaStream_t s);
// GPTQ dead inputs: where H_jj == 0, H_jj := 1 and W[:, j] := 0.
void gptq_dead_columns(double* H, double* W, int d_out, int n, cudaStream_t s);

struct GridSpec {  // WeightQuantSpec for the kernels
  int bits = 4, groupsize = 0;
  bool symmetric = true, mse_clip = true;
};
// Static grids (scale, zero) per row and group [d_out x ng], from W (d_out x n, column-major),
// choose_quant_params' arithmetic.
void gptq_static_grids(const double* W, int d_out, int n, const GridSpec& g, float* scales,
                       float* zeros, cudaStream_t s);
// One block of GPTQ's column sweep (columns i1 .. i2-1 of the permuted W), rows in parallel:
// codes [d_out x n] row-major (by original column), err [d_out x (i2 - i1)] column-major.
void gptq_block(double* W, int d_out, int n, const double* R, int i1, int i2, const int* perm,
                const GridSpec& g, bool static_grids, float* scales, float* zeros,
                uint8_t* codes, double* err, cudaStream_t s);

}  // namespace qcuda

// The device copy of one group's LayerStats (stats.h), column-major: xx = XXᵀ, yy = YYᵀ,
// xy = XYᵀ, fx = X̄Xᵀ; yy and xy point at xx when Y = X; absent matrices are null.
struct DeviceStats {
  std::shared_ptr<qcuda::Gpu> gpu;  // kept alive: the matrices are freed on its stream
  int device = 0;
  int d = 0;
  bool y_is_x = false;
  std::shared_ptr<qcuda::DeviceMatrix> xx, yy, xy, fx;
};

}  // namespace lrc
