// CUDA PCK counting. Grid (instance blocks, joints): each thread tests instances of one
// joint against every threshold; warp ballots count the hits into shared-memory totals.
// Up to kPckDirectN instances, one 1,024-thread block per joint counts them all and stores
// its totals: the whole op is one launch (no zero-fill of the outputs, and `visible` read in
// its own dtype instead of converted first). Beyond that, one 256-thread block per 256
// instances adds its totals to zeroed outputs with one atomic per threshold.
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../include/op_checks.h"
#include "../include/pose_math.h"

namespace posefast {
namespace {

constexpr int kPckBlock = 256;         // threads per block when blocks share a joint
constexpr int kPckDirectBlock = 1024;  // threads per block when one block owns a joint
constexpr int64_t kPckDirectN = 8192;  // most instances one block counts
constexpr int kPckPerThread = kPckDirectN / kPckDirectBlock;  // most instances per thread: 8

// `direct`: this block is the only one of its joint (gridDim.x == 1) and stores the totals;
// otherwise it adds them atomically. The launcher sizes the grid so that no thread has more
// than kPckPerThread instances (8 with one block per joint, 1 otherwise). All of a thread's
// instances are loaded first, so their loads are in flight together; then every slot that
// some thread of the block uses is counted with full-warp ballots (the slot loop's bound
// depends on the block only, so every lane reaches each ballot).
template <typename T, typename V>
__global__ void __launch_bounds__(kPckDirectBlock)
    pck_kernel(const T* __restrict__ pred, const T* __restrict__ gt, const V* __restrict__ vis,
               const T* __restrict__ norm, const T* __restrict__ thr, int64_t N, int K, int T_,
               unsigned long long* __restrict__ hits, unsigned long long* __restrict__ valid) {
  extern __shared__ unsigned char smem_raw[];
  T* s_thr = reinterpret_cast<T*>(smem_raw);
  unsigned int* s_hits = reinterpret_cast<unsigned int*>(s_thr + T_);
  unsigned int* s_valid = s_hits + T_;
  for (int t = threadIdx.x; t < T_; t += blockDim.x) {
    s_thr[t] = thr[t];
    s_hits[t] = 0;
  }
  if (threadIdx.x == 0) *s_valid = 0;
  __syncthreads();

  const int k = blockIdx.y;
  const int lane = threadIdx.x & 31;
  const int64_t block_first = static_cast<int64_t>(blockIdx.x) * blockDim.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int slots = 0;  // instance slots used by some thread of this block
  while (slots < kPckPerThread && block_first + slots * stride < N) ++slots;
  T dist[kPckPerThread];
  unsigned ok = 0;  // bit i: slot i holds a valid joint
#pragma unroll
  for (int i = 0; i < kPckPerThread; ++i) {
    const int64_t n = block_first + i * stride + threadIdx.x;
    dist[i] = T(0);
    if (n < N) {  // (never in a slot past `slots`)
      const int64_t e = n * K + k;
      const T gx = gt[2 * e], gy = gt[2 * e + 1];
      if (pck_valid(vis[e], norm[n], gx, gy)) {
        ok |= 1u << i;
        dist[i] = pck_distance(pred[2 * e], pred[2 * e + 1], gx, gy, norm[n]);
      }
    }
  }
  // (unrolled with constant indices, so dist[] stays in registers)
  unsigned count = 0;
#pragma unroll
  for (int i = 0; i < kPckPerThread; ++i)
    if (i < slots) count += __popc(__ballot_sync(0xffffffffu, (ok >> i) & 1u));
  if (lane == 0 && count) atomicAdd(s_valid, count);
  for (int t = 0; t < T_; ++t) {
    const T threshold = s_thr[t];
    count = 0;
#pragma unroll
    for (int i = 0; i < kPckPerThread; ++i)
      if (i < slots)
        count += __popc(__ballot_sync(0xffffffffu, ((ok >> i) & 1u) && pck_hit(dist[i], threshold)));
    if (lane == 0 && count) atomicAdd(&s_hits[t], count);
  }
  __syncthreads();
  const bool direct = gridDim.x == 1;
  for (int t = threadIdx.x; t < T_; t += blockDim.x) {
    unsigned long long* out = &hits[static_cast<int64_t>(t) * K + k];
    if (direct)
      *out = s_hits[t];
    else if (s_hits[t])
      atomicAdd(out, static_cast<unsigned long long>(s_hits[t]));
  }
  if (threadIdx.x == 0) {
    if (direct)
      valid[k] = *s_valid;
    else if (*s_valid)
      atomicAdd(&valid[k], static_cast<unsigned long long>(*s_valid));
  }
}

// Calls f with a typed pointer to `visible`: read as it is for the usual mask dtypes, else
// as the bool tensor visible > 0 (one conversion launch; exact for every dtype, where a
// conversion to the compute dtype would turn a float64 1e-300 into 0).
template <typename F>
void with_visible(const at::Tensor& visible, F&& f) {
  const at::Tensor v = visible.contiguous();
  switch (v.scalar_type()) {
    case at::kBool: return f(v.data_ptr<bool>());
    case at::kByte: return f(v.data_ptr<uint8_t>());
    case at::kLong: return f(v.data_ptr<int64_t>());
    case at::kFloat: return f(v.data_ptr<float>());
    case at::kDouble: return f(v.data_ptr<double>());
    default: return f(v.gt(0).data_ptr<bool>());
  }
}

std::tuple<at::Tensor, at::Tensor> pck_counts_cuda(const at::Tensor& pred, const at::Tensor& gt,
                                                   const at::Tensor& visible,
                                                   const at::Tensor& norm,
                                                   const at::Tensor& thresholds) {
  check_pck_args(pred, gt, visible, norm, thresholds);
  const c10::cuda::CUDAGuard guard(pred.device());
  const int64_t N = pred.size(0), K = pred.size(1), T = thresholds.size(0);
  const auto i64 = pred.options().dtype(at::kLong);
  const bool direct = N <= kPckDirectN;
  if (N == 0 || K == 0) return {at::zeros({T, K}, i64), at::zeros({K}, i64)};
  at::Tensor hits = direct ? at::empty({T, K}, i64) : at::zeros({T, K}, i64);
  at::Tensor valid = direct ? at::empty({K}, i64) : at::zeros({K}, i64);
  TORCH_CHECK(K <= 65535, "posefast: pck_counts on CUDA supports K <= 65535, got ", K);
  const auto cd = pck_compute_dtype(pred);
  const at::Tensor p = pred.to(cd).contiguous(), g = gt.to(cd).contiguous();
  const at::Tensor n = norm.to(cd).contiguous(), t = thresholds.to(cd).contiguous();
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(cd, "pck_counts_cuda", [&] {
    // thresholds and hit counts, then the valid count: within the 48 KiB without opt-in
    const size_t smem = T * (sizeof(scalar_t) + sizeof(unsigned int)) + sizeof(unsigned int);
    TORCH_CHECK(smem <= 48 * 1024, "posefast: pck_counts on CUDA supports up to ",
                (48 * 1024 - sizeof(unsigned int)) / (sizeof(scalar_t) + sizeof(unsigned int)),
                " thresholds, got ", T);
    const int block = direct ? kPckDirectBlock : kPckBlock;
    const dim3 grid(direct ? 1u : static_cast<unsigned>((N + kPckBlock - 1) / kPckBlock),
                    static_cast<unsigned>(K));
    with_visible(visible, [&](const auto* v) {
      using vis_t = std::remove_cv_t<std::remove_pointer_t<decltype(v)>>;
      // int64 counts are written as unsigned 64-bit (same bits for non-negative values).
      pck_kernel<scalar_t, vis_t><<<grid, block, smem, stream>>>(
          p.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(), v, n.data_ptr<scalar_t>(),
          t.data_ptr<scalar_t>(), N, static_cast<int>(K), static_cast<int>(T),
          reinterpret_cast<unsigned long long*>(hits.data_ptr<int64_t>()),
          reinterpret_cast<unsigned long long*>(valid.data_ptr<int64_t>()));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return {hits, valid};
}

}  // namespace

TORCH_LIBRARY_IMPL(posefast, CUDA, m) { m.impl("pck_counts", &pck_counts_cuda); }

}  // namespace posefast
