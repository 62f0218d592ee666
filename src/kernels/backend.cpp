// Backend's default memory: plain host memory, for the CPU backends (kernels/backend.h).
#include "lrc/kernels/backend.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace lrc {

void* Backend::allocate(size_t bytes) const {
  // aligned_alloc wants a multiple of the alignment (and may return null for 0 bytes).
  void* p = std::aligned_alloc(64, bytes == 0 ? 64 : (bytes + 63) / 64 * 64);
  if (!p) throw std::bad_alloc();
  return p;
}
void Backend::release(void* p) const noexcept { std::free(p); }
void Backend::upload(void* dst, const void* src, size_t bytes) const {
  if (dst != src) std::memcpy(dst, src, bytes);
}
void Backend::download(void* dst, const void* src, size_t bytes) const {
  if (dst != src) std::memcpy(dst, src, bytes);
}
void Backend::copy(void* dst, const void* src, size_t bytes) const { std::memcpy(dst, src, bytes); }
void Backend::copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                      size_t width, size_t rows) const {
  for (size_t r = 0; r < rows; ++r)
    std::memcpy(static_cast<char*>(dst) + r * dst_pitch,
                static_cast<const char*>(src) + r * src_pitch, width);
}
void Backend::zero(void* p, size_t bytes) const { std::memset(p, 0, bytes); }

void Backend::gather_rows(float* dst, const float* src, const int32_t* rows, int64_t n,
                          int d) const {
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(dst + i * d, src + static_cast<int64_t>(rows[i]) * d,
                static_cast<size_t>(d) * sizeof(float));
}

void Backend::scatter_add_rows(float* out, const float* y, const int32_t* rows, const float* w,
                               int64_t n, int d) const {
#pragma omp parallel for schedule(static) if (n * d > 65536)
  for (int64_t i = 0; i < n; ++i) {
    float* o = out + static_cast<int64_t>(rows[i]) * d;
    const float* yi = y + i * d;
    for (int j = 0; j < d; ++j) o[j] += w[i] * yi[j];
  }
}

}  // namespace lrc
