// The arithmetic of every posefast op, shared by the CPU and the CUDA implementations.
//
// Everything numerical lives here as small inline functions so that the CPU tests
// exercise exactly the math the GPU kernels run.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define PF_HD __host__ __device__ __forceinline__
#define PF_HD_FORCE __host__ __device__ __forceinline__
#else
#define PF_HD inline
// for helpers also instantiated with cpu_simd.h's vectors: inlined into each run_simd entry
#if defined(__GNUC__) || defined(__clang__)
#define PF_HD_FORCE inline __attribute__((always_inline))
#else
#define PF_HD_FORCE inline
#endif
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

// 2^v. In float on a GPU, the hardware's approximation (one instruction, within 2^-22
// relative; results below 2^-126 flush to 0: a softmax weight that small is invisible).
template <typename T>
PF_HD T pf_exp2(T v) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) {
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(v));
    return r;
  } else {
    return exp2(v);
  }
#else
  return std::exp2(v);
#endif
}

// The larger of a and b, and the other one when one is NaN (IEEE fmax).
template <typename T>
PF_HD T pf_fmax(T a, T b) {
#if defined(__CUDA_ARCH__)
  return fmax(a, b);
#else
  return std::fmax(a, b);
#endif
}

// a / b for b in [1, 3] (the sigmoid and log1p denominators here): on a GPU in float,
// a times the hardware's approximate reciprocal (one MUFU.RCP, within 1 ulp; the product
// within 2 ulp of a / b; b is a normal float, so no range handling), elsewhere the IEEE
// division. __fdividef costs three instructions more for its test of |b| > 2^126.
template <typename T>
PF_HD T pf_div_small(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) {
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(b));
    return a * r;
  } else {
    return a / b;
  }
#else
  return a / b;
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
// log2(e) in T's precision.
template <typename T>
PF_HD T log2e_of() {
  return T(1.44269504088896340736);
}

// e^a as 2^(a log2 e): on a GPU in float a multiply and one ex2.approx (pf_exp2) where expf
// takes eight instructions. Relative error: pf_exp2's plus |a| 2^-24 from rounding the product
// (1e-6 at |a| = 16). For the softmax weights and the BCE's exp(-|z|): a <= 0 there, so the
// product cannot overflow; -inf gives 0, NaN stays NaN, results below 2^-126 flush to 0 on a GPU.
template <typename T>
PF_HD T exp_by_exp2(T a) {
  return pf_exp2(a * log2e_of<T>());
}

// Online softmax statistics of one map (or part of it): running maximum m of the
// scaled logits, s = sum w(v - m), and the w-weighted sums of x and y, where the weight
// w(a) is e^a; with Exp2 = true it is computed as 2^(a log2 e), an exponential that is one
// hardware instruction on a GPU. Its argument a = v - m is <= 0 (or NaN): the product cannot
// overflow, where scaling the logits themselves by log2 e would for |beta h| > FLT_MAX / 1.44.
template <typename T, bool Exp2 = false>
struct SoftArgmaxState {
  T m, s, sx, sy;

