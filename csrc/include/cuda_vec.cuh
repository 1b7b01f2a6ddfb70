// Small CUDA helpers shared by the kernels: 16-byte vector access, the split of large maps
// into chunks and the block-wide reduction of soft-argmax states.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>

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

// Per-map kernels split a map of `nvec` vectors into `count` chunks of `size` vectors (the
// last may be shorter), one block each (blockIdx.y), so that a batch of large maps makes a
// grid several waves deep. With one block per map, B64 x K17 = 1,088 blocks overfill the
// at most 1,056 that 132 SMs hold at once (8 per SM; fewer if registers limit them), so a
// second, partial wave runs on an otherwise idle GPU. 8 vectors per thread of a 256-thread
// block: a 256x192 float32 map is 6 chunks; maps up to 8,192 float32 pixels (64x48, 96x72)
// stay one block.
struct MapChunks {
  int64_t count, size;
};

// max_vecs, unless the environment variable POSEFAST_CUDA_CHUNK_VECS (read once per
// process) sets another limit; 0 never splits. For same-run A/B benchmarks (device_check.sh).
inline int64_t chunk_vecs_limit(int64_t max_vecs) {
  static const int64_t env = [] {
    const char* v = std::getenv("POSEFAST_CUDA_CHUNK_VECS");
    return v != nullptr && *v != '\0' ? std::atoll(v) : int64_t(-1);
  }();
  if (env < 0) return max_vecs;
  return env == 0 ? std::numeric_limits<int64_t>::max() : env;
}

inline MapChunks map_chunks(int64_t nvec, int64_t max_vecs) {
  max_vecs = chunk_vecs_limit(max_vecs);
  const int64_t count = nvec <= max_vecs ? 1 : std::min<int64_t>((nvec + max_vecs - 1) / max_vecs, 65535);
  return {count, (nvec + count - 1) / count};
}

// This block's vectors [begin, end) of its map.
__device__ __forceinline__ void chunk_range(int64_t nvec, int64_t size, int64_t& begin,
                                            int64_t& end) {
  begin = static_cast<int64_t>(blockIdx.y) * size;
  end = begin + size < nvec ? begin + size : nvec;
}

template <typename State>
__device__ __forceinline__ State shfl_down_state(const State& st, int offset) {
  State o;
  o.m = __shfl_down_sync(0xffffffffu, st.m, offset);
  o.s = __shfl_down_sync(0xffffffffu, st.s, offset);
  o.sx = __shfl_down_sync(0xffffffffu, st.sx, offset);
  o.sy = __shfl_down_sync(0xffffffffu, st.sy, offset);
  return o;
}

// Reduces every thread's soft-argmax state (a SoftArgmaxState) into thread 0's (valid in
// thread 0 only). BLOCK must be a multiple of 32, at most 1024, and equal to blockDim.x;
// every thread of the block calls it. Once per kernel: no barrier precedes the write of
// `partial`, so a second call would race with the first one's reads.
template <typename State, int BLOCK>
__device__ __forceinline__ State block_reduce_state(State st) {
  constexpr int WARPS = BLOCK / 32;
  __shared__ State partial[WARPS];
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
