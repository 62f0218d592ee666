// CUDA W4A4 + low-rank linear: layout conversion (CPU), and on a GPU: activation codes equal
// lrc::quantize_activation_row, integer accumulators equal exact integer sums (tensor-core FP8
// path and int4 GEMV path), outputs within 1e-3 of a float64 reference. GPU cases skip
// (GTEST_SKIP with the reason) when no CUDA device is present.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/core/half.h"
#include "lrc/kernels/cuda/w4a4.h"
#include "lrc/kernels/cuda/w4a4_from_linear.h"
#include "lrc/format/linear.h"
#include "lrc/format/act_quant.h"

namespace {

using lrc::cuda::W4A4Layout;

#define CUDA_OK(x) ASSERT_EQ((x), cudaSuccess) << #x

// A random symmetric per-row 4-bit layer: packed codes [n x k] (low nibble first), scales.
struct RandomLayer {
  int n, k;
  std::vector<uint8_t> packed;
  std::vector<int> codes;  // offset codes 0..15, [n x k]
  std::vector<float> scales, zeros;
};

RandomLayer random_layer(int n, int k, std::mt19937& rng, int fixed_code = -1) {
  RandomLayer L{n, k, {}, {}, {}, {}};
  L.codes.resize(static_cast<size_t>(n) * k);
  L.packed.assign((L.codes.size() + 1) / 2, 0);
  std::uniform_int_distribution<int> code(0, 15);
  for (size_t i = 0; i < L.codes.size(); ++i) {
    L.codes[i] = fixed_code >= 0 ? fixed_code : code(rng);
    L.packed[i / 2] |= static_cast<uint8_t>(L.codes[i] << ((i % 2) * 4));
  }
  std::uniform_real_distribution<float> sc(0.005f, 0.03f);
  for (int r = 0; r < n; ++r) L.scales.push_back(sc(rng));
  L.zeros.assign(n, 8.f);
  return L;
}

W4A4Layout layout_of(const RandomLayer& R, float clip) {
  return lrc::cuda::make_w4a4_layout(R.n, R.k, R.packed.data(), R.scales.data(), R.zeros.data(),
                                     4, 0, true, 4, 0, clip, "test");
}

// x [m x k] rounded to fp16 (what the GPU sees), with a few outliers.
std::vector<uint16_t> random_x(int m, int k, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_int_distribution<int> pick(0, 63);
  std::vector<uint16_t> x(static_cast<size_t>(m) * k);
  for (auto& v : x) v = lrc::f32_to_f16(pick(rng) == 0 ? 8.f * nd(rng) : nd(rng));
  return x;
}

template <typename T>
struct DevBuf {
  T* p = nullptr;
  explicit DevBuf(size_t n) {
    if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) p = nullptr;
  }
  ~DevBuf() {
    if (p) cudaFree(p);
  }
};

#define SKIP_WITHOUT_GPU()                                        \
  do {                                                            \
    std::string why_;                                             \
    if (!lrc::cuda::device_available(&why_)) GTEST_SKIP() << why_; \
  } while (0)

TEST(CudaW4A4Layout, E4m3TableIsExact) {
  for (int v = -8; v <= 8; ++v) EXPECT_EQ(lrc::cuda::e4m3_to_float(lrc::cuda::int_to_e4m3(v)), v);
  EXPECT_THROW(lrc::cuda::int_to_e4m3(9), lrc::Error);
}

TEST(CudaW4A4Layout, BothWeightCopiesHoldTheCodes) {
  std::mt19937 rng(1);
  for (auto [n, k] : {std::pair{3, 37}, std::pair{5, 64}, std::pair{17, 300}}) {
    const RandomLayer R = random_layer(n, k, rng);
    const W4A4Layout L = layout_of(R, 1.f);
    ASSERT_EQ(L.k_pad % 128, 0);
    ASSERT_GE(L.k_pad, k);
    for (int r = 0; r < n; ++r)
      for (int j = 0; j < L.k_pad; ++j) {
        const int want = j < k ? R.codes[static_cast<size_t>(r) * k + j] - 8 : 0;
        EXPECT_EQ(lrc::cuda::e4m3_to_float(L.w_e4m3[static_cast<size_t>(r) * L.k_pad + j]), want);
        // Documented mma order: 16-byte vector (row tile r/16, G = j/128, r%16, t = (j%16)/4),
        // word (j/32)%4, byte j%4, high nibble for j%32 >= 16.
        const size_t vec =
            ((static_cast<size_t>(r / 16) * (L.k_pad / 128) + j / 128) * 16 + r % 16) * 4 + (j % 16) / 4;
        const uint8_t byte = L.w_int4[vec * 16 + ((j / 32) % 4) * 4 + j % 4];
        const int code = (j % 32 < 16) ? (byte & 0xF) : (byte >> 4);
        EXPECT_EQ(code - 8, want) << "row " << r << " col " << j;
      }
    ASSERT_EQ(L.w_int4.size(), static_cast<size_t>((n + 15) / 16 * 16) * L.k_pad / 2);
    for (int r = n; r < (n + 15) / 16 * 16; ++r)
      for (int j = 0; j < L.k_pad; ++j) {
        int shift = 0;
        EXPECT_EQ((L.w_int4[lrc::cuda::w4a4_int4_byte(r, j, L.k_pad, &shift)] >> shift) & 0xF, 8)
            << "padding row " << r << " holds code 8 (value 0)";
      }
  }
}

