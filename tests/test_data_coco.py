"""CocoKeypoints on the real COCO subset: counts against pycocotools, subsets, modes and the cache."""
import os
import shutil

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

import posefast.data.coco as coco_module
from posefast.data import CocoKeypoints
from posefast.data.annotations import load_person_records
from posefast.data.bad_input import BadInputPolicy


def pycocotools_counts(ann_file):
    """(images, persons) with >= 1 non-crowd person with num_keypoints > 0, per pycocotools."""
    coco = COCO(ann_file)
    person_ids = coco.getCatIds(catNms=["person"])
    images = persons = 0
    for image_id in coco.getImgIds():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id, catIds=person_ids, iscrowd=False))
        usable = [a for a in anns if a["num_keypoints"] > 0 and any(v > 0 for v in a["keypoints"][2::3])]
        images += bool(usable)
        persons += len(usable)
    return images, persons


@pytest.mark.parametrize("split", ["train", "val"])
def test_counts_match_pycocotools(coco_dir, split):
    ann_file = os.path.join(coco_dir, f"{split}.json")
    records = load_person_records(ann_file, BadInputPolicy(skip_bad=False))
    assert (len(records), sum(len(r.persons) for r in records)) == pycocotools_counts(ann_file)


@pytest.fixture(scope="module")
def val_topdown(coco_dir, tmp_path_factory):
    return CocoKeypoints(os.path.join(coco_dir, "val.json"), os.path.join(coco_dir, "images"),
                         cache_dir=str(tmp_path_factory.mktemp("cache")), progress=False)


def test_topdown_has_one_sample_per_person(coco_dir, val_topdown):
    images, persons = pycocotools_counts(os.path.join(coco_dir, "val.json"))
    assert len(val_topdown) == persons and val_topdown.num_images == images
    assert val_topdown.images.shape[1:] == (*val_topdown.cache_size, 3) and val_topdown.images.dtype == np.uint8
    assert len(np.unique(val_topdown.ann_id)) == len(val_topdown)
    # The input box has the input aspect ratio (W:H = 192:256) and contains the padded person box.
    w, h = val_topdown.box_size.T
    assert np.allclose(w / h, 192 / 256)
    assert (w >= val_topdown.bbox[:, 2] * 1.25 - 1e-6).all() and (h >= val_topdown.bbox[:, 3] * 1.25 - 1e-6).all()


def test_image_mode_letterboxes_whole_image_first_person(coco_dir, tmp_path):
    ann_file = os.path.join(coco_dir, "val.json")
    dataset = CocoKeypoints(ann_file, os.path.join(coco_dir, "images"), mode="image", subset=15,
                            cache_dir=str(tmp_path), progress=False)
    assert len(dataset) == dataset.num_images == 15
    coco = COCO(ann_file)
    for i in range(len(dataset)):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=int(dataset.image_id[i]), iscrowd=False))
        first = next(a for a in anns if a["num_keypoints"] > 0)
        assert dataset.ann_id[i] == first["id"]
        width, height = dataset.image_size[i]
        assert np.allclose(dataset.center[i], [(width - 1) / 2, (height - 1) / 2])
        box_w, box_h = dataset.box_size[i]
        assert np.isclose(box_w / box_h, 192 / 256) and box_w >= width - 1e-6 and box_h >= height - 1e-6
        assert np.isclose(box_w, width) or np.isclose(box_h, height)  # fits exactly along one side


def test_subset_is_deterministic_from_seed(coco_dir, tmp_path):
    args = (os.path.join(coco_dir, "val.json"), os.path.join(coco_dir, "images"))
    first = CocoKeypoints(*args, subset=12, seed=3, cache_dir=str(tmp_path / "a"), progress=False)
    again = CocoKeypoints(*args, subset=12, seed=3, cache_dir=str(tmp_path / "b"), progress=False)
    other = CocoKeypoints(*args, subset=12, seed=4, cache_dir=str(tmp_path / "a"), progress=False)
    assert first.num_images == 12
    assert np.array_equal(first.ann_id, again.ann_id) and np.array_equal(first.images[:], again.images[:])
    assert set(first.image_id) != set(other.image_id)
    assert first.cache_path != other.cache_path


def test_cache_is_reused_and_rebuilt_when_inputs_change(coco_dir, tmp_path, monkeypatch):
    ann_file = str(tmp_path / "val.json")
    shutil.copy(os.path.join(coco_dir, "val.json"), ann_file)
    image_dir = os.path.join(coco_dir, "images")
    cache_dir = str(tmp_path / "cache")
    decoded = []
    real_decode = coco_module.decode_image
    monkeypatch.setattr(coco_module, "decode_image", lambda *a: decoded.append(a[0]) or real_decode(*a))

    first = CocoKeypoints(ann_file, image_dir, subset=5, cache_dir=cache_dir, progress=False)
    assert len(decoded) == 5  # every image decoded exactly once
    second = CocoKeypoints(ann_file, image_dir, subset=5, cache_dir=cache_dir, progress=False)
    assert len(decoded) == 5 and second.cache_path == first.cache_path  # reused: no decoding
    assert np.array_equal(first.gather([0, 3]), second.gather([0, 3]))

    CocoKeypoints(ann_file, image_dir, subset=5, input_size=(128, 96), cache_dir=cache_dir, progress=False)
    assert len(decoded) == 10  # another input size -> another cache
    os.utime(ann_file, ns=(0, os.stat(ann_file).st_mtime_ns + 10**9))  # the annotation file changed
    third = CocoKeypoints(ann_file, image_dir, subset=5, cache_dir=cache_dir, progress=False)
    assert len(decoded) == 15 and third.cache_path != first.cache_path
    assert not [name for name in os.listdir(cache_dir) if ".tmp-" in name]  # no partial caches left behind


def test_env_var_sets_default_cache_dir(coco_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("POSEFAST_CACHE_DIR", str(tmp_path / "from_env"))
    dataset = CocoKeypoints(os.path.join(coco_dir, "val.json"), os.path.join(coco_dir, "images"), subset=2,
                            progress=False)
    assert dataset.cache_path.startswith(str(tmp_path / "from_env"))


def test_gather_and_getitem(val_topdown):
    crops = val_topdown.gather(np.array([5, 1, 9]))
    assert crops.shape == (3, *val_topdown.cache_size, 3)
    assert np.array_equal(crops[1], val_topdown[1]["image"])
    meta = val_topdown.metadata([5, 1])
    assert meta["keypoints"].shape == (2, 17, 3) and meta["keypoints"].dtype == torch.float64