  PF_HD static T weight(T a) {
    if constexpr (Exp2) {
      return exp_by_exp2(a);
    } else {
      return pf_exp(a);
    }
  }

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
      const T e = v > neg_inf<T>() ? weight(v - m) : T(0);
      s += e;
      sx += e * x;
      sy += e * y;
    } else {
      // v > m here, or v is NaN; `one` is NaN for a NaN logit so it poisons the state.
      const T c = (m == neg_inf<T>()) ? T(0) : weight(m - v);
      const T one = v - v + T(1);
      s = s * c + one;
      sx = sx * c + x * one;
      sy = sy * c + y * one;
      m = v;
    }
  }

  // Add N pixels of one row, scaled logits v[u] at (x0 + u, y): one comparison with the
  // running maximum for the run (the rescale is rare once the maximum is found), then one
  // exponential per pixel and no branch. The same results as N push calls, up to rounding:
  // a NaN poisons the state (fmax skips it, weight(NaN) is NaN), +inf gives NaN (inf - inf),
  // and -inf adds nothing (weight(-inf) = 0; while m is -inf the base is 0, and every
  // non-NaN value of the run is then -inf).
  template <int N>
  PF_HD void push_run(const T (&v)[N], T x0, T y) {
    T top = v[0];
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int u = 1; u < N; ++u) top = pf_fmax(top, v[u]);
    if (top > m) {
      const T c = (m == neg_inf<T>()) ? T(0) : weight(m - top);
      s *= c;
      sx *= c;
      sy *= c;
      m = top;
    }
    const T base = (m == neg_inf<T>()) ? T(0) : m;
    T es = weight(v[0] - base), eu = T(0);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int u = 1; u < N; ++u) {
      const T e = weight(v[u] - base);
      es += e;
      eu += e * T(u);
    }
    s += es;
    sx += x0 * es + eu;
    sy += y * es;
  }

  // Combine with the state of another part of the same map.
  PF_HD void merge(const SoftArgmaxState& o) {
    const T nm = (o.m > m) ? o.m : m;
    const T a = (m == nm) ? T(1) : weight(m - nm);
    const T b = (o.m == nm) ? T(1) : weight(o.m - nm);
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

// Merges n states in order, in groups of 16 (the error of a long sequential merge grows with
// n; grouped, with about 16 + n / 16).
template <typename State>
PF_HD State merge_states(const State* parts, int64_t n) {
  State total, group;
  total.init();
  group.init();
  for (int64_t c = 0; c < n; ++c) {
    group.merge(parts[c]);
    if (c % 16 == 15 || c == n - 1) {
      total.merge(group);
      group.init();
    }
  }
  return total;
}

// Row and column of the elements a thread visits, e0, e0 + stride, ..., in a map W wide,
// stepped without a division per step (the stride is split into rows and columns once).
// Rows stay ints: i < H (an int) while the element is in the map, and a thread steps at
// most a stride past it.
struct PixelCursor {
  int i, j, di, dj, W;
  PF_HD PixelCursor(int64_t e0, int64_t stride, int w)
      : i(static_cast<int>(e0 / w)), j(static_cast<int>(e0 % w)), di(static_cast<int>(stride / w)),
        dj(static_cast<int>(stride % w)), W(w) {}
  PF_HD void advance() {
    i += di;
    j += dj;
    if (j >= W) {
      j -= W;
      ++i;
    }
  }
};

// dL/dh(i, j) = beta * p(i, j) * ((j - x) * gx + (i - y) * gy),
// with p recomputed from the saved log-sum-exp (by exp2, as the forward's weights);
// v = beta * h(i, j). v - lse <= 0 up to rounding for the forward's lse; a caller's other lse
// costs accuracy as it grows (about 1e-6 relative at v - lse = 88).
template <typename T>
PF_HD T soft_argmax_grad(T v, T lse, T beta, T dx, T dy, T gx, T gy) {
  return beta * exp_by_exp2(v - lse) * (dx * gx + dy * gy);
}

// ---------------------------------------------------------------- exp_poly
// A branch-free float exponential for the vectorised CPU loops (std::exp does not
// vectorise). The CPU SIMD kernels (csrc/cpu/cpu_simd.h) run the same steps lane-wise with
// these constants; the scalar form below handles the tails of their rows.
//   1. clamp x to [kExpLo, kExpHi] (each clamp is a comparison that is false for NaN,
//      so NaN stays NaN; -inf -> kExpLo, whose exp rounds to 0; +inf -> kExpHi -> +inf);
//   2. n = round(x log2 e) by adding 1.5 * 2^23 (exact for |n| < 2^22);
//   3. r = x - n ln2 with ln2 split in two (Cody-Waite), |r| <= ln2 / 2;
//   4. exp(r) by Cephes' expf polynomial;
//   5. times 2^n, built in the exponent bits as 2^(n >> 1) * 2^(n - (n >> 1)) so both
//      factors stay normal floats over the whole clamped range (denormal results and the
//      overflow to +inf come out of the last multiply, rounded once more).
// Accuracy: within 2 ulp of the correctly rounded expf for normal results.
constexpr float kExpLo = -104.0f;  // exp(-104) < half the smallest denormal
constexpr float kExpHi = 89.0f;    // exp(89) > FLT_MAX
constexpr float kExpLog2e = 1.44269504088896341f;
constexpr float kExpRoundMagic = 12582912.0f;  // 1.5 * 2^23
constexpr float kExpLn2Hi = 0.693359375f;      // 355 / 512: n * kExpLn2Hi is exact
constexpr float kExpLn2Lo = -2.12194440e-4f;   // ln 2 - kExpLn2Hi
constexpr float kExpP0 = 1.9875691500e-4f, kExpP1 = 1.3981999507e-3f, kExpP2 = 8.3334519073e-3f,
                kExpP3 = 4.1665795894e-2f, kExpP4 = 1.6666665459e-1f, kExpP5 = 5.0000001201e-1f;

PF_HD int32_t pf_float_bits(float v) {
#if defined(__CUDA_ARCH__)
  return __float_as_int(v);
#else
  int32_t i;
  std::memcpy(&i, &v, sizeof(i));
  return i;
#endif
}

PF_HD float pf_bits_float(uint32_t i) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(i);
#else
  float v;
  std::memcpy(&v, &i, sizeof(v));
  return v;
#endif
}

