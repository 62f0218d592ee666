// The issue-28 families on the CUDA backend: each family's tiny reference model (its HF
// directory rebuilt by support/arch_refs) gives the CPU reference's logits on the GPU — q/k/v
// biases (add_bias), fused projections (copy_2d), per-head q/k norms, scaled RoPE tables and
// the sliding window — FP, QuaRot-rotated with the online q/k Hadamard, and decoded token by
// token through the device KV cache (the window over cached keys). GPU cases skip without a
// device. Written where no GPU was at hand: to be run on one (docs/results.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cuda/skip_without_gpu.h"
#include "lrc/core/error.h"
#include "lrc/io/model_loader.h"
#include "lrc/kernels/cuda/backend.h"
#include "lrc/model/forward.h"
#include "lrc/rotate/quarot.h"
#include "support/arch_refs.h"

using namespace lrc;

namespace {

using test::max_abs_diff;

class CudaArch : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaArch, LogitsEqualTheCpuReference) {
  SKIP_WITHOUT_GPU();
  const nlohmann::json ref = test::read_arch_ref(GetParam());
  const std::vector<int32_t> toks = ref.at("tokens").get<std::vector<int32_t>>();
  const int T = static_cast<int>(toks.size());
  for (bool rotated : {false, true}) {
    SCOPED_TRACE(rotated ? "rotated" : "fp");
    LlamaModel m = load_model(test::write_arch_hf_dir(ref, "cuda-" + GetParam())).model;
    if (rotated) {
      RotationOptions opt;
      opt.online_qk = true;
      rotate_model(m, opt);
    }
    const std::vector<float> cpu = forward_logits(m, toks.data(), 1, T);
    EXPECT_LT(max_abs_diff(cpu, ref.at("logits").get<std::vector<float>>()), 1e-3);
    m.backend = make_cuda_backend(0, /*real_kernels=*/false);
    EXPECT_LT(max_abs_diff(forward_logits(m, toks.data(), 1, T), cpu), 1e-3);
    // Token by token through the device cache: the last position's logits.
    Decoder dec(m, T);
    std::vector<float> last;
    for (int t = 0; t < T; ++t) last = dec.forward(&toks[static_cast<size_t>(t)], 1);
    const std::vector<float> want(cpu.end() - static_cast<long>(last.size()), cpu.end());
    EXPECT_LT(max_abs_diff(last, want), 1e-3);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, CudaArch,
                         ::testing::Values("llama3", "mistral", "qwen2", "qwen3", "phi3"));

// Mixtral's expert dispatch runs on the CPU backends only: the CUDA backend refuses it with an
// error naming MoE, never a wrong or crashing forward.
TEST(CudaArchMoe, MixtralIsRefusedByName) {
  SKIP_WITHOUT_GPU();
  const nlohmann::json ref = test::read_arch_ref("mixtral");
  const std::vector<int32_t> toks = ref.at("tokens").get<std::vector<int32_t>>();
  LlamaModel m = load_model(test::write_arch_hf_dir(ref, "cuda-mixtral")).model;
  m.backend = make_cuda_backend(0, /*real_kernels=*/false);
  try {
    forward_logits(m, toks.data(), 1, static_cast<int>(toks.size()));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("MoE"), std::string::npos) << e.what();
  }
}

}  // namespace
