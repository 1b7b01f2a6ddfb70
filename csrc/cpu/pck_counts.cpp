// CPU PCK counting. The thresholds are sorted once; since pck_hit(d, t) is "d < t", the hits
// of one joint are a suffix of the sorted thresholds: each joint adds one to a histogram at
// the suffix start, found by counting the thresholds it misses (one integer increment per
// joint instead of T), and a running sum over the histogram gives the hits per threshold. Instances are split into
// chunks (contiguous reads of pred/gt/visible), each counted in task-local memory and
// merged once.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <mutex>
#include <numeric>
#include <vector>

#include "../include/op_checks.h"
#include "../include/pose_math.h"

namespace posefast {
namespace {

// Instances per task (N = 4096 makes up to 4 tasks; small inputs stay on one thread).
constexpr int64_t kInstancesPerTask = 1024;

std::tuple<at::Tensor, at::Tensor> pck_counts_cpu(const at::Tensor& pred, const at::Tensor& gt,
                                                  const at::Tensor& visible,
                                                  const at::Tensor& norm,
                                                  const at::Tensor& thresholds) {
  check_pck_args(pred, gt, visible, norm, thresholds);
  const int64_t N = pred.size(0), K = pred.size(1), T = thresholds.size(0);
  const auto i64 = pred.options().dtype(at::kLong);
  at::Tensor hits = at::zeros({T, K}, i64);
  at::Tensor valid = at::zeros({K}, i64);
  const auto cd = pck_compute_dtype(pred);
  const at::Tensor p = pred.to(cd).contiguous(), g = gt.to(cd).contiguous();
  const at::Tensor v = visible_as(visible, cd), n = norm.to(cd).contiguous();
  const at::Tensor t = thresholds.to(cd).contiguous();
  AT_DISPATCH_FLOATING_TYPES(cd, "pck_counts_cpu", [&] {
    const scalar_t *pp = p.data_ptr<scalar_t>(), *gp = g.data_ptr<scalar_t>();
    const scalar_t *vp = v.data_ptr<scalar_t>(), *np_ = n.data_ptr<scalar_t>();
    const scalar_t* tp = t.data_ptr<scalar_t>();
    // thresholds that can be hit, ascending (a NaN threshold is never hit: left out)
    std::vector<int64_t> order;
    for (int64_t ti = 0; ti < T; ++ti)
      if (tp[ti] == tp[ti]) order.push_back(ti);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return tp[a] < tp[b]; });
    const int64_t S = static_cast<int64_t>(order.size());
    std::vector<scalar_t> sorted(S);
    for (int64_t s = 0; s < S; ++s) sorted[s] = tp[order[s]];

    // histogram[k * (S + 1) + s]: joints k whose first hit is sorted threshold s (S: none)
    std::vector<int64_t> histogram(K * (S + 1), 0), nvalid(K, 0);
    std::mutex merge;
    at::parallel_for(0, N, kInstancesPerTask, [&](int64_t begin, int64_t end) {
      const int64_t first = begin * K, count = (end - begin) * K;
      // 1. each joint's normalised distance (NaN when not valid: never a hit), branch-free
      std::vector<scalar_t> dist(count);
      std::vector<int64_t> local_valid(K, 0);
      for (int64_t i = begin; i < end; ++i) {
        for (int64_t k = 0; k < K; ++k) {
          const int64_t e = i * K + k;
          const scalar_t gx = gp[2 * e], gy = gp[2 * e + 1];
          const bool ok = pck_valid(vp[e], np_[i], gx, gy);
          const scalar_t d = pck_distance(pp[2 * e], pp[2 * e + 1], gx, gy, np_[i]);
          dist[e - first] = ok ? d : std::numeric_limits<scalar_t>::quiet_NaN();
          local_valid[k] += ok ? 1 : 0;
        }
      }
      // 2. misses: how many sorted thresholds each distance does not hit (one contiguous,
      //    vectorised compare-and-add pass per threshold)
      std::vector<int32_t> misses(count, 0);
      for (int64_t t = 0; t < S; ++t) {
        const scalar_t thr = sorted[t];
        for (int64_t c = 0; c < count; ++c) misses[c] += pck_hit(dist[c], thr) ? 0 : 1;
      }
      // 3. the hits of a joint are the sorted thresholds from index `misses` on
      std::vector<int64_t> local(K * (S + 1), 0);
      for (int64_t c = 0; c < count; c += K)
        for (int64_t k = 0; k < K; ++k) ++local[k * (S + 1) + misses[c + k]];
      std::lock_guard<std::mutex> lock(merge);
      for (size_t c = 0; c < local.size(); ++c) histogram[c] += local[c];
      for (int64_t k = 0; k < K; ++k) nvalid[k] += local_valid[k];
    });
    int64_t* hp = hits.data_ptr<int64_t>();
    int64_t* vcount = valid.data_ptr<int64_t>();
    for (int64_t k = 0; k < K; ++k) {
      vcount[k] = nvalid[k];
      int64_t running = 0;  // joints whose first hit is at or below sorted threshold s
      for (int64_t s = 0; s < S; ++s) {
        running += histogram[k * (S + 1) + s];
        hp[order[s] * K + k] = running;
      }
    }
  });
  return {hits, valid};
}

}  // namespace

TORCH_LIBRARY_IMPL(posefast, CPU, m) { m.impl("pck_counts", &pck_counts_cpu); }

}  // namespace posefast
