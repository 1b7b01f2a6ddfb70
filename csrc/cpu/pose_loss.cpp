// CPU fused pose loss (issue 8): heatmap loss against the analytic Gaussian target,
// soft-argmax and the coordinate L1 in one read of the logits; the backward pass reads
// them once more and writes the gradient once. Targets are never materialised: each
// map's separable Gaussian is one column table (W exponentials) and one factor per row.
//
// Per map the forward keeps only the pixel-loss sum, the soft-argmax coordinates and the
// log-sum-exp; the [B, K] -> scalar reduction (mask, joint weights, N) follows.
// float accumulation runs vectorisable lanes with polynomial exp / log1p (pose_math.h);
// float64 uses the library functions, exactly as the GPU formulas.
// Hidden joints (visible <= 0) are skipped: not read forward (coords and log-sum-exp
// saved as 0), zero gradient backward.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <limits>
#include <type_traits>
#include <vector>

#include "../include/op_checks.h"
#include "../include/pose_loss_checks.h"
#include "../include/pose_math.h"
#include "cpu_simd.h"

namespace posefast {
namespace {

int64_t grain_for(int64_t hw) { return std::max<int64_t>(1, 16384 / hw); }

// Column factors of the map's target (all zero when the keypoint renders nothing).
template <typename acc_t>
void column_factors(std::vector<acc_t>& colf, bool renders, acc_t x, acc_t inv) {
  for (size_t j = 0; j < colf.size(); ++j)
    colf[j] = renders ? gaussian_factor(acc_t(j), x, inv) : acc_t(0);
}

// One row: its pixel-loss sum (returned) and its softmax state (folded into `st`).
template <int KIND, typename scalar_t, typename acc_t>
acc_t fused_row(const scalar_t* row, const acc_t* colf, acc_t rowf, int64_t W, acc_t beta,
                acc_t y, SoftArgmaxState<acc_t>& st) {
  acc_t rm = neg_inf<acc_t>();
  for (int64_t j = 0; j < W; ++j) {
    const acc_t v = beta * static_cast<acc_t>(row[j]);
    rm = v > rm ? v : rm;  // a NaN is not taken here but poisons the sums below
  }
  acc_t hm = 0;
  if (rm == neg_inf<acc_t>()) {
    // every pixel is -inf (contributes nothing to the softmax) or NaN (poisons it)
    for (int64_t j = 0; j < W; ++j) {
      const acc_t z = static_cast<acc_t>(row[j]);
      hm += heatmap_pixel_loss(KIND, z, rowf * colf[j]);
      st.push(beta * z, acc_t(j), y);
    }
    return hm;
  }
  acc_t s = 0, sx = 0;
  for (int64_t j = 0; j < W; ++j) {
    const acc_t z = static_cast<acc_t>(row[j]);
    hm += heatmap_pixel_loss(KIND, z, rowf * colf[j]);
    const acc_t e = pf_exp(beta * z - rm);
    s += e;
    sx += e * acc_t(j);
  }
  SoftArgmaxState<acc_t> r;
  r.m = rm;
  r.s = s;
  r.sx = sx;
  r.sy = s * y;
  st.merge(r);
  return hm;
}

// float accumulation: the same row in kLanes independent lanes so that the compiler
// vectorises it, with pose_math.h's branch-free poly_exp / poly_log1p_unit.
constexpr int64_t kLanes = 8;

template <int KIND>
inline float pixel_loss_fast(float z, float t) {
  if (KIND == kHeatmapLossMSE) return heatmap_pixel_loss(KIND, z, t);
  return bce_with_logits_from(z, t, poly_log1p_unit(poly_exp(-pf_abs(z))));
}

template <int KIND>
inline float pixel_grad_fast(float z, float t, float beta, float lse, float dx, float dy,
                             const PoseLossMapGrad<float>& g) {
  const float hg = KIND == kHeatmapLossMSE ? heatmap_pixel_grad(KIND, z, t)
                                           : bce_with_logits_grad_from(z, t, poly_exp(-pf_abs(z)));
  // soft_argmax_grad with poly_exp
  return g.hm * hg + beta * poly_exp(beta * z - lse) * (dx * g.gx + dy * g.gy);
}

// Elementwise row loops of the float path, run through cpu_simd.h's run_simd: compiled for
// AVX-512, AVX2 + FMA and the baseline, picked at run time; GCC vectorises them at each width
// (the vector type V is unused: the loops are plain float code).
template <int KIND>
struct FwdRow {
  template <class V>
  static PF_VINLINE void run(const float* z, const float* colf, float rowf, int64_t W, float beta,
                             float rm, const float* jf, float* h, float* e, float* ej) {
#pragma GCC ivdep
    for (int64_t j = 0; j < W; ++j) {
      const float ex = poly_exp(beta * z[j] - rm);
      h[j] = pixel_loss_fast<KIND>(z[j], rowf * colf[j]);
      e[j] = ex;
      ej[j] = ex * jf[j];
    }
  }
};

template <int KIND>
struct BwdRow {
  template <class V>
  static PF_VINLINE void run(const float* z, const float* colf, float rowf, int64_t W, float beta,
                             float lse, float px, float dy, const PoseLossMapGrad<float>* g,
                             const float* jf, float* o) {
#pragma GCC ivdep
    for (int64_t j = 0; j < W; ++j)
      o[j] = pixel_grad_fast<KIND>(z[j], rowf * colf[j], beta, lse, jf[j] - px, dy, *g);
  }
};

// Per-thread row buffers of the float fast path.
struct RowBuffers {
  std::vector<float> z, h, e, ej, jf;
  explicit RowBuffers(int64_t W) : z(W), h(W), e(W), ej(W), jf(W) {
    for (int64_t j = 0; j < W; ++j) jf[j] = static_cast<float>(j);
  }
};

// Sum of v[0..n) in kLanes independent partial sums (vectorisable without reassociation).
inline float lane_sum(const float* v, int64_t n) {
  const int64_t n8 = n - n % kLanes;
  float acc[kLanes] = {};
  for (int64_t j0 = 0; j0 < n8; j0 += kLanes)
    for (int64_t u = 0; u < kLanes; ++u) acc[u] += v[j0 + u];
  float s = 0;
  for (int64_t u = 0; u < kLanes; ++u) s += acc[u];
  for (int64_t j = n8; j < n; ++j) s += v[j];
  return s;
}

template <typename scalar_t>
inline void load_row(const scalar_t* row, float* z, int64_t W) {
  for (int64_t j = 0; j < W; ++j) z[j] = static_cast<float>(row[j]);
}

template <int KIND, typename scalar_t>
float fused_row_fast(const scalar_t* row, const float* colf, float rowf, int64_t W, float beta,
                     float y, SoftArgmaxState<float>& st, RowBuffers& buf) {
  float* z = buf.z.data();
  load_row(row, z, W);
  const int64_t W8 = W - W % kLanes;
  float mx[kLanes];
  for (int64_t u = 0; u < kLanes; ++u) mx[u] = neg_inf<float>();
  for (int64_t j0 = 0; j0 < W8; j0 += kLanes)
    for (int64_t u = 0; u < kLanes; ++u) {
      const float v = beta * z[j0 + u];
      mx[u] = v > mx[u] ? v : mx[u];  // a NaN is not taken here but poisons the sums below
    }
  float rm = neg_inf<float>();
  for (int64_t u = 0; u < kLanes; ++u) rm = mx[u] > rm ? mx[u] : rm;
  for (int64_t j = W8; j < W; ++j) {
    const float v = beta * z[j];
    rm = v > rm ? v : rm;
  }
  if (rm == neg_inf<float>()) return fused_row<KIND, scalar_t, float>(row, colf, rowf, W, beta, y, st);
  float* h = buf.h.data();
  float* e = buf.e.data();
  float* ej = buf.ej.data();
  simd::run_simd<FwdRow<KIND>>(z, colf, rowf, W, beta, rm, buf.jf.data(), h, e, ej);
  SoftArgmaxState<float> r;
  r.m = rm;
  r.s = lane_sum(e, W);
  r.sx = lane_sum(ej, W);
  r.sy = r.s * y;
  st.merge(r);
  return lane_sum(h, W);
}

template <int KIND, typename scalar_t>
void grad_row_fast(const scalar_t* row, scalar_t* out, const float* colf, float rowf, int64_t W,
                   float beta, float lse, float px, float dy, const PoseLossMapGrad<float>& g,
                   RowBuffers& buf) {
  float* z = buf.z.data();
  float* o = buf.h.data();
  const float* jf = buf.jf.data();
  load_row(row, z, W);
  simd::run_simd<BwdRow<KIND>>(z, colf, rowf, W, beta, lse, px, dy, &g, jf, o);
  for (int64_t j = 0; j < W; ++j) out[j] = static_cast<scalar_t>(o[j]);
}

template <int KIND, typename scalar_t, typename acc_t>
void forward_maps(const scalar_t* src, const acc_t* kp, const acc_t* vis, int64_t maps, int64_t H,
                  int64_t W, acc_t inv, acc_t beta, acc_t* hm_sum, acc_t* coords, acc_t* lse) {
  const int64_t hw = H * W;
  at::parallel_for(0, maps, grain_for(hw), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> colf(W);
    RowBuffers buf(std::is_same_v<acc_t, float> ? W : 0);
    for (int64_t m = begin; m < end; ++m) {
      const acc_t x = kp[2 * m], y = kp[2 * m + 1];
      if (!pose_loss_counts(vis[m])) {
        hm_sum[m] = 0;
        coords[2 * m] = coords[2 * m + 1] = lse[m] = acc_t(0);  // not computed
        continue;
      }
      const bool renders = renders_keypoint(vis[m], x, y);
      column_factors(colf, renders, x, inv);
      SoftArgmaxState<acc_t> st;
      st.init();
      acc_t hm = 0;
      for (int64_t i = 0; i < H; ++i) {
        const acc_t rowf = renders ? gaussian_factor(acc_t(i), y, inv) : acc_t(0);
        const scalar_t* row = src + m * hw + i * W;
        if constexpr (std::is_same_v<acc_t, float>) {
          hm += fused_row_fast<KIND, scalar_t>(row, colf.data(), rowf, W, beta, acc_t(i), st, buf);
        } else {
          hm += fused_row<KIND, scalar_t, acc_t>(row, colf.data(), rowf, W, beta, acc_t(i), st);
        }
      }
      hm_sum[m] = hm;
      coords[2 * m] = st.x();
      coords[2 * m + 1] = st.y();
      lse[m] = st.logsumexp();
    }
  });
}

// The [B, K] -> scalar reduction: loss = (total, heatmap, coord), norm = N.
template <typename acc_t>
void finalize(const acc_t* hm_sum, const acc_t* coords, const acc_t* kp, const acc_t* vis,
              const acc_t* w, int64_t maps, int64_t K, int64_t P, acc_t coord_weight, acc_t* loss,
              acc_t* norm) {
  acc_t hm = 0, coord = 0, count = 0;
  for (int64_t m = 0; m < maps; ++m) {
    if (!pose_loss_counts(vis[m])) continue;
    const acc_t wk = w[m % K];
    count += 1;
    hm += wk * (hm_sum[m] / acc_t(P));
    coord += wk * coord_l1(coords[2 * m], coords[2 * m + 1], kp[2 * m], kp[2 * m + 1]);
  }
  const acc_t n = pose_loss_norm(count);
  loss[1] = hm / n;
  loss[2] = coord / n;
  loss[0] = loss[1] + coord_weight * loss[2];
  *norm = n;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> pose_loss_forward_cpu(
    const at::Tensor& logits, const at::Tensor& keypoints, const at::Tensor& visible,
    const at::Tensor& joint_weights, double sigma, double coord_weight, double beta,
    c10::string_view heatmap_loss) {
  check_pose_loss_args(logits, keypoints, visible, joint_weights, sigma, beta);
  const int kind = pose_loss_kind(heatmap_loss);
  const int64_t B = logits.size(0), K = logits.size(1), H = logits.size(2), W = logits.size(3);
  const PoseLossForwardTensors t = pose_loss_forward_tensors(logits, keypoints, visible, joint_weights);
  const at::Tensor &z = t.z, &kp = t.kp, &vis = t.vis, &w = t.w;
  const at::Tensor &loss = t.loss, &coords = t.coords, &lse = t.lse, &norm = t.norm, &hm_sum = t.hm_sum;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z.scalar_type(), "pose_loss_fwd", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t inv = inv_two_sigma_sq(static_cast<acc_t>(sigma));
    const acc_t b = static_cast<acc_t>(beta);
    auto run = [&](auto kind_tag) {
      forward_maps<decltype(kind_tag)::value, scalar_t, acc_t>(
          z.data_ptr<scalar_t>(), kp.data_ptr<acc_t>(), vis.data_ptr<acc_t>(), B * K, H, W, inv, b,
          hm_sum.data_ptr<acc_t>(), coords.data_ptr<acc_t>(), lse.data_ptr<acc_t>());
    };
    if (kind == kHeatmapLossMSE) {
      run(std::integral_constant<int, kHeatmapLossMSE>());
    } else {
      run(std::integral_constant<int, kHeatmapLossBCE>());
    }
    finalize<acc_t>(hm_sum.data_ptr<acc_t>(), coords.data_ptr<acc_t>(), kp.data_ptr<acc_t>(),
                    vis.data_ptr<acc_t>(), w.data_ptr<acc_t>(), B * K, K, H * W,
                    static_cast<acc_t>(coord_weight), loss.data_ptr<acc_t>(),
                    norm.data_ptr<acc_t>());
  });
  return {loss, coords, lse, norm};
}

