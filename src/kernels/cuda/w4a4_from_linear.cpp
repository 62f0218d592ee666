#include "lrc/kernels/cuda/w4a4_from_linear.h"

#include "lrc/core/error.h"

namespace lrc::cuda {

W4A4Layout w4a4_layout_from_linear(const Linear& lin, const std::string& name) {
  if (!lin.packed) fail(name, "packed: the layer has no integer weights (not quantized?)");
  const PackedWeight& p = *lin.packed;
  W4A4Layout L = make_w4a4_layout(lin.d_out, lin.d_in, p.codes.data(), p.scales.data(),
                                  p.zeros.data(), p.bits, p.groupsize, p.symmetric,
                                  lin.act.bits, lin.act.groupsize, lin.act.clip, name);
  set_low_rank(L, lin.lr.rank, lin.lr.u.data(), lin.lr.v.data());
  return L;
}

}  // namespace lrc::cuda
