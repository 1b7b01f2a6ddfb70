// CUDA fused pose loss (issue 8). Forward: one block per map, or per chunk of a large map
// (map_chunks); every thread folds its pixels into (a) the sum of the heatmap loss against
// the analytic Gaussian target and (b) an online softmax state; a block reduction leaves per
// map (or chunk, merged per map by a second small kernel) only the loss sum, the soft-argmax
// coordinates and the log-sum-exp. A one-block kernel then reduces the [B, K] values into
// (total, heatmap, coord) and N. Backward: one block per map or chunk, one read of the
// logits and one write of dL/dz = hm-loss gradient + soft-argmax gradient.
// The target is never written: its separable factors (W + H exponentials per map) sit in
// shared memory. Hidden joints' maps are not read forward and get zeros backward.
// All arithmetic is in pose_math.h, shared with (and tested through) the CPU kernels.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../include/cuda_vec.cuh"
#include "../include/op_checks.h"
#include "../include/pose_loss_checks.h"
#include "../include/pose_math.h"

namespace posefast {
namespace {

constexpr int kBlock = 256;
// Largest Gaussian factor table (H + W entries) kept in shared memory; beyond it the
// factors are recomputed per pixel.
constexpr int64_t kMaxTableBytes = 32 * 1024;
// Most vectors per block (see map_chunks).
constexpr int64_t kChunkVecs = 8 * kBlock;

// Block-wide sum, valid in thread 0. Safe to call several times in a row.
template <typename T>
__device__ __forceinline__ T block_reduce_sum(T v) {
  constexpr int WARPS = kBlock / 32;
  __shared__ T partial[WARPS];
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // a previous call's readers are done with `partial`
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < WARPS ? partial[lane] : T(0);
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  }
  return v;
}

// Fills the shared column (W) and row (H) factors of the map's Gaussian target.
template <typename acc_t>
__device__ __forceinline__ void fill_factor_table(acc_t* colf, acc_t* rowf, int H, int W,
                                                  bool renders, acc_t x, acc_t y, acc_t inv) {
  for (int j = threadIdx.x; j < W; j += kBlock)
    colf[j] = renders ? gaussian_factor(acc_t(j), x, inv) : acc_t(0);
  for (int i = threadIdx.x; i < H; i += kBlock)
    rowf[i] = renders ? gaussian_factor(acc_t(i), y, inv) : acc_t(0);
  __syncthreads();
}

// Target value of VEC consecutive pixels (i, j..j+VEC-1).
template <typename acc_t, int VEC>
__device__ __forceinline__ void target_values(acc_t (&t)[VEC], const acc_t* colf, const acc_t* rowf,
                                              bool use_table, bool renders, int i, int j, acc_t x,
                                              acc_t y, acc_t inv) {
  if (use_table) {
    const acc_t r = rowf[i];
#pragma unroll
    for (int u = 0; u < VEC; ++u) t[u] = r * colf[j + u];
  } else {
    const acc_t r = renders ? gaussian_factor(acc_t(i), y, inv) : acc_t(0);
#pragma unroll
    for (int u = 0; u < VEC; ++u) t[u] = renders ? r * gaussian_factor(acc_t(j + u), x, inv) : acc_t(0);
  }
}

// The forward softmax state: weights by exp2 (SoftArgmaxState::push_run, one per pixel).
template <typename acc_t>
using FwdState = SoftArgmaxState<acc_t, true>;

// Map blockIdx.x, chunk blockIdx.y (chunk_range). One chunk per map: writes the map's loss
// sum, coordinates and log-sum-exp. Several: writes the chunk's loss sum and softmax state
// to partial_hm / partial_state[map * chunks + chunk] for pose_loss_merge_kernel.
template <typename scalar_t, typename acc_t, int VEC>
__global__ void __launch_bounds__(kBlock)
    pose_loss_fwd_kernel(const scalar_t* __restrict__ logits, const acc_t* __restrict__ kp,
                         const acc_t* __restrict__ vis, int H, int W, int64_t chunk, acc_t inv,
                         acc_t beta, int kind, bool use_table, acc_t* __restrict__ hm_sum,
                         acc_t* __restrict__ coords, acc_t* __restrict__ lse,
                         acc_t* __restrict__ partial_hm,
                         FwdState<acc_t>* __restrict__ partial_state) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int64_t m = blockIdx.x;
  if (!pose_loss_counts(vis[m])) {  // uniform over the block: no barrier is skipped unevenly
    if (threadIdx.x == 0 && gridDim.y == 1) {  // not computed: zeros, never read back
      hm_sum[m] = acc_t(0);
      coords[2 * m] = acc_t(0);
      coords[2 * m + 1] = acc_t(0);
      lse[m] = acc_t(0);
    }
    return;
  }
  const int64_t hw = static_cast<int64_t>(H) * W;
  const scalar_t* src = logits + m * hw;
  const acc_t x = kp[2 * m], y = kp[2 * m + 1];
  const bool renders = renders_keypoint(vis[m], x, y);
  acc_t* colf = reinterpret_cast<acc_t*>(smem);
  acc_t* rowf = colf + W;
  if (use_table) fill_factor_table(colf, rowf, H, W, renders, x, y, inv);

