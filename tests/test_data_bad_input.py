"""Bad input: a clear error naming the file / annotation by default, counted skips with skip_bad=True."""
import copy
import json
import os

import cv2
import numpy as np
import pytest

from posefast.data import BadInputError, CocoKeypoints


def person(ann_id, image_id, x=20.0, y=30.0):
    keypoints = []
    for k in range(17):
        keypoints += [x + k, y + k, 2] if k % 2 == 0 else [0, 0, 0]
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "num_keypoints": 9,
            "bbox": [x - 5, y - 5, 30.0, 30.0], "area": 900.0, "keypoints": keypoints}


def good_coco():
    return {
        "images": [{"id": i, "file_name": f"{i:012d}.jpg", "width": 64, "height": 80} for i in (1, 2, 3)],
        "annotations": [person(10, 1), person(11, 1, x=5.0), person(20, 2), person(30, 3)],
        "categories": [{"id": 1, "name": "person"}],
    }


def write_dataset(root, coco):
    images = root / "images"
    images.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for entry in coco["images"]:
        pixels = rng.integers(0, 256, (80, 64, 3)).astype(np.uint8)
        cv2.imwrite(str(images / entry["file_name"]), pixels)
    ann_file = root / "ann.json"
    ann_file.write_text(json.dumps(coco))
    return str(ann_file), str(images)


def load(tmp_path, ann_file, image_dir, **kwargs):
    return CocoKeypoints(ann_file, image_dir, input_size=(64, 48), cache_dir=str(tmp_path / "cache"),
                         progress=False, **kwargs)


def test_good_dataset_loads(tmp_path):
    dataset = load(tmp_path, *write_dataset(tmp_path, good_coco()))
    assert len(dataset) == 4 and dataset.skipped == {}


def test_missing_image(tmp_path):
    ann_file, image_dir = write_dataset(tmp_path, good_coco())
    (tmp_path / "images" / "000000000002.jpg").unlink()
    with pytest.raises(BadInputError, match="000000000002.jpg") as error:
        load(tmp_path, ann_file, image_dir)
    assert error.value.reason == "missing_image"
    with pytest.warns(UserWarning, match="missing_image: 1"):
        dataset = load(tmp_path, ann_file, image_dir, skip_bad=True)
    assert len(dataset) == 3 and dataset.skipped == {"missing_image": 1} and 2 not in dataset.image_id
    with pytest.warns(UserWarning, match="missing_image: 1"):  # loaded from the cache: still reported
        again = load(tmp_path, ann_file, image_dir, skip_bad=True)
    assert again.skipped == {"missing_image": 1}


def test_cache_follows_the_image_files(tmp_path):
    """An image put back, replaced or edited after a cache was built gets a new cache."""
    ann_file, image_dir = write_dataset(tmp_path, good_coco())
    image = tmp_path / "images" / "000000000002.jpg"
    saved = image.read_bytes()
    image.unlink()
    with pytest.warns(UserWarning, match="missing_image: 1"):
        assert len(load(tmp_path, ann_file, image_dir, skip_bad=True)) == 3
    image.write_bytes(saved)  # put back: every person again
    restored = load(tmp_path, ann_file, image_dir, skip_bad=True)
    assert len(restored) == 4 and restored.skipped == {}
    row = int(np.flatnonzero(restored.image_id == 2)[0])
    cv2.imwrite(str(image), np.full((80, 64, 3), 255, np.uint8))  # replaced by another picture, same name
    before = np.array(restored.images[restored.row[row]])
    replaced = load(tmp_path, ann_file, image_dir, skip_bad=True)
    assert not np.array_equal(replaced.images[replaced.row[row]], before)
    assert (replaced.images[replaced.row[row]] == 255).any()
    again = load(tmp_path, ann_file, image_dir, skip_bad=True)  # unchanged since: the same cache, not rebuilt
    assert os.stat(os.path.join(again.cache_path, "images.npy")).st_mtime_ns == \
        os.stat(os.path.join(replaced.cache_path, "images.npy")).st_mtime_ns


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_or_truncated_jpeg(tmp_path, damage):
    ann_file, image_dir = write_dataset(tmp_path, good_coco())
    path = tmp_path / "images" / "000000000001.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x00not a jpeg" * 20)
    with pytest.raises(BadInputError, match="000000000001.jpg") as error:
        load(tmp_path, ann_file, image_dir)
    assert error.value.reason == "corrupt_image"
    with pytest.warns(UserWarning, match="corrupt_image"):
        dataset = load(tmp_path, ann_file, image_dir, skip_bad=True)
    assert dataset.skipped == {"corrupt_image": 1} and sorted(dataset.ann_id) == [20, 30]