template <int KIND, typename scalar_t, typename acc_t>
void backward_maps(const acc_t* gl, const scalar_t* src, const acc_t* kp, const acc_t* vis,
                   const acc_t* w, const acc_t* coords, const acc_t* lse, acc_t n, int64_t maps,
                   int64_t K, int64_t H, int64_t W, acc_t inv, acc_t beta, acc_t coord_weight,
                   scalar_t* dst) {
  const int64_t hw = H * W;
  const acc_t inv_n = acc_t(1) / n, inv_p = acc_t(1) / acc_t(hw);
  at::parallel_for(0, maps, grain_for(hw), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> colf(W);
    RowBuffers buf(std::is_same_v<acc_t, float> ? W : 0);
    for (int64_t m = begin; m < end; ++m) {
      scalar_t* out = dst + m * hw;
      if (!pose_loss_counts(vis[m])) {
        std::fill(out, out + hw, scalar_t(0));
        continue;
      }
      const acc_t kx = kp[2 * m], ky = kp[2 * m + 1];
      const acc_t px = coords[2 * m], py = coords[2 * m + 1], l = lse[m];
      const PoseLossMapGrad<acc_t> g = pose_loss_map_grad(gl[0], gl[1], gl[2], coord_weight,
                                                          w[m % K], inv_n, inv_p, px, py, kx, ky);
      const bool renders = renders_keypoint(vis[m], kx, ky);
      column_factors(colf, renders, kx, inv);
      const scalar_t* in = src + m * hw;
      for (int64_t i = 0; i < H; ++i) {
        const acc_t rowf = renders ? gaussian_factor(acc_t(i), ky, inv) : acc_t(0);
        const acc_t dy = acc_t(i) - py;
        const scalar_t* row = in + i * W;
        scalar_t* orow = out + i * W;
        if constexpr (std::is_same_v<acc_t, float>) {
          grad_row_fast<KIND, scalar_t>(row, orow, colf.data(), rowf, W, beta, l, px, dy, g, buf);
          continue;
        }
        for (int64_t j = 0; j < W; ++j) {
          const acc_t z = static_cast<acc_t>(row[j]);
          orow[j] = static_cast<scalar_t>(
              pose_loss_pixel_grad(KIND, z, rowf * colf[j], beta, l, acc_t(j) - px, dy, g));
        }
      }
    }
  });
}