  FwdState<acc_t> st;
  st.init();
  acc_t hm = 0;
  const int64_t nvec = hw / VEC;
  int64_t begin, end;
  chunk_range(nvec, chunk, begin, end);
  // a vector never crosses a row: VEC > 1 only when W is a multiple of VEC
  PixelCursor at((begin + threadIdx.x) * VEC, int64_t(kBlock) * VEC, W);
  for (int64_t v = begin + threadIdx.x; v < end; v += kBlock, at.advance()) {
    const Vec<scalar_t, VEC> pack = *reinterpret_cast<const Vec<scalar_t, VEC>*>(src + v * VEC);
    const int i = static_cast<int>(at.i), j = at.j;
    acc_t t[VEC], a[VEC];
    target_values<acc_t, VEC>(t, colf, rowf, use_table, renders, i, j, x, y, inv);
#pragma unroll
    for (int u = 0; u < VEC; ++u) {
      const acc_t z = static_cast<acc_t>(pack.v[u]);
      hm += heatmap_pixel_loss_fast(kind, z, t[u]);
      a[u] = beta * z;
    }
    st.push_run(a, acc_t(j), acc_t(i));
  }
  st = block_reduce_state<FwdState<acc_t>, kBlock>(st);
  hm = block_reduce_sum(hm);
  if (threadIdx.x != 0) return;
  if (gridDim.y == 1) {
    hm_sum[m] = hm;
    coords[2 * m] = st.x();
    coords[2 * m + 1] = st.y();
    lse[m] = st.logsumexp();
  } else {
    partial_hm[m * gridDim.y + blockIdx.y] = hm;
    partial_state[m * gridDim.y + blockIdx.y] = st;
  }
}

// One thread per map: the chunks' loss sums and softmax states, merged in chunk order.
template <typename acc_t>
__global__ void pose_loss_merge_kernel(const acc_t* __restrict__ partial_hm,
                                       const FwdState<acc_t>* __restrict__ partial_state,
                                       const acc_t* __restrict__ vis, int chunks, int64_t maps,
                                       acc_t* __restrict__ hm_sum, acc_t* __restrict__ coords,
                                       acc_t* __restrict__ lse) {
  const int64_t m = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (m >= maps) return;
  const bool counts = pose_loss_counts(vis[m]);
  acc_t hm = 0;
  FwdState<acc_t> st;
  st.init();
  if (counts) {  // else the chunks wrote nothing: zeros, never read back
    for (int c = 0; c < chunks; ++c) hm += partial_hm[m * chunks + c];
    st = merge_states(partial_state + m * chunks, chunks);
  }
  hm_sum[m] = hm;
  coords[2 * m] = counts ? st.x() : acc_t(0);
  coords[2 * m + 1] = counts ? st.y() : acc_t(0);
  lse[m] = counts ? st.logsumexp() : acc_t(0);
}

