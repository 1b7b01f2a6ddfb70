// The posefast operator library: one place that declares every op's schema.
// CPU implementations live in cpu/, CUDA ones in cuda/; PyTorch's dispatcher picks.
#include <Python.h>
#include <torch/library.h>

extern "C" {
// Importing posefast._C loads this library and runs the registrations below.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_C", "posefast C++/CUDA operators", -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(posefast, m) {
  // Gaussian heatmaps [B, K, height, width] of `dtype`; sigma_per_joint [K] overrides sigma.
  m.def(
      "render_heatmaps(Tensor keypoints, Tensor visible, Tensor? sigma_per_joint, float sigma, "
      "int height, int width, ScalarType dtype) -> Tensor");
  // Expected (x, y) under softmax(beta * h) per map, plus each map's log-sum-exp.
  m.def("soft_argmax_forward(Tensor heatmaps, float beta) -> (Tensor coords, Tensor logsumexp)");
  // Gradient w.r.t. the heatmaps, recomputing the softmax from the saved log-sum-exp.
  m.def(
      "soft_argmax_backward(Tensor grad_coords, Tensor heatmaps, Tensor coords, Tensor logsumexp, "
      "float beta) -> Tensor");
  // PCK hit counts int64[T, K] and valid counts int64[K].
  m.def(
      "pck_counts(Tensor pred, Tensor gt, Tensor visible, Tensor norm, Tensor thresholds) "
      "-> (Tensor hits, Tensor valid)");
  // Fused pose loss (issue 8): heatmap loss vs the analytic Gaussian target + soft-argmax L1.
  // loss = (total, heatmap, coord) [3]; coords, logsumexp and norm (N) are saved for backward.
  m.def(
      "pose_loss_forward(Tensor logits, Tensor keypoints, Tensor visible, Tensor joint_weights, "
      "float sigma, float coord_weight, float beta, str heatmap_loss) "
      "-> (Tensor loss, Tensor coords, Tensor logsumexp, Tensor norm)");
  // Gradient w.r.t. the logits given the gradient of loss [3], in one pass over the logits.
  m.def(
      "pose_loss_backward(Tensor grad_loss, Tensor logits, Tensor keypoints, Tensor visible, "
      "Tensor joint_weights, Tensor coords, Tensor logsumexp, Tensor norm, float sigma, "
      "float coord_weight, float beta, str heatmap_loss) -> Tensor");
  // The vector width of the CPU kernels: "avx512", "avx2" or "baseline" (POSEFAST_CPU_SIMD caps it;
  // "vec16", for tests, runs the 16-float kernels on any CPU).
  m.def("cpu_simd_level() -> str");
}
