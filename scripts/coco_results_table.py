#!/usr/bin/env python
"""Markdown tables for docs/RESULTS_COCO.md from the run folders of scripts/coco_runs.sh.

    python scripts/coco_results_table.py RUN_ROOT
    python scripts/coco_results_table.py --seeds SEED_ROOT...

Reads each run's ``metrics.jsonl`` (throughput, epochs), ``train.log`` (``wall_s``) and
``eval/eval.json`` (``python -m posefast.evaluate --flip`` on best.pt) and prints the main
table, the per-joint table and the ablation lines. Runs that are missing are left out.

``--seeds`` takes one run root per seed (each made by ``EXTRA="--seed S" bash
scripts/coco_runs.sh SEED_ROOT abl_base abl_...``) and prints the ablations as paired
comparisons: each ablation against the baseline of the same seed (same training subset,
same initialisation), mean and spread over the seeds.
"""
import json
import os
import statistics
import sys

import yaml

MAIN = [("topdown_simple", "SimplePoseNet", "ours: top-down, every person"),
        ("topdown_unet", "UNetPoseNet", "ours: top-down, every person"),
        ("image_simple", "SimplePoseNet", "study: whole image, first person"),
        ("image_unet", "UNetPoseNet", "study: whole image, first person"),
        ("coco_best", "UNetPoseNet", "ours, longer schedule (configs/coco_best.yaml)")]
ABLATIONS = [("abl_base", "baseline: BCE, coord loss 0.1, elbows/knees x1.2, wrists/ankles x1.5, soft-argmax, no flip"),
             ("abl_mse", "MSE heatmap loss instead of BCE (same head bias -4: a poor start for MSE)"),
             ("abl_mse_bias0", "MSE heatmap loss instead of BCE, head bias 0"),
             ("abl_no_coord", "coordinate (soft-argmax L1) loss off"),
             ("abl_uniform_weights", "joint weights off (all 1)")]
WRISTS, ANKLES = ("left_wrist", "right_wrist"), ("left_ankle", "right_ankle")


