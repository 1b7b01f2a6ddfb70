// Argument checks shared by the CPU and CUDA implementations of each op.
// The Python wrappers in posefast.ops validate first with friendlier messages; these
// guard direct calls through torch.ops.posefast.*.
#pragma once

#include <ATen/ATen.h>

namespace posefast {

inline void check_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), "posefast: ", name,
              " must be a floating-point tensor, got ", t.scalar_type());
}

inline void check_same_device(const at::Tensor& a, const char* an, const at::Tensor& b,
                              const char* bn) {
  TORCH_CHECK(a.device() == b.device(), "posefast: ", an, " is on ", a.device(), " but ", bn,
              " is on ", b.device());
}

inline void check_shape(const at::Tensor& t, const char* name, at::IntArrayRef expected) {
  TORCH_CHECK(t.sizes().equals(expected), "posefast: ", name, " must have shape ", expected,
              ", got ", t.sizes());
}

// A `visible` mask [.., K] as the contiguous `acc` tensor the kernels test with "> 0",
// giving the answer visible > 0 gives in the mask's own dtype: a float64 mask is compared
// first when acc is narrower (1e-300 would become 0 as float32); every other dtype converts
// with its sign kept.
inline at::Tensor visible_as(const at::Tensor& visible, at::ScalarType acc) {
  const bool narrows = visible.scalar_type() == at::kDouble && acc != at::kDouble;
  return (narrows ? visible.gt(0) : visible).to(acc).contiguous();
}

// Per-joint sigmas [K] in `acc` dtype (contiguous, on the keypoints' device), or an
// undefined tensor when the scalar `sigma` applies to every joint.
inline at::Tensor render_sigma_per_joint(const at::Tensor& keypoints,
                                         const std::optional<at::Tensor>& sigma_per_joint,
                                         double sigma, at::ScalarType acc) {
  if (!sigma_per_joint.has_value()) {
    TORCH_CHECK(sigma > 0, "posefast: sigma must be positive, got ", sigma);
    return at::Tensor();
  }
  const at::Tensor& s = sigma_per_joint.value();
  check_float(s, "sigma");
  check_same_device(s, "sigma", keypoints, "keypoints");
  check_shape(s, "sigma", {keypoints.size(1)});
  return s.to(acc).contiguous();
}

inline void check_render_args(const at::Tensor& keypoints, const at::Tensor& visible,
                              int64_t height, int64_t width, at::ScalarType dtype) {
  check_float(keypoints, "keypoints");
  TORCH_CHECK(keypoints.dim() == 3 && keypoints.size(2) == 2,
              "posefast: keypoints must have shape [B, K, 2], got ", keypoints.sizes());
  check_same_device(visible, "visible", keypoints, "keypoints");
  check_shape(visible, "visible", {keypoints.size(0), keypoints.size(1)});
  TORCH_CHECK(height > 0 && width > 0, "posefast: size must be positive, got (", height, ", ",
              width, ")");
  TORCH_CHECK(at::isFloatingType(dtype), "posefast: dtype must be floating point, got ", dtype);
}

inline void check_soft_argmax_args(const at::Tensor& heatmaps, double beta) {
  check_float(heatmaps, "heatmaps");
  TORCH_CHECK(heatmaps.dim() == 4, "posefast: heatmaps must have shape [B, K, H, W], got ",
              heatmaps.sizes());
  TORCH_CHECK(heatmaps.size(2) > 0 && heatmaps.size(3) > 0,
              "posefast: heatmaps must have H, W > 0, got ", heatmaps.sizes());
  TORCH_CHECK(beta > 0, "posefast: beta must be positive, got ", beta);
}

// float64 for float64 heatmaps, float32 otherwise.
inline at::ScalarType soft_argmax_out_dtype(const at::Tensor& heatmaps) {
  return heatmaps.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

inline void check_soft_argmax_backward_args(const at::Tensor& grad, const at::Tensor& heatmaps,
                                            const at::Tensor& coords, const at::Tensor& lse,
                                            double beta) {
  check_soft_argmax_args(heatmaps, beta);
  const auto out = soft_argmax_out_dtype(heatmaps);
  const int64_t B = heatmaps.size(0), K = heatmaps.size(1);
  check_shape(grad, "grad_coords", {B, K, 2});
  check_shape(coords, "coords", {B, K, 2});
  check_shape(lse, "logsumexp", {B, K});
  TORCH_CHECK(coords.scalar_type() == out && lse.scalar_type() == out,
              "posefast: coords and logsumexp must be ", out);
  check_float(grad, "grad_coords");
  check_same_device(grad, "grad_coords", heatmaps, "heatmaps");
  check_same_device(coords, "coords", heatmaps, "heatmaps");
  check_same_device(lse, "logsumexp", heatmaps, "heatmaps");
}

inline void check_pck_args(const at::Tensor& pred, const at::Tensor& gt,
                           const at::Tensor& visible, const at::Tensor& norm,
                           const at::Tensor& thresholds) {
  check_float(pred, "pred");
  TORCH_CHECK(pred.dim() == 3 && pred.size(2) == 2,
              "posefast: pred must have shape [N, K, 2], got ", pred.sizes());
  const int64_t N = pred.size(0), K = pred.size(1);
  check_float(gt, "gt");
  check_shape(gt, "gt", {N, K, 2});
  check_shape(visible, "visible", {N, K});
  check_float(norm, "norm");
  check_shape(norm, "norm", {N});
  check_float(thresholds, "thresholds");
  TORCH_CHECK(thresholds.dim() == 1, "posefast: thresholds must have shape [T], got ",
              thresholds.sizes());
  check_same_device(gt, "gt", pred, "pred");
  check_same_device(visible, "visible", pred, "pred");
  check_same_device(norm, "norm", pred, "pred");
  check_same_device(thresholds, "thresholds", pred, "pred");
}

// float64 when pred is float64, float32 otherwise.
inline at::ScalarType pck_compute_dtype(const at::Tensor& pred) {
  return pred.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace posefast
