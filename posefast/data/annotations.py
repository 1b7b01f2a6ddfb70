"""Reading and validating a COCO person-keypoints JSON into per-image person records."""
import collections
import dataclasses
import json

import numpy as np

from posefast.data.bad_input import BadInputError
from posefast.skeleton import NUM_KEYPOINTS


@dataclasses.dataclass
class Person:
    """One non-crowd person annotation with at least one labelled keypoint."""

    ann_id: int
    bbox: np.ndarray  # [4] float64 xywh, original image px
    keypoints: np.ndarray  # [17, 3] float64 (x, y, v), original image px


@dataclasses.dataclass
class ImageRecord:
    """An image that holds at least one usable person, with its persons in annotation order."""

    image_id: int
    file_name: str
    width: int
    height: int
    persons: list


def read_json(ann_file):
    """Parse a JSON file, turning any failure into a ``BadInputError`` that names the file."""
    try:
        with open(ann_file, "rb") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise BadInputError(f"annotation file not found: {ann_file}", "missing_annotation_file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadInputError(f"malformed JSON in {ann_file}: {error}", "malformed_json") from None


def _person_category_ids(data):
    categories = data.get("categories") or []
    ids = {c.get("id") for c in categories if isinstance(c, dict) and c.get("name") == "person"}
    return ids or None  # None: no person category declared -> take every annotation


def coco_id(value, what):
    """An id as COCO writes them: an integer (``"419"`` is refused: pycocotools, which scores
    the predictions, would not match it to ``419``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} {value!r} is not an integer")
    return value


def duplicated(entries, key):
    """The values of ``entry[key]`` that occur more than once among the dict ``entries``."""
    counts = collections.Counter(e.get(key) for e in entries
                                 if isinstance(e, dict) and isinstance(e.get(key), (int, float, str)))
    return {value for value, count in counts.items() if count > 1}


def _parse_images(data, ann_file, policy):
    images = {}
    twice = duplicated(data["images"], "id")
    for entry in data["images"]:
        try:
            image_id = coco_id(entry["id"], "image id")
            record = ImageRecord(image_id, str(entry["file_name"]), int(entry["width"]), int(entry["height"]), [])
        except (KeyError, TypeError, ValueError) as error:
            policy.bad("malformed_image_entry", f"{ann_file}: malformed image entry {entry!r:.200}: {error!r}")
            continue
        if image_id in twice:  # which of them would its annotations belong to? neither is used
            policy.bad("duplicate_id", f"{ann_file}: image id {image_id} is used by more than one image "
                       f"(one of them {record.file_name}); ids must be unique (merged files?)")
            continue
        if record.width <= 0 or record.height <= 0:
            policy.bad("malformed_image_entry", f"{ann_file}: image {image_id} has size {record.width}x{record.height}")
            continue
        images[image_id] = record
    return images


def _parse_person(entry, images, ann_file, policy):
    """Return ``(image_id, Person)``, ``None`` for a valid but unused annotation, or record bad input."""
    ann_id = entry.get("id", "?") if isinstance(entry, dict) else "?"
    where = f"{ann_file}: annotation id {ann_id}"
    try:
        image_id = coco_id(entry["image_id"], "image_id")
        raw_keypoints = entry["keypoints"]
        bbox = np.asarray(entry["bbox"], dtype=np.float64)
        crowd = bool(entry.get("iscrowd", 0))
        ann_id = coco_id(entry["id"], "id")
    except (KeyError, TypeError, ValueError) as error:
        policy.bad("malformed_annotation", f"{where}: malformed annotation ({error!r})")
        return None
    if crowd:
        return None
    if image_id not in images:
        policy.bad("unknown_image", f"{where}: refers to image id {image_id}, which is not in 'images'")
        return None
    if not isinstance(raw_keypoints, list) or len(raw_keypoints) != 3 * NUM_KEYPOINTS:
        count = len(raw_keypoints) if isinstance(raw_keypoints, list) else type(raw_keypoints).__name__
        policy.bad("wrong_keypoint_count",
                   f"{where}: expected {3 * NUM_KEYPOINTS} keypoint values, got {count}")
        return None
    try:
        keypoints = np.asarray(raw_keypoints, dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
    except (TypeError, ValueError):
        policy.bad("malformed_annotation", f"{where}: non-numeric keypoint values")
        return None
    if not np.isfinite(keypoints).all() or bbox.shape != (4,) or not np.isfinite(bbox).all():
        policy.bad("malformed_annotation", f"{where}: non-finite keypoints or a bbox that is not 4 numbers")
        return None
    labelled = keypoints[:, 2] > 0
    if not labelled.any():
        return None
    image = images[image_id]
    xy = keypoints[labelled, :2]
    outside = (xy[:, 0] < 0) | (xy[:, 0] > image.width) | (xy[:, 1] < 0) | (xy[:, 1] > image.height)
    if outside.any():
        x, y = xy[outside][0]
        policy.bad("keypoint_outside_image",
                   f"{where}: labelled keypoint ({x:.1f}, {y:.1f}) outside image {image.file_name} "
                   f"({image.width}x{image.height})")
        return None
    if bbox[2] <= 0 or bbox[3] <= 0:
        policy.bad("invalid_bbox", f"{where}: bbox {bbox.tolist()} has no area")
        return None
    return image_id, Person(ann_id, bbox, keypoints)


def load_person_records(ann_file, policy):
    """Images (sorted by id) holding >= 1 non-crowd person with >= 1 labelled keypoint.

    Bad entries go to ``policy`` (raise or skip). A file that is not valid JSON, or lacks
    ``images`` / ``annotations``, always raises: there is nothing to skip to.
    """
    data = read_json(ann_file)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise BadInputError(f"malformed COCO file {ann_file}: needs 'images' and 'annotations' lists",
                            "malformed_json")
    images = _parse_images(data, ann_file, policy)
    person_ids = _person_category_ids(data)
    twice = duplicated(data["annotations"], "id")  # COCOeval indexes annotations by id
    for entry in data["annotations"]:
        if person_ids is not None and isinstance(entry, dict) and entry.get("category_id") not in person_ids:
            continue
        if isinstance(entry, dict) and entry.get("id") in twice:
            policy.bad("duplicate_id", f"{ann_file}: annotation id {entry['id']} is used by more than one "
                       "annotation; ids must be unique (merged files?)")
            continue
        parsed = _parse_person(entry, images, ann_file, policy)
        if parsed is not None:
            images[parsed[0]].persons.append(parsed[1])
    return [images[i] for i in sorted(images) if images[i].persons]

