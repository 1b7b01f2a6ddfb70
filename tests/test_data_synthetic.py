"""The built-in synthetic dataset: valid COCO, deterministic, reused, and loadable end to end."""
import hashlib
import os

import numpy as np
from pycocotools.coco import COCO

from posefast.data import AugmentConfig, CocoKeypoints, PoseLoader
from posefast.data.synthetic import default_synthetic_root, make_synthetic_dataset
from posefast.skeleton import KEYPOINT_NAMES


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_same_seed_gives_identical_files(tmp_path):
    a = make_synthetic_dataset(str(tmp_path / "a"), num_train=6, num_val=3, seed=5, image_size=96)
    b = make_synthetic_dataset(str(tmp_path / "b"), num_train=6, num_val=3, seed=5, image_size=96)
    c = make_synthetic_dataset(str(tmp_path / "c"), num_train=6, num_val=3, seed=6, image_size=96)
    for key in ("train_json", "val_json"):
        assert digest(a[key]) == digest(b[key]) != digest(c[key])
    names = sorted(os.listdir(a["image_dir"]))
    assert len(names) == 9 and names == sorted(os.listdir(b["image_dir"]))
    assert all(digest(os.path.join(a["image_dir"], n)) == digest(os.path.join(b["image_dir"], n)) for n in names)


def test_reused_when_params_match_and_rebuilt_when_not(tmp_path):
    root = str(tmp_path / "synth")
    paths = make_synthetic_dataset(root, num_train=4, num_val=2, image_size=(80, 64))
    stamp = os.stat(paths["train_json"]).st_mtime_ns
    assert make_synthetic_dataset(root, num_train=4, num_val=2, image_size=(80, 64)) == paths
    assert os.stat(paths["train_json"]).st_mtime_ns == stamp
    make_synthetic_dataset(root, num_train=3, num_val=2, image_size=(80, 64))
    assert len(COCO(paths["train_json"]).getImgIds()) == 3 and len(os.listdir(paths["image_dir"])) == 5


def test_valid_coco_keypoints(tmp_path):
    paths = make_synthetic_dataset(str(tmp_path), num_train=20, num_val=4, image_size=(120, 100))
    coco = COCO(paths["train_json"])
    category = coco.loadCats(coco.getCatIds())[0]
    assert category["name"] == "person" and category["keypoints"] == list(KEYPOINT_NAMES)
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= 20
    for ann in anns:
        kps = np.asarray(ann["keypoints"], dtype=float).reshape(17, 3)
        image = coco.loadImgs(ann["image_id"])[0]
        assert (image["width"], image["height"]) == (100, 120)
        assert ann["iscrowd"] == 0 and ann["num_keypoints"] == int((kps[:, 2] > 0).sum()) > 0
        labelled = kps[kps[:, 2] > 0]
        assert (labelled[:, 0] >= 0).all() and (labelled[:, 0] <= 100).all() and (labelled[:, 1] <= 120).all()
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and ann["area"] > 0
    visibilities = np.concatenate([np.asarray(a["keypoints"])[2::3] for a in anns])
    assert {0, 1, 2} <= set(visibilities.tolist())  # unlabelled, occluded and visible joints all occur


def test_loads_through_the_pipeline(tmp_path):
    paths = make_synthetic_dataset(str(tmp_path / "synth"), num_train=8, num_val=2, image_size=128)
    dataset = CocoKeypoints(paths["train_json"], paths["image_dir"], input_size=(128, 96),
                            cache_dir=str(tmp_path / "cache"), progress=False)
    assert dataset.skipped == {} and dataset.num_images == 8
    batch = next(iter(PoseLoader(dataset, 4, shuffle=True, drop_last=True, device="cpu", augment=AugmentConfig(),
                                 output_stride=4)))
    assert batch.targets.shape == (4, 17, 32, 24) and batch.visible.sum() > 0


def test_default_root_follows_cache_env(monkeypatch, tmp_path):
    monkeypatch.setenv("POSEFAST_CACHE_DIR", str(tmp_path))
    assert default_synthetic_root() == os.path.join(str(tmp_path), "synthetic")
