"""Export a checkpoint's network to ONNX: ``python -m posefast.export --checkpoint RUN/best.pt --onnx model.onnx``.

The graph maps ``image`` ``float32 [N, 3, H, W]`` (ImageNet-normalised RGB, ``H, W`` the
training input size, ``N`` dynamic) to ``heatmaps`` ``float32 [N, 17, H/s, W/s]`` (logits;
decode them as ``posefast.models.decode`` does). It is written with PyTorch's
TorchScript-based exporter (``dynamo=False``, opset 17; it needs only ``onnx``), then
checked with onnxruntime against PyTorch on a few images: ``--images`` (files or a
folder, letterboxed as in the ``image`` protocol), else procedurally drawn synthetic
people. The check compares heatmaps (to 1e-3, or 1e-5 of the largest logit) and decoded
keypoints (to 0.05 input px) and fails (exit status 1) beyond either tolerance. Needs
``pip install onnx onnxruntime``.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np
import torch

from posefast.checkpoint import CheckpointError, load_trained_model
from posefast.command_line import dashed_options
from posefast.models.decode import decode

OPSET = 17
# float32 rounding grows with the logits' size (briefly trained networks can give |z| ~ 1e5 in
# eval mode): the heatmap tolerance is 1e-3 or 1e-5 of the largest |logit|, whichever is larger
HEATMAP_ATOL, HEATMAP_RTOL, KEYPOINT_ATOL_PX = 1e-3, 1e-5, 0.05


def heatmap_tolerance(max_abs_logit: float) -> float:
    """The largest |heatmap difference| the export check accepts, for logits up to ``max_abs_logit``."""
    return max(HEATMAP_ATOL, HEATMAP_RTOL * max_abs_logit)


def export_onnx(model, input_size, path):
    """Write ``model`` (eval mode, CPU) as ONNX with a dynamic batch axis; returns ``path``."""
    try:
        import onnx
    except ImportError:
        raise RuntimeError("ONNX export needs the 'onnx' package: pip install onnx onnxruntime") from None
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    example = torch.zeros(1, 3, *input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated, not removed
        torch.onnx.export(model, (example,), path, dynamo=False, opset_version=OPSET, input_names=["image"],
                          output_names=["heatmaps"], dynamic_axes={"image": {0: "batch"}, "heatmaps": {0: "batch"}})
    onnx.checker.check_model(onnx.load(path))
    return path


def check_images(input_size, images=None, count=4):
    """``float32 [N, 3, H, W]`` normalised inputs: the given image files / folder, letterboxed
    to ``input_size``, or ``count`` synthetic people."""
    from posefast.data.normalize import normalize_images
    from posefast.infer import crop_persons, person_boxes
    from posefast.infer_sources import Frame, Source

    if images:
        frames = list(Source(images, max_frames=count))
    else:
        from posefast.data.synthetic import draw_synthetic_image

        rng = np.random.default_rng(0)
        frames = [Frame(draw_synthetic_image(rng, (160, 160))[0], f"synthetic_{i}", i, i) for i in range(count)]
    crops = [crop_persons(f.image, person_boxes(f, None)[0], input_size, 1.0)[0] for f in frames]
    return normalize_images(torch.cat(crops))


def compare_with_onnxruntime(model, path, images, stride, beta=1.0):
    """Max |heatmap difference| and max keypoint distance (input px, soft-argmax) between
    PyTorch and onnxruntime (CPU) on ``images``."""
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeError("checking the export needs onnxruntime: pip install onnxruntime") from None
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    ours = session.run(["heatmaps"], {"image": images.numpy()})[0]
    with torch.no_grad():
        theirs = model(images).float()
    ours = torch.from_numpy(ours)
    keypoint_gap = (decode(ours, stride, beta=beta) - decode(theirs, stride, beta=beta)).norm(dim=-1).max()
    return {"images": len(images), "max_abs_heatmap_diff": float((ours - theirs).abs().max()),
            "max_abs_logit": float(theirs.abs().max()), "max_keypoint_diff_px": float(keypoint_gap)}


def main(argv=None) -> int:
    """Command-line entry point: 0 when exported and matching, 1 on a mismatch, 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m posefast.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--onnx", required=True, help="output .onnx file")
    parser.add_argument("--images", default=None, help="image file or folder for the check (default: synthetic)")
    parser.add_argument("--check-count", type=int, default=4, help="images in the check")
    args = parser.parse_args(dashed_options(sys.argv[1:] if argv is None else argv))
    try:
        model, cfg, _ = load_trained_model(args.checkpoint, "cpu")
        export_onnx(model, cfg.input_size, args.onnx)
        report = compare_with_onnxruntime(model, args.onnx, check_images(cfg.input_size, args.images, args.check_count),
                                          model.output_stride, cfg.beta)
    except (CheckpointError, RuntimeError, ValueError) as exc:
        print(f"posefast.export: error: {exc}", file=sys.stderr)
        return 2
    tol = heatmap_tolerance(report["max_abs_logit"])
    ok = report["max_abs_heatmap_diff"] <= tol and report["max_keypoint_diff_px"] <= KEYPOINT_ATOL_PX
    print(f"posefast.export: wrote {args.onnx} (input image [N, 3, {cfg.input_size[0]}, {cfg.input_size[1]}] -> "
          f"heatmaps, opset {OPSET}); onnxruntime vs PyTorch on {report['images']} images: max |heatmap diff| "
          f"{report['max_abs_heatmap_diff']:.2e} (tol {tol:.2g}, logits up to {report['max_abs_logit']:.3g}), "
          f"max keypoint diff "
          f"{report['max_keypoint_diff_px']:.2e} px (tol {KEYPOINT_ATOL_PX}): {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
