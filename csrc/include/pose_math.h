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

}  // namespace posefast