// [B, K] -> loss (total, heatmap, coord) and N, in one block (deterministic order).
template <typename acc_t>
__global__ void __launch_bounds__(kBlock)
    pose_loss_finalize_kernel(const acc_t* __restrict__ hm_sum, const acc_t* __restrict__ coords,
                              const acc_t* __restrict__ kp, const acc_t* __restrict__ vis,
                              const acc_t* __restrict__ w, int64_t maps, int K, acc_t P,
                              acc_t coord_weight, acc_t* __restrict__ loss, acc_t* __restrict__ norm) {
  acc_t hm = 0, coord = 0, count = 0;
  for (int64_t m = threadIdx.x; m < maps; m += kBlock) {
    if (!pose_loss_counts(vis[m])) continue;
    const acc_t wk = w[m % K];
    count += acc_t(1);
    hm += wk * (hm_sum[m] / P);
    coord += wk * coord_l1(coords[2 * m], coords[2 * m + 1], kp[2 * m], kp[2 * m + 1]);
  }
  hm = block_reduce_sum(hm);
  coord = block_reduce_sum(coord);
  count = block_reduce_sum(count);
  if (threadIdx.x == 0) {
    const acc_t n = pose_loss_norm(count);
    const acc_t h = hm / n, c = coord / n;
    loss[0] = h + coord_weight * c;
    loss[1] = h;
    loss[2] = c;
    *norm = n;
  }
}

template <typename scalar_t, typename acc_t, int VEC>
__global__ void __launch_bounds__(kBlock)
    pose_loss_bwd_kernel(const acc_t* __restrict__ grad_loss, const scalar_t* __restrict__ logits,
                         const acc_t* __restrict__ kp, const acc_t* __restrict__ vis,
                         const acc_t* __restrict__ w, const acc_t* __restrict__ coords,
                         const acc_t* __restrict__ lse, const acc_t* __restrict__ norm, int K,
                         int H, int W, int64_t chunk, acc_t inv, acc_t beta, acc_t coord_weight,
                         int kind, bool use_table, scalar_t* __restrict__ grad) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int64_t m = blockIdx.x;
  const int64_t hw = static_cast<int64_t>(H) * W;
  scalar_t* dst = grad + m * hw;
  const int64_t nvec = hw / VEC;
  int64_t begin, end;
  chunk_range(nvec, chunk, begin, end);
  if (!pose_loss_counts(vis[m])) {
    Vec<scalar_t, VEC> zero;
#pragma unroll
    for (int u = 0; u < VEC; ++u) zero.v[u] = scalar_t(0);
    for (int64_t v = begin + threadIdx.x; v < end; v += kBlock)
      *reinterpret_cast<Vec<scalar_t, VEC>*>(dst + v * VEC) = zero;
    return;
  }
  const scalar_t* src = logits + m * hw;
  const acc_t kx = kp[2 * m], ky = kp[2 * m + 1];
  const acc_t px = coords[2 * m], py = coords[2 * m + 1], l = lse[m];
  const acc_t inv_p = acc_t(1) / acc_t(hw);
  const PoseLossMapGrad<acc_t> g =
      pose_loss_map_grad(grad_loss[0], grad_loss[1], grad_loss[2], coord_weight, w[m % K],
                         acc_t(1) / norm[0], inv_p, px, py, kx, ky);
  const bool renders = renders_keypoint(vis[m], kx, ky);
  acc_t* colf = reinterpret_cast<acc_t*>(smem);
  acc_t* rowf = colf + W;
  if (use_table) fill_factor_table(colf, rowf, H, W, renders, kx, ky, inv);

  PixelCursor at((begin + threadIdx.x) * VEC, int64_t(kBlock) * VEC, W);
  for (int64_t v = begin + threadIdx.x; v < end; v += kBlock, at.advance()) {
    const int64_t e = v * VEC;
    const int i = static_cast<int>(at.i), j = at.j;
    const Vec<scalar_t, VEC> in = *reinterpret_cast<const Vec<scalar_t, VEC>*>(src + e);
    acc_t t[VEC];
    target_values<acc_t, VEC>(t, colf, rowf, use_table, renders, i, j, kx, ky, inv);
    const acc_t dy = acc_t(i) - py, dx0 = acc_t(j) - px;  // dx = dx0 + u: no int-to-float per pixel
    Vec<scalar_t, VEC> out;
#pragma unroll
    for (int u = 0; u < VEC; ++u) {
      const acc_t z = static_cast<acc_t>(in.v[u]);
      out.v[u] = static_cast<scalar_t>(pose_loss_pixel_grad(kind, z, t[u], beta, l, dx0 + acc_t(u), dy, g));
    }
    *reinterpret_cast<Vec<scalar_t, VEC>*>(dst + e) = out;
  }
}

