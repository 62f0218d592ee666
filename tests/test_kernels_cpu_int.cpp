// W4A4 CPU integer kernels (include/lrc/kernels/cpu_int/w4a4.h): every ISA path gives
// int32 accumulators equal to a brute-force Σ (cw - zw)·cx, activation codes equal to
// quantize_activation_row's, and outputs equal to the simulation (dequantized Ŵ times
// Q_a(x) plus the low-rank branch, in float64) within float rounding and to lrc's own
// simulation (the CPU reference backend) bit for bit — on random layers of awkward sizes and
// on a real layer of the default 22M model.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/io/model_loader.h"
#include "lrc/kernels/backend.h"
#include "lrc/kernels/cpu_int/w4a4.h"
#include "lrc/kernels/cpu_int/w8.h"
#include "lrc/kernels/low_rank_branch.h"
#include "lrc/core/half.h"
#include "lrc/format/linear.h"
#include "lrc/format/act_quant.h"
#include "lrc/format/code_packing.h"
#include "lrc/quant/weight_quant.h"
#include "support/paths.h"

namespace {

namespace ci = lrc::kernels::cpu_int;

// The ISAs this CPU can run (scalar always; the SIMD ones when present).
std::vector<ci::Isa> isas() {
  std::vector<ci::Isa> out = {ci::Isa::kScalar};
  if (__builtin_cpu_supports("avx2")) out.push_back(ci::Isa::kAvx2);
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
    out.push_back(ci::Isa::kAvx512Vnni);
  return out;
}

std::vector<float> randn(size_t n, uint64_t seed, float sd = 1.f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

lrc::ActQuantSpec a4(float clip = 1.f, int bits = 4) {
  lrc::ActQuantSpec a;
  a.bits = bits;
  a.clip = clip;
  return a;
}

// Brute force: acc[(i*d_out + r)*ng + g] = Σ_{k in g} (code[r,k] - zero[r,g]) * cx[i,k].
std::vector<int32_t> brute(const std::vector<uint8_t>& codes, const std::vector<int32_t>& zeros,
                           const std::vector<int8_t>& cx, int d_out, int d_in, int gs, int64_t n) {
  const int ng = gs > 0 ? d_in / gs : 1, g_size = gs > 0 ? gs : d_in;
  std::vector<int32_t> acc(size_t(n * d_out * ng), 0);
  for (int64_t i = 0; i < n; ++i)
    for (int r = 0; r < d_out; ++r)
      for (int k = 0; k < d_in; ++k) {
        const int g = k / g_size;
        acc[size_t((i * d_out + r) * ng + g)] +=
            (codes[size_t(r) * d_in + k] - zeros[size_t(r) * ng + g]) * cx[size_t(i * d_in + k)];
      }
  return acc;
}

// Random codes 0..15, zero points (8 when symmetric, else 0..15) and activation codes in
// [-2^(ab-1), 2^(ab-1)-1]; every ISA must reproduce the brute-force integers exactly.
void check_random_layer(int d_out, int d_in, int gs, int64_t n, bool symmetric, int abits,
                        uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int ng = gs > 0 ? d_in / gs : 1;
  std::vector<uint8_t> codes(size_t(d_out) * d_in);
  for (auto& c : codes) c = uint8_t(rng() % 16);
  std::vector<int32_t> zeros(size_t(d_out) * ng);
  for (auto& z : zeros) z = symmetric ? 8 : int32_t(rng() % 16);
  std::vector<float> scales(zeros.size(), 1.f);
  std::vector<int8_t> cx(size_t(n * d_in));
  const int lo = -(1 << (abits - 1)), span = 1 << abits;
  for (auto& c : cx) c = int8_t(lo + int(rng() % span));
  const auto w = ci::pack_w4a4_cpu(codes.data(), scales.data(), zeros.data(), d_out, d_in, gs,
                                   symmetric);
  const auto want = brute(codes, zeros, cx, d_out, d_in, gs, n);
  for (ci::Isa isa : isas()) {
    std::vector<int32_t> got(want.size(), -1);
    ci::int_accumulators(w, cx.data(), n, got.data(), isa);
    ASSERT_EQ(got, want) << ci::isa_name(isa) << " d_out " << d_out << " d_in " << d_in << " gs "
                         << gs << " n " << n << " sym " << symmetric << " abits " << abits;
  }
}

TEST(KernelsCpuInt, IntAccumulatorsEqualBruteForceOnAwkwardSizes) {
  uint64_t seed = 1;
  for (int d_out : {1, 31, 33, 100})
    for (int d_in : {3, 13, 100, 260})
      for (int64_t n : {1, 2, 5, 13, 16, 29})
        for (bool sym : {true, false}) check_random_layer(d_out, d_in, 0, n, sym, 4, seed++);
  // Extreme values: every code 15 (or 0) against -128 / 127 over a long row checks the
  // 16x-scaled high-nibble sums and their shift back.
  {
    const int d_out = 40, d_in = 8192;
    std::vector<uint8_t> codes(size_t(d_out) * d_in);
    for (size_t i = 0; i < codes.size(); ++i) codes[i] = (i / d_in) % 3 == 0 ? 0 : 15;
    std::vector<int32_t> zeros(size_t(d_out), 8);
    std::vector<float> scales(size_t(d_out), 1.f);
    std::vector<int8_t> cx(size_t(3) * d_in);
    for (size_t i = 0; i < cx.size(); ++i) cx[i] = i < size_t(d_in) ? -128 : (i % 2 ? 127 : -128);
    const auto w = ci::pack_w4a4_cpu(codes.data(), scales.data(), zeros.data(), d_out, d_in, 0,
                                     true);
    const auto want = brute(codes, zeros, cx, d_out, d_in, 0, 3);
    for (ci::Isa isa : isas()) {
      std::vector<int32_t> got(want.size());
      ci::int_accumulators(w, cx.data(), 3, got.data(), isa);
      ASSERT_EQ(got, want) << ci::isa_name(isa);
    }
  }
  // Bigger than one L2 chunk of tokens, 8-bit activations (the most negative code -128 too).
  check_random_layer(70, 576, 0, 300, false, 8, 99);
}

TEST(KernelsCpuInt, IntAccumulatorsEqualBruteForceWithWeightGroups) {
  check_random_layer(45, 256, 128, 17, false, 4, 7);
  check_random_layer(64, 384, 128, 3, true, 4, 8);
  check_random_layer(7, 24, 4, 5, false, 8, 9);
}

TEST(KernelsCpuInt, ActivationCodesEqualQuantizeActivationRow) {
  for (int d : {1, 5, 16, 100, 576, 1000})
    for (int bits : {4, 8})
      for (float clip : {1.f, 0.9f}) {
        const int64_t n = 9;
        std::vector<float> x = randn(size_t(n * d), uint64_t(d * 31 + bits), 3.f);
        for (int k = 0; k < d; ++k) x[size_t(2 * d + k)] = 0.f;  // an all-zero token: scale 1
        x[size_t(d)] = 1e-30f;                                    // a tiny one
        std::vector<int8_t> want(size_t(n * d));
        std::vector<float> want_s(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i)
          lrc::quantize_activation_row(x.data() + i * d, d, a4(clip, bits), want.data() + i * d,
                                       &want_s[size_t(i)]);
        for (ci::Isa isa : isas()) {
          std::vector<int8_t> got(want.size());
          std::vector<float> got_s(static_cast<size_t>(n));
          std::vector<int32_t> cs(static_cast<size_t>(n));
          ci::quantize_activations_int(a4(clip, bits), x.data(), n, d, got.data(), got_s.data(),
                                       cs.data(), isa);
          ASSERT_EQ(got, want) << ci::isa_name(isa) << " d " << d << " bits " << bits;
          ASSERT_EQ(got_s, want_s) << ci::isa_name(isa) << " d " << d;
          for (int64_t i = 0; i < n; ++i) {
            int32_t s = 0;
            for (int k = 0; k < d; ++k) s += want[size_t(i * d + k)];
            ASSERT_EQ(cs[size_t(i)], s);
          }
        }
      }
}

// Simulation in float64: Ŵ (dequantized) · Q_a(x) + U·(Vᵀ x). Returns per-element tolerance
// too: 1e-5 of Σ |ŵ x̂| + Σ |u t| (float rounding of the scale product and of the fp32 sgemm).
void simulate(const lrc::PackedWeight& p, int d_out, int d_in, const lrc::ActQuantSpec& act,
              const std::vector<float>& u, const std::vector<float>& v, int rank,
              const std::vector<float>& x, int64_t n, std::vector<double>& y,
              std::vector<double>& tol) {
  std::vector<float> W(size_t(d_out) * d_in), xq(x.size());
  lrc::dequantize(p, d_out, d_in, W.data());
  lrc::quantize_activations(x.data(), n, d_in, act, xq.data());
  y.assign(size_t(n * d_out), 0.0);
  tol.assign(y.size(), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    std::vector<double> t(size_t(rank), 0.0);
    for (int r = 0; r < rank; ++r)
      for (int k = 0; k < d_in; ++k)
        t[size_t(r)] += double(x[size_t(i * d_in + k)]) * v[size_t(k) * rank + r];
    for (int o = 0; o < d_out; ++o) {
      double s = 0, a = 0;
      for (int k = 0; k < d_in; ++k) {
        const double pr = double(W[size_t(o) * d_in + k]) * xq[size_t(i * d_in + k)];
        s += pr;
        a += std::fabs(pr);
      }
      for (int r = 0; r < rank; ++r) {
        const double pr = double(u[size_t(o) * rank + r]) * t[size_t(r)];
        s += pr;
        a += std::fabs(pr) * 4;  // t itself is an fp32 sgemm result
      }
      y[size_t(i * d_out + o)] = s;
      tol[size_t(i * d_out + o)] = 1e-5 * a + 1e-30;
    }
  }
}

void check_output(const std::vector<float>& W, int d_out, int d_in, int gs, bool sym, int rank,
                  int64_t n, uint64_t seed, const std::vector<float>* xin = nullptr) {
  lrc::WeightQuantSpec ws;
  ws.groupsize = gs;
  ws.symmetric = sym;
  const lrc::PackedWeight p = lrc::quantize_rtn(W.data(), d_out, d_in, ws);
  ASSERT_EQ(ci::unsupported_reason(p, a4(0.9f), d_out, d_in), "");
  const auto w = ci::pack_w4a4_cpu(p, d_out, d_in);
  const std::vector<float> x = xin ? *xin : randn(size_t(n * d_in), seed + 1);
  const std::vector<float> u = randn(size_t(d_out) * rank, seed + 2, 0.1f),
                           v = randn(size_t(d_in) * rank, seed + 3, 0.1f);
  std::vector<double> want, tol;
  simulate(p, d_out, d_in, a4(0.9f), u, v, rank, x, n, want, tol);
  // lrc's simulation (the CPU reference backend's linear, `--kernels sim`): the same floats.
  lrc::Linear L;
  L.d_out = d_out;
  L.d_in = d_in;
  L.packed = p;
  L.act = a4(0.9f);
  L.lr.rank = rank;
  L.lr.u = u;
  L.lr.v = v;
  std::vector<float> sim(size_t(n * d_out), NAN);
  lrc::cpu_reference_backend().linear(L, x.data(), n, sim.data());
  for (ci::Isa isa : isas()) {
    std::vector<float> y(size_t(n * d_out), NAN);
    ci::w4a4_linear(w, a4(0.9f), u.data(), v.data(), rank, x.data(), n, y.data(), isa);
    for (size_t i = 0; i < y.size(); ++i) {
      ASSERT_NEAR(y[i], want[i], tol[i])
          << ci::isa_name(isa) << " at " << i << " d " << d_out << "x" << d_in << " gs " << gs
          << " sym " << sym << " rank " << rank << " n " << n;
      ASSERT_EQ(y[i], sim[i]) << "not the simulation's float: " << ci::isa_name(isa) << " at "
                              << i << " d " << d_out << "x" << d_in << " gs " << gs << " sym "
                              << sym << " rank " << rank << " n " << n;
    }
  }
}

TEST(KernelsCpuInt, OutputEqualsSimulationWithLowRank) {
  const int d_out = 70, d_in = 256;
  const std::vector<float> W = randn(size_t(d_out) * d_in, 11, 0.05f);
  for (int gs : {0, 128})
    for (bool sym : {true, false})
      for (int rank : {0, 5})
        for (int64_t n : {1, 7, 40}) check_output(W, d_out, d_in, gs, sym, rank, n, 20);
  const std::vector<float> W2 = randn(size_t(33) * 101, 12, 0.05f);
  check_output(W2, 33, 101, 0, false, 3, 19, 21);  // nothing a multiple of 4 or 32
}

TEST(KernelsCpuInt, RealLayerOfDefaultModel) {
  const std::string dir = lrc::test::default_model_dir();
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no model at " << dir;
  const lrc::LoadedModel lm = lrc::load_model(dir, "", false);
  for (const lrc::Linear* L : {&lm.model.layers[0].w_down, &lm.model.layers[1].wk}) {
    const int d_out = L->d_out, d_in = L->d_in;
    // Real activations would need the forward; a heavy-tailed input exercises clipping too.
    std::vector<float> x = randn(size_t(37) * d_in, 5);
    for (size_t i = 0; i < x.size(); i += 97) x[i] *= 20.f;
    for (bool sym : {true, false}) {
      check_output(L->w, d_out, d_in, 0, sym, 8, 37, 30, &x);
      check_output(L->w, d_out, d_in, 128, sym, 0, 37, 31, &x);
    }
    // Integer accumulators against codes straight from PackedWeight and quantize_activation_row.
    lrc::WeightQuantSpec ws;
    ws.symmetric = false;
    const lrc::PackedWeight p = lrc::quantize_rtn(L->w.data(), d_out, d_in, ws);
    std::vector<uint8_t> codes(size_t(d_out) * d_in);
    lrc::unpack_codes(p.codes.data(), int64_t(codes.size()), 4, codes.data());
    std::vector<int32_t> zeros(p.zeros.begin(), p.zeros.end());
    const int64_t n = 37;
    std::vector<int8_t> cx(size_t(n * d_in));
    std::vector<float> sx(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      lrc::quantize_activation_row(x.data() + i * d_in, d_in, a4(0.9f), cx.data() + i * d_in,
                                   &sx[size_t(i)]);
    const auto want = brute(codes, zeros, cx, d_out, d_in, 0, n);
    const auto w = ci::pack_w4a4_cpu(p, d_out, d_in);
    for (ci::Isa isa : isas()) {
      std::vector<int32_t> got(want.size());
      ci::int_accumulators(w, cx.data(), n, got.data(), isa);
      ASSERT_EQ(got, want) << ci::isa_name(isa);
    }
  }
}

// The weight-only 8-bit GEMV (--lm-head q8) against float64: s·Σ (c − z)·x for awkward
// shapes (d_in not a multiple of 16 or 32, d_out not of 4), 1..5 tokens, symmetric and
// asymmetric zero points, one and two threads' worth of rows.
TEST(KernelsCpuInt, EightBitWeightOnlyGemvMatchesFloat64) {
  for (auto [d_out, d_in] : {std::pair{1, 1}, {7, 15}, {13, 48}, {33, 100}, {3000, 576}})
    for (int64_t n : {1, 2, 5})
      for (bool sym : {true, false}) {
        std::mt19937_64 rng(uint64_t(d_out * 131 + d_in + n));
        std::vector<uint8_t> c(size_t(d_out) * d_in);
        for (auto& v : c) v = uint8_t(rng() % 256);
        std::vector<float> s(static_cast<size_t>(d_out)), z(static_cast<size_t>(d_out));
        for (int r = 0; r < d_out; ++r) {
          s[size_t(r)] = 1e-3f * float(1 + rng() % 100);
          z[size_t(r)] = sym ? 128.f : float(rng() % 256);
        }
        const std::vector<float> x = randn(size_t(n) * d_in, uint64_t(d_in + 7));
        std::vector<float> y(size_t(n) * d_out, NAN);
        ci::w8_linear(c.data(), s.data(), z.data(), d_out, d_in, x.data(), n, y.data());
        for (int64_t i = 0; i < n; ++i)
          for (int r = 0; r < d_out; ++r) {
            double want = 0, mag = 0;
            for (int j = 0; j < d_in; ++j) {
              const double p =
                  (double(c[size_t(r) * d_in + j]) - z[size_t(r)]) * x[size_t(i * d_in + j)];
              want += p;
              mag += std::fabs(p);
            }
            want *= s[size_t(r)];
            mag *= s[size_t(r)];
            ASSERT_NEAR(y[size_t(i * d_out + r)], want, 1e-6 * mag + 1e-30)
                << d_out << "x" << d_in << " n " << n << " token " << i << " row " << r;
          }
      }
}

// One token's low-rank branch (kernels/low_rank_branch.h): fp16-valued U, V are kept in fp16
// (half the bytes) and give the same floats as the same values kept in fp32; both equal
// float64 U(Vᵀx) within fp32 rounding; values that are not fp16 stay fp32.
TEST(KernelsCpuInt, LowRankDecodeHalfEqualsFloatStorage) {
  for (auto [d_out, d_in, rank] : {std::tuple{1536, 576, 41}, {33, 101, 3}, {7, 5, 17}}) {
    std::vector<float> u = randn(size_t(d_out) * rank, 3, 0.1f),
                       v = randn(size_t(d_in) * rank, 4, 0.1f);
    for (auto* m : {&u, &v})
      for (auto& e : *m) e = lrc::f16_to_f32(lrc::f32_to_f16(e));
    const lrc::LowRankDecode h = lrc::make_low_rank_decode(u.data(), v.data(), rank, d_in, d_out);
    ASSERT_TRUE(h.half);
    EXPECT_EQ(h.bytes(), int64_t(2) * (d_out + d_in) * rank);
    lrc::LowRankDecode f = h;  // the same values in fp32 storage
    f.half = false;
    f.v32.assign(v.begin(), v.end());
    f.ut32.resize(size_t(d_out) * rank);
    for (int r = 0; r < d_out; ++r)
      for (int k = 0; k < rank; ++k) f.ut32[size_t(k) * d_out + r] = u[size_t(r) * rank + k];
    f.v16.clear();
    f.ut16.clear();
    const std::vector<float> x = randn(size_t(d_in), 5);
    std::vector<float> yh(size_t(d_out), 0.5f), yf = yh;
    lrc::add_low_rank_decode(h, x.data(), yh.data());
    lrc::add_low_rank_decode(f, x.data(), yf.data());
    EXPECT_EQ(yh, yf) << d_out << "x" << d_in << " rank " << rank;
    for (int r = 0; r < d_out; ++r) {
      double want = 0.5, mag = 0;
      for (int k = 0; k < rank; ++k) {
        double t = 0;
        for (int j = 0; j < d_in; ++j) t += double(x[size_t(j)]) * v[size_t(j) * rank + k];
        want += double(u[size_t(r) * rank + k]) * t;
        mag += std::fabs(double(u[size_t(r) * rank + k]) * t);
      }
      ASSERT_NEAR(yh[size_t(r)], want, 1e-5 * (mag + 1)) << "row " << r;
    }
    u[0] = 0.1f;  // not an fp16 value
    EXPECT_FALSE(lrc::make_low_rank_decode(u.data(), v.data(), rank, d_in, d_out).half);
  }
}

TEST(KernelsCpuInt, UnsupportedConfigsAreNamed) {
  const std::vector<float> W = randn(64 * 64, 3);
  lrc::WeightQuantSpec ws;
  ws.bits = 3;
  const lrc::PackedWeight p3 = lrc::quantize_rtn(W.data(), 64, 64, ws);
  EXPECT_NE(ci::unsupported_reason(p3, a4(), 64, 64).find("weight bits 3"), std::string::npos);
  try {
    ci::pack_w4a4_cpu(p3, 64, 64);
    FAIL() << "3-bit weights were packed";
  } catch (const lrc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("weight bits 3"), std::string::npos) << e.what();
  }
  ws.bits = 4;
  const lrc::PackedWeight p4 = lrc::quantize_rtn(W.data(), 64, 64, ws);
  EXPECT_NE(ci::unsupported_reason(p4, a4(1.f, 16), 64, 64).find("not quantized"),
            std::string::npos);
  lrc::ActQuantSpec grouped = a4();
  grouped.groupsize = 32;
  EXPECT_NE(ci::unsupported_reason(p4, grouped, 64, 64).find("activation groupsize"),
            std::string::npos);
  lrc::PackedWeight frac = p4;
  frac.symmetric = false;
  frac.zeros[3] = 7.5f;
  EXPECT_NE(ci::unsupported_reason(frac, a4(), 64, 64).find("zero point"), std::string::npos);
  EXPECT_THROW(ci::pack_w4a4_cpu(p4, 64, 65), lrc::Error);  // sizes disagree with the arrays
  // Past the int32 headroom of the 16x high-nibble sums (checked before any array is read).
  EXPECT_NE(ci::unsupported_reason(p4, a4(), 64, ci::kMaxDin + 4).find("headroom"),
            std::string::npos);
}

TEST(KernelsCpuInt, IsaOverrideFromEnvironment) {
  ::setenv("LRC_CPU_ISA", "scalar", 1);
  EXPECT_EQ(ci::detect_isa(), ci::Isa::kScalar);
  ::setenv("LRC_CPU_ISA", "sse9", 1);
  try {
    ci::detect_isa();
    FAIL() << "bad LRC_CPU_ISA accepted";
  } catch (const lrc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("LRC_CPU_ISA"), std::string::npos) << e.what();
  }
  ::unsetenv("LRC_CPU_ISA");
  EXPECT_EQ(ci::detect_isa(), isas().back());
}

}  // namespace