def test_malformed_json_always_raises_naming_the_file(tmp_path):
    ann_file, image_dir = write_dataset(tmp_path, good_coco())
    with open(ann_file, "w") as handle:
        handle.write('{"images": [1, 2')
    for skip_bad in (False, True):  # nothing to skip to: a broken file is always an error
        with pytest.raises(BadInputError, match="ann.json"):
            load(tmp_path, ann_file, image_dir, skip_bad=skip_bad)


def test_malformed_annotation_entry(tmp_path):
    coco = good_coco()
    del coco["annotations"][2]["bbox"]
    ann_file, image_dir = write_dataset(tmp_path, coco)
    with pytest.raises(BadInputError, match="annotation id 20"):
        load(tmp_path, ann_file, image_dir)
    with pytest.warns(UserWarning, match="malformed_annotation: 1"):
        assert load(tmp_path, ann_file, image_dir, skip_bad=True).skipped == {"malformed_annotation": 1}


def test_wrong_number_of_keypoint_values(tmp_path):
    coco = good_coco()
    coco["annotations"][1]["keypoints"] = coco["annotations"][1]["keypoints"][:-3]
    ann_file, image_dir = write_dataset(tmp_path, coco)
    with pytest.raises(BadInputError, match=r"ann.json: annotation id 11: expected 51 keypoint values, got 48"):
        load(tmp_path, ann_file, image_dir)
    with pytest.warns(UserWarning, match="wrong_keypoint_count: 1"):
        dataset = load(tmp_path, ann_file, image_dir, skip_bad=True)
    assert sorted(dataset.ann_id) == [10, 20, 30] and dataset.skipped == {"wrong_keypoint_count": 1}


def test_keypoint_outside_image(tmp_path):
    coco = good_coco()
    bad = copy.deepcopy(coco["annotations"][3])
    bad["keypoints"][0] = 500.0  # nose x beyond the 64 px wide image
    coco["annotations"][3] = bad
    ann_file, image_dir = write_dataset(tmp_path, coco)
    with pytest.raises(BadInputError, match=r"annotation id 30: labelled keypoint \(500.0, 30.0\) outside image"):
        load(tmp_path, ann_file, image_dir)
    with pytest.warns(UserWarning, match="keypoint_outside_image: 1"):
        dataset = load(tmp_path, ann_file, image_dir, skip_bad=True)
    assert dataset.skipped == {"keypoint_outside_image": 1} and 3 not in dataset.image_id
    assert dataset.num_images == 2  # image 3 had no other person, so the image goes too


def test_unlabelled_and_crowd_people_are_not_samples(tmp_path):
    coco = good_coco()
    coco["annotations"][0]["iscrowd"] = 1
    unlabelled = person(40, 3)
    unlabelled["keypoints"] = [0] * 51
    coco["annotations"].append(unlabelled)
    dataset = load(tmp_path, *write_dataset(tmp_path, coco))
    assert sorted(dataset.ann_id) == [11, 20, 30] and dataset.skipped == {}