// 16-byte vectors when each row is a whole number of them and the tensor is aligned.
template <typename scalar_t>
bool can_vectorize(const at::Tensor& t, int64_t W) {
  constexpr int VEC = vec_width<scalar_t>();
  return W % VEC == 0 && aligned16(t.data_ptr());
}

// Shared-memory bytes of the factor table, or 0 when it does not fit.
int64_t table_bytes(int64_t H, int64_t W, int64_t acc_size) {
  const int64_t bytes = (H + W) * acc_size;
  return bytes <= kMaxTableBytes ? bytes : 0;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> pose_loss_forward_cuda(
    const at::Tensor& logits, const at::Tensor& keypoints, const at::Tensor& visible,
    const at::Tensor& joint_weights, double sigma, double coord_weight, double beta,
    c10::string_view heatmap_loss) {
  check_pose_loss_args(logits, keypoints, visible, joint_weights, sigma, beta);
  const int kind = pose_loss_kind(heatmap_loss);
  const c10::cuda::CUDAGuard guard(logits.device());
  const int64_t B = logits.size(0), K = logits.size(1);
  const int H = static_cast<int>(logits.size(2)), W = static_cast<int>(logits.size(3));
  const PoseLossForwardTensors t = pose_loss_forward_tensors(logits, keypoints, visible, joint_weights);
  const at::Tensor &z = t.z, &kp = t.kp, &vis = t.vis, &w = t.w;
  const at::Tensor &loss = t.loss, &coords = t.coords, &lse = t.lse, &norm = t.norm, &hm_sum = t.hm_sum;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z.scalar_type(), "pose_loss_fwd_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    constexpr int VEC = vec_width<scalar_t>();
    const auto inv = inv_two_sigma_sq(static_cast<acc_t>(sigma));
    using State = FwdState<acc_t>;
    const auto b = static_cast<acc_t>(beta);
    const int64_t smem = table_bytes(H, W, sizeof(acc_t));
    if (B * K > 0) {
      const bool vec = can_vectorize<scalar_t>(z, W);
      const MapChunks split = map_chunks(static_cast<int64_t>(H) * W / (vec ? VEC : 1), kChunkVecs);
      // the chunks' loss sums [B * K, chunks] and softmax states [B * K, chunks, 4], when split
      at::Tensor partial_hm, partial_state;
      acc_t* php = nullptr;
      State* psp = nullptr;
      if (split.count > 1) {
        partial_hm = at::empty({B * K, split.count}, hm_sum.options());
        partial_state = at::empty({B * K, split.count, 4}, hm_sum.options());
        php = partial_hm.data_ptr<acc_t>();
        psp = reinterpret_cast<State*>(partial_state.data_ptr<acc_t>());
      }
      const dim3 grid(static_cast<unsigned>(B * K), static_cast<unsigned>(split.count));
      if (vec) {
        pose_loss_fwd_kernel<scalar_t, acc_t, VEC><<<grid, kBlock, smem, stream>>>(
            z.data_ptr<scalar_t>(), kp.data_ptr<acc_t>(), vis.data_ptr<acc_t>(), H, W, split.size, inv, b,
            kind, smem > 0, hm_sum.data_ptr<acc_t>(), coords.data_ptr<acc_t>(), lse.data_ptr<acc_t>(), php,
            psp);
      } else {
        pose_loss_fwd_kernel<scalar_t, acc_t, 1><<<grid, kBlock, smem, stream>>>(
            z.data_ptr<scalar_t>(), kp.data_ptr<acc_t>(), vis.data_ptr<acc_t>(), H, W, split.size, inv, b,
            kind, smem > 0, hm_sum.data_ptr<acc_t>(), coords.data_ptr<acc_t>(), lse.data_ptr<acc_t>(), php,
            psp);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      if (split.count > 1) {
        constexpr int kMergeBlock = 128;
        const auto blocks = static_cast<unsigned>((B * K + kMergeBlock - 1) / kMergeBlock);
        pose_loss_merge_kernel<acc_t><<<blocks, kMergeBlock, 0, stream>>>(
            php, psp, vis.data_ptr<acc_t>(), static_cast<int>(split.count), B * K, hm_sum.data_ptr<acc_t>(),
            coords.data_ptr<acc_t>(), lse.data_ptr<acc_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    }
    pose_loss_finalize_kernel<acc_t><<<1, kBlock, 0, stream>>>(
        hm_sum.data_ptr<acc_t>(), coords.data_ptr<acc_t>(), kp.data_ptr<acc_t>(),
        vis.data_ptr<acc_t>(), w.data_ptr<acc_t>(), B * K, static_cast<int>(K),
        static_cast<acc_t>(static_cast<int64_t>(H) * W), static_cast<acc_t>(coord_weight),
        loss.data_ptr<acc_t>(), norm.data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {loss, coords, lse, norm};
}

at::Tensor pose_loss_backward_cuda(const at::Tensor& grad_loss, const at::Tensor& logits,
                                   const at::Tensor& keypoints, const at::Tensor& visible,
                                   const at::Tensor& joint_weights, const at::Tensor& coords,
                                   const at::Tensor& logsumexp, const at::Tensor& norm,
                                   double sigma, double coord_weight, double beta,
                                   c10::string_view heatmap_loss) {
  check_pose_loss_backward_args(grad_loss, logits, keypoints, visible, joint_weights, coords,
                                logsumexp, norm, sigma, beta);
  const int kind = pose_loss_kind(heatmap_loss);
  const c10::cuda::CUDAGuard guard(logits.device());
  const int64_t B = logits.size(0), K = logits.size(1);
  const int H = static_cast<int>(logits.size(2)), W = static_cast<int>(logits.size(3));
  const at::Tensor z = logits.contiguous();
  at::Tensor grad = at::empty_like(z);
  if (grad.numel() == 0) return grad;
  const auto acc = pose_loss_acc_dtype(logits);
  const at::Tensor gl = grad_loss.to(acc).contiguous();
  const at::Tensor kp = keypoints.to(acc).contiguous();
  const at::Tensor vis = visible_as(visible, acc);
  const at::Tensor w = joint_weights.to(acc).contiguous();
  const at::Tensor c = coords.contiguous();
  const at::Tensor l = logsumexp.contiguous();
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z.scalar_type(), "pose_loss_bwd_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    constexpr int VEC = vec_width<scalar_t>();
    const auto inv = inv_two_sigma_sq(static_cast<acc_t>(sigma));
    const auto b = static_cast<acc_t>(beta);
    const auto cw = static_cast<acc_t>(coord_weight);
    const int64_t smem = table_bytes(H, W, sizeof(acc_t));
    const bool vec = can_vectorize<scalar_t>(z, W) && aligned16(grad.data_ptr());
    const MapChunks split = map_chunks(static_cast<int64_t>(H) * W / (vec ? VEC : 1), kChunkVecs);
    const dim3 grid(static_cast<unsigned>(B * K), static_cast<unsigned>(split.count));
    if (vec) {
      pose_loss_bwd_kernel<scalar_t, acc_t, VEC><<<grid, kBlock, smem, stream>>>(
          gl.data_ptr<acc_t>(), z.data_ptr<scalar_t>(), kp.data_ptr<acc_t>(), vis.data_ptr<acc_t>(),
          w.data_ptr<acc_t>(), c.data_ptr<acc_t>(), l.data_ptr<acc_t>(), norm.data_ptr<acc_t>(),
          static_cast<int>(K), H, W, split.size, inv, b, cw, kind, smem > 0, grad.data_ptr<scalar_t>());
    } else {
      pose_loss_bwd_kernel<scalar_t, acc_t, 1><<<grid, kBlock, smem, stream>>>(
          gl.data_ptr<acc_t>(), z.data_ptr<scalar_t>(), kp.data_ptr<acc_t>(), vis.data_ptr<acc_t>(),
          w.data_ptr<acc_t>(), c.data_ptr<acc_t>(), l.data_ptr<acc_t>(), norm.data_ptr<acc_t>(),
          static_cast<int>(K), H, W, split.size, inv, b, cw, kind, smem > 0, grad.data_ptr<scalar_t>());
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(posefast, CUDA, m) {
  m.impl("pose_loss_forward", &pose_loss_forward_cuda);
  m.impl("pose_loss_backward", &pose_loss_backward_cuda);
}

}  // namespace posefast
