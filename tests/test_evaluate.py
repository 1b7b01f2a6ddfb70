"""posefast.evaluate: decoders, flip test, COCO results + COCOeval path, the CLI on a tiny checkpoint."""
import json
import os

import numpy as np
import pytest
import torch

from posefast.coco_results import coco_results
from posefast.data.annotations import load_person_records
from posefast.data.bad_input import BadInputPolicy
from posefast.evaluate import main as evaluate_main
from posefast.flip_test import unflip_heatmaps
from posefast.models.decode import argmax_quarter_offset, decode
from posefast.ops import render_heatmaps
from posefast.oks_eval import load_coco, oks_ap
from posefast.skeleton import FLIP_INDEX


def gt_results(ann_file, shift=0.0):
    """Every usable GT person as a COCO result (keypoints moved by ``shift`` px)."""
    records = load_person_records(ann_file, BadInputPolicy())
    persons = [(r.image_id, p) for r in records for p in r.persons]
    keypoints = torch.from_numpy(np.stack([p.keypoints[:, :2] for _, p in persons])) + shift
    return coco_results([i for i, _ in persons], keypoints, torch.ones(len(persons), 17),
                        gt_ann_id=[p.ann_id for _, p in persons])


def test_ground_truth_against_itself_gives_ap_1(tiny_run):
    coco = load_coco(tiny_run["val_json"])
    stats = oks_ap(coco, gt_results(tiny_run["val_json"]))
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)
    assert oks_ap(coco, gt_results(tiny_run["val_json"], shift=6.0))["AP"] < 0.9  # the check can fail


def test_ap_with_another_person_category_id_and_fields_left_out(tiny_run, tmp_path):
    """A user's file whose person category is not id 1 (beside another category), and whose
    annotations lack num_keypoints and area: ground truth against itself is still AP 1."""
    with open(tiny_run["val_json"]) as f:
        data = json.load(f)
    data["categories"] = [{"id": 1, "name": "dog"}, {"id": 7, "name": "person", "keypoints": [], "skeleton": []}]
    for ann in data["annotations"]:
        ann["category_id"] = 7
        ann.pop("num_keypoints", None)
        ann.pop("area", None)
    path = tmp_path / "val_cat7.json"
    path.write_text(json.dumps(data))
    stats = oks_ap(load_coco(str(path)), gt_results(str(path)))
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)


def test_ground_truth_against_itself_gives_ap_1_on_real_coco(coco_dir):
    ann = os.path.join(coco_dir, "val.json")
    assert oks_ap(load_coco(ann), gt_results(ann))["AP"] == pytest.approx(1.0)


def test_argmax_quarter_offset_moves_towards_the_higher_neighbour():
    kp = torch.tensor([[[10.3, 6.8], [0.0, 5.0]]])
    maps = render_heatmaps(kp, torch.ones(1, 2), size=(16, 24), sigma=2.0)
    xy = argmax_quarter_offset(maps)
    assert torch.equal(xy[0, 0], torch.tensor([10.25, 6.75]))
    assert torch.equal(xy[0, 1], torch.tensor([0.0, 5.0]))  # on the x border, a tie in y: no shift
    assert torch.allclose(decode(maps, 4, "argmax_quarter"), (xy + 0.5) * 4 - 0.5)
    with pytest.raises(ValueError, match="unknown decoder"):
        decode(maps, 4, "median")


def test_unflipping_the_mirrored_image_heatmaps_is_exact():
    kp = torch.rand(2, 17, 2) * torch.tensor([11.0, 15.0])
    vis = torch.ones(2, 17)
    mirrored = kp.clone()
    mirrored[..., 0] = 12 - 1 - kp[..., 0]
    mirrored = mirrored[:, FLIP_INDEX]  # a mirrored person's left joints are its right ones
    original = render_heatmaps(kp, vis, size=(16, 12), sigma=1.5)
    assert torch.allclose(unflip_heatmaps(render_heatmaps(mirrored, vis, size=(16, 12), sigma=1.5)), original, atol=1e-6)


