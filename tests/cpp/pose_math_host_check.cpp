// Host checks of the pose_math.h pieces that only the CUDA kernels call (PixelCursor,
// merge_states, push_run on float runs of 4 and 8): compiled with the host compiler by
// tests/test_pose_math_host.py, so a machine without a GPU still tests the algorithm the
// GPU runs, and the float per-pixel functions of the GPU's pose-loss and soft-argmax passes
// (exp by exp2, the BCE and its gradient, the soft-argmax gradient) against double. The
// device-only instructions behind pf_exp2 (ex2.approx), pf_div_small (rcp.approx) and pf_fmax
// take their host counterparts here; block_reduce_state and the
// kernels' loops are covered by the CUDA op tests only. Prints one line per failed check and
// "checks: N failed: F"; exit code 1 on any.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "pose_math.h"

using namespace posefast;

static int checks = 0, failed = 0;

static void expect(bool ok, const char* what, double a, double b) {
  ++checks;
  if (!ok) {
    ++failed;
    if (failed <= 20) std::printf("FAIL %s: %.17g vs %.17g\n", what, a, b);
  }
}

static bool close_or_both_nan(double a, double b, double rel) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::fabs(a - b) <= rel * std::fmax(1.0, std::fmax(std::fabs(a), std::fabs(b)));
}

// The cursor against e / W and e % W, for every thread start of a chunked map.
static void check_cursor() {
  const int widths[] = {1, 2, 3, 5, 7, 48, 67, 72, 192, 1000, 2049, 5000};
  const int64_t strides[] = {1, 3, 4, 12, 256, 1024, 2048, 4096};
  for (int W : widths)
    for (int64_t stride : strides)
      for (int64_t e0 : {int64_t(0), int64_t(1), int64_t(W - 1), int64_t(W), int64_t(3 * W + 2), int64_t(777)}) {
        PixelCursor at(e0, stride, W);
        bool ok = true;
        int64_t e = e0;
        for (int step = 0; step < 300 && ok; ++step, e += stride, at.advance())
          ok = at.i == e / W && at.j == e % W;
        expect(ok, "PixelCursor row/column", double(W), double(stride));
      }
}

// A random scaled logit, with the special values the ops define semantics for.
static double draw(std::mt19937_64& rng, double special_rate) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::normal_distribution<double> n(0.0, 4.0);
  const double r = u(rng);
  if (r < special_rate / 3) return -INFINITY;
  if (r < special_rate * 2 / 3) return NAN;
  if (r < special_rate) return INFINITY;
  return n(rng);
}

// push_run over runs of N against push one pixel at a time (same state type, same units).
template <typename T, bool Log2, int N>
static void check_push_run(uint64_t seed, int pixels, double special_rate, double rel) {
  std::mt19937_64 rng(seed);
  SoftArgmaxState<T, Log2> a, b;
  a.init();
  b.init();
  const int W = N * 5;
  for (int p = 0; p < pixels; p += N) {
    T v[N];
    for (int u = 0; u < N; ++u) v[u] = T(draw(rng, special_rate));
    const T x0 = T(p % W), y = T(p / W);
    a.push_run(v, x0, y);
    for (int u = 0; u < N; ++u) b.push(v[u], x0 + T(u), y);
  }
  expect(close_or_both_nan(a.x(), b.x(), rel), "push_run x", a.x(), b.x());
  expect(close_or_both_nan(a.y(), b.y(), rel), "push_run y", a.y(), b.y());
  expect(close_or_both_nan(a.logsumexp(), b.logsumexp(), rel), "push_run logsumexp", a.logsumexp(),
         b.logsumexp());
}

