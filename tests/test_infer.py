"""posefast.infer on an image, a folder with COCO boxes, a short video, and bad input."""
import json
import os
import shutil

import cv2
import numpy as np
import pytest
import torch

from posefast.data import CocoKeypoints, PoseLoader
from posefast.data.normalize import denormalize_to_uint8, normalize_images
from posefast.infer import TOPDOWN_PADDING, crop_persons
from posefast.infer import main as infer_main


def val_images(tiny_run, count):
    with open(tiny_run["val_json"]) as f:
        images = json.load(f)["images"][:count]
    return [os.path.join(tiny_run["image_dir"], im["file_name"]) for im in images]


def run(tiny_run, *args):
    return infer_main(["--checkpoint", str(tiny_run["run"] / "best.pt"), "--device", "cpu", "--no-progress", *args])


def load(path):
    with open(path) as f:
        return json.load(f)


def test_image_whole_frame_protocol(tiny_run, tmp_path, capsys):
    image = val_images(tiny_run, 1)[0]
    assert run(tiny_run, "--input", image, "--output", str(tmp_path), "--draw-threshold", "0") == 0
    assert "frames/s" in capsys.readouterr().out
    drawn, original = cv2.imread(str(tmp_path / os.path.basename(image))), cv2.imread(image)
    assert drawn.shape == original.shape and np.abs(drawn.astype(int) - original).max() > 100  # skeleton drawn
    (pred,) = load(tmp_path / "predictions.json")
    xy = np.array(pred["keypoints"]).reshape(17, 3)[:, :2]
    assert pred["file_name"] == os.path.basename(image) and np.isfinite(xy).all()
    assert (xy >= -1).all() and (xy[:, 0] <= original.shape[1]).all() and (xy[:, 1] <= original.shape[0]).all()


def test_folder_with_coco_boxes_is_top_down_per_person(tiny_run, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for path in val_images(tiny_run, 3):
        shutil.copy(path, folder)
    assert run(tiny_run, "--input", str(folder), "--boxes", tiny_run["val_json"], "--output", str(tmp_path / "out"),
               "--batch", "2") == 0
    data = load(tiny_run["val_json"])
    ids = {im["id"] for im in data["images"] if os.path.exists(folder / im["file_name"])}
    boxes = sorted((a["image_id"], tuple(a["bbox"])) for a in data["annotations"] if a["image_id"] in ids)
    predictions = load(tmp_path / "out" / "predictions.json")
    assert sorted((p["image_id"], tuple(p["box"])) for p in predictions) == boxes
    assert sorted(os.listdir(tmp_path / "out")) == sorted(os.listdir(folder) + ["predictions.json"])


def test_person_crops_match_the_training_data(tiny_run):
    """infer cuts a box exactly as the data pipeline does (same affine, same pixels up to resampling)."""
    dataset = CocoKeypoints(tiny_run["val_json"], tiny_run["image_dir"], input_size=(64, 32),
                            cache_dir=str(tiny_run["root"] / "cache"), progress=False)
    batch = next(iter(PoseLoader(dataset, 2, shuffle=False, drop_last=False, device="cpu", augment=None,
                                 output_stride=4, render_targets=False)))
    data = load(tiny_run["val_json"])
    name = {im["id"]: im["file_name"] for im in data["images"]}[int(batch.image_ids[0])]
    image = cv2.cvtColor(cv2.imread(os.path.join(tiny_run["image_dir"], name)), cv2.COLOR_BGR2RGB)
    crops, affine = crop_persons(image, batch.bbox[:1].double().numpy(), (64, 32), TOPDOWN_PADDING)
    assert torch.allclose(affine.float(), batch.affine[:1], atol=1e-4)
    ours = denormalize_to_uint8(normalize_images(crops)).astype(float)
    theirs = denormalize_to_uint8(batch.images[:1]).astype(float)
    assert np.abs(ours - theirs).mean() < 4


def write_video(path, frames):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (frames[0].shape[1], frames[0].shape[0]))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()


def test_short_video(tiny_run, tmp_path, capsys):
    frame = cv2.resize(cv2.imread(val_images(tiny_run, 1)[0]), (96, 80))
    frames = [np.roll(frame, 3 * i, axis=1) for i in range(5)]
    write_video(tmp_path / "clip.mp4", frames)
    assert run(tiny_run, "--input", str(tmp_path / "clip.mp4"), "--output", str(tmp_path / "out"), "--batch", "2") == 0
    assert "5 frames (video" in capsys.readouterr().out
    predictions = load(tmp_path / "out" / "predictions.json")
    assert [p["image_id"] for p in predictions] == [0, 1, 2, 3, 4]
    capture = cv2.VideoCapture(str(tmp_path / "out" / "clip_pose.mp4"))
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    ok, first = capture.read()
    capture.release()
    assert ok and first.shape == (80, 96, 3)


