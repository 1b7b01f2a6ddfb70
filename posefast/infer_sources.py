"""Where ``posefast.infer`` reads frames from, and the person boxes it may be given.

A source is an image file, a folder of images, a video file, or a webcam index (``0``).
Each yields ``Frame``s (RGB ``uint8``); anything unreadable raises ``InferInputError``
naming the path or device.
"""
from __future__ import annotations

import dataclasses
import json
import os

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class InferInputError(ValueError):
    """Input that ``posefast.infer`` cannot use (the message names it)."""


class UnreadableImageError(InferInputError):
    """An image of the input that cannot be decoded (missing, corrupt or truncated)."""


@dataclasses.dataclass
class Frame:
    """One picture to run on: ``image`` RGB uint8 ``[H, W, 3]``; ``name`` (file name or
    ``frame_000123``); ``image_id`` (COCO id: numeric file stem, else running index; the
    frame index for video); ``index`` (running count)."""

    image: np.ndarray
    name: str
    image_id: int
    index: int


class Source:
    """Frames of ``spec``: an image, a folder of images, a video file or a webcam index.

    ``kind`` is ``"image"``, ``"folder"``, ``"video"`` or ``"webcam"``; ``fps`` the video's
    frame rate (else None); ``name`` a stem for output files. ``max_frames`` stops early.
    An image that cannot be decoded is an :class:`InferInputError` naming it, or, with
    ``skip_bad``, skipped and listed in ``skipped`` (``"path: reason"``).
    """

    def __init__(self, spec: str, max_frames: int | None = None, skip_bad: bool = False):
        self.spec, self.max_frames, self.fps = str(spec), max_frames, None
        self.skip_bad, self.skipped, self.exif_rotated = skip_bad, [], []
        if os.path.isdir(self.spec):
            self.kind = "folder"
            self.files = sorted(f for f in os.listdir(self.spec) if f.lower().endswith(IMAGE_EXTENSIONS))
            if not self.files:
                raise InferInputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {self.spec}")
        elif os.path.isfile(self.spec):
            self.kind = "image" if self.spec.lower().endswith(IMAGE_EXTENSIONS) else "video"
        elif self.spec.isdigit():
            self.kind = "webcam"
        else:
            raise InferInputError(f"input not found: {self.spec} (an image, a folder, a video or a webcam index)")
        if self.kind in ("video", "webcam"):
            self.capture = self._open_capture()
        base = os.path.basename(os.path.normpath(self.spec))
        self.name = f"webcam{self.spec}" if self.kind == "webcam" else os.path.splitext(base)[0]

    def _open_capture(self):
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # our error says it once, clearly
        try:
            capture = cv2.VideoCapture(int(self.spec) if self.kind == "webcam" else self.spec)
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not capture.isOpened():
            capture.release()
            what = f"webcam {self.spec} is not present or cannot be opened" if self.kind == "webcam" else \
                f"cannot read {self.spec}: not an image ({', '.join(IMAGE_EXTENSIONS)}) nor a video OpenCV can open"
            raise InferInputError(what)
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and fps > 0 else None
        return capture

    def __iter__(self):
        if self.kind in ("image", "folder"):
            yield from self._images()
        else:
            yield from self._video()

    def _images(self):
        from posefast.data.bad_input import BadInputError
        from posefast.data.image_decode import decode_image

        paths = [self.spec] if self.kind == "image" else [os.path.join(self.spec, f) for f in self.files]
        for index, path in enumerate(paths[: self.max_frames]):
            try:
                image = decode_image(path, exif_rotated=self.exif_rotated)
            except BadInputError as exc:
                if not self.skip_bad:
                    raise UnreadableImageError(str(exc)) from None
                self.skipped.append(str(exc))
                continue
            stem = os.path.splitext(os.path.basename(path))[0]
            yield Frame(image, os.path.basename(path), int(stem) if stem.isdigit() else index, index)

    def _video(self):
        index = 0
        try:
            while self.max_frames is None or index < self.max_frames:
                ok, bgr = self.capture.read()
                if not ok:
                    break
                yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), f"frame_{index:06d}", index, index)
                index += 1
        finally:
            self.capture.release()
        if index == 0:
            raise InferInputError(f"no frame could be read from {'webcam ' if self.kind == 'webcam' else ''}{self.spec}")


def load_boxes(path: str, min_score: float = 0.0) -> tuple[dict, dict]:
    """Person boxes from a COCO-format JSON: ``({image_id: [(xywh, score), ...]}, {file_name: image_id})``.

    Accepts detection results (a list of ``{"image_id", "bbox", "score"[, "category_id"]}``)
    or a dataset file (``{"images": [...], "annotations": [...]}``, whose ``file_name``s map
    files to ids; annotation boxes get score 1). Boxes of other categories than person (1),
    crowd boxes, boxes without area and boxes scoring below ``min_score`` are dropped. Files
    not named in a dataset file are matched by their numeric stem (video: frame index).
    """
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise InferInputError(f"boxes file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InferInputError(f"boxes file {path} is not valid JSON: {exc}") from None
    names = {}
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        try:
            names = {im["file_name"]: int(im["id"]) for im in data.get("images", [])}
        except (KeyError, TypeError, ValueError):
            raise InferInputError(f"boxes file {path}: each of its 'images' needs an 'id' and a 'file_name'") from None
        entries = data["annotations"]
    elif isinstance(data, list):
        entries = data
    else:
        raise InferInputError(f"boxes file {path}: expected a list of COCO detections or a COCO dataset with annotations")
    boxes = {}
    for entry in entries:
        try:
            box = np.asarray(entry["bbox"], dtype=np.float64).reshape(4)
            image_id, score = int(entry["image_id"]), float(entry.get("score", 1.0))
        except (KeyError, TypeError, ValueError):
            raise InferInputError(f"boxes file {path}: malformed entry {entry!r:.120}") from None
        if entry.get("category_id", 1) != 1 or entry.get("iscrowd", 0) or box[2] <= 0 or box[3] <= 0 or score < min_score:
            continue
        boxes.setdefault(image_id, []).append((box, score))
    return boxes, names
