"""Evaluate a checkpoint: ``python -m posefast.evaluate --checkpoint RUN/best.pt [--data ANN.json --images DIR]``.

Protocol: top-down crops of every non-crowd person with >= 1 labelled keypoint, cut from
the GROUND-TRUTH person boxes (padding 1.25, no detector; ``image`` mode checkpoints use
their whole-image protocol instead: one supervised person per image). Predictions are
mapped back to original image px and scored there:

* PCK@0.2 (overall macro mean and per joint), torso-normalised (the original study's
  metric; ``posefast.metrics.torso_size``: the longer of the two torso diagonals, left
  shoulder-right hip and right shoulder-left hip, each only when both joints are labelled;
  persons with neither diagonal are left out) and bbox-normalised (mmpose's
  ``PCKAccuracy``: ``max(w, h)`` of the GT box); PCK AUC over thresholds 0..0.5; all from
  ``posefast.ops.pck_counts``. Mean end-point error: mean distance in original px over the
  labelled joints.
* COCO keypoint AP/AR (OKS) with pycocotools' ``COCOeval`` on the same images.

Each decoding is reported: soft-argmax and argmax with a quarter-pixel offset, and with
``--flip`` both again on heatmaps averaged with the mirrored image's. Writes
``eval.json`` (every number, the checkpoint and data), ``predictions.json`` (COCO results
of the primary decoding, one entry per GT person, with ``gt_ann_id``),
``eval_overlay.png`` and ``eval_per_joint_pck.png`` into ``--out`` (default
``<checkpoint folder>/eval``).
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import torch
from tqdm import tqdm

from posefast import metrics
from posefast.checkpoint import CheckpointError, load_trained_model
from posefast.coco_results import coco_results, write_json
from posefast.command_line import dashed_options
from posefast.flip_test import unflip_heatmaps
from posefast.models.decode import DECODERS, decode, joint_confidence
from posefast.oks_eval import load_coco, oks_ap
from posefast.skeleton import KEYPOINT_NAMES

AUC_THRESHOLDS = torch.linspace(0.0, 0.5, 51, dtype=torch.float64)
NORMALISERS = ("torso", "bbox")


def variant_logits(model, images, flip):
    """``{variant name suffix: logits}``: plain, and flip-averaged when ``flip``."""
    logits = model(images).float()
    out = {"": logits}
    if flip:
        out["+flip"] = 0.5 * (logits + unflip_heatmaps(model(images.flip(-1)).float()))
    return out


@torch.no_grad()
def collect(model, loader, cfg, flip, progress):
    """Per variant, the predictions of every sample (original px), plus the GT and ids;
    also the first batch and its primary predictions (input px) for the overlay."""
    from posefast.data import invert_keypoints

    model.eval()
    stride, parts, first = model.output_stride, {}, None
    gt = {"gt": [], "vis": [], "bbox": [], "image_id": [], "ann_id": []}
    for batch in tqdm(loader, desc="evaluating", disable=not progress, leave=False):
        for suffix, logits in variant_logits(model, batch.images, flip).items():
            confidence = joint_confidence(logits, cfg.loss).cpu()
            for decoder in DECODERS:
                pred = decode(logits, stride, decoder, cfg.beta)
                if first is None and decoder == DECODERS[0] and suffix == ("+flip" if flip else ""):
                    first = (batch.to("cpu"), pred.cpu())
                orig = invert_keypoints(pred, batch.affine, batch.flipped).cpu()
                slot = parts.setdefault(decoder + suffix, {"pred": [], "conf": []})
                slot["pred"].append(orig)
                slot["conf"].append(confidence)
        for key, value in (("gt", batch.gt_keypoints_orig), ("vis", batch.gt_visible_orig), ("bbox", batch.bbox),
                           ("image_id", batch.image_ids), ("ann_id", batch.ann_ids)):
            gt[key].append(value.cpu())
    gt = {k: torch.cat(v) for k, v in gt.items()}
    return {name: {k: torch.cat(v) for k, v in slot.items()} for name, slot in parts.items()}, gt, first


def per_joint_dict(values):
    return {name: (None if math.isnan(v) else v) for name, v in zip(KEYPOINT_NAMES, values.tolist())}


def score(pred, gt, threshold):
    """PCK (torso, bbox) at ``threshold`` overall and per joint, their AUCs over 0..0.5, and
    the mean end-point error (original px) of ``pred`` against ``gt``."""
    norms = {"torso": metrics.torso_size(gt["gt"], gt["vis"]), "bbox": metrics.bbox_size(gt["bbox"])}
    out = {}
    for name in NORMALISERS:
        mean, per_joint = metrics.pck(pred, gt["gt"], gt["vis"], norms[name], (threshold,)).at(threshold)
        curve = metrics.pck(pred, gt["gt"], gt["vis"], norms[name], AUC_THRESHOLDS.tolist())
        out[f"pck_{name}"] = None if math.isnan(mean) else mean
        out[f"pck_{name}_per_joint"] = per_joint_dict(per_joint)
        out[f"pck_{name}_auc"] = metrics.pck_auc(curve)
        out[f"pck_{name}_instances"] = int((norms[name] > 0).sum())
    labelled = (gt["vis"] > 0) & torch.isfinite(gt["gt"]).all(-1)
    distance = (pred - gt["gt"]).norm(dim=-1)
    out["epe_px"] = float(distance[labelled].mean())
    per_joint_epe = [float(distance[:, k][labelled[:, k]].mean()) if labelled[:, k].any() else math.nan
                     for k in range(len(KEYPOINT_NAMES))]
    out["epe_px_per_joint"] = per_joint_dict(torch.tensor(per_joint_epe))
    out["labelled_joints"] = int(labelled.sum())
    return out


def data_files(cfg, ann_file, image_dir):
    """The annotation file and image folder to evaluate on: as given, else the run's validation set."""
    if bool(ann_file) != bool(image_dir):
        raise ValueError("--data and --images go together")
    if ann_file:
        for path in (ann_file, image_dir):
            if not os.path.exists(path):
                raise FileNotFoundError(f"not found: {path}")
        return os.path.abspath(ann_file), os.path.abspath(image_dir)
    from posefast.config import coco_paths
    from posefast.train import dataset_files

    # the validation files only: evaluating needs no training set (COCO's train2017 is 18 GB)
    files = coco_paths(cfg, splits=("val",)) if cfg.dataset == "coco" else dataset_files(cfg)
    return files["val_json"], files["val_images"]


