// CPU soft-argmax, forward and backward. One task per map; the forward pass reads each
// row once, folding it into the map's online softmax state (max, sum-of-exp, weighted
// sums) and saves only the log-sum-exp per map.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../include/op_checks.h"
#include "../include/pose_math.h"

namespace posefast {
namespace {

int64_t grain_for(int64_t hw) { return std::max<int64_t>(1, 16384 / hw); }

// Softmax state of one row: its maximum first, then one exponential per pixel.
template <typename scalar_t, typename acc_t>
SoftArgmaxState<acc_t> row_state(const scalar_t* row, int64_t W, acc_t beta, acc_t y) {
  SoftArgmaxState<acc_t> st;
  st.init();
  acc_t rm = neg_inf<acc_t>();
  for (int64_t j = 0; j < W; ++j) {
    const acc_t v = beta * static_cast<acc_t>(row[j]);
    rm = v > rm ? v : rm;  // a NaN is not taken here but poisons the sums below
  }
  if (rm == neg_inf<acc_t>()) {
    // every pixel is -inf (contributes nothing) or NaN (poisons the map)
    for (int64_t j = 0; j < W; ++j) st.push(beta * static_cast<acc_t>(row[j]), acc_t(j), y);
    return st;
  }
  acc_t s = 0, sx = 0;
  for (int64_t j = 0; j < W; ++j) {
    const acc_t e = pf_exp(beta * static_cast<acc_t>(row[j]) - rm);
    s += e;
    sx += e * acc_t(j);
  }
  st.m = rm;
  st.s = s;
  st.sx = sx;
  st.sy = s * y;
  return st;
}

std::tuple<at::Tensor, at::Tensor> soft_argmax_forward_cpu(const at::Tensor& heatmaps,
                                                           double beta) {
  check_soft_argmax_args(heatmaps, beta);
  const int64_t B = heatmaps.size(0), K = heatmaps.size(1);
  const int64_t H = heatmaps.size(2), W = heatmaps.size(3);
  const auto opts = heatmaps.options().dtype(soft_argmax_out_dtype(heatmaps));
  at::Tensor coords = at::empty({B, K, 2}, opts);
  at::Tensor lse = at::empty({B, K}, opts);
  if (B * K == 0) return {coords, lse};
  const at::Tensor h = heatmaps.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, h.scalar_type(), "soft_argmax_fwd", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* src = h.data_ptr<scalar_t>();
    acc_t* c = coords.data_ptr<acc_t>();
    acc_t* l = lse.data_ptr<acc_t>();
    const acc_t b = static_cast<acc_t>(beta);
    at::parallel_for(0, B * K, grain_for(H * W), [&](int64_t begin, int64_t end) {
      for (int64_t m = begin; m < end; ++m) {
        SoftArgmaxState<acc_t> st;
        st.init();
        for (int64_t i = 0; i < H; ++i)
          st.merge(row_state<scalar_t, acc_t>(src + (m * H + i) * W, W, b, acc_t(i)));
        c[2 * m] = st.x();
        c[2 * m + 1] = st.y();
        l[m] = st.logsumexp();
      }
    });
  });
  return {coords, lse};
}

at::Tensor soft_argmax_backward_cpu(const at::Tensor& grad_coords, const at::Tensor& heatmaps,
                                    const at::Tensor& coords, const at::Tensor& logsumexp,
                                    double beta) {
  check_soft_argmax_backward_args(grad_coords, heatmaps, coords, logsumexp, beta);
  const int64_t B = heatmaps.size(0), K = heatmaps.size(1);
  const int64_t H = heatmaps.size(2), W = heatmaps.size(3);
  const at::Tensor h = heatmaps.contiguous();
  at::Tensor grad = at::empty({B, K, H, W}, h.options());
  if (grad.numel() == 0) return grad;
  const auto out_dtype = soft_argmax_out_dtype(heatmaps);
  const at::Tensor g = grad_coords.to(out_dtype).contiguous();
  const at::Tensor c = coords.contiguous();
  const at::Tensor l = logsumexp.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, h.scalar_type(), "soft_argmax_bwd", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* src = h.data_ptr<scalar_t>();
    scalar_t* dst = grad.data_ptr<scalar_t>();
    const acc_t* gp = g.data_ptr<acc_t>();
    const acc_t* cp = c.data_ptr<acc_t>();
    const acc_t* lp = l.data_ptr<acc_t>();
    const acc_t b = static_cast<acc_t>(beta);
    at::parallel_for(0, B * K, grain_for(H * W), [&](int64_t begin, int64_t end) {
      for (int64_t m = begin; m < end; ++m) {
        const acc_t x = cp[2 * m], y = cp[2 * m + 1], gx = gp[2 * m], gy = gp[2 * m + 1];
        const acc_t lse = lp[m];
        for (int64_t i = 0; i < H; ++i) {
          const int64_t off = (m * H + i) * W;
          const acc_t dy = acc_t(i) - y;
          for (int64_t j = 0; j < W; ++j) {
            const acc_t v = b * static_cast<acc_t>(src[off + j]);
            dst[off + j] =
                static_cast<scalar_t>(soft_argmax_grad(v, lse, b, acc_t(j) - x, dy, gx, gy));
          }
        }
      }
    });
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(posefast, CPU, m) {
  m.impl("soft_argmax_forward", &soft_argmax_forward_cpu);
  m.impl("soft_argmax_backward", &soft_argmax_backward_cpu);
}

}  // namespace posefast
