// The one adapter between lrc's in-memory Linear and the CUDA W4A4 layout (w4a4.h), kept
// apart so that moving Linear/PackedWeight to other headers touches one file.
#pragma once

#include <string>

#include "lrc/kernels/cuda/w4a4.h"
#include "lrc/format/linear.h"

namespace lrc::cuda {

// GPU layout of a quantized Linear: needs lin.packed (4-bit, symmetric, per row) and 4-bit
// per-token activations; U, V from lin.u [d_out x rank], lin.v [d_in x rank]. `name` goes
// into error messages (e.g. "layers.3.mlp.down_proj").
W4A4Layout w4a4_layout_from_linear(const Linear& lin, const std::string& name);

}  // namespace lrc::cuda