at::Tensor pose_loss_backward_cpu(const at::Tensor& grad_loss, const at::Tensor& logits,
                                  const at::Tensor& keypoints, const at::Tensor& visible,
                                  const at::Tensor& joint_weights, const at::Tensor& coords,
                                  const at::Tensor& logsumexp, const at::Tensor& norm,
                                  double sigma, double coord_weight, double beta,
                                  c10::string_view heatmap_loss) {
  check_pose_loss_backward_args(grad_loss, logits, keypoints, visible, joint_weights, coords,
                                logsumexp, norm, sigma, beta);
  const int kind = pose_loss_kind(heatmap_loss);
  const int64_t B = logits.size(0), K = logits.size(1), H = logits.size(2), W = logits.size(3);
  const at::Tensor z = logits.contiguous();
  at::Tensor grad = at::empty({B, K, H, W}, z.options());
  if (grad.numel() == 0) return grad;
  const auto acc = pose_loss_acc_dtype(logits);
  const at::Tensor gl = grad_loss.to(acc).contiguous();
  const at::Tensor kp = keypoints.to(acc).contiguous();
  const at::Tensor vis = visible_as(visible, acc);
  const at::Tensor w = joint_weights.to(acc).contiguous();
  const at::Tensor c = coords.contiguous();
  const at::Tensor l = logsumexp.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z.scalar_type(), "pose_loss_bwd", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t inv = inv_two_sigma_sq(static_cast<acc_t>(sigma));
    const acc_t n = norm.item<acc_t>();
    auto run = [&](auto kind_tag) {
      backward_maps<decltype(kind_tag)::value, scalar_t, acc_t>(
          gl.data_ptr<acc_t>(), z.data_ptr<scalar_t>(), kp.data_ptr<acc_t>(), vis.data_ptr<acc_t>(),
          w.data_ptr<acc_t>(), c.data_ptr<acc_t>(), l.data_ptr<acc_t>(), n, B * K, K, H, W, inv,
          static_cast<acc_t>(beta), static_cast<acc_t>(coord_weight), grad.data_ptr<scalar_t>());
    };
    if (kind == kHeatmapLossMSE) {
      run(std::integral_constant<int, kHeatmapLossMSE>());
    } else {
      run(std::integral_constant<int, kHeatmapLossBCE>());
    }
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(posefast, CPU, m) {
  m.impl("pose_loss_forward", &pose_loss_forward_cpu);
  m.impl("pose_loss_backward", &pose_loss_backward_cpu);
}

}  // namespace posefast
