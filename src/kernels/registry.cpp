#include "lrc/kernels/registry.h"

#include "lrc/core/error.h"

namespace lrc {

BackendPtr make_backend(const std::string& device, const std::string& kernels, bool decoding) {
  if (kernels != "real" && kernels != "sim")
    fail("--kernels", "expected real or sim, got '" + kernels + "'");
  if (device.rfind("cuda", 0) == 0)
    fail("--device", "'" + device +
                         "': no CUDA backend for the model forward yet (the CUDA W4A4 kernels "
                         "are a library and bench_w4a4 so far); use --device cpu");
  if (device != "cpu") fail("--device", "expected cpu or cuda[:N], got '" + device + "'");
  if (kernels == "sim") return make_cpu_reference_backend(/*keep_dequantized=*/decoding);
  return make_cpu_int_backend();
}

}  // namespace lrc
