"""Training and evaluating on a COCO keypoints dataset in its own layout (COCO 2017's
``annotations/person_keypoints_*.json`` + ``train2017/`` + ``val2017/``), and bad input
(a missing image) failing with the file named, or skipped, counted and recorded."""
import json
import os
import shutil

import pytest
import yaml

from posefast.config import ConfigError, coco_paths, load_config
from posefast.data.synthetic import make_synthetic_dataset
from posefast.evaluate import evaluate_checkpoint
from posefast.evaluate import main as evaluate_main
from posefast.train import main as train_main

TINY = ["--input_size", "64,32", "--pretrained", "none", "--progress", "false", "--amp", "false",
        "--device", "cpu", "--epochs", "1", "--batch_size", "8"]


@pytest.fixture(scope="module")
def coco2017(tmp_path_factory):
    """A tiny synthetic set rearranged into COCO 2017's layout; returns its paths."""
    root = tmp_path_factory.mktemp("coco2017")
    made = make_synthetic_dataset(str(root / "synthetic"), num_train=12, num_val=4, seed=3, image_size=96)
    (root / "annotations").mkdir()
    paths = {}
    for split in ("train", "val"):
        folder = root / f"{split}2017"
        folder.mkdir()
        with open(made[f"{split}_json"]) as f:
            coco = json.load(f)
        for image in coco["images"]:
            shutil.copy(os.path.join(made["image_dir"], image["file_name"]), folder / image["file_name"])
        ann = root / "annotations" / f"person_keypoints_{split}2017.json"
        ann.write_text(json.dumps(coco))
        paths[f"{split}_json"], paths[f"{split}_images"] = str(ann), str(folder)
        paths[f"{split}_files"] = [image["file_name"] for image in coco["images"]]
    return root, paths


def layout_args(paths):
    return ["--dataset", "coco", *[a for key in ("train_json", "train_images", "val_json", "val_images")
                                   for a in (f"--{key}", paths[key])]]


def test_explicit_paths_replace_the_data_dir_layout(coco2017, tmp_path, monkeypatch):
    monkeypatch.delenv("POSEFAST_COCO_DIR", raising=False)  # its fallback for data_dir would hide one error
    root, paths = coco2017
    cfg = load_config(layout_args(paths))
    assert coco_paths(cfg) == {k: paths[k] for k in ("train_json", "train_images", "val_json", "val_images")}
    # One path explicit, the rest from data_dir's layout, which this folder does not have.
    cfg = load_config(["--dataset", "coco", "--data_dir", str(root), "--train_json", paths["train_json"]])
    with pytest.raises(ConfigError, match=r"val_json=.*val.json \(not found, from data_dir") as error:
        coco_paths(cfg)
    assert "train_json" not in str(error.value)
    with pytest.raises(ConfigError, match="data_dir.*or train_images set explicitly"):
        coco_paths(load_config(["--dataset", "coco", "--train_json", paths["train_json"]]))
    with pytest.raises(ConfigError, match="train_json name a COCO keypoints dataset: add --dataset coco"):
        load_config(["--train_json", paths["train_json"]])  # the synthetic default would ignore it
    with pytest.raises(ConfigError, match="val_images=.*nowhere"):
        coco_paths(load_config(layout_args({**paths, "val_images": str(tmp_path / "nowhere")})))


def test_a_missing_image_fails_naming_it_or_is_skipped_counted_and_recorded(coco2017, tmp_path, capsys):
    root, paths = coco2017
    images = tmp_path / "train2017"
    shutil.copytree(paths["train_images"], images)
    gone = paths["train_files"][5]
    (images / gone).unlink()
    argv = TINY + layout_args({**paths, "train_images": str(images)}) + ["--cache_dir", str(tmp_path / "cache")]

    assert train_main(argv + ["--out_dir", str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err
    assert gone in err and "--skip_bad true" in err
    assert not os.path.exists(tmp_path / "strict" / "last.pt")

    run = tmp_path / "run"
    with pytest.warns(UserWarning, match="missing_image: 1"):
        assert train_main(argv + ["--out_dir", str(run), "--skip_bad", "true"]) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data_skipped"] == {"train": {"missing_image": 1}, "val": {}}
    assert saved["train_images"] == str(images) and saved["pretrained_loaded"] is False
    # A run's config.yaml retrains it as it was: its record keys are skipped when read back.
    again = load_config(["--config", str(run / "config.yaml")])
    assert again.skip_bad and again.train_images == str(images) and again.val_json == paths["val_json"]

    # Evaluation follows the run's skip_bad, and counts what it skipped; --no-skip-bad fails instead.
    with pytest.warns(UserWarning, match="missing_image: 1"):
        report = evaluate_checkpoint(str(run / "best.pt"), paths["train_json"], str(images),
                                     out_dir=str(tmp_path / "eval"), device="cpu", progress=False,
                                     cache_dir=str(tmp_path / "cache"))
    assert report["data"]["skipped"] == {"missing_image": 1}
    assert report["data"]["images"] == len(paths["train_files"]) - 1
    assert evaluate_checkpoint(str(run / "best.pt"), device="cpu", progress=False, out_dir=str(tmp_path / "ev"),
                               cache_dir=str(tmp_path / "cache"))["data"]["skipped"] == {}
    assert evaluate_main(["--checkpoint", str(run / "best.pt"), "--data", paths["train_json"], "--images",
                          str(images), "--no-skip-bad", "--device", "cpu", "--no-progress",
                          "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "ev2")]) == 2
    assert gone in capsys.readouterr().err
