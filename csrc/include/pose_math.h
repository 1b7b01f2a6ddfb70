// The arithmetic of every posefast op, shared by the CPU and the CUDA implementations.
//
// Everything numerical lives here as small inline functions so that the CPU tests
// exercise exactly the math the GPU kernels run.
#pragma once

#include <cmath>
#include <limits>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define PF_HD __host__ __device__ __forceinline__
#else
#define PF_HD inline
#endif

namespace posefast {

template <typename T>
PF_HD T pf_exp(T v) {
#if defined(__CUDA_ARCH__)
  return exp(v);
#else
  return std::exp(v);
#endif
}

template <typename T>
PF_HD T pf_log(T v) {
#if defined(__CUDA_ARCH__)
  return log(v);
#else
  return std::log(v);
#endif
}

template <typename T>
PF_HD T pf_sqrt(T v) {
#if defined(__CUDA_ARCH__)
  return sqrt(v);
#else
  return std::sqrt(v);
#endif
}

template <typename T>
PF_HD bool pf_isfinite(T v) {
#if defined(__CUDA_ARCH__)
  return isfinite(v);
#else
  return std::isfinite(v);
#endif
}

template <typename T>
PF_HD T neg_inf() {
  return -std::numeric_limits<T>::infinity();
}

// ---------------------------------------------------------------- render_heatmaps
// value(i, j) = exp(-((j - x)^2 + (i - y)^2) / (2 sigma^2))
//             = gaussian_factor(j, x) * gaussian_factor(i, y)   (separable)

// 1 / (2 sigma^2), computed once per joint.
template <typename T>
PF_HD T inv_two_sigma_sq(T sigma) {
  return T(1) / (T(2) * sigma * sigma);
}

// One 1-D factor of the separable Gaussian: exp(-(coord - centre)^2 / (2 sigma^2)).
template <typename T>
PF_HD T gaussian_factor(T coord, T centre, T inv_2s2) {
  const T d = coord - centre;
  return pf_exp(-d * d * inv_2s2);
}

// A keypoint is rendered when it is visible (> 0) and both coordinates are finite;
// anything else renders an all-zero map.
template <typename T, typename V>
PF_HD bool renders_keypoint(V visible, T x, T y) {
  return visible > V(0) && pf_isfinite(x) && pf_isfinite(y);
}

// ---------------------------------------------------------------- soft_argmax
// Online softmax statistics of one map (or part of it): running maximum m of the
// scaled logits, s = sum exp(v - m), and the exp-weighted sums of x and y.
template <typename T>
struct SoftArgmaxState {
  T m, s, sx, sy;

  PF_HD void init() {
    m = neg_inf<T>();
    s = T(0);
    sx = T(0);
    sy = T(0);
  }

  // Add one pixel with scaled logit v at (x, y). One exponential per pixel.
  // A NaN logit makes the whole state NaN; a -inf logit adds nothing.
  PF_HD void push(T v, T x, T y) {
    if (v <= m) {
      const T e = v > neg_inf<T>() ? pf_exp(v - m) : T(0);
      s += e;
      sx += e * x;
      sy += e * y;
    } else {
      // v > m here, or v is NaN; `one` is NaN for a NaN logit so it poisons the state.
      const T c = (m == neg_inf<T>()) ? T(0) : pf_exp(m - v);
      const T one = v - v + T(1);
      s = s * c + one;
      sx = sx * c + x * one;
      sy = sy * c + y * one;
      m = v;
    }
  }

  // Combine with the state of another part of the same map.
  PF_HD void merge(const SoftArgmaxState& o) {
    const T nm = (o.m > m) ? o.m : m;
    const T a = (m == nm) ? T(1) : pf_exp(m - nm);
    const T b = (o.m == nm) ? T(1) : pf_exp(o.m - nm);
    s = s * a + o.s * b;
    sx = sx * a + o.sx * b;
    sy = sy * a + o.sy * b;
    m = nm;
  }

