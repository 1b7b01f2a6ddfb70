// Autograd for pose_loss_forward, in C++: the forward saves what pose_loss_backward needs
// (the logits, targets, coords, log-sum-exp and normaliser); the backward writes the
// logits' gradient in one call. Only the loss [3] is differentiable; a second derivative is
// refused with an error.
#include <torch/autograd.h>
#include <torch/library.h>

#include <string>

namespace posefast {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Tensor = at::Tensor;

std::tuple<Tensor, Tensor, Tensor, Tensor> forward_op(const Tensor& logits, const Tensor& keypoints,
                                                      const Tensor& visible, const Tensor& joint_weights,
                                                      double sigma, double coord_weight, double beta,
                                                      c10::string_view heatmap_loss) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("posefast::pose_loss_forward", "")
                             .typed<std::tuple<Tensor, Tensor, Tensor, Tensor>(
                                 const Tensor&, const Tensor&, const Tensor&, const Tensor&, double, double,
                                 double, c10::string_view)>();
  return op.call(logits, keypoints, visible, joint_weights, sigma, coord_weight, beta, heatmap_loss);
}

Tensor backward_op(const Tensor& grad_loss, const variable_list& saved, double sigma, double coord_weight,
                   double beta, c10::string_view heatmap_loss) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("posefast::pose_loss_backward", "")
          .typed<Tensor(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                        const Tensor&, const Tensor&, double, double, double, c10::string_view)>();
  return op.call(grad_loss, saved[0], saved[1], saved[2], saved[3], saved[4], saved[5], saved[6], sigma,
                 coord_weight, beta, heatmap_loss);
}

class PoseLoss : public torch::autograd::Function<PoseLoss> {
 public:
  static variable_list forward(AutogradContext* ctx, const Tensor& logits, const Tensor& keypoints,
                               const Tensor& visible, const Tensor& joint_weights, double sigma,
                               double coord_weight, double beta, c10::string_view heatmap_loss) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [loss, coords, logsumexp, norm] =
        forward_op(logits, keypoints, visible, joint_weights, sigma, coord_weight, beta, heatmap_loss);
    ctx->save_for_backward({logits, keypoints, visible, joint_weights, coords, logsumexp, norm});
    ctx->saved_data["sigma"] = sigma;
    ctx->saved_data["coord_weight"] = coord_weight;
    ctx->saved_data["beta"] = beta;
    ctx->saved_data["heatmap_loss"] = std::string(heatmap_loss);
    ctx->mark_non_differentiable({coords, logsumexp, norm});
    ctx->set_materialize_grads(false);  // no zero tensors for the non-differentiable outputs
    return {loss, coords, logsumexp, norm};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    Tensor grad;
    if (ctx->needs_input_grad(0) && grads[0].defined()) {
      const auto& data = ctx->saved_data;
      grad = backward_op(grads[0], ctx->get_saved_variables(), data.at("sigma").toDouble(),
                         data.at("coord_weight").toDouble(), data.at("beta").toDouble(),
                         data.at("heatmap_loss").toStringRef());
    }
    return {grad, Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

// The backward op under autograd: a second derivative is an error, not a silent zero.
class PoseLossBackward : public torch::autograd::Function<PoseLossBackward> {
 public:
  static variable_list forward(AutogradContext* ctx, const Tensor& grad_loss, const Tensor& logits,
                               const Tensor& keypoints, const Tensor& visible, const Tensor& joint_weights,
                               const Tensor& coords, const Tensor& logsumexp, const Tensor& norm, double sigma,
                               double coord_weight, double beta, c10::string_view heatmap_loss) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return {backward_op(grad_loss, {logits, keypoints, visible, joint_weights, coords, logsumexp, norm}, sigma,
                        coord_weight, beta, heatmap_loss)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(false, "posefast::pose_loss_backward: double backward (a second derivative of pose_loss) "
                "is not supported");
  }
};

Tensor pose_loss_backward_autograd(const Tensor& grad_loss, const Tensor& logits, const Tensor& keypoints,
                                   const Tensor& visible, const Tensor& joint_weights, const Tensor& coords,
                                   const Tensor& logsumexp, const Tensor& norm, double sigma, double coord_weight,
                                   double beta, c10::string_view heatmap_loss) {
  return PoseLossBackward::apply(grad_loss, logits, keypoints, visible, joint_weights, coords, logsumexp, norm,
                                 sigma, coord_weight, beta, heatmap_loss)[0];
}

std::tuple<Tensor, Tensor, Tensor, Tensor> pose_loss_forward_autograd(const Tensor& logits, const Tensor& keypoints,
                                                                      const Tensor& visible,
                                                                      const Tensor& joint_weights, double sigma,
                                                                      double coord_weight, double beta,
                                                                      c10::string_view heatmap_loss) {
  auto out = PoseLoss::apply(logits, keypoints, visible, joint_weights, sigma, coord_weight, beta, heatmap_loss);
  return {out[0], out[1], out[2], out[3]};
}

}  // namespace
}  // namespace posefast

TORCH_LIBRARY_IMPL(posefast, Autograd, m) {
  m.impl("pose_loss_forward", &posefast::pose_loss_forward_autograd);
  m.impl("pose_loss_backward", &posefast::pose_loss_backward_autograd);
}
