// CUDA soft-argmax. Forward: each block folds its pixels of one map into an online softmax
// state per thread (one exp2 per pixel, one comparison with the running maximum per 16-byte
// vector: SoftArgmaxState::push_run), then a warp-shuffle + shared-memory merge;
// only the coordinates and the log-sum-exp are written. Large maps are split into chunks,
// one block each, whose states a second small kernel merges. Backward: one block per map
// (or chunk), one read of the logits and one write of the gradient, p recomputed on the fly.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../include/cuda_vec.cuh"
#include "../include/op_checks.h"
#include "../include/pose_math.h"

namespace posefast {
namespace {

constexpr int kBlock = 256;

// Most vectors per block, forward and backward (see map_chunks).
constexpr int64_t kChunkVecs = 8 * kBlock;

// The forward state: weights by exp2.
template <typename acc_t>
using FwdState = SoftArgmaxState<acc_t, true>;

// Map blockIdx.x, chunk blockIdx.y of gridDim.y (chunk_range). One chunk: writes the map's
// coordinates and log-sum-exp. Several: writes the chunk's state to
// partial[map * chunks + chunk] for soft_argmax_merge_kernel.
template <typename scalar_t, typename acc_t, int VEC>
__global__ void __launch_bounds__(kBlock)
    soft_argmax_fwd_kernel(const scalar_t* __restrict__ h, acc_t* __restrict__ coords,
                           acc_t* __restrict__ lse, FwdState<acc_t>* __restrict__ partial,
                           int H, int W, int64_t chunk, acc_t beta) {
  const int64_t m = blockIdx.x;
  const int64_t hw = static_cast<int64_t>(H) * W;
  const scalar_t* src = h + m * hw;
  FwdState<acc_t> st;
  st.init();
  const int64_t nvec = hw / VEC;
  int64_t begin, end;
  chunk_range(nvec, chunk, begin, end);
  // a vector never crosses a row: VEC > 1 only when W is a multiple of VEC
  PixelCursor at((begin + threadIdx.x) * VEC, int64_t(kBlock) * VEC, W);
  for (int64_t v = begin + threadIdx.x; v < end; v += kBlock, at.advance()) {
    const Vec<scalar_t, VEC> pack = *reinterpret_cast<const Vec<scalar_t, VEC>*>(src + v * VEC);
    acc_t a[VEC];
#pragma unroll
    for (int u = 0; u < VEC; ++u) a[u] = beta * static_cast<acc_t>(pack.v[u]);
    st.push_run(a, acc_t(at.j), acc_t(at.i));
  }
  st = block_reduce_state<FwdState<acc_t>, kBlock>(st);
  if (threadIdx.x != 0) return;
  if (gridDim.y == 1) {
    coords[2 * m] = st.x();
    coords[2 * m + 1] = st.y();
    lse[m] = st.logsumexp();
  } else {
    partial[m * gridDim.y + blockIdx.y] = st;
  }
}

// One thread per map: merges its chunks' states in chunk order (merge_states).
template <typename acc_t>
__global__ void soft_argmax_merge_kernel(const FwdState<acc_t>* __restrict__ partial,
                                         int chunks, int64_t maps, acc_t* __restrict__ coords,
                                         acc_t* __restrict__ lse) {
  const int64_t m = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (m >= maps) return;
  const FwdState<acc_t> st = merge_states(partial + m * chunks, chunks);
  coords[2 * m] = st.x();
  coords[2 * m + 1] = st.y();
  lse[m] = st.logsumexp();
}

template <typename scalar_t, typename acc_t, int VEC>
__global__ void __launch_bounds__(kBlock)
    soft_argmax_bwd_kernel(const acc_t* __restrict__ grad_coords,
                           const scalar_t* __restrict__ h, const acc_t* __restrict__ coords,
                           const acc_t* __restrict__ lse, scalar_t* __restrict__ grad, int H,
                           int W, int64_t chunk, acc_t beta) {
  const int64_t m = blockIdx.x;
  const int64_t hw = static_cast<int64_t>(H) * W;
  const scalar_t* src = h + m * hw;
  scalar_t* dst = grad + m * hw;
  const acc_t x = coords[2 * m], y = coords[2 * m + 1];
  const acc_t gx = grad_coords[2 * m], gy = grad_coords[2 * m + 1];
  const acc_t l = lse[m];
  const int64_t nvec = hw / VEC;
  int64_t begin, end;
  chunk_range(nvec, chunk, begin, end);
  PixelCursor at((begin + threadIdx.x) * VEC, int64_t(kBlock) * VEC, W);
  for (int64_t v = begin + threadIdx.x; v < end; v += kBlock, at.advance()) {
    const int64_t e = v * VEC;
    const Vec<scalar_t, VEC> in = *reinterpret_cast<const Vec<scalar_t, VEC>*>(src + e);
    Vec<scalar_t, VEC> out;
    const acc_t dy = acc_t(at.i) - y, dx0 = acc_t(at.j) - x;  // dx = dx0 + u: no int-to-float per pixel
#pragma unroll
    for (int u = 0; u < VEC; ++u) {
      const acc_t val = beta * static_cast<acc_t>(in.v[u]);
      out.v[u] = static_cast<scalar_t>(soft_argmax_grad(val, l, beta, dx0 + acc_t(u), dy, gx, gy));
    }
    *reinterpret_cast<Vec<scalar_t, VEC>*>(dst + e) = out;
  }
}

// 16-byte vectors when each row is a whole number of them and the tensor is aligned.
template <typename scalar_t>
bool can_vectorize(const at::Tensor& t, int64_t W) {
  constexpr int VEC = vec_width<scalar_t>();
  return W % VEC == 0 && aligned16(t.data_ptr());
}

std::tuple<at::Tensor, at::Tensor> soft_argmax_forward_cuda(const at::Tensor& heatmaps,
                                                            double beta) {
  check_soft_argmax_args(heatmaps, beta);
  const c10::cuda::CUDAGuard guard(heatmaps.device());
  const int64_t B = heatmaps.size(0), K = heatmaps.size(1);
  const int H = static_cast<int>(heatmaps.size(2)), W = static_cast<int>(heatmaps.size(3));
  const auto opts = heatmaps.options().dtype(soft_argmax_out_dtype(heatmaps));
  at::Tensor coords = at::empty({B, K, 2}, opts);
  at::Tensor lse = at::empty({B, K}, opts);
  if (B * K == 0) return {coords, lse};
  const at::Tensor h = heatmaps.contiguous();
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, h.scalar_type(), "soft_argmax_fwd_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    using State = FwdState<acc_t>;
    constexpr int VEC = vec_width<scalar_t>();
    const bool vec = can_vectorize<scalar_t>(h, W);
    const MapChunks split = map_chunks(static_cast<int64_t>(H) * W / (vec ? VEC : 1), kChunkVecs);
    const int64_t chunks = split.count, chunk = split.size;
    // the chunks' states, [B * K, chunks] (acc_t m, s, sx, sy each), when a map is split
    at::Tensor partial;
    State* pp = nullptr;
    if (chunks > 1) {
      partial = at::empty({B * K, chunks, 4}, opts);
      pp = reinterpret_cast<State*>(partial.data_ptr<acc_t>());
    }
    const dim3 grid(static_cast<unsigned>(B * K), static_cast<unsigned>(chunks));
    const auto b = static_cast<acc_t>(beta);
    if (vec) {
      soft_argmax_fwd_kernel<scalar_t, acc_t, VEC><<<grid, kBlock, 0, stream>>>(
          h.data_ptr<scalar_t>(), coords.data_ptr<acc_t>(), lse.data_ptr<acc_t>(), pp, H, W, chunk, b);
    } else {
      soft_argmax_fwd_kernel<scalar_t, acc_t, 1><<<grid, kBlock, 0, stream>>>(
          h.data_ptr<scalar_t>(), coords.data_ptr<acc_t>(), lse.data_ptr<acc_t>(), pp, H, W, chunk, b);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (chunks > 1) {
      constexpr int kMergeBlock = 128;
      const auto blocks = static_cast<unsigned>((B * K + kMergeBlock - 1) / kMergeBlock);
      soft_argmax_merge_kernel<acc_t><<<blocks, kMergeBlock, 0, stream>>>(
          pp, static_cast<int>(chunks), B * K, coords.data_ptr<acc_t>(), lse.data_ptr<acc_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return {coords, lse};
}

at::Tensor soft_argmax_backward_cuda(const at::Tensor& grad_coords, const at::Tensor& heatmaps,
                                     const at::Tensor& coords, const at::Tensor& logsumexp,
                                     double beta) {
  check_soft_argmax_backward_args(grad_coords, heatmaps, coords, logsumexp, beta);
  const c10::cuda::CUDAGuard guard(heatmaps.device());
  const int64_t B = heatmaps.size(0), K = heatmaps.size(1);
  const int H = static_cast<int>(heatmaps.size(2)), W = static_cast<int>(heatmaps.size(3));
  const at::Tensor h = heatmaps.contiguous();
  at::Tensor grad = at::empty_like(h);
  if (grad.numel() == 0) return grad;
  const auto out_dtype = soft_argmax_out_dtype(heatmaps);
  const at::Tensor g = grad_coords.to(out_dtype).contiguous();
  const at::Tensor c = coords.contiguous();
  const at::Tensor l = logsumexp.contiguous();
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, h.scalar_type(), "soft_argmax_bwd_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    constexpr int VEC = vec_width<scalar_t>();
    const bool vec = can_vectorize<scalar_t>(h, W) && aligned16(grad.data_ptr());
    const MapChunks split = map_chunks(static_cast<int64_t>(H) * W / (vec ? VEC : 1), kChunkVecs);
    const dim3 grid(static_cast<unsigned>(B * K), static_cast<unsigned>(split.count));
    const auto b = static_cast<acc_t>(beta);
    if (vec) {
      soft_argmax_bwd_kernel<scalar_t, acc_t, VEC><<<grid, kBlock, 0, stream>>>(
          g.data_ptr<acc_t>(), h.data_ptr<scalar_t>(), c.data_ptr<acc_t>(), l.data_ptr<acc_t>(),
          grad.data_ptr<scalar_t>(), H, W, split.size, b);
    } else {
      soft_argmax_bwd_kernel<scalar_t, acc_t, 1><<<grid, kBlock, 0, stream>>>(
          g.data_ptr<acc_t>(), h.data_ptr<scalar_t>(), c.data_ptr<acc_t>(), l.data_ptr<acc_t>(),
          grad.data_ptr<scalar_t>(), H, W, split.size, b);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(posefast, CUDA, m) {
  m.impl("soft_argmax_forward", &soft_argmax_forward_cuda);
  m.impl("soft_argmax_backward", &soft_argmax_backward_cuda);
}

}  // namespace posefast
