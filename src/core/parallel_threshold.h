// Below this many elements of work an OpenMP loop runs serially: on a small, shared machine
// the fork/join barrier of a parallel region costs more than it saves (and a descheduled
// worker can stall it for a whole scheduler tick).
#pragma once

#include <cstdint>

namespace lrc::quant_detail {

inline constexpr int64_t kMinParallelWork = int64_t{1} << 16;

}  // namespace lrc::quant_detail
