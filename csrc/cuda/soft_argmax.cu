// CUDA soft-argmax. Forward: one block per map, each thread folds its pixels into an
// online softmax state (one exponential per pixel), then a warp-shuffle + shared-memory
// merge; only the coordinates and the log-sum-exp are written. Backward: one block per
// map, one read of the logits and one write of the gradient, p recomputed on the fly.
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

template <typename scalar_t, typename acc_t, int VEC>
__global__ void __launch_bounds__(kBlock)
    soft_argmax_fwd_kernel(const scalar_t* __restrict__ h, acc_t* __restrict__ coords,
                           acc_t* __restrict__ lse, int H, int W, acc_t beta) {
  const int64_t m = blockIdx.x;
  const int64_t hw = static_cast<int64_t>(H) * W;
  const scalar_t* src = h + m * hw;
  SoftArgmaxState<acc_t> st;
  st.init();
  const int64_t nvec = hw / VEC;
  for (int64_t v = threadIdx.x; v < nvec; v += kBlock) {
    const int64_t e = v * VEC;
    const int i = static_cast<int>(e / W);
    const int j = static_cast<int>(e - static_cast<int64_t>(i) * W);
    const Vec<scalar_t, VEC> pack = *reinterpret_cast<const Vec<scalar_t, VEC>*>(src + e);
#pragma unroll
    for (int u = 0; u < VEC; ++u)
      st.push(beta * static_cast<acc_t>(pack.v[u]), acc_t(j + u), acc_t(i));
  }
  st = block_reduce_state<acc_t, kBlock>(st);
  if (threadIdx.x == 0) {
    coords[2 * m] = st.x();
    coords[2 * m + 1] = st.y();
    lse[m] = st.logsumexp();
  }
}

template <typename scalar_t, typename acc_t, int VEC>
__global__ void __launch_bounds__(kBlock)
    soft_argmax_bwd_kernel(const acc_t* __restrict__ grad_coords,
                           const scalar_t* __restrict__ h, const acc_t* __restrict__ coords,
                           const acc_t* __restrict__ lse, scalar_t* __restrict__ grad, int H,
                           int W, acc_t beta) {
  const int64_t m = blockIdx.x;
  const int64_t hw = static_cast<int64_t>(H) * W;
  const scalar_t* src = h + m * hw;
  scalar_t* dst = grad + m * hw;
  const acc_t x = coords[2 * m], y = coords[2 * m + 1];
  const acc_t gx = grad_coords[2 * m], gy = grad_coords[2 * m + 1];
  const acc_t l = lse[m];
  const int64_t nvec = hw / VEC;
  for (int64_t v = threadIdx.x; v < nvec; v += kBlock) {
    const int64_t e = v * VEC;
    const int i = static_cast<int>(e / W);
    const int j = static_cast<int>(e - static_cast<int64_t>(i) * W);
    const Vec<scalar_t, VEC> in = *reinterpret_cast<const Vec<scalar_t, VEC>*>(src + e);
    Vec<scalar_t, VEC> out;
    const acc_t dy = acc_t(i) - y;
#pragma unroll
    for (int u = 0; u < VEC; ++u) {
      const acc_t val = beta * static_cast<acc_t>(in.v[u]);
      out.v[u] = static_cast<scalar_t>(soft_argmax_grad(val, l, beta, acc_t(j + u) - x, dy, gx, gy));
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
    constexpr int VEC = vec_width<scalar_t>();
    const dim3 grid(static_cast<unsigned>(B * K));
    const auto b = static_cast<acc_t>(beta);
    if (can_vectorize<scalar_t>(h, W)) {
      soft_argmax_fwd_kernel<scalar_t, acc_t, VEC><<<grid, kBlock, 0, stream>>>(
          h.data_ptr<scalar_t>(), coords.data_ptr<acc_t>(), lse.data_ptr<acc_t>(), H, W, b);
    } else {
      soft_argmax_fwd_kernel<scalar_t, acc_t, 1><<<grid, kBlock, 0, stream>>>(
          h.data_ptr<scalar_t>(), coords.data_ptr<acc_t>(), lse.data_ptr<acc_t>(), H, W, b);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
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
    const dim3 grid(static_cast<unsigned>(B * K));
    const auto b = static_cast<acc_t>(beta);
    if (can_vectorize<scalar_t>(h, W) && aligned16(grad.data_ptr())) {
      soft_argmax_bwd_kernel<scalar_t, acc_t, VEC><<<grid, kBlock, 0, stream>>>(
          g.data_ptr<acc_t>(), h.data_ptr<scalar_t>(), c.data_ptr<acc_t>(), l.data_ptr<acc_t>(),
          grad.data_ptr<scalar_t>(), H, W, b);
    } else {
      soft_argmax_bwd_kernel<scalar_t, acc_t, 1><<<grid, kBlock, 0, stream>>>(
          g.data_ptr<acc_t>(), h.data_ptr<scalar_t>(), c.data_ptr<acc_t>(), l.data_ptr<acc_t>(),
          grad.data_ptr<scalar_t>(), H, W, b);
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
