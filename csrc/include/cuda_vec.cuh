// Small CUDA helpers shared by the kernels: 16-byte vector access and the block-wide
// reduction of soft-argmax states.
#pragma once

#include <cstdint>

#include "pose_math.h"

namespace posefast {

// VEC elements of scalar_t moved as one aligned load/store (16 bytes when VEC * sizeof
// fills it).
template <typename scalar_t, int VEC>
struct alignas(sizeof(scalar_t) * VEC) Vec {
  scalar_t v[VEC];
};

// Elements per 16-byte access for scalar_t.
template <typename scalar_t>
constexpr int vec_width() {
  return 16 / sizeof(scalar_t) > 0 ? 16 / sizeof(scalar_t) : 1;
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <typename T>
__device__ __forceinline__ SoftArgmaxState<T> shfl_down_state(const SoftArgmaxState<T>& st,
                                                              int offset) {
  SoftArgmaxState<T> o;
  o.m = __shfl_down_sync(0xffffffffu, st.m, offset);
  o.s = __shfl_down_sync(0xffffffffu, st.s, offset);
  o.sx = __shfl_down_sync(0xffffffffu, st.sx, offset);
  o.sy = __shfl_down_sync(0xffffffffu, st.sy, offset);
  return o;
}

// Reduces every thread's state into thread 0's (valid in thread 0 only).
// BLOCK must be a multiple of 32, at most 1024, and equal to blockDim.x; every thread of
// the block calls it. Once per kernel: no barrier precedes the write of `partial`, so a
// second call would race with the first one's reads.
template <typename T, int BLOCK>
__device__ __forceinline__ SoftArgmaxState<T> block_reduce_state(SoftArgmaxState<T> st) {
  constexpr int WARPS = BLOCK / 32;
  __shared__ SoftArgmaxState<T> partial[WARPS];
  for (int offset = 16; offset > 0; offset >>= 1) st.merge(shfl_down_state(st, offset));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) partial[warp] = st;
  __syncthreads();
  if (warp == 0) {
    if (lane < WARPS) {
      st = partial[lane];
    } else {
      st.init();
    }
    for (int offset = 16; offset > 0; offset >>= 1) st.merge(shfl_down_state(st, offset));
  }
  return st;
}

}  // namespace posefast
