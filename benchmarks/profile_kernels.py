"""Each posefast CUDA kernel once at the issue's large size, for Nsight Compute:

    ncu --kernel-name regex:'render_kernel|soft_argmax_|pose_loss_|pck_kernel' \\
        --section SpeedOfLight --section Occupancy --section LaunchStats python benchmarks/profile_kernels.py

Renders B64 x 17 maps of 256x192, runs soft-argmax forward and backward on float32 logits of
that size, the fused pose loss forward + backward at B128 and pck_counts at N 4096, T 20:
one launch of each kernel, so ncu's report has one entry per kernel (benchmarks/NOTES.md
says what to look for). Without ncu it just runs them (a smoke test, CUDA or CPU).
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import posefast.ops as pf  # noqa: E402

K = 17


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", default="256x192", help="HxW of the maps")
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    h, w = (int(v) for v in args.size.lower().split("x"))
    gen = torch.Generator().manual_seed(0)
    kp = (torch.rand(64, K, 2, generator=gen) * torch.tensor([w - 1.0, h - 1.0])).to(dev)
    vis = torch.ones(64, K, device=dev)
    pf.render_heatmaps(kp, vis, (h, w), 2.0)
    logits = (torch.randn(64, K, h, w, generator=gen) * 3).to(dev).requires_grad_()
    coords = pf.soft_argmax(logits, 1.0)
    coords.backward(torch.randn(64, K, 2, generator=gen).to(dev))
    big = (torch.randn(128, K, h, w, generator=gen) * 3 - 2).to(dev).requires_grad_()
    kp128 = (torch.rand(128, K, 2, generator=gen) * torch.tensor([w - 1.0, h - 1.0])).to(dev)
    loss, _ = pf.pose_loss(big, kp128, torch.ones(128, K, device=dev), 2.0, None, 0.1, 1.0, "bce")
    loss.backward()
    gt = (torch.rand(4096, K, 2, generator=gen) * 100).to(dev)
    pf.pck_counts(gt + 1.0, gt, torch.ones(4096, K, device=dev), torch.full((4096,), 50.0, device=dev),
                  torch.linspace(0.0, 0.5, 20, device=dev))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    print(f"profile_kernels: one launch of each posefast kernel at {h}x{w} on {dev}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
