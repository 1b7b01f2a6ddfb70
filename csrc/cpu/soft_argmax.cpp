// CPU soft-argmax, forward and backward. One task per map; only the log-sum-exp per map is
// saved for the backward pass.
//
// float32 / bfloat16 / float16 maps take the SIMD path (cpu_simd.h's run_simd: 16-, 8- or
// 4-float vectors for AVX-512, AVX2 or the baseline, picked at run time): the forward pass
// reads the map twice (a max pass, then one exp per pixel accumulating the sums; the
// second read hits L1/L2, a map is at most a few hundred KB), the backward pass reads and
// writes each pixel once. bfloat16 maps are read (and their gradient written) directly,
// a vector's worth widened to float per load; float16 maps are widened one map at a time.
// A forward map holding a non-finite beta * h (NaN, +-inf) falls back to the exact scalar
// online-softmax path below, which defines the NaN / inf semantics; float64 always takes
// that scalar path. It is the GPU forward kernel's algorithm (SoftArgmaxState::push_run, weights
// by exp2; the GPU's exp2 is the hardware's approximation), so the CPU tests run it too.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <type_traits>
#include <vector>

#include "../include/op_checks.h"
#include "../include/pose_math.h"
#include "cpu_simd.h"

namespace posefast {

namespace {

// ---------------------------------------------------------------- float SIMD kernels
// (templates over simd::Vec<N>, run through simd::run_simd)

// Soft-argmax of one float or bfloat16 (uint16_t bits) map, read as float: out = (x, y,
// logsumexp). Returns false, writing nothing, when some beta * h is not finite.
// Works in log2 units: u = h * beta log2 e, m2 = max u, weights 2^(u - m2) (exp2_fast).
struct ForwardMap {
template <class V, typename In>
static PF_VINLINE bool run(const In* src, int64_t H, int64_t W, float beta, float* out) {
  using simd::to_float;
  const int64_t n = H * W;
  const float bl = beta * kLog2e;
  float m2 = neg_inf<float>(), bad = 0.f;
  int64_t k = 0;
#if PF_HAVE_VEC
  using vf = typename V::vf;
  constexpr int kLanes = V::kLanes;
  vf vm = V::splat(neg_inf<float>()), vbad = V::splat(0.f);
  for (; k + kLanes <= n; k += kLanes) {
    const vf u = V::loadf(src + k) * bl;
    vm = V::vmax(vm, u);
    vbad += u * 0.f;  // NaN for a NaN or infinite u
  }
  m2 = V::hmax(vm);
  bad = V::hsum(vbad);
#endif
  for (; k < n; ++k) {
    const float u = to_float(src[k]) * bl;
    m2 = u > m2 ? u : m2;
    bad += u * 0.f;
  }
  if (!(bad == 0.f)) return false;

  float s = 0.f, sx = 0.f, sy = 0.f;
#if PF_HAVE_VEC
  vf vs = V::splat(0.f), vsx = V::splat(0.f), vsy = V::splat(0.f);
#endif
  for (int64_t i = 0; i < H; ++i) {
    const In* row = src + i * W;
    int64_t j = 0;
#if PF_HAVE_VEC
    // per-row sums first, then the map's: the float rounding stays small at any width
    vf rs = V::splat(0.f), rsx = V::splat(0.f), jv = V::iota();
    for (; j + kLanes <= W; j += kLanes) {
      const vf e = V::exp2_fast(V::loadf(row + j) * bl - m2);
      rs += e;
      rsx += e * jv;
      jv += float(kLanes);
    }
    if (j < W) {  // the row's tail as one vector; the padding lanes get weight 0
      const vf e0 = V::exp2_fast(V::loadf_tail(row + j, W - j, 0.f) * bl - m2);
      const vf e = V::iota() < float(W - j) ? e0 : V::splat(0.f);
      rs += e;
      rsx += e * jv;
      j = W;
    }
    vs += rs;
    vsx += rsx;
    vsy += rs * float(i);
#endif
    float trs = 0.f;
    for (; j < W; ++j) {
      const float e = exp2_fast(to_float(row[j]) * bl - m2);
      trs += e;
      sx += e * float(j);
    }
    s += trs;
    sy += trs * float(i);
  }
#if PF_HAVE_VEC
  s += V::hsum(vs);
  sx += V::hsum(vsx);
  sy += V::hsum(vsy);
#endif
  out[0] = sx / s;
  out[1] = sy / s;
  out[2] = kLn2 * m2 + pf_log(s);
  return true;
}
};

// dL/dh of one float or bfloat16 map: beta * exp(beta h - lse) * ((j - x) gx + (i - y) gy).
// Fast = true works in log2 units with exp2_fast, beta folded into the per-row constants:
// 2^(h bl - lse2) * ((j - x) bgx + bdy_i) (j - x first: near the expected location, where p
// is largest, j gx - x gx would cancel); it returns false if exp2_fast was not valid for this map
// (a non-finite beta h, or an exponent above 127: the caller then redoes the map with
// Fast = false, exp_poly in natural units, which gives NaN / inf / 0 exactly).
#if PF_HAVE_VEC
// grad_map's gradient of one vector of pixels (j = jv) of one row (bdy = beta (i - y) gy);
// the fast form also folds a into the map's NaN check and its largest exponent.
template <class V, bool Fast, typename vf = typename V::vf>
PF_VINLINE vf grad_vec(vf v, vf jv, float beta, float bl, float lse, float lse2, float x, float gx,
                       float bgx, float dyg, float bdy, vf& bad, vf& top) {
  if constexpr (Fast) {
    const vf a = v * bl - lse2;
    bad += a * 0.f;  // NaN once some h is not finite
    top = V::vmax(top, a);
    return V::exp2_fast(a) * ((jv - x) * bgx + bdy);
  } else {
    return beta * V::exp_poly(v * beta - lse) * ((jv - x) * gx + dyg);
  }
}
#endif

template <class V, bool Fast, typename In>
PF_VINLINE bool grad_map(const In* src, In* dst, int64_t H, int64_t W, float beta, float x,
                         float y, float gx, float gy, float lse) {
  using simd::to_float;
  const float bl = beta * kLog2e, lse2 = lse * kLog2e, bgx = beta * gx;
#if PF_HAVE_VEC
  using vf = typename V::vf;
  constexpr int kLanes = V::kLanes;
  vf bad = V::splat(0.f), top = V::splat(neg_inf<float>());
#endif
  for (int64_t i = 0; i < H; ++i) {
    const In* in = src + i * W;
    In* out = dst + i * W;
    const float dyg = (float(i) - y) * gy;
    const float bdy = beta * dyg;
    int64_t j = 0;
#if PF_HAVE_VEC
    vf ja, jb;
    V::template pair_iota<In>(ja, jb);
    for (; j + 2 * kLanes <= W; j += 2 * kLanes) {  // two vectors at a time (cpu_simd.h's pairs)
      vf va, vb;
      V::loadf2(in + j, va, vb);
      const vf ga = grad_vec<V, Fast>(va, ja, beta, bl, lse, lse2, x, gx, bgx, dyg, bdy, bad, top);
      const vf gb = grad_vec<V, Fast>(vb, jb, beta, bl, lse, lse2, x, gx, bgx, dyg, bdy, bad, top);
      V::storef2(out + j, ga, gb);
      ja += float(2 * kLanes);
      jb += float(2 * kLanes);
    }
    vf jv = V::iota() + float(j);
    for (; j + kLanes <= W; j += kLanes) {
      V::storef(out + j, grad_vec<V, Fast>(V::loadf(in + j), jv, beta, bl, lse, lse2, x, gx, bgx,
                                           dyg, bdy, bad, top));
      jv += float(kLanes);
    }
    if (j < W) {  // the row's tail as one vector; only its W - j lanes are stored (the padding
                  // repeats a pixel of the row, so it cannot push `top` past what the row has)
      V::storef_tail(out + j, W - j,
                     grad_vec<V, Fast>(V::loadf_tail(in + j, W - j, to_float(in[j])), jv, beta, bl,
                                       lse, lse2, x, gx, bgx, dyg, bdy, bad, top));
      j = W;
    }
#endif
    for (; j < W; ++j) {
      const float v = to_float(in[j]);
      float g;
      if constexpr (Fast) {
        const float a = v * bl - lse2;
        if (!(a * 0.f == 0.f && a <= 127.0f)) return false;  // not finite, or too large
        g = exp2_fast(a) * ((float(j) - x) * bgx + bdy);
      } else {
        g = beta * exp_poly(v * beta - lse) * ((float(j) - x) * gx + dyg);
      }
      simd::store_scalar(out + j, g);
    }
  }
#if PF_HAVE_VEC
  if constexpr (Fast) return V::hsum(bad) == 0.f && V::hmax(top) <= 127.0f;
#endif
  return true;
}

// dst must not alias src: a map whose fast pass fails is redone from src
struct GradMap {
template <class V, typename In>
static PF_VINLINE void run(const In* src, In* dst, int64_t H, int64_t W, float beta, float x,
                           float y, float gx, float gy, float lse) {
  if (!pf_isfinite(lse) || !grad_map<V, true>(src, dst, H, W, beta, x, y, gx, gy, lse))
    grad_map<V, false>(src, dst, H, W, beta, x, y, gx, gy, lse);
}
};

// A float16 map widened to float / a float map narrowed back (bfloat16 maps are read directly).
template <typename scalar_t>
void widen(const scalar_t* src, float* dst, int64_t n) {
  for (int64_t e = 0; e < n; ++e) dst[e] = static_cast<float>(src[e]);
}

template <typename scalar_t>
void narrow(const float* src, scalar_t* dst, int64_t n) {
  for (int64_t e = 0; e < n; ++e) dst[e] = static_cast<scalar_t>(src[e]);
}

int64_t grain_for(int64_t hw) { return std::max<int64_t>(1, 16384 / hw); }

// The exact path's softmax state (weights by exp2), as in the GPU kernels.
template <typename acc_t>
using ExactState = SoftArgmaxState<acc_t, true>;

// Folds one row into `st` as the GPU forward kernel does: runs of 4 pixels
// (SoftArgmaxState::push_run), then the row's tail one pixel at a time.
template <typename scalar_t, typename acc_t>
void push_row(ExactState<acc_t>& st, const scalar_t* row, int64_t W, acc_t beta, acc_t y) {
  int64_t j = 0;
  for (; j + 4 <= W; j += 4) {
    const acc_t v[4] = {beta * static_cast<acc_t>(row[j]), beta * static_cast<acc_t>(row[j + 1]),
                        beta * static_cast<acc_t>(row[j + 2]), beta * static_cast<acc_t>(row[j + 3])};
    st.push_run(v, acc_t(j), y);
  }
  for (; j < W; ++j) {
    const acc_t v[1] = {beta * static_cast<acc_t>(row[j])};
    st.push_run(v, acc_t(j), y);
  }
}

// The SIMD paths per map; false where they do not apply (float64 maps; forward maps with a
// non-finite logit), leaving the map to the exact scalar code.
template <typename scalar_t, typename acc_t>
bool simd_forward_map(const scalar_t* map, int64_t H, int64_t W, acc_t beta,
                      std::vector<float>& widened, acc_t* coords, acc_t* lse) {
  if constexpr (std::is_same_v<acc_t, float>) {
    float out[3];
    bool ok;
    if constexpr (std::is_same_v<scalar_t, float>) {
      ok = simd::run_simd<ForwardMap>(map, H, W, beta, out);
    } else if constexpr (std::is_same_v<scalar_t, c10::BFloat16>) {
      ok = simd::run_simd<ForwardMap>(reinterpret_cast<const uint16_t*>(map), H, W, beta, out);
    } else {
      widened.resize(H * W);
      widen(map, widened.data(), H * W);
      ok = simd::run_simd<ForwardMap>(widened.data(), H, W, beta, out);
    }
    if (!ok) return false;
    coords[0] = out[0];
    coords[1] = out[1];
    *lse = out[2];
    return true;
  } else {
    return false;
  }
}

template <typename scalar_t, typename acc_t>
bool simd_backward_map(const scalar_t* map, scalar_t* grad, int64_t H, int64_t W, acc_t beta,
                       acc_t x, acc_t y, acc_t gx, acc_t gy, acc_t lse, std::vector<float>& buf) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    simd::run_simd<GradMap>(map, grad, H, W, beta, x, y, gx, gy, lse);
    return true;
  } else if constexpr (std::is_same_v<scalar_t, c10::BFloat16>) {
    simd::run_simd<GradMap>(reinterpret_cast<const uint16_t*>(map),
                            reinterpret_cast<uint16_t*>(grad), H, W, beta, x, y, gx, gy, lse);
    return true;
  } else if constexpr (std::is_same_v<acc_t, float>) {
    const int64_t hw = H * W;
    buf.resize(2 * hw);
    widen(map, buf.data(), hw);
    simd::run_simd<GradMap>(buf.data(), buf.data() + hw, H, W, beta, x, y, gx, gy, lse);
    narrow(buf.data() + hw, grad, hw);
    return true;
  } else {
    return false;
  }
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
    const int64_t hw = H * W;
    at::parallel_for(0, B * K, grain_for(hw), [&](int64_t begin, int64_t end) {
      std::vector<float> widened;  // reduced-precision maps, as float
      for (int64_t m = begin; m < end; ++m) {
        const scalar_t* map = src + m * hw;
        if (simd_forward_map(map, H, W, b, widened, c + 2 * m, l + m)) continue;
        ExactState<acc_t> st;
        st.init();
        for (int64_t i = 0; i < H; ++i) push_row(st, map + i * W, W, b, acc_t(i));
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
  advise_huge_pages(grad.data_ptr(), grad.nbytes());
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
    const int64_t hw = H * W;
    at::parallel_for(0, B * K, grain_for(hw), [&](int64_t begin, int64_t end) {
      std::vector<float> buf;  // reduced-precision maps, as float
      for (int64_t m = begin; m < end; ++m) {
        const acc_t x = cp[2 * m], y = cp[2 * m + 1], gx = gp[2 * m], gy = gp[2 * m + 1];
        const acc_t lse = lp[m];
        if (simd_backward_map(src + m * hw, dst + m * hw, H, W, b, x, y, gx, gy, lse, buf)) continue;
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
