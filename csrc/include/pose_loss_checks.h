// Argument checks of the fused pose-loss ops (posefast::pose_loss_forward/backward),
// shared by the CPU and CUDA implementations. The Python wrapper posefast.ops.pose_loss
// validates first with friendlier messages.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "op_checks.h"
#include "pose_math.h"

namespace posefast {

// "bce" -> kHeatmapLossBCE, "mse" -> kHeatmapLossMSE.
inline int pose_loss_kind(c10::string_view name) {
  const std::string s(name.data(), name.size());
  if (s == "bce") return kHeatmapLossBCE;
  if (s == "mse") return kHeatmapLossMSE;
  TORCH_CHECK(false, "posefast: heatmap_loss must be 'bce' or 'mse', got '", s, "'");
  return -1;
}

// float64 for float64 logits, float32 otherwise (the accumulation dtype).
inline at::ScalarType pose_loss_acc_dtype(const at::Tensor& logits) {
  return logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

inline void check_pose_loss_args(const at::Tensor& logits, const at::Tensor& keypoints,
                                 const at::Tensor& visible, const at::Tensor& joint_weights,
                                 double sigma, double beta) {
  check_float(logits, "logits");
  TORCH_CHECK(logits.dim() == 4, "posefast: logits must have shape [B, K, H, W], got ",
              logits.sizes());
  TORCH_CHECK(logits.size(2) > 0 && logits.size(3) > 0,
              "posefast: logits must have H, W > 0, got ", logits.sizes());
  const int64_t B = logits.size(0), K = logits.size(1);
  check_float(keypoints, "keypoints");
  check_shape(keypoints, "keypoints", {B, K, 2});
  check_shape(visible, "visible", {B, K});
  check_float(joint_weights, "joint_weights");
  check_shape(joint_weights, "joint_weights", {K});
  check_same_device(keypoints, "keypoints", logits, "logits");
  check_same_device(visible, "visible", logits, "logits");
  check_same_device(joint_weights, "joint_weights", logits, "logits");
  TORCH_CHECK(sigma > 0, "posefast: sigma must be positive, got ", sigma);
  TORCH_CHECK(beta > 0, "posefast: beta must be positive, got ", beta);
}

inline void check_pose_loss_backward_args(const at::Tensor& grad_loss, const at::Tensor& logits,
                                          const at::Tensor& keypoints, const at::Tensor& visible,
                                          const at::Tensor& joint_weights, const at::Tensor& coords,
                                          const at::Tensor& lse, const at::Tensor& norm,
                                          double sigma, double beta) {
  check_pose_loss_args(logits, keypoints, visible, joint_weights, sigma, beta);
  const int64_t B = logits.size(0), K = logits.size(1);
  const auto acc = pose_loss_acc_dtype(logits);
  check_float(grad_loss, "grad_loss");
  check_shape(grad_loss, "grad_loss", {3});
  check_shape(coords, "coords", {B, K, 2});
  check_shape(lse, "logsumexp", {B, K});
  check_shape(norm, "norm", {});
  TORCH_CHECK(coords.scalar_type() == acc && lse.scalar_type() == acc && norm.scalar_type() == acc,
              "posefast: coords, logsumexp and norm must be ", acc);
  check_same_device(grad_loss, "grad_loss", logits, "logits");
  check_same_device(coords, "coords", logits, "logits");
  check_same_device(lse, "logsumexp", logits, "logits");
  check_same_device(norm, "norm", logits, "logits");
}

// The forward pass's inputs in the layouts its kernels read (contiguous logits; keypoints,
// visibility and joint weights in the accumulation dtype) and its freshly allocated
// outputs, shared by the CPU and CUDA implementations.
struct PoseLossForwardTensors {
  at::Tensor z, kp, vis, w;
  at::Tensor loss, coords, lse, norm, hm_sum;  // [3], [B, K, 2], [B, K], [], [B, K]
};

inline PoseLossForwardTensors pose_loss_forward_tensors(const at::Tensor& logits,
                                                        const at::Tensor& keypoints,
                                                        const at::Tensor& visible,
                                                        const at::Tensor& joint_weights) {
  const int64_t B = logits.size(0), K = logits.size(1);
  const auto acc = pose_loss_acc_dtype(logits);
  const auto opts = logits.options().dtype(acc);
  return {logits.contiguous(),      keypoints.to(acc).contiguous(),
          visible_as(visible, acc), joint_weights.to(acc).contiguous(),
          at::empty({3}, opts),     at::empty({B, K, 2}, opts),
          at::empty({B, K}, opts),  at::empty({}, opts),
          at::empty({B, K}, opts)};
}

}  // namespace posefast
