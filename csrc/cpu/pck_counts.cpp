// CPU PCK counting: one task per joint; each instance's distance is computed once and
// compared against every threshold, counting in task-local memory.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../include/op_checks.h"
#include "../include/pose_math.h"

namespace posefast {
namespace {

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
  const at::Tensor v = visible.to(cd).contiguous(), n = norm.to(cd).contiguous();
  const at::Tensor t = thresholds.to(cd).contiguous();
  AT_DISPATCH_FLOATING_TYPES(cd, "pck_counts_cpu", [&] {
    const scalar_t *pp = p.data_ptr<scalar_t>(), *gp = g.data_ptr<scalar_t>();
    const scalar_t *vp = v.data_ptr<scalar_t>(), *np_ = n.data_ptr<scalar_t>();
    const scalar_t* tp = t.data_ptr<scalar_t>();
    int64_t* hp = hits.data_ptr<int64_t>();
    int64_t* vcount = valid.data_ptr<int64_t>();
    at::parallel_for(0, K, 1, [&](int64_t kbegin, int64_t kend) {
      // counts live in task-local memory until the end: hits[T, K] is written by every task,
      // and incrementing it in place made the cores fight over the same cache lines
      std::vector<int64_t> local(T);
      for (int64_t k = kbegin; k < kend; ++k) {
        std::fill(local.begin(), local.end(), 0);
        int64_t nvalid = 0;
        for (int64_t i = 0; i < N; ++i) {
          const int64_t e = i * K + k;
          const scalar_t gx = gp[2 * e], gy = gp[2 * e + 1];
          if (!pck_valid(vp[e], np_[i], gx, gy)) continue;
          ++nvalid;
          const scalar_t d = pck_distance(pp[2 * e], pp[2 * e + 1], gx, gy, np_[i]);
          for (int64_t ti = 0; ti < T; ++ti) local[ti] += pck_hit(d, tp[ti]) ? 1 : 0;
        }
        vcount[k] = nvalid;
        for (int64_t ti = 0; ti < T; ++ti) hp[ti * K + k] = local[ti];
      }
    });
  });
  return {hits, valid};
}

}  // namespace

TORCH_LIBRARY_IMPL(posefast, CPU, m) { m.impl("pck_counts", &pck_counts_cpu); }

}  // namespace posefast
