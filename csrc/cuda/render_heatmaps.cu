// CUDA Gaussian heatmap rendering: one block per map. The block first computes the
// W column factors and H row factors of the separable Gaussian into shared memory, then
// writes the map with one multiply per pixel, 16 bytes per store where alignment allows.
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

constexpr int kRenderBlock = 256;

template <typename scalar_t, typename acc_t, int VEC>
__global__ void __launch_bounds__(kRenderBlock)
    render_kernel(const acc_t* __restrict__ kp, const acc_t* __restrict__ vis,
                  const acc_t* __restrict__ sigma_k, acc_t sigma, scalar_t* __restrict__ out,
                  int64_t K, int H, int W) {
  extern __shared__ unsigned char smem_raw[];
  acc_t* fx = reinterpret_cast<acc_t*>(smem_raw);
  acc_t* fy = fx + W;
  const int64_t m = blockIdx.x;
  const int64_t hw = static_cast<int64_t>(H) * W;
  scalar_t* dst = out + m * hw;
  const acc_t x = kp[2 * m], y = kp[2 * m + 1];
  const bool on = renders_keypoint(vis[m], x, y);
  if (on) {
    const acc_t inv = inv_two_sigma_sq(sigma_k ? sigma_k[m % K] : sigma);
    for (int j = threadIdx.x; j < W; j += kRenderBlock) fx[j] = gaussian_factor(acc_t(j), x, inv);
    for (int i = threadIdx.x; i < H; i += kRenderBlock) fy[i] = gaussian_factor(acc_t(i), y, inv);
  }
  __syncthreads();
  // VEC > 1 only when W % VEC == 0 and the map starts 16-byte aligned, so a vector
  // never straddles two rows.
  const int64_t nvec = hw / VEC;
  for (int64_t v = threadIdx.x; v < nvec; v += kRenderBlock) {
    const int64_t e = v * VEC;
    const int i = static_cast<int>(e / W);
    const int j = static_cast<int>(e - static_cast<int64_t>(i) * W);
    Vec<scalar_t, VEC> pack;
    const acc_t row = on ? fy[i] : acc_t(0);
#pragma unroll
    for (int u = 0; u < VEC; ++u) pack.v[u] = static_cast<scalar_t>(on ? row * fx[j + u] : acc_t(0));
    *reinterpret_cast<Vec<scalar_t, VEC>*>(dst + e) = pack;
  }
}

at::Tensor render_heatmaps_cuda(const at::Tensor& keypoints, const at::Tensor& visible,
                                const std::optional<at::Tensor>& sigma_per_joint, double sigma,
                                int64_t height, int64_t width, at::ScalarType dtype) {
  check_render_args(keypoints, visible, height, width, dtype);
  const c10::cuda::CUDAGuard guard(keypoints.device());
  const int64_t B = keypoints.size(0), K = keypoints.size(1);
  at::Tensor out = at::empty({B, K, height, width}, keypoints.options().dtype(dtype));
  if (out.numel() == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "render_heatmaps_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto acc = c10::CppTypeToScalarType<acc_t>::value;
    const at::Tensor kp = keypoints.to(acc).contiguous();
    const at::Tensor vis = visible_as(visible, acc);
    const at::Tensor sig = render_sigma_per_joint(keypoints, sigma_per_joint, sigma, acc);
    const size_t smem = (height + width) * sizeof(acc_t);
    TORCH_CHECK(smem <= 48 * 1024, "posefast: render_heatmaps on CUDA supports H + W up to ",
                48 * 1024 / sizeof(acc_t), ", got ", height + width);
    constexpr int VEC = vec_width<scalar_t>();
    const bool vec_ok = width % VEC == 0 && aligned16(out.data_ptr()) &&
                        (height * width * sizeof(scalar_t)) % 16 == 0;
    const acc_t* sp = sig.defined() ? sig.data_ptr<acc_t>() : nullptr;
    const dim3 grid(static_cast<unsigned>(B * K));
    if (vec_ok) {
      render_kernel<scalar_t, acc_t, VEC><<<grid, kRenderBlock, smem, stream>>>(
          kp.data_ptr<acc_t>(), vis.data_ptr<acc_t>(), sp, static_cast<acc_t>(sigma),
          out.data_ptr<scalar_t>(), K, static_cast<int>(height), static_cast<int>(width));
    } else {
      render_kernel<scalar_t, acc_t, 1><<<grid, kRenderBlock, smem, stream>>>(
          kp.data_ptr<acc_t>(), vis.data_ptr<acc_t>(), sp, static_cast<acc_t>(sigma),
          out.data_ptr<scalar_t>(), K, static_cast<int>(height), static_cast<int>(width));
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(posefast, CUDA, m) { m.impl("render_heatmaps", &render_heatmaps_cuda); }

}  // namespace posefast