// The same map through a state weighting by exp2 and one weighting by exp: the same softmax.
static void check_exp2_weights(uint64_t seed) {
  std::mt19937_64 rng(seed);
  SoftArgmaxState<double, true> e2;
  SoftArgmaxState<double, false> e;
  e2.init();
  e.init();
  const double beta = 1.7;
  for (int p = 0; p < 400; p += 4) {
    double v[4];
    for (int u = 0; u < 4; ++u) v[u] = beta * draw(rng, 0.0);
    e2.push_run(v, double(p % 40), double(p / 40));
    e.push_run(v, double(p % 40), double(p / 40));
  }
  expect(close_or_both_nan(e2.x(), e.x(), 1e-12), "exp2 vs exp weights x", e2.x(), e.x());
  expect(close_or_both_nan(e2.y(), e.y(), 1e-12), "exp2 vs exp weights y", e2.y(), e.y());
  expect(close_or_both_nan(e2.logsumexp(), e.logsumexp(), 1e-12), "exp2 vs exp weights logsumexp",
         e2.logsumexp(), e.logsumexp());
}

// Finite logits as large as the type holds stay finite (no overflow inside the state).
static void check_huge_finite_logits() {
  SoftArgmaxState<float, true> one, flat;
  one.init();
  flat.init();
  const float peak[4] = {0.f, 3e38f, 0.f, 0.f};
  one.push_run(peak, 0.f, 0.f);
  expect(one.x() == 1.f && one.logsumexp() == 3e38f, "one huge finite logit", one.x(), one.logsumexp());
  const float low[4] = {-3e38f, -3e38f, -3e38f, -3e38f};
  flat.push_run(low, 0.f, 0.f);
  expect(flat.x() == 1.5f && flat.logsumexp() < -2.9e38f, "a map of huge negative logits", flat.x(),
         flat.logsumexp());
}

// exp_by_exp2, and the per-pixel losses and gradients the GPU kernels build on it, in float
// against double: z over [-100, 100] and the special values.
static void check_pixel_functions() {
  for (int k = 0; k <= 4000; ++k) {
    const float a = -0.01f * static_cast<float>(k);  // exponents in [-40, 0]
    expect(close_or_both_nan(exp_by_exp2(a), std::exp(double(a)), 1e-6), "exp_by_exp2", exp_by_exp2(a),
           std::exp(double(a)));
  }
  expect(exp_by_exp2(-INFINITY) == 0.f, "exp_by_exp2(-inf) = 0", exp_by_exp2(-INFINITY), 0);
  expect(std::isnan(exp_by_exp2(NAN)), "exp_by_exp2(NaN) is NaN", exp_by_exp2(NAN), NAN);
  expect(exp_by_exp2(-3e38f) == 0.f, "exp_by_exp2 of a huge negative finite", exp_by_exp2(-3e38f), 0);
  for (int k = -1000; k <= 1000; ++k) {
    const float z = 0.1f * static_cast<float>(k), t = (k % 7 == 0) ? 1.f : 0.25f;
    const double zd = z, sig = 1.0 / (1.0 + std::exp(-zd));
    const double bce = std::fmax(zd, 0.0) - zd * t + std::log1p(std::exp(-std::fabs(zd)));
    expect(close_or_both_nan(heatmap_pixel_loss_fast(kHeatmapLossBCE, z, t), bce, 3e-6), "BCE (GPU form)",
           heatmap_pixel_loss_fast(kHeatmapLossBCE, z, t), bce);
    expect(close_or_both_nan(bce_with_logits_grad(z, t), sig - t, 1e-6), "BCE gradient",
           bce_with_logits_grad(z, t), sig - t);
    // the soft-argmax gradient at v - lse = -|z| / 4, offsets (3, -2), coordinate gradients (0.5, -0.25)
    const float lse = 2.f + std::fabs(z) / 4;
    const double sa = 1.5 * std::exp(2.0 - double(lse)) * (3.0 * 0.5 + -2.0 * -0.25);
    expect(close_or_both_nan(soft_argmax_grad(2.f, lse, 1.5f, 3.f, -2.f, 0.5f, -0.25f), sa, 2e-6),
           "soft-argmax gradient", soft_argmax_grad(2.f, lse, 1.5f, 3.f, -2.f, 0.5f, -0.25f), sa);
  }
  expect(bce_with_logits_grad(INFINITY, 1.f) == 0.f, "BCE gradient at +inf", bce_with_logits_grad(INFINITY, 1.f), 0);
  expect(bce_with_logits_grad(-INFINITY, 0.f) == 0.f, "BCE gradient at -inf", bce_with_logits_grad(-INFINITY, 0.f), 0);
  expect(std::isnan(bce_with_logits_grad(NAN, 0.f)), "BCE gradient at NaN", bce_with_logits_grad(NAN, 0.f), NAN);
  expect(soft_argmax_grad(-INFINITY, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f) == 0.f, "soft-argmax gradient of a -inf logit",
         soft_argmax_grad(-INFINITY, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f), 0);
}

