#include "lrc/kernels/registry.h"

#include <string>

#include "lrc/core/error.h"
#ifdef LRC_HAVE_CUDA
#include "lrc/kernels/cuda/backend.h"
#endif

namespace lrc {

namespace {

// "cuda" -> 0, "cuda:N" -> N.
int cuda_index(const std::string& device) {
  if (device == "cuda") return 0;
  const std::string n = device.substr(5);
  if (device.compare(0, 5, "cuda:") != 0 || n.empty() ||
      n.find_first_not_of("0123456789") != std::string::npos || n.size() > 4)
    fail("--device", "expected cpu, cuda or cuda:N, got '" + device + "'");
  return std::stoi(n);
}

}  // namespace

BackendPtr make_backend(const std::string& device, const std::string& kernels, bool decoding,
                        const std::string& gpu_math) {
  if (kernels != "real" && kernels != "sim")
    fail("--kernels", "expected real or sim, got '" + kernels + "'");
  if (gpu_math != "fp32" && gpu_math != "tf32")
    fail("--gpu-math", "expected fp32 or tf32, got '" + gpu_math + "'");
  if (device.rfind("cuda", 0) == 0) {
    const int index = cuda_index(device);
#ifdef LRC_HAVE_CUDA
    return make_cuda_backend(index, kernels == "real", gpu_math == "tf32");
#else
    (void)index;
    fail("--device", "'" + device +
                         "': this lrc was built without CUDA (configure with -DLRC_CUDA=ON and "
                         "nvcc on PATH); use --device cpu");
#endif
  }
  if (device != "cpu") fail("--device", "expected cpu, cuda or cuda:N, got '" + device + "'");
  if (gpu_math != "fp32") fail("--gpu-math", gpu_math + " is a GPU mode: it needs --device cuda[:N]");
  if (kernels == "sim") return make_cpu_reference_backend(/*keep_dequantized=*/decoding);
  return make_cpu_int_backend();
}

}  // namespace lrc