def load(root, name):
    folder = os.path.join(root, name)
    path = os.path.join(folder, "eval", "eval.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        ev = json.load(f)
    with open(os.path.join(folder, "metrics.jsonl")) as f:
        epochs = [json.loads(line) for line in f if line.strip()]
    wall = None
    with open(os.path.join(folder, "train.log")) as f:
        for line in f:
            if line.startswith("wall_s "):
                wall = int(line.split()[1])
    return {"eval": ev, "epochs": epochs, "wall_s": wall,
            "samples_per_s": statistics.mean(e["samples_per_s"] for e in epochs)}


def schedule(root):
    """``600 train images, 4 epochs``: the baseline run's schedule, from its config.yaml."""
    with open(os.path.join(root, "abl_base", "config.yaml")) as f:
        cfg = yaml.safe_load(f)
    images = "all" if cfg.get("train_subset") is None else cfg["train_subset"]
    return f"{images} train images, {cfg['epochs']} epoch{'s' if cfg['epochs'] != 1 else ''}"


def pair_mean(per_joint, names):
    values = [per_joint[n] for n in names if per_joint.get(n) is not None]
    return sum(values) / len(values) if values else float("nan")


def main_table(root):
    lines = ["| run | decoder | protocol | epochs (best) | torso PCK@0.2 | bbox PCK@0.2 | wrists | ankles "
             "| + flip (torso) | AP (GT boxes) | AP50 | wall | train samples/s |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, decoder, protocol in MAIN:
        run = load(root, name)
        if run is None:
            continue
        res = run["eval"]["results"]
        sa, flip = res["soft_argmax"], res.get("soft_argmax+flip", {})
        coco = sa.get("coco") or {}
        lines.append(
            f"| {name} | {decoder} | {protocol} | {len(run['epochs'])} ({run['eval']['epoch']}) "
            f"| {sa['pck_torso']:.3f} | {sa['pck_bbox']:.3f} | {pair_mean(sa['pck_torso_per_joint'], WRISTS):.3f} "
            f"| {pair_mean(sa['pck_torso_per_joint'], ANKLES):.3f} | {flip.get('pck_torso', float('nan')):.3f} "
            f"| {coco.get('AP', float('nan')):.3f} | {coco.get('AP50', float('nan')):.3f} "
            f"| {run['wall_s'] // 60}m{run['wall_s'] % 60:02d}s | {run['samples_per_s']:.1f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def per_joint_table(root):
    runs = [(name, load(root, name)) for name, _, _ in MAIN]
    runs = [(n, r) for n, r in runs if r is not None]
    if not runs:
        return ""
    joints = list(runs[0][1]["eval"]["results"]["soft_argmax"]["pck_torso_per_joint"])
    lines = ["| joint (torso PCK@0.2) | " + " | ".join(n for n, _ in runs) + " |",
             "|---|" + "---:|" * len(runs)]
    for j in joints:
        cells = []
        for _, r in runs:
            v = r["eval"]["results"]["soft_argmax"]["pck_torso_per_joint"].get(j)
            cells.append("-" if v is None else f"{v:.3f}")
        lines.append(f"| {j} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ablation_lines(root):
    base = load(root, "abl_base")
    if base is None:
        return ""
    b = base["eval"]["results"]["soft_argmax"]
    lines = [f"| ablation ({schedule(root)}) | torso PCK@0.2 | bbox PCK@0.2 | AP | torso vs baseline |",
             "|---|---:|---:|---:|---:|"]
    for label, name, key in eval_variants():
        run = load(root, name)
        r = None if run is None else run["eval"]["results"].get(key)
        if r is not None:
            ap = (r.get("coco") or {}).get("AP", float("nan"))
            lines.append(f"| {label} | {r['pck_torso']:.3f} | {r['pck_bbox']:.3f} | {ap:.3f} "
                         f"| {r['pck_torso'] - b['pck_torso']:+.3f} |")
    return "\n".join(lines)


def eval_variants():
    """(label, run name, result key) of every ablation line: trained variants, then the
    baseline's evaluation-only variants (flip test, argmax decoding)."""
    trained = [(label, name, "soft_argmax") for name, label in ABLATIONS]
    decoded = [("baseline + flip test", "abl_base", "soft_argmax+flip"),
               ("baseline, argmax + quarter-pixel decoding instead of soft-argmax", "abl_base", "argmax_quarter"),
               ("baseline, argmax + quarter-pixel, + flip test", "abl_base", "argmax_quarter+flip")]
    return trained + decoded


def mean_sd(values, signed=False):
    mean = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{mean:+.3f} +- {sd:.3f}" if signed else f"{mean:.3f} +- {sd:.3f}"


def seed_ablation_table(roots):
    """Paired ablations over seeds: one run root per seed, each with its own ``abl_base``."""
    seeds = []
    for root in roots:
        base = load(root, "abl_base")
        if base is not None:
            seeds.append((os.path.basename(os.path.normpath(root)), root, base["eval"]["results"]))
    if not seeds:
        return ""
    lines = [f"| ablation ({schedule(seeds[0][1])}; {len(seeds)} seeds: {', '.join(s for s, _, _ in seeds)}) "
             "| torso PCK@0.2, mean +- sd | bbox PCK@0.2, mean +- sd | torso vs baseline, paired: mean +- sd "
             "| per seed: torso (vs baseline) |",
             "|---|---:|---:|---:|---|"]
    for label, name, key in eval_variants():
        torso, bbox, diffs, names = [], [], [], []
        for seed, root, base in seeds:
            run = base if name == "abl_base" else (load(root, name) or {}).get("eval", {}).get("results")
            if run is None or key not in run:
                continue
            torso.append(run[key]["pck_torso"])
            bbox.append(run[key]["pck_bbox"])
            diffs.append(run[key]["pck_torso"] - base["soft_argmax"]["pck_torso"])
            names.append(seed)
        if not torso:
            continue
        partial = len(torso) < len(seeds)
        if partial:
            label += f" ({len(torso)} of {len(seeds)} seeds)"
        per_seed = ", ".join((f"{n}: " if partial else "") + f"{t:.3f} ({d:+.3f})"
                             for n, t, d in zip(names, torso, diffs))
        lines.append(f"| {label} | {mean_sd(torso)} | {mean_sd(bbox)} | {mean_sd(diffs, signed=True)} "
                     f"| {per_seed} |")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--seeds":
        table = seed_ablation_table(argv[1:])
        if not table:  # no root given, or none holds an evaluated abl_base
            print(__doc__)
            return 2
        print(f"### Ablations over seeds\n\n{table}\n")
        return 0
    if len(argv) != 1 or argv[0].startswith("-"):
        print(__doc__)
        return 2
    root = argv[0]
    for title, text in (("Main runs", main_table(root)), ("Per joint", per_joint_table(root)),
                        ("Ablations", ablation_lines(root))):
        if text:
            print(f"### {title}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