  PF_HD T x() const { return sx / s; }
  PF_HD T y() const { return sy / s; }
  // log of the softmax denominator: p(i, j) = exp(beta * h(i, j) - logsumexp).
  PF_HD T logsumexp() const { return m + pf_log(s); }
};

// dL/dh(i, j) = beta * p(i, j) * ((j - x) * gx + (i - y) * gy),
// with p recomputed from the saved log-sum-exp; v = beta * h(i, j).
template <typename T>
PF_HD T soft_argmax_grad(T v, T lse, T beta, T dx, T dy, T gx, T gy) {
  return beta * pf_exp(v - lse) * (dx * gx + dy * gy);
}

// ---------------------------------------------------------------- pck_counts
// A joint is valid when visible, its instance's normaliser is positive and its
// ground truth is finite.
template <typename T, typename V>
PF_HD bool pck_valid(V visible, T norm, T gx, T gy) {
  return visible > V(0) && norm > T(0) && pf_isfinite(gx) && pf_isfinite(gy);
}

// Normalised distance ||pred - gt|| / norm (NaN for a non-finite prediction).
template <typename T>
PF_HD T pck_distance(T px, T py, T gx, T gy, T norm) {
  const T dx = px - gx;
  const T dy = py - gy;
  return pf_sqrt(dx * dx + dy * dy) / norm;
}

// Strict hit test, as mmpose's keypoint_pck_accuracy: distance < threshold.
// NaN distances are never hits.
template <typename T>
PF_HD bool pck_hit(T distance, T threshold) {
  return distance < threshold;
}


// ================================================================ pose_loss (issue 8)
// Fused dual loss: heatmap loss against the analytic Gaussian target + soft-argmax L1.
// Appended section, owned by the pose_loss op; nothing above is changed.
// Definitions follow posefast/losses.py (PoseLoss) exactly.

template <typename T>
PF_HD T pf_log1p(T v) {
#if defined(__CUDA_ARCH__)
  return log1p(v);
#else
  return std::log1p(v);
#endif
}

template <typename T>
PF_HD T pf_abs(T v) {
  return v < T(0) ? -v : v;
}

// torch.sign semantics (and abs()'s backward): -1, 0 or +1; 0 for NaN.
template <typename T>
PF_HD T pf_sign(T v) {
  return T((v > T(0)) ? 1 : 0) - T((v < T(0)) ? 1 : 0);
}

// torch.nan_to_num defaults: NaN -> 0, +inf -> largest finite, -inf -> lowest finite.
template <typename T>
PF_HD T pf_nan_to_num(T v) {
  if (v != v) return T(0);
  if (v == std::numeric_limits<T>::infinity()) return std::numeric_limits<T>::max();
  if (v == -std::numeric_limits<T>::infinity()) return std::numeric_limits<T>::lowest();
  return v;
}

// Heatmap loss kinds, as passed through the op schema (int).
constexpr int kHeatmapLossBCE = 0;
constexpr int kHeatmapLossMSE = 1;

// BCE-with-logits of one pixel: max(z, 0) - z t + log(1 + exp(-|z|)).
template <typename T>
PF_HD T bce_with_logits(T z, T t) {
  const T relu = z > T(0) ? z : T(0);
  return relu - z * t + pf_log1p(pf_exp(-pf_abs(z)));
}

// d bce / dz = sigmoid(z) - t, with a stable sigmoid (one exponential).
template <typename T>
PF_HD T bce_with_logits_grad(T z, T t) {
  const T e = pf_exp(-pf_abs(z));
  const T sig = z >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
  return sig - t;
}

// Per-pixel heatmap loss: BCE-with-logits, or (z - t)^2 for MSE.
template <typename T>
PF_HD T heatmap_pixel_loss(int kind, T z, T t) {
  if (kind == kHeatmapLossMSE) {
    const T d = z - t;
    return d * d;
  }
  return bce_with_logits(z, t);
}

template <typename T>
PF_HD T heatmap_pixel_grad(int kind, T z, T t) {
  if (kind == kHeatmapLossMSE) return T(2) * (z - t);
  return bce_with_logits_grad(z, t);
}

// A map takes part in the loss when its joint is visible (> 0); hidden joints are
// masked out of both terms (their logits are not read, their gradient is 0).
template <typename V>
PF_HD bool pose_loss_counts(V visible) {
  return visible > V(0);
}

// The coordinate L1 of one map: (|x^ - x| + |y^ - y|) / 2 against the target keypoint
// passed through nan_to_num (hidden joints may carry NaN).
template <typename T>
PF_HD T coord_l1(T px, T py, T kx, T ky) {
  return (pf_abs(px - pf_nan_to_num(kx)) + pf_abs(py - pf_nan_to_num(ky))) / T(2);
}

// Per-map backward coefficients. With the loss outputs (total, heatmap, coord) and
// their incoming gradients (g_total, g_hm, g_coord), a visible map of joint weight w:
//   hm    = dLoss / d(sum over pixels of the pixel loss) = (g_total + g_hm) w / (N P)
//   gx,gy = dLoss / d(x^, y^) = (g_total cw + g_coord) w / N * sign(x^ - x) / 2 (same for y)
template <typename T>
struct PoseLossMapGrad {
  T hm, gx, gy;
};

template <typename T>
PF_HD PoseLossMapGrad<T> pose_loss_map_grad(T g_total, T g_hm, T g_coord, T coord_weight, T w,
                                            T inv_n, T inv_p, T px, T py, T kx, T ky) {
  PoseLossMapGrad<T> g;
  g.hm = (g_total + g_hm) * w * inv_n * inv_p;
  const T c = (g_total * coord_weight + g_coord) * w * inv_n / T(2);
  g.gx = c * pf_sign(px - pf_nan_to_num(kx));
  g.gy = c * pf_sign(py - pf_nan_to_num(ky));
  return g;
}

// N = number of visible joints in the batch, clamped to at least 1.
template <typename T>
PF_HD T pose_loss_norm(T visible_count) {
  return visible_count > T(1) ? visible_count : T(1);
}

// dLoss/dz of one pixel: heatmap-loss gradient plus the soft-argmax gradient
// (p recomputed from the saved log-sum-exp). dx = j - x^, dy = i - y^.
template <typename T>
PF_HD T pose_loss_pixel_grad(int kind, T z, T t, T beta, T lse, T dx, T dy,
                             const PoseLossMapGrad<T>& g) {
  return g.hm * heatmap_pixel_grad(kind, z, t) + soft_argmax_grad(beta * z, lse, beta, dx, dy, g.gx, g.gy);
}

}  // namespace posefast