def test_no_usable_person_names_the_file(tmp_path):
    coco = good_coco()
    for ann in coco["annotations"]:
        ann["iscrowd"] = 1  # crowd boxes are never samples
    ann_file, image_dir = write_dataset(tmp_path, coco)
    for skip_bad in (False, True):  # nothing to skip: an error either way
        with pytest.raises(BadInputError, match=r"ann\.json: no usable person annotations") as error:
            load(tmp_path, ann_file, image_dir, skip_bad=skip_bad)
        assert error.value.reason == "empty_dataset"


@pytest.mark.parametrize("change, reason, named", [
    (lambda c: c["images"][2].update(id=2), "duplicate_id", "image id 2 is used by more than one image"),
    (lambda c: c["annotations"][3].update(id=20), "duplicate_id", "annotation id 20 is used by more than one"),
    (lambda c: c["images"][0].update(id="1"), "malformed_image_entry", "image id '1' is not an integer"),
    (lambda c: c["annotations"][0].update(image_id="1"), "malformed_annotation", "image_id '1' is not an integer"),
])
def test_ids_must_be_unique_integers(tmp_path, change, reason, named):
    """Merged files with clashing ids would attach persons to the wrong picture (or score them
    against the wrong annotation); string ids would not match in COCOeval."""
    coco = good_coco()
    change(coco)
    ann_file, image_dir = write_dataset(tmp_path, coco)
    with pytest.raises(BadInputError, match=named) as error:
        load(tmp_path, ann_file, image_dir)
    assert error.value.reason == reason
    with pytest.warns(UserWarning, match=reason):
        dataset = load(tmp_path, ann_file, image_dir, skip_bad=True)
    assert reason in dataset.skipped


def test_sixteen_bit_grey_images_are_scaled_not_clipped(tmp_path):
    from PIL import Image

    from posefast.data.image_decode import decode_image

    grey = (np.arange(80 * 64).reshape(80, 64) * 12).astype(np.uint16)  # up to 61,428
    cv2.imwrite(str(tmp_path / "g16.png"), grey)
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    rgb = decode_image(str(tmp_path / "g16.png"), (64, 80))
    assert rgb.dtype == np.uint8 and rgb.shape == (80, 64, 3)
    np.testing.assert_array_equal(rgb[..., 0], np.rint(grey / 257.0).astype(np.uint8))  # not all 255


def test_exif_turned_images_are_counted_and_named_in_a_size_mismatch(tmp_path):
    from PIL import Image

    from posefast.data.image_decode import decode_image

    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter
    Image.new("RGB", (64, 80), (90, 20, 20)).save(tmp_path / "turned.jpg", exif=exif)
    turned = []
    assert decode_image(str(tmp_path / "turned.jpg"), (64, 80), turned).shape == (80, 64, 3)  # stored pixels
    assert turned == [str(tmp_path / "turned.jpg")]
    with pytest.raises(BadInputError, match="its EXIF orientation turns it"):
        decode_image(str(tmp_path / "turned.jpg"), (80, 64))  # annotated on the turned display


def test_everything_skipped_says_what_was_skipped(tmp_path):
    coco = good_coco()
    ann_file, image_dir = write_dataset(tmp_path, coco)
    for entry in coco["images"]:
        (tmp_path / "images" / entry["file_name"]).unlink()
    with pytest.raises(BadInputError, match=r"no sample survived loading \(skipped: missing_image: 3; e.g. "
                                            r"image file not found") as error:
        load(tmp_path, ann_file, image_dir, skip_bad=True)
    assert error.value.reason == "empty_dataset"


def test_a_dataset_with_exif_turned_images_warns_each_time_it_loads(tmp_path):
    from PIL import Image

    ann_file, image_dir = write_dataset(tmp_path, good_coco())
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.new("RGB", (64, 80), (10, 90, 10)).save(tmp_path / "images" / "000000000002.jpg", exif=exif)
    for _ in range(2):  # built, then from the cache
        with pytest.warns(UserWarning, match=r"1 image\(s\) carry an EXIF orientation .*000000000002.jpg"):
            assert len(load(tmp_path, ann_file, image_dir)) == 4
