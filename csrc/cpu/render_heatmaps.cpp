// CPU Gaussian heatmap rendering: one task per map, separable Gaussian
// (one exponential per row and per column, one multiply per pixel). Memory-bound: the
// output is the whole cost, so it is asked to live on huge pages (cpu_simd.h).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../include/op_checks.h"
#include "../include/pose_math.h"
#include "cpu_simd.h"

namespace posefast {
namespace {

template <typename scalar_t, typename acc_t>
void render_cpu_kernel(const acc_t* kp, const acc_t* vis, const acc_t* sigma_k, acc_t sigma,
                       scalar_t* out, int64_t maps, int64_t K, int64_t H, int64_t W) {
  const int64_t hw = H * W;
  const int64_t grain = std::max<int64_t>(1, 16384 / hw);
  at::parallel_for(0, maps, grain, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> fx(W), fy(H);
    for (int64_t m = begin; m < end; ++m) {
      scalar_t* dst = out + m * hw;
      const acc_t x = kp[2 * m], y = kp[2 * m + 1];
      if (!renders_keypoint(vis[m], x, y)) {
        std::fill(dst, dst + hw, scalar_t(0));
        continue;
      }
      const acc_t inv = inv_two_sigma_sq(sigma_k ? sigma_k[m % K] : sigma);
      for (int64_t j = 0; j < W; ++j) fx[j] = gaussian_factor(acc_t(j), x, inv);
      for (int64_t i = 0; i < H; ++i) fy[i] = gaussian_factor(acc_t(i), y, inv);
      for (int64_t i = 0; i < H; ++i) {
        const acc_t row = fy[i];
        scalar_t* d = dst + i * W;
        for (int64_t j = 0; j < W; ++j) d[j] = static_cast<scalar_t>(row * fx[j]);
      }
    }
  });
}

at::Tensor render_heatmaps_cpu(const at::Tensor& keypoints, const at::Tensor& visible,
                               const std::optional<at::Tensor>& sigma_per_joint, double sigma,
                               int64_t height, int64_t width, at::ScalarType dtype) {
  check_render_args(keypoints, visible, height, width, dtype);
  const int64_t B = keypoints.size(0), K = keypoints.size(1);
  at::Tensor out = at::empty({B, K, height, width}, keypoints.options().dtype(dtype));
  if (out.numel() == 0) return out;
  advise_huge_pages(out.data_ptr(), out.nbytes());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "render_heatmaps_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto acc = c10::CppTypeToScalarType<acc_t>::value;
    const at::Tensor kp = keypoints.to(acc).contiguous();
    const at::Tensor vis = visible_as(visible, acc);
    const at::Tensor sig = render_sigma_per_joint(keypoints, sigma_per_joint, sigma, acc);
    render_cpu_kernel<scalar_t, acc_t>(kp.data_ptr<acc_t>(), vis.data_ptr<acc_t>(),
                                       sig.defined() ? sig.data_ptr<acc_t>() : nullptr,
                                       static_cast<acc_t>(sigma), out.data_ptr<scalar_t>(),
                                       B * K, K, height, width);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(posefast, CPU, m) { m.impl("render_heatmaps", &render_heatmaps_cpu); }

}  // namespace posefast
