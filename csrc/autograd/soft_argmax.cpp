// Autograd for soft_argmax_forward, in C++: the forward saves the heatmaps, coords and
// log-sum-exp; the backward calls soft_argmax_backward once, which itself refuses a second
// derivative. (A Python register_autograd costs tens of microseconds of host time per call,
// which small maps on a GPU feel.)
#include <torch/autograd.h>
#include <torch/library.h>

namespace posefast {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::tuple<at::Tensor, at::Tensor> forward_op(const at::Tensor& heatmaps, double beta) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("posefast::soft_argmax_forward", "")
                             .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, double)>();
  return op.call(heatmaps, beta);
}

at::Tensor backward_op(const at::Tensor& grad_coords, const at::Tensor& heatmaps, const at::Tensor& coords,
                       const at::Tensor& logsumexp, double beta) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("posefast::soft_argmax_backward", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, double)>();
  return op.call(grad_coords, heatmaps, coords, logsumexp, beta);
}

class SoftArgmax : public torch::autograd::Function<SoftArgmax> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& heatmaps, double beta) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [coords, logsumexp] = forward_op(heatmaps, beta);
    ctx->save_for_backward({heatmaps, coords, logsumexp});
    ctx->saved_data["beta"] = beta;
    ctx->mark_non_differentiable({logsumexp});
    ctx->set_materialize_grads(false);  // no zero tensor for the log-sum-exp's (absent) gradient
    return {coords, logsumexp};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    at::Tensor grad;
    if (ctx->needs_input_grad(0) && grads[0].defined()) {
      const auto saved = ctx->get_saved_variables();
      grad = backward_op(grads[0], saved[0], saved[1], saved[2], ctx->saved_data["beta"].toDouble());
    }
    return {grad, at::Tensor()};
  }
};

// The backward op under autograd: differentiating it again (create_graph=True, then a second
// backward) is an error, not a silent zero.
class SoftArgmaxBackward : public torch::autograd::Function<SoftArgmaxBackward> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& grad_coords, const at::Tensor& heatmaps,
                               const at::Tensor& coords, const at::Tensor& logsumexp, double beta) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return {backward_op(grad_coords, heatmaps, coords, logsumexp, beta)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(false, "posefast::soft_argmax_backward: double backward (a second derivative of soft_argmax) "
                "is not supported");
  }
};

at::Tensor soft_argmax_backward_autograd(const at::Tensor& grad_coords, const at::Tensor& heatmaps,
                                         const at::Tensor& coords, const at::Tensor& logsumexp, double beta) {
  return SoftArgmaxBackward::apply(grad_coords, heatmaps, coords, logsumexp, beta)[0];
}

std::tuple<at::Tensor, at::Tensor> soft_argmax_forward_autograd(const at::Tensor& heatmaps, double beta) {
  auto out = SoftArgmax::apply(heatmaps, beta);
  return {out[0], out[1]};
}

}  // namespace
}  // namespace posefast

TORCH_LIBRARY_IMPL(posefast, Autograd, m) {
  m.impl("soft_argmax_forward", &posefast::soft_argmax_forward_autograd);
  m.impl("soft_argmax_backward", &posefast::soft_argmax_backward_autograd);
}