// Steps 2-4 for a float or (cpu_simd.h) a float vector: returns exp(r) for x = n ln2 + r,
// t holding n in its low mantissa bits.
template <typename V>
PF_HD_FORCE V exp_poly_reduced(V x, V& t) {
  t = x * kExpLog2e + kExpRoundMagic;
  const V nf = t - kExpRoundMagic;
  const V r = (x - nf * kExpLn2Hi) - nf * kExpLn2Lo;
  V p = kExpP0 * r + kExpP1;
  p = p * r + kExpP2;
  p = p * r + kExpP3;
  p = p * r + kExpP4;
  p = p * r + kExpP5;
  return p * (r * r) + r + 1.0f;
}

PF_HD float exp_poly(float x) {
  x = x < kExpLo ? kExpLo : x;
  x = x > kExpHi ? kExpHi : x;
  float t;
  const float e = exp_poly_reduced(x, t);
  const int32_t n = pf_float_bits(t) - pf_float_bits(kExpRoundMagic);
  const int32_t h = n >> 1;
  const float s1 = pf_bits_float(static_cast<uint32_t>(h + 127) << 23);
  const float s2 = pf_bits_float(static_cast<uint32_t>(n - h + 127) << 23);
  return e * s1 * s2;
}

// ---------------------------------------------------------------- exp2_fast
// 2^a for the soft-argmax CPU kernels, which work in log2 units (a = h * beta log2 e - m2,
// one multiply-add per pixel) and know a is finite and <= 127 before they call it:
//   1. a below kExp2Lo is taken as kExp2Lo (2^-125, a normal float; the exact value is
//      smaller still, invisible next to the map maximum's weight 1);
//   2. n = round(a) by adding 1.5 * 2^23; r = a - n is exact and |r| <= 1/2;
//   3. 2^r by a degree-5 polynomial (minimax for relative error on [-1/2, 1/2], fitted for
//      these float32 constants: within 2.2e-7 of 2^r, ~2 ulp, with float32 Horner);
//   4. times 2^n by adding n to the exponent bits: t's low bits hold n, so t << 23 is n << 23.
// Eleven vector operations per 16 pixels where exp_poly needs sixteen (both soft-argmax
// passes are bound by their exponential; see benchmarks/NOTES.md). Not for general inputs:
// NaN, +-inf or a > 127.49 give wrong results, which is why the kernels check first.
constexpr float kExp2Lo = -125.0f;
constexpr float kExp2C0 = 1.0000001192e+0f, kExp2C1 = 6.9314694405e-1f, kExp2C2 = 2.4022120237e-1f,
                kExp2C3 = 5.5507130921e-2f, kExp2C4 = 9.6755418926e-3f, kExp2C5 = 1.3276472455e-3f;
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2 = 0.693147180559945309f;

// Steps 2-3 for a float or (cpu_simd.h) a float vector: returns 2^r for a = n + r, t holding
// n in its low mantissa bits.
template <typename V>
PF_HD_FORCE V exp2_reduced(V a, V& t) {
  t = a + kExpRoundMagic;
  const V r = a - (t - kExpRoundMagic);
  V p = kExp2C5 * r + kExp2C4;
  p = p * r + kExp2C3;
  p = p * r + kExp2C2;
  p = p * r + kExp2C1;
  return p * r + kExp2C0;
}

PF_HD float exp2_fast(float a) {
  a = a < kExp2Lo ? kExp2Lo : a;
  float t;
  const float p = exp2_reduced(a, t);
  return pf_bits_float(static_cast<uint32_t>(pf_float_bits(p)) +
                       (static_cast<uint32_t>(pf_float_bits(t)) << 23));
}

// ---------------------------------------------------------------- pck_counts
// A joint is valid when visible, its instance's normaliser is positive and its
// ground truth is finite.
template <typename T, typename V>
PF_HD bool pck_valid(V visible, T norm, T gx, T gy) {
  return visible > V(0) && norm > T(0) && pf_isfinite(gx) && pf_isfinite(gy);
}

// a^2 + b^2 rounded after each product and the sum, on both sides: nvcc contracts a plain
// a * a + b * b into a fused multiply-add by default, which can move the result by an ulp
// from the CPU's and so flip a PCK count at a threshold (the counts must agree exactly).
template <typename T>
PF_HD T pf_sum_squares(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == sizeof(float)) {
    return __fadd_rn(__fmul_rn(a, a), __fmul_rn(b, b));
  } else {
    return __dadd_rn(__dmul_rn(a, a), __dmul_rn(b, b));
  }