@pytest.mark.parametrize("case", ["corrupt_image", "not_a_video", "missing", "webcam", "wrong_checkpoint", "empty_folder"])
def test_bad_input_is_one_clear_line(tiny_run, tmp_path, capsys, case):
    checkpoint = str(tiny_run["run"] / "best.pt")
    if case == "corrupt_image":
        target = tmp_path / "broken.jpg"
        target.write_bytes(open(val_images(tiny_run, 1)[0], "rb").read()[:300])
    elif case == "not_a_video":
        target = tmp_path / "notes.mp4"
        target.write_text("hello")
    elif case == "missing":
        target = tmp_path / "nowhere.jpg"
    elif case == "webcam":
        if os.path.exists("/dev/video57"):
            pytest.skip("a device sits at index 57")
        target = "57"
    elif case == "empty_folder":
        target = tmp_path / "empty"
        target.mkdir()
    else:
        checkpoint = str(tiny_run["run"] / "metrics.jsonl")
        target = val_images(tiny_run, 1)[0]
    code = infer_main(["--checkpoint", checkpoint, "--input", str(target), "--output", str(tmp_path / "out"),
                       "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("posefast.infer: error: ") and "Traceback" not in err
    assert (checkpoint if case == "wrong_checkpoint" else str(target)) in err


def test_output_folder_of_the_inputs_is_refused(tiny_run, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(val_images(tiny_run, 1)[0], folder)
    (name,) = os.listdir(folder)
    before = (folder / name).read_bytes()
    assert run(tiny_run, "--input", str(folder), "--output", str(folder)) == 2
    assert "would overwrite them" in capsys.readouterr().err
    assert run(tiny_run, "--input", str(folder / name), "--output", f"{tmp_path}/photos/.") == 2
    assert "would overwrite them" in capsys.readouterr().err
    assert (folder / name).read_bytes() == before and os.listdir(folder) == [name]


def test_unreadable_image_in_a_folder_keeps_the_frames_before_it_or_is_skipped(tiny_run, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    good = val_images(tiny_run, 3)
    for index, path in enumerate(good):
        shutil.copy(path, folder / f"{index}_{os.path.basename(path)}")
    (folder / "1b_broken.jpg").write_bytes(open(good[0], "rb").read()[:300])  # sorts after the second image
    assert run(tiny_run, "--input", str(folder), "--output", str(tmp_path / "stop"), "--batch", "4") == 2
    err = capsys.readouterr().err
    assert "1b_broken.jpg" in err and "the 2 frame(s) before it are written" in err
    assert len(load(tmp_path / "stop" / "predictions.json")) == 2
    assert sorted(os.listdir(tmp_path / "stop")) == sorted(os.listdir(folder))[:2] + ["predictions.json"]

    assert run(tiny_run, "--input", str(folder), "--output", str(tmp_path / "skip"), "--skip-bad") == 0
    out = capsys.readouterr().out
    assert "skipped 1 unreadable image(s)" in out and "1b_broken.jpg" in out
    assert len(load(tmp_path / "skip" / "predictions.json")) == 3

    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    shutil.copy(folder / "1b_broken.jpg", only_bad)
    assert run(tiny_run, "--input", str(only_bad), "--output", str(tmp_path / "none"), "--skip-bad") == 2
    assert "no image of" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    (None, "boxes file not found"),
    ("{not json", "is not valid JSON"),
    ('{"boxes": []}', "expected a list of COCO detections or a COCO dataset"),
    ('[{"image_id": 1, "score": 0.9}]', "malformed entry"),
    ('{"images": [{"file_name": "a.jpg"}], "annotations": []}', "needs an 'id' and a 'file_name'"),
])
def test_bad_boxes_file_names_itself(tmp_path, content, message):
    from posefast.infer_sources import InferInputError, load_boxes

    path = tmp_path / "boxes.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InferInputError, match=message) as error:
        load_boxes(str(path))
    assert str(path) in str(error.value)


def test_drawing_a_person_far_outside_the_frame_does_not_fail():
    from types import SimpleNamespace

    from posefast.infer import draw

    frame = SimpleNamespace(image=np.zeros((60, 80, 3), dtype=np.uint8))
    keypoints = np.full((1, 17, 2), 3e9)  # a box of 3e9 px maps its joints that far
    keypoints[0, 0] = (40.0, 30.0)
    out = draw(frame, keypoints, np.ones((1, 17)), np.array([[0.0, 0.0, 3e9, 3e9]]), 0.0, show_boxes=True)
    assert out[30, 40].any() and out[0, 0].any()  # the nose in range, and the box's corner