// Host emulation of the decode GEMV's addressing (gemv_w4a4_kernel): lane (g, tq) of the warp
// on column group G loads uint4 number tile·kg·64 + G·64 + g·4 + tq (row g) and that + 32
// (row g + 8); word c of it, masked/shifted, must be the mma.m16n8k32 A fragment of the PTX
// spec: a0 = row g, columns 32q + 4tq..+3; a2 = row g, 32q + 16 + 4tq..+3; a1/a3 = row g + 8.
TEST(CudaW4A4Layout, GemvFragmentsFollowTheMmaLayout) {
  std::mt19937 rng(7);
  const int n = 40, k = 300;  // 3 row tiles (last one padded), k_pad 384 = 3 column groups
  const RandomLayer R = random_layer(n, k, rng);
  const W4A4Layout L = layout_of(R, 1.f);
  const int kg = L.k_pad / 128, n_pad = (n + 15) / 16 * 16;
  auto code = [&](int r, int j) { return r < n && j < k ? R.codes[static_cast<size_t>(r) * k + j] : 8; };
  auto word = [&](size_t vec, int c) {
    uint32_t w;
    std::memcpy(&w, &L.w_int4[vec * 16 + c * 4], 4);
    return w;
  };
  for (int tile = 0; tile < n_pad / 16; ++tile)
    for (int G = 0; G < kg; ++G)
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane >> 2, tq = lane & 3;
        const size_t v0 = static_cast<size_t>(tile) * kg * 64 + G * 64 + g * 4 + tq, v1 = v0 + 32;
        for (int c = 0; c < 4; ++c) {
          const int q = G * 4 + c;
          const uint32_t frag[4] = {word(v0, c) & 0x0F0F0F0Fu, word(v1, c) & 0x0F0F0F0Fu,
                                    (word(v0, c) >> 4) & 0x0F0F0F0Fu, (word(v1, c) >> 4) & 0x0F0F0F0Fu};
          for (int reg = 0; reg < 4; ++reg)
            for (int b = 0; b < 4; ++b) {
              const int row = tile * 16 + g + (reg % 2 == 1 ? 8 : 0);
              const int col = q * 32 + (reg >= 2 ? 16 : 0) + 4 * tq + b;
              ASSERT_EQ(static_cast<int>((frag[reg] >> (8 * b)) & 0xFF), code(row, col))
                  << "tile " << tile << " G " << G << " lane " << lane << " c " << c << " a" << reg;
            }
        }
      }
}