@pytest.fixture(scope="module")
def evaluated(tiny_run):
    out = tiny_run["root"] / "eval"
    code = evaluate_main(["--checkpoint", str(tiny_run["run"] / "best.pt"), "--out", str(out), "--flip",
                          "--cache-dir", str(tiny_run["root"] / "cache"), "--no-progress"])
    assert code == 0
    with open(out / "eval.json") as f:
        report = json.load(f)
    with open(out / "predictions.json") as f:
        predictions = json.load(f)
    return out, report, predictions


def test_eval_json_holds_every_number(evaluated, tiny_run, capsys):
    out, report, _ = evaluated
    assert set(report["results"]) == {"soft_argmax", "argmax_quarter", "soft_argmax+flip", "argmax_quarter+flip"}
    assert report["primary"] == "soft_argmax+flip" and report["gt_boxes"] is True
    assert report["checkpoint"] == str(tiny_run["run"] / "best.pt") and report["data"]["ann_file"] == tiny_run["val_json"]
    for r in report["results"].values():
        for name in ("torso", "bbox"):
            assert 0 <= r[f"pck_{name}"] <= 1 and 0 <= r[f"pck_{name}_auc"] <= 1
            assert set(r[f"pck_{name}_per_joint"]) >= {"nose", "right_ankle"}
        assert r["epe_px"] > 0 and -1 <= r["coco"]["AP"] <= 1 and "AR" in r["coco"]
    assert "torso diagonal" in report["definitions"]["torso"]
    for png in ("eval_overlay.png", "eval_per_joint_pck.png"):
        assert os.path.getsize(out / png) > 1000


def test_soft_argmax_pck_matches_the_training_validation(evaluated, tiny_run):
    _, report, _ = evaluated
    with open(tiny_run["run"] / "metrics.jsonl") as f:
        val = [json.loads(line) for line in f][-1]["val"]
    r = report["results"]["soft_argmax"]
    assert r["pck_torso"] == pytest.approx(val["pck_torso"], abs=1e-6)
    assert r["pck_bbox"] == pytest.approx(val["pck_bbox"], abs=1e-6)


def test_predictions_are_one_coco_result_per_gt_person(evaluated, tiny_run):
    _, report, predictions = evaluated
    with open(tiny_run["val_json"]) as f:
        anns = [a for a in json.load(f)["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]
    assert sorted(p["gt_ann_id"] for p in predictions) == sorted(a["id"] for a in anns)
    image_of = {a["id"]: a["image_id"] for a in anns}
    for p in predictions:
        assert p["image_id"] == image_of[p["gt_ann_id"]] and p["category_id"] == 1 and len(p["keypoints"]) == 51
    # Any COCO tool can score the file: pycocotools gives the numbers eval.json holds.
    assert oks_ap(load_coco(tiny_run["val_json"]), predictions)["AP"] == pytest.approx(
        report["results"][report["primary"]]["coco"]["AP"])


def test_a_wrong_checkpoint_is_a_clear_error(tmp_path, capsys):
    bogus = tmp_path / "best.pt"
    bogus.write_text("not a checkpoint")
    assert evaluate_main(["--checkpoint", str(bogus)]) == 2
    err = capsys.readouterr().err
    assert str(bogus) in err and "Traceback" not in err
    assert evaluate_main(["--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_command_line_options_take_underscores_too():
    """``--batch_size`` as ``train`` spells it, beside ``--batch-size``."""
    from posefast.evaluate import parse_args as evaluate_args
    from posefast.infer import parse_args as infer_args

    args = evaluate_args(["--checkpoint", "x.pt", "--batch_size", "8", "--pck_threshold=0.1", "--skip_bad"])
    assert (args.batch_size, args.pck_threshold, args.skip_bad) == (8, 0.1, True)
    assert evaluate_args(["--checkpoint", "x.pt", "--batch-size", "8", "--no_skip_bad"]).skip_bad is False
    assert evaluate_args(["--checkpoint", "x.pt", "--batch", "8"]).batch_size == 8  # prefixes stay unambiguous
    args = infer_args(["--checkpoint", "x.pt", "--input", "a_b.jpg", "--draw_threshold", "0.5", "--skip_bad",
                       "--max", "3"])
    assert (args.draw_threshold, args.skip_bad, args.max_frames, args.input) == (0.5, True, 3, "a_b.jpg")