// Chunk states of one map merged by merge_states, against one state over the whole map in
// double; in float, the grouped merge of many chunks must stay near the double result.
template <typename T>
static void check_merge(uint64_t seed, int chunks, int per_chunk, double special_rate, double rel) {
  std::mt19937_64 rng(seed);
  std::vector<SoftArgmaxState<T, true>> parts(chunks);
  SoftArgmaxState<double, true> whole;
  whole.init();
  for (int c = 0; c < chunks; ++c) {
    parts[c].init();
    for (int k = 0; k < per_chunk; ++k) {
      const double v = draw(rng, special_rate);
      const int e = c * per_chunk + k;
      parts[c].push(T(v), T(e % 192), T(e / 192));
      whole.push(double(T(v)), double(e % 192), double(e / 192));
    }
  }
  const SoftArgmaxState<T, true> merged = merge_states(parts.data(), chunks);
  expect(close_or_both_nan(merged.x(), whole.x(), rel), "merge_states x", merged.x(), whole.x());
  expect(close_or_both_nan(merged.y(), whole.y(), rel), "merge_states y", merged.y(), whole.y());
  expect(close_or_both_nan(merged.logsumexp(), whole.logsumexp(), rel), "merge_states logsumexp",
         merged.logsumexp(), whole.logsumexp());
}

int main() {
  check_cursor();
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    check_push_run<double, true, 4>(seed, 400, 0.0, 1e-12);
    check_push_run<double, true, 8>(seed, 400, 0.0, 1e-12);
    check_push_run<double, false, 4>(seed, 400, 0.0, 1e-12);
    check_push_run<double, true, 1>(seed, 400, 0.0, 1e-12);
    check_push_run<float, true, 4>(seed, 400, 0.0, 1e-4);
    check_push_run<float, true, 8>(seed, 400, 0.0, 1e-4);
    // NaN / +-inf: the same NaN-ness and the same finite values
    check_push_run<double, true, 4>(seed + 100, 64, 0.02, 1e-12);
    check_push_run<double, true, 8>(seed + 100, 64, 0.05, 1e-12);
    check_push_run<float, true, 4>(seed + 100, 64, 0.02, 1e-4);
    check_push_run<float, true, 8>(seed + 100, 64, 0.3, 1e-4);  // runs of NaN / inf only too
    check_exp2_weights(seed);
    check_merge<double>(seed, 1 + int(seed % 7), 37, 0.0, 1e-12);
    check_merge<double>(seed, 50, 12, 0.01, 1e-12);
  }
  {  // a run of NaN while nothing finite was seen, then finite values: NaN
    SoftArgmaxState<float, true> st;
    st.init();
    const float nan4[4] = {NAN, NAN, NAN, NAN}, fin[4] = {1.f, 2.f, 3.f, 4.f};
    st.push_run(nan4, 0.f, 0.f);
    st.push_run(fin, 4.f, 0.f);
    expect(std::isnan(st.x()) && std::isnan(st.logsumexp()), "NaN run, then finite", st.x(), st.logsumexp());
  }
  {  // all -inf: every run adds nothing; the map is 0 / 0
    SoftArgmaxState<float, true> st;
    st.init();
    const float v[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    st.push_run(v, 0.f, 0.f);
    expect(st.s == 0.f && st.m == -INFINITY, "all -inf run adds nothing", st.s, st.m);
  }
  check_huge_finite_logits();
  check_pixel_functions();
  {  // 4,096 chunks of 12 pixels (a 256x192 map in chunks of 3 float vectors)
    check_merge<float>(7, 4096, 12, 0.0, 1e-6);
  }
  std::printf("checks: %d failed: %d\n", checks, failed);
  return failed == 0 ? 0 : 1;
}
