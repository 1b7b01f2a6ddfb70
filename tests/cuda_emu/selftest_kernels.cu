// Kernels that test cuda_emu itself: collectives that must give CUDA's results, and
// mistakes the emulation must refuse (tests/test_cuda_emulated.py calls them through
// torch.ops.posefast_emu.selftest). Written as CUDA and translated like csrc/cuda/*.cu.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

namespace posefast_selftest {
namespace {

constexpr int kBlock = 128;

// out[block] = sum of threadIdx.x over the block, by shuffles and a shared-memory step;
// out[grid + block] = number of odd lanes seen by warp 0's ballot; out[2 grid + block] =
// lane 0's value after a butterfly (xor) sum over warp 0.
__global__ void collectives_kernel(float* out) {
  __shared__ float partial[kBlock / 32];
  float v = static_cast<float>(threadIdx.x);
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const unsigned odd = __ballot_sync(0xffffffffu, threadIdx.x & 1);
  float x = static_cast<float>(threadIdx.x);
  for (int mask = 16; mask > 0; mask >>= 1) x += __shfl_xor_sync(0xffffffffu, x, mask);
  if (threadIdx.x == 0) {
    float s = 0;
    for (int w = 0; w < kBlock / 32; ++w) s += partial[w];
    out[blockIdx.x] = s;
    out[gridDim.x + blockIdx.x] = static_cast<float>(__popc(odd));
    out[2 * gridDim.x + blockIdx.x] = x;
  }
}

// __syncthreads after thread 0 has returned: a barrier that never completes.
__global__ void early_exit_sync_kernel(float* out) {
  if (threadIdx.x == 0) return;
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}

// A full-mask shuffle that half of each warp skips.
__global__ void half_warp_shuffle_kernel(float* out) {
  if ((threadIdx.x & 31) < 16) return;
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, 1.0f, 1);
}

// A shuffle over half a warp's lanes, which the emulation does not model.
__global__ void partial_mask_kernel(float* out) {
  out[threadIdx.x] = __shfl_down_sync(0x0000ffffu, 1.0f, 1);
}

// Lanes 0-15 in a ballot while lanes 16-31 are in a shuffle: undefined on a GPU.
__global__ void mixed_collectives_kernel(float* out) {
  if ((threadIdx.x & 31) < 16) {
    out[threadIdx.x] = static_cast<float>(__ballot_sync(0xffffffffu, 1));
  } else {
    out[threadIdx.x] = __shfl_down_sync(0xffffffffu, 1.0f, 1);
  }
}

// Lane 0 writes what lane 31 reads, with no __syncwarp between: a race within the warp.
__global__ void lane_race_kernel(float* out) {
  __shared__ float slot;
  if (threadIdx.x == 0) slot = 42.0f;
  if (threadIdx.x == 31) out[0] = slot;
}

// One element past the end of out.
__global__ void overrun_kernel(float* out, int n) {
  if (threadIdx.x == 0) out[n] = 0.0f;
}

// One byte past the dynamic shared memory.
__global__ void smem_overrun_kernel(int bytes) {
  extern __shared__ unsigned char smem_raw[];
  if (threadIdx.x == 0) smem_raw[bytes] = 0;
}

// Declared for blocks of at most 64 threads (launched with kBlock = 128 by its selftest).
__global__ void __launch_bounds__(kBlock / 2) bounded_kernel(float* out) {
  out[threadIdx.x] = 1.0f;
}

// A 16-byte vector load from 4 bytes past out's (16-byte aligned) start.
struct alignas(16) Float4 {
  float v[4];
};
__global__ void misaligned_kernel(float* out) {
  if (threadIdx.x == 0) out[0] = reinterpret_cast<const Float4*>(out + 1)->v[0];
}

// Reads a shared value no thread wrote: 0xFF bytes, a NaN.
__global__ void unwritten_shared_kernel(float* out) {
  __shared__ float never_written[4];
  __syncthreads();
  if (threadIdx.x == 0) out[0] = never_written[2];
}

at::Tensor selftest(c10::string_view name, int64_t blocks) {
  auto stream = c10::cuda::getCurrentCUDAStream();
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  at::Tensor out = at::empty({3 * blocks}, f32);
  float* o = out.data_ptr<float>();
  const int n = static_cast<int>(out.numel());
  if (name == "collectives") {
    collectives_kernel<<<static_cast<unsigned>(blocks), kBlock, 0, stream>>>(o);
  } else if (name == "early_exit_sync") {
    early_exit_sync_kernel<<<1, kBlock, 0, stream>>>(o);
  } else if (name == "half_warp_shuffle") {
    half_warp_shuffle_kernel<<<1, kBlock, 0, stream>>>(o);
  } else if (name == "partial_mask") {
    partial_mask_kernel<<<1, kBlock, 0, stream>>>(o);
  } else if (name == "mixed_collectives") {
    mixed_collectives_kernel<<<1, 32, 0, stream>>>(o);
  } else if (name == "lane_race") {
    lane_race_kernel<<<1, 32, 0, stream>>>(o);
  } else if (name == "overrun") {
    overrun_kernel<<<1, kBlock, 0, stream>>>(o, n);
  } else if (name == "smem_overrun") {
    smem_overrun_kernel<<<1, kBlock, 64, stream>>>(64);
  } else if (name == "smem_too_large") {
    smem_overrun_kernel<<<1, kBlock, 49 * 1024, stream>>>(0);
  } else if (name == "block_too_large") {
    overrun_kernel<<<1, 2048, 0, stream>>>(o, 0);
  } else if (name == "launch_bounds") {
    bounded_kernel<<<1, kBlock, 0, stream>>>(o);
  } else if (name == "misaligned") {
    misaligned_kernel<<<1, kBlock, 0, stream>>>(o);
  } else if (name == "unwritten_shared") {
    unwritten_shared_kernel<<<1, kBlock, 0, stream>>>(o);
  } else {
    TORCH_CHECK(false, "cuda_emu selftest: unknown case ", name);
  }
  return out;
}

std::vector<int64_t> launch_log(bool clear) {
  std::vector<int64_t> log = ::cuda_emu::launch_log();
  if (clear) ::cuda_emu::launch_log().clear();
  return log;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(posefast_emu, m) {
  m.def("selftest(str name, int blocks) -> Tensor", &selftest);
  // every launch since the last clear: (grid x, y, z, block x, y, z, dynamic shared bytes) each
  m.def("launch_log(bool clear) -> int[]", &launch_log);
}

}  // namespace posefast_selftest
