// Skips a GPU case (with the reason) where no CUDA device is usable.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "lrc/kernels/cuda/w4a4.h"  // cuda::device_available

#define SKIP_WITHOUT_GPU()                                         \
  do {                                                             \
    std::string why_;                                              \
    if (!lrc::cuda::device_available(&why_)) GTEST_SKIP() << why_; \
  } while (0)
