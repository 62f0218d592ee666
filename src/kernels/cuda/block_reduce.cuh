// Block-wide reduction of one value (e.g. max or sum) through shared memory, shared by the
// kernels of this folder. smem holds blockDim.x / 32 values; every thread gets the result.
// blockDim.x must be a multiple of 32.
#pragma once

namespace lrc::cuda {

template <typename T, typename Op>
__device__ T block_reduce(T v, Op op, T* smem) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  T r = smem[0];
  for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w) r = op(r, smem[w]);
  __syncthreads();  // smem may be reused by the next reduction
  return r;
}

}  // namespace lrc::cuda