def evaluate_checkpoint(checkpoint, ann_file=None, image_dir=None, out_dir=None, flip=False, device="auto",
                        batch_size=32, subset=None, pck_threshold=0.2, cache_dir=None, progress=True,
                        skip_bad=None) -> dict:
    """Run the whole evaluation (see the module docstring); returns what ``eval.json`` holds.

    ``skip_bad``: skip (and count, in ``data.skipped``) missing or corrupt images and bad
    annotations instead of failing; ``None`` follows the run's ``skip_bad`` setting."""
    from posefast.data import CocoKeypoints, PoseLoader
    from posefast.distributed import pick_device
    from posefast.plots import plot_per_joint_pck
    from posefast.visualize import save_batch_overlay

    dev = pick_device(device)
    model, cfg, ckpt = load_trained_model(checkpoint, dev)
    ann_file, image_dir = data_files(cfg, ann_file, image_dir)
    out_dir = os.path.abspath(out_dir or os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "eval"))
    dataset = CocoKeypoints(ann_file, image_dir, mode=cfg.mode, input_size=cfg.input_size, subset=subset,
                            seed=cfg.seed, cache_dir=cache_dir, progress=progress,
                            skip_bad=cfg.skip_bad if skip_bad is None else skip_bad)
    loader = PoseLoader(dataset, batch_size, shuffle=False, drop_last=False, device=dev, augment=None,
                        output_stride=model.output_stride, render_targets=False)
    variants, gt, (first_batch, first_pred) = collect(model, loader, cfg, flip, progress)
    primary = DECODERS[0] + ("+flip" if flip else "")
    coco_gt = load_coco(ann_file)
    image_ids = sorted(set(gt["image_id"].tolist()))
    results, predictions = {}, None
    for name, out in variants.items():
        entries = coco_results(gt["image_id"], out["pred"], out["conf"], gt_ann_id=gt["ann_id"])
        results[name] = {**score(out["pred"], gt, pck_threshold), "coco": oks_ap(coco_gt, entries, image_ids)}
        if name == primary:
            predictions = entries
    protocol = ("top-down: one crop per ground-truth person box (GT boxes, no detector)" if cfg.mode == "topdown"
                else "image: the whole image letterboxed, one prediction per image (its first annotated person); "
                     "other persons in those images count as misses in OKS AP")
    report = {
        "checkpoint": os.path.abspath(checkpoint), "epoch": ckpt.get("epoch"), "init_source": ckpt.get("init_source"),
        "model": cfg.model,
        "input_size": list(cfg.input_size), "output_stride": model.output_stride, "device": str(dev),
        "data": {"ann_file": ann_file, "image_dir": image_dir, "subset": subset, "images": len(image_ids),
                 "persons": len(gt["ann_id"]), "skipped": dict(dataset.skipped)},
        "protocol": protocol, "gt_boxes": cfg.mode == "topdown", "space": "original image px",
        "definitions": {
            "pck": "hit when ||pred - gt|| / norm < threshold (strict); macro mean over joints with >= 1 valid instance",
            "torso": "longer torso diagonal (l_shoulder-r_hip, r_shoulder-l_hip), each only when both joints are "
                     "labelled; persons with neither are excluded",
            "bbox": "max(w, h) of the GT person box (mmpose PCKAccuracy norm_item='bbox')",
            "auc": "trapezoid area under mean PCK over thresholds 0..0.5 (51 points), divided by 0.5",
            "epe_px": "mean Euclidean distance over labelled joints, original image px",
            "coco": "pycocotools COCOeval iouType='keypoints' (OKS), on the evaluated images",
        },
        "pck_threshold": pck_threshold, "flip_test": flip, "primary": primary, "results": results,
    }
    write_json(report, os.path.join(out_dir, "eval.json"))
    write_json(predictions, os.path.join(out_dir, "predictions.json"))
    source = f"{os.path.basename(checkpoint)} (epoch {ckpt.get('epoch')}) on {os.path.basename(ann_file)}"
    save_batch_overlay(first_batch, os.path.join(out_dir, "eval_overlay.png"), predictions=first_pred,
                       show_targets=False, prediction_color=None, caption=f"{source}, {primary}")
    best = results[primary]
    plot_per_joint_pck({n: best[f"pck_{n}_per_joint"] for n in NORMALISERS},
                       os.path.join(out_dir, "eval_per_joint_pck.png"),
                       title=f"per-joint PCK@{pck_threshold}, {primary}: {source}")
    report["out_dir"] = out_dir
    return report