TEST(CudaW4A4Layout, UnsupportedFormatsNameTheField) {
  std::mt19937 rng(2);
  const RandomLayer R = random_layer(4, 64, rng);
  auto msg = [&](int bits, int gs, bool sym, int abits, std::vector<float> zeros) {
    try {
      lrc::cuda::make_w4a4_layout(4, 64, R.packed.data(), R.scales.data(), zeros.data(), bits, gs,
                                  sym, abits, 0, 1.f, "layer.q");
    } catch (const lrc::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg(3, 0, true, 4, R.zeros).find("layer.q: packed.bits"), std::string::npos);
  EXPECT_NE(msg(4, 32, true, 4, R.zeros).find("packed.groupsize"), std::string::npos);
  EXPECT_NE(msg(4, 0, false, 4, R.zeros).find("packed.symmetric"), std::string::npos);
  EXPECT_NE(msg(4, 0, true, 8, R.zeros).find("act.bits"), std::string::npos);
  std::vector<float> z = R.zeros;
  z[2] = 7.f;
  EXPECT_NE(msg(4, 0, true, 4, z).find("packed.zeros[2]"), std::string::npos);
}

TEST(CudaW4A4Layout, AdapterFromLinear) {
  std::mt19937 rng(3);
  const RandomLayer R = random_layer(6, 40, rng);
  lrc::Linear lin;
  lin.d_out = 6;
  lin.d_in = 40;
  lin.act.bits = 4;
  lin.act.clip = 0.9f;
  EXPECT_THROW(lrc::cuda::w4a4_layout_from_linear(lin, "l"), lrc::Error);  // no packed
  lin.packed = lrc::PackedWeight{6, 40, 4, 0, true, R.packed, R.scales, R.zeros};
  lin.lr.rank = 2;
  lin.lr.u.assign(6 * 2, 0.25f);
  lin.lr.v.assign(40 * 2, -0.5f);
  const W4A4Layout L = lrc::cuda::w4a4_layout_from_linear(lin, "l");
  EXPECT_EQ(L.w_e4m3, layout_of(R, 0.9f).w_e4m3);
  EXPECT_EQ(L.act_clip, 0.9f);
  EXPECT_EQ(L.rank, 2);
  EXPECT_EQ(L.rank_pad, 16);
  EXPECT_EQ(lrc::f16_to_f32(L.u[1]), 0.25f);
  EXPECT_EQ(L.u[2], 0);  // padding
  EXPECT_EQ(lrc::f16_to_f32(L.v[16]), -0.5f);
}

TEST(CudaW4A4, ActivationCodesEqualCpuQuantizer) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(4);
  for (int k : {100, 333, 4096}) {
    for (float clip : {1.0f, 0.85f}) {
      const int m = 9, k_pad = (k + 31) / 32 * 32;
      std::vector<uint16_t> x = random_x(m, k, rng);
      for (int j = 0; j < k; ++j) x[static_cast<size_t>(3) * k + j] = 0;  // an all-zero token
      DevBuf<uint16_t> dx(x.size());
      DevBuf<uint8_t> codes(static_cast<size_t>(m) * k_pad);
      DevBuf<float> sx(m);
      DevBuf<int> csum(m);
      CUDA_OK(cudaMemcpy(dx.p, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
      lrc::ActQuantSpec spec;
      spec.bits = 4;
      spec.clip = clip;
      for (bool e4m3 : {false, true}) {
        lrc::cuda::quantize_activations_device(dx.p, m, k, k_pad, clip, e4m3, codes.p, sx.p,
                                               csum.p, nullptr);
        CUDA_OK(cudaDeviceSynchronize());
        std::vector<uint8_t> hc(static_cast<size_t>(m) * k_pad);
        std::vector<float> hs(m);
        std::vector<int> hsum(m);
        CUDA_OK(cudaMemcpy(hc.data(), codes.p, hc.size(), cudaMemcpyDeviceToHost));
        CUDA_OK(cudaMemcpy(hs.data(), sx.p, m * 4, cudaMemcpyDeviceToHost));
        CUDA_OK(cudaMemcpy(hsum.data(), csum.p, m * 4, cudaMemcpyDeviceToHost));
        for (int i = 0; i < m; ++i) {
          std::vector<float> xf(k);
          for (int j = 0; j < k; ++j) xf[j] = lrc::f16_to_f32(x[static_cast<size_t>(i) * k + j]);
          std::vector<int8_t> ref(k);
          float sref = 0;
          lrc::quantize_activation_row(xf.data(), k, spec, ref.data(), &sref);
          EXPECT_EQ(hs[i], sref) << "k " << k << " token " << i;
          int sum = 0;
          for (int j = 0; j < k_pad; ++j) {
            const uint8_t b = hc[static_cast<size_t>(i) * k_pad + j];
            const int got = e4m3 ? static_cast<int>(lrc::cuda::e4m3_to_float(b))
                                 : static_cast<int>(static_cast<int8_t>(b));
            const int want = j < k ? ref[j] : 0;
            ASSERT_EQ(got, want) << "k " << k << " token " << i << " feature " << j;
            sum += want;
          }
          EXPECT_EQ(hsum[i], sum);
        }
      }
    }
  }
}

// CPU reference pieces: exact integer accumulators and float64 outputs.
struct Reference {
  std::vector<int64_t> acc;   // [m x n]
  std::vector<double> main;   // s_w s_x acc
  std::vector<double> lr;     // U (Vᵀ x)
  std::vector<float> sx;
};

Reference reference_f32(const RandomLayer& R, const std::vector<float>& x, int m, float clip,
                        int rank, const std::vector<float>& u, const std::vector<float>& v);

Reference reference(const RandomLayer& R, const std::vector<uint16_t>& x, int m, float clip,
                    int rank, const std::vector<float>& u, const std::vector<float>& v) {
  std::vector<float> xf(x.size());
  for (size_t i = 0; i < x.size(); ++i) xf[i] = lrc::f16_to_f32(x[i]);
  return reference_f32(R, xf, m, clip, rank, u, v);
}

// x [m x k] fp32 as the CPU simulation sees it.
Reference reference_f32(const RandomLayer& R, const std::vector<float>& x, int m, float clip,
                        int rank, const std::vector<float>& u, const std::vector<float>& v) {
  const int n = R.n, k = R.k;
  Reference ref;
  ref.acc.assign(static_cast<size_t>(m) * n, 0);
  ref.main.assign(ref.acc.size(), 0);
  ref.lr.assign(ref.acc.size(), 0);
  ref.sx.resize(m);
  lrc::ActQuantSpec spec;
  spec.bits = 4;
  spec.clip = clip;
  for (int i = 0; i < m; ++i) {
    std::vector<float> xf(k);
    for (int j = 0; j < k; ++j) xf[j] = x[static_cast<size_t>(i) * k + j];
    std::vector<int8_t> c(k);
    lrc::quantize_activation_row(xf.data(), k, spec, c.data(), &ref.sx[i]);
    std::vector<double> t(rank, 0.0);
    for (int j = 0; j < rank; ++j)
      for (int kk = 0; kk < k; ++kk) t[j] += static_cast<double>(v[static_cast<size_t>(kk) * rank + j]) * xf[kk];
    for (int r = 0; r < n; ++r) {
      int64_t a = 0;
      for (int kk = 0; kk < k; ++kk) a += static_cast<int64_t>(R.codes[static_cast<size_t>(r) * k + kk] - 8) * c[kk];
      const size_t o = static_cast<size_t>(i) * n + r;
      ref.acc[o] = a;
      ref.main[o] = static_cast<double>(R.scales[r]) * ref.sx[i] * static_cast<double>(a);
      double l = 0;
      for (int j = 0; j < rank; ++j) l += static_cast<double>(u[static_cast<size_t>(r) * rank + j]) * t[j];
      ref.lr[o] = l;
    }
  }
  return ref;
}

struct Case {
  int n, k, rank;
  int fixed_code;  // -1 random; else every weight code (extreme accumulators)
};

TEST(CudaW4A4, IntegerAccumulatorsAreExactOnBothPaths) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(5);
  for (const Case c : {Case{72, 100, 0, -1}, Case{200, 333, 0, -1}, Case{130, 1000, 0, -1},
                       Case{256, 4096, 0, -1}, Case{64, 11008, 0, 0}}) {
    const RandomLayer R = random_layer(c.n, c.k, rng, c.fixed_code);
    const W4A4Layout L = layout_of(R, 1.f);
    lrc::cuda::W4A4Linear lin(L);
    for (int m : {1, 3, 16, 17, 37, 300}) {
      std::vector<uint16_t> x = random_x(m, c.k, rng);
      if (c.fixed_code == 0)  // all weights -8, all activations 7: |acc| = 56·k, the largest
        for (auto& e : x) e = lrc::f32_to_f16(1.5f);
      const Reference ref = reference(R, x, m, 1.f, 0, {}, {});
      DevBuf<uint16_t> dx(x.size());
      DevBuf<float> raw(static_cast<size_t>(m) * c.n);
      CUDA_OK(cudaMemcpy(dx.p, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
      std::vector<lrc::cuda::ForwardOptions::Path> paths = {lrc::cuda::ForwardOptions::Path::kGemm};
      if (m <= 16) paths.push_back(lrc::cuda::ForwardOptions::Path::kGemv);
      for (auto path : paths) {
        lrc::cuda::ForwardOptions opt;
        opt.path = path;
        opt.raw_accumulators = raw.p;
        CUDA_OK(cudaMemset(raw.p, 0xFF, static_cast<size_t>(m) * c.n * 4));  // poison (NaN)
        lin.forward(dx.p, m, nullptr, (c.n + 7) / 8 * 8, nullptr, opt);
        CUDA_OK(cudaDeviceSynchronize());
        std::vector<float> got(static_cast<size_t>(m) * c.n);
        CUDA_OK(cudaMemcpy(got.data(), raw.p, got.size() * 4, cudaMemcpyDeviceToHost));
        size_t bad = 0;
        for (size_t i = 0; i < got.size(); ++i)
          if (got[i] != static_cast<float>(ref.acc[i])) ++bad;
        EXPECT_EQ(bad, 0u) << "n " << c.n << " k " << c.k << " m " << m << " path "
                           << (path == lrc::cuda::ForwardOptions::Path::kGemv ? "gemv" : "gemm")
                           << " first: got " << got[0] << " want " << ref.acc[0];
      }
    }
  }
}

TEST(CudaW4A4, OutputsMatchFloat64Reference) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(6);
  for (const Case c : {Case{72, 100, 5, -1}, Case{200, 333, 37, -1}, Case{512, 4096, 64, -1},
                       Case{130, 1000, 0, -1}}) {
    const RandomLayer R = random_layer(c.n, c.k, rng);
    W4A4Layout L = layout_of(R, 0.9f);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> u(static_cast<size_t>(c.n) * c.rank), v(static_cast<size_t>(c.k) * c.rank);
    for (auto& e : u) e = nd(rng);
    for (auto& e : v) e = nd(rng) / std::sqrt(static_cast<float>(c.k));
    for (int m : {1, 5, 16, 33, 300}) {
      std::vector<uint16_t> x = random_x(m, c.k, rng);
      Reference ref = reference(R, x, m, 0.9f, c.rank, u, v);
      // Scale U so the low-rank term is as large as the main term: both must be right.
      double nm = 0, nl = 0;
      for (size_t i = 0; i < ref.main.size(); ++i) {
        nm += ref.main[i] * ref.main[i];
        nl += ref.lr[i] * ref.lr[i];
      }
      const double f = c.rank > 0 ? std::sqrt(nm / nl) : 0.0;
      std::vector<float> us(u.size());
      for (size_t i = 0; i < u.size(); ++i) us[i] = static_cast<float>(u[i] * f);
      lrc::cuda::set_low_rank(L, c.rank, us.data(), v.data());
      lrc::cuda::W4A4Linear lin(L);
      const int ldy = (c.n + 7) / 8 * 8;
      DevBuf<uint16_t> dx(x.size()), dy(static_cast<size_t>(m) * ldy);
      CUDA_OK(cudaMemcpy(dx.p, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
      struct Variant {
        const char* name;
        lrc::cuda::ForwardOptions opt;
      };
      std::vector<Variant> vars;
      vars.push_back({"gemm fused", {lrc::cuda::ForwardOptions::Path::kGemm, false, nullptr}});
      vars.push_back({"gemm unfused", {lrc::cuda::ForwardOptions::Path::kGemm, true, nullptr}});
      if (m <= 16) vars.push_back({"gemv", {lrc::cuda::ForwardOptions::Path::kGemv, false, nullptr}});
      for (const Variant& var : vars) {
        CUDA_OK(cudaMemset(dy.p, 0xFF, static_cast<size_t>(m) * ldy * 2));  // poison (NaN)
        lin.forward(dx.p, m, dy.p, ldy, nullptr, var.opt);
        CUDA_OK(cudaDeviceSynchronize());
        std::vector<uint16_t> y(static_cast<size_t>(m) * ldy);
        CUDA_OK(cudaMemcpy(y.data(), dy.p, y.size() * 2, cudaMemcpyDeviceToHost));
        double err = 0, norm = 0;
        for (int i = 0; i < m; ++i)
          for (int r = 0; r < c.n; ++r) {
            const double want = ref.main[static_cast<size_t>(i) * c.n + r] + f * ref.lr[static_cast<size_t>(i) * c.n + r];
            const double got = lrc::f16_to_f32(y[static_cast<size_t>(i) * ldy + r]);
            ASSERT_TRUE(std::isfinite(got)) << var.name << " unwritten/NaN at " << i << "," << r;
            err += (got - want) * (got - want);
            norm += want * want;
          }
        EXPECT_LT(std::sqrt(err / norm), 1e-3)
            << var.name << " n " << c.n << " k " << c.k << " rank " << c.rank << " m " << m;
      }
    }
  }
}

// forward_f32 (what the model's GPU forward uses): Q_a reads the fp32 x itself, so the integer
// accumulators equal the CPU simulation's on x that fp16 cannot hold (both paths, bit for
// bit), and y leaves the fp32 epilogue unrounded: within 1e-5 of float64 without a low-rank
// branch, 1e-3 with one (its x·V reads an fp16 copy of x and t = x·V is fp16), 1e-5 again with
// the split branch (ForwardOptions::split_low_rank).
TEST(CudaW4A4, Fp32ForwardQuantizesTheFp32Input) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(7);
  for (const Case c : {Case{72, 100, 5, -1}, Case{200, 333, 0, -1}, Case{512, 4096, 64, -1}}) {
    const RandomLayer R = random_layer(c.n, c.k, rng);
    W4A4Layout L = layout_of(R, 0.9f);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> u(static_cast<size_t>(c.n) * c.rank), v(static_cast<size_t>(c.k) * c.rank);
    // fp16 values, as a checkpoint's U and V (the layout stores them in fp16).
    for (auto& e : u) e = lrc::f16_to_f32(lrc::f32_to_f16(0.05f * nd(rng)));
    for (auto& e : v)
      e = lrc::f16_to_f32(lrc::f32_to_f16(nd(rng) / std::sqrt(static_cast<float>(c.k))));
    lrc::cuda::set_low_rank(L, c.rank, u.data(), v.data());
    lrc::cuda::W4A4Linear lin(L);
    for (int m : {1, 7, 16, 33, 300}) {
      std::vector<float> x(static_cast<size_t>(m) * c.k);
      std::uniform_int_distribution<int> pick(0, 63);
      for (auto& e : x) e = pick(rng) == 0 ? 8.f * nd(rng) : nd(rng);
      const Reference ref = reference_f32(R, x, m, 0.9f, c.rank, u, v);
      const int ldy = (c.n + 3) / 4 * 4;
      DevBuf<float> dx(x.size()), dy(static_cast<size_t>(m) * ldy), draw(static_cast<size_t>(m) * c.n);
      CUDA_OK(cudaMemcpy(dx.p, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
      std::vector<lrc::cuda::ForwardOptions::Path> paths = {lrc::cuda::ForwardOptions::Path::kGemm};
      if (m <= 16) paths.push_back(lrc::cuda::ForwardOptions::Path::kGemv);
      for (const auto path : paths) {
        const char* name = path == lrc::cuda::ForwardOptions::Path::kGemm ? "gemm" : "gemv";
        lrc::cuda::ForwardOptions raw{path, false, draw.p};
        CUDA_OK(cudaMemset(draw.p, 0xFF, static_cast<size_t>(m) * c.n * 4));
        lin.forward_f32(dx.p, m, nullptr, ldy, nullptr, raw);
        CUDA_OK(cudaDeviceSynchronize());
        std::vector<float> acc(static_cast<size_t>(m) * c.n);
        CUDA_OK(cudaMemcpy(acc.data(), draw.p, acc.size() * 4, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < acc.size(); ++i)
          ASSERT_EQ(static_cast<int64_t>(acc[i]), ref.acc[i]) << name << " m " << m << " at " << i;
        // The split low-rank branch (GEMM path only): near-fp32, so within the rank-0 bound.
        for (bool split : {false, true}) {
          if (split && (path != lrc::cuda::ForwardOptions::Path::kGemm || c.rank == 0)) continue;
          lrc::cuda::ForwardOptions fo{path, false, nullptr};
          fo.split_low_rank = split;
          CUDA_OK(cudaMemset(dy.p, 0xFF, static_cast<size_t>(m) * ldy * 4));
          lin.forward_f32(dx.p, m, dy.p, ldy, nullptr, fo);
          CUDA_OK(cudaDeviceSynchronize());
          std::vector<float> y(static_cast<size_t>(m) * ldy);
          CUDA_OK(cudaMemcpy(y.data(), dy.p, y.size() * 4, cudaMemcpyDeviceToHost));
          double err = 0, norm = 0;
          for (int i = 0; i < m; ++i)
            for (int r = 0; r < c.n; ++r) {
              const size_t o = static_cast<size_t>(i) * c.n + r;
              const double want = ref.main[o] + ref.lr[o];
              const double got = y[static_cast<size_t>(i) * ldy + r];
              ASSERT_TRUE(std::isfinite(got)) << name << " unwritten/NaN at " << i << "," << r;
              err += (got - want) * (got - want);
              norm += want * want;
            }
          EXPECT_LT(std::sqrt(err / norm), c.rank > 0 && !split ? 1e-3 : 1e-5)
              << name << (split ? " split" : "") << " n " << c.n << " k " << c.k << " rank "
              << c.rank << " m " << m;
        }
      }
    }
  }
}

}  // namespace