#else
  return a * a + b * b;
#endif
}

// Normalised distance ||pred - gt|| / norm (NaN for a non-finite prediction).
template <typename T>
PF_HD T pck_distance(T px, T py, T gx, T gy, T norm) {
  return pf_sqrt(pf_sum_squares(px - gx, py - gy)) / norm;
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

// d bce / dz = sigmoid(z) - t, with a stable sigmoid (one exponential, by exp2).
template <typename T>
PF_HD T bce_with_logits_grad(T z, T t) {
  const T e = exp_by_exp2(-pf_abs(z));
  const T sig = pf_div_small(z >= T(0) ? T(1) : e, T(1) + e);
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

// ---------------------------------------------------------------- pose_loss: CPU fast path
// Branch-free float exp and log1p on [0, 1] that compilers auto-vectorise (plain
// arithmetic and bit casts, no library calls), for the CPU kernels' float loops; within
// ~2 ulp of expf / log1pf. The GPU uses pf_exp / pf_log1p.

PF_HD float poly_exp(float x) {
  // exp(x) = 2^n * exp(r), n = round(x / ln2), |r| <= ln2 / 2; Cephes' expf polynomial.
  // For x <= 88. Below -87.3 (exp < 2^-126) it returns 0, -inf included; NaN stays NaN.
  // No data-dependent selects on floats (they stop GCC's vectoriser): the underflow is a
  // bit mask.
  const int keep = -static_cast<int>(!(x < -87.33654f));  // all ones, or 0 on underflow
  // exp_poly's constants (above); t's low mantissa bits hold round(x / ln2)
  const float magic = kExpRoundMagic;
  const float t = x * kExpLog2e + magic;
  const float n = t - magic;
  const float r = (x - n * kExpLn2Hi) - n * kExpLn2Lo;
  float p = kExpP0;
  p = p * r + kExpP1;
  p = p * r + kExpP2;
  p = p * r + kExpP3;
  p = p * r + kExpP4;
  p = p * r + kExpP5;
  p = p * r * r + r + 1.0f;
  int tb, mb;
  __builtin_memcpy(&tb, &t, sizeof(float));
  const float mf = magic;
  __builtin_memcpy(&mb, &mf, sizeof(float));
  const int sb = ((tb - mb) + 127) << 23;  // 2^n, n in [-126, 127] where kept
  float scale;
  __builtin_memcpy(&scale, &sb, sizeof(float));
  const float res = p * scale;
  int rb;
  __builtin_memcpy(&rb, &res, sizeof(float));
  rb &= keep;
  float out;
  __builtin_memcpy(&out, &rb, sizeof(float));
  return out;
}

// log(1 + e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e) in [0, 1/3].
PF_HD float poly_log1p_unit(float e) {
  const float s = pf_div_small(e, 2.0f + e);
  const float s2 = s * s;
  float q = 1.0f / 13;
  q = q * s2 + 1.0f / 11;
  q = q * s2 + 1.0f / 9;
  q = q * s2 + 1.0f / 7;
  q = q * s2 + 1.0f / 5;
  q = q * s2 + 1.0f / 3;
  q = q * s2 + 1.0f;
  return 2.0f * s * q;
}

// The per-pixel pieces of the heatmap loss given e = exp(-|z|) (and log(1 + e)), so that
// a loop can supply its own exp / log1p; the definitions are those of
// bce_with_logits / bce_with_logits_grad above.
template <typename T>
PF_HD T bce_with_logits_from(T z, T t, T log1p_e) {
  const T relu = z > T(0) ? z : T(0);
  return relu - z * t + log1p_e;
}

template <typename T>
PF_HD T bce_with_logits_grad_from(T z, T t, T e) {
  const T sig = pf_div_small(z >= T(0) ? T(1) : e, T(1) + e);
  return sig - t;
}

// The heatmap loss of one pixel for the GPU kernels: in float, BCE takes log(1 + e) from
// poly_log1p_unit (the CPU float path's, cheaper than log1pf on a GPU too) with
// e = exp(-|z|) by exp_by_exp2;
// other types and MSE are heatmap_pixel_loss.
template <typename T>
PF_HD T heatmap_pixel_loss_fast(int kind, T z, T t) {
  if constexpr (std::is_same_v<T, float>) {
    if (kind == kHeatmapLossMSE) return heatmap_pixel_loss(kind, z, t);
    return bce_with_logits_from(z, t, poly_log1p_unit(exp_by_exp2(-pf_abs(z))));
  } else {
    return heatmap_pixel_loss(kind, z, t);
  }
}

}  // namespace posefast
