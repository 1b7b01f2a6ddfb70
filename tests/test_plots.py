"""PNG pictures: per-joint PCK bars, training curves, and those a training run writes."""
import json

import numpy as np
import pytest
from PIL import Image

from posefast.plots import CURVES_PNG, OVERLAY_PNG, PER_JOINT_PNG, plot_per_joint_pck, plot_training_curves
from posefast.skeleton import KEYPOINT_NAMES


def picture(path):
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.ndim == 3 and image.std() > 10, f"{path} looks blank"
    return image


def test_per_joint_bars_with_missing_joints(tmp_path):
    values = {name: k / 16 for k, name in enumerate(KEYPOINT_NAMES)}
    values["nose"] = None
    out = plot_per_joint_pck({"torso": values, "bbox": dict(values, nose=0.5)}, tmp_path / "bars.png")
    assert picture(out).shape[:2] == (650, 700)


def test_training_curves_from_metrics_jsonl(tmp_path):
    lines = [{"epoch": e, "loss": 1 / e, "loss_heatmap": 0.5 / e, "loss_coord": 2 / e,
              "val": {"loss": 1.1 / e, "pck_torso": 0.2 * e, "pck_bbox": None if e == 1 else 0.25 * e}}
             for e in (1, 2, 3)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    picture(plot_training_curves(tmp_path / "metrics.jsonl", tmp_path / "curves.png", pck_threshold=0.2))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="no epochs"):
        plot_training_curves(tmp_path / "empty.jsonl", tmp_path / "none.png")


def test_a_training_run_writes_its_pictures(tiny_run):
    overlay = picture(tiny_run["run"] / OVERLAY_PNG)
    assert overlay.shape[1] >= 4 * 2 * 32  # four GT | prediction pairs of 64x32 crops per row
    picture(tiny_run["run"] / PER_JOINT_PNG)
    picture(tiny_run["run"] / CURVES_PNG)