def format_report(report) -> str:
    """The human-readable summary printed by the command line."""
    from posefast.data.bad_input import format_counts

    skipped = format_counts(report["data"].get("skipped", {}))
    lines = [f"posefast.evaluate: {report['checkpoint']} (epoch {report['epoch']}) on {report['data']['ann_file']}: "
             f"{report['data']['images']} images, {report['data']['persons']} persons"
             + (f" (skipped bad input: {skipped})" if skipped else ""),
             f"protocol: {report['protocol']}",
             f"{'decoding':<22}{'PCK@%g torso' % report['pck_threshold']:>14}{'bbox':>8}{'AUC torso':>11}"
             f"{'bbox':>7}{'EPE px':>9}{'AP':>8}{'AP50':>7}{'AP75':>7}{'AR':>7}"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    for name, r in report["results"].items():
        c = r["coco"]
        lines.append(f"{name:<22}{fmt(r['pck_torso']):>14}{fmt(r['pck_bbox']):>8}{r['pck_torso_auc']:>11.3f}"
                     f"{r['pck_bbox_auc']:>7.3f}{r['epe_px']:>9.2f}{c['AP']:>8.3f}{c['AP50']:>7.3f}{c['AP75']:>7.3f}"
                     f"{c['AR']:>7.3f}")
    if report["gt_boxes"]:
        lines.append("COCO AP/AR above use GROUND-TRUTH person boxes (no detector), so they are not comparable to "
                     "detector-based COCO numbers.")
    lines.append(f"wrote {os.path.join(report['out_dir'], 'eval.json')}, predictions.json, eval_overlay.png, "
                 "eval_per_joint_pck.png")
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m posefast.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a posefast training checkpoint (best.pt / last.pt)")
    parser.add_argument("--data", default=None, help="COCO keypoints JSON (default: the run's validation set)")
    parser.add_argument("--images", default=None, help="image folder of --data")
    parser.add_argument("--out", default=None, help="output folder (default: <checkpoint folder>/eval)")
    parser.add_argument("--flip", action="store_true", help="also report the flip test")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--subset", type=int, default=None, help="evaluate on this many images only")
    parser.add_argument("--pck-threshold", type=float, default=0.2)
    parser.add_argument("--cache-dir", default=None, help="crop cache folder (default: posefast's)")
    parser.add_argument("--skip-bad", action=argparse.BooleanOptionalAction, default=None,
                        help="skip and count missing/corrupt images and bad annotations instead of failing "
                             "(default: as the run was trained)")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(dashed_options(argv))


def main(argv=None) -> int:
    """Command-line entry point; errors are one line on stderr and exit status 2."""
    from posefast.config import ConfigError
    from posefast.data import BadInputError

    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        report = evaluate_checkpoint(args.checkpoint, args.data, args.images, args.out, args.flip, args.device,
                                     args.batch_size, args.subset, args.pck_threshold, args.cache_dir,
                                     not args.no_progress, skip_bad=args.skip_bad)
    except (CheckpointError, ConfigError, BadInputError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"posefast.evaluate: error: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
