"""``CocoKeypoints``: COCO person keypoints as fixed-size ``uint8`` crops in a memory-mapped cache."""
import concurrent.futures
import logging
import os
import warnings

import cv2
import numpy as np
import torch
import tqdm

from posefast.data.annotations import load_person_records
from posefast.data.bad_input import BadInputError, BadInputPolicy, format_counts
from posefast.data.cache import (CacheWriter, cache_key, default_cache_dir, discard_cache, file_identity,
                                 image_identities, images_changed, load_cache)
from posefast.data.geometry import box_to_center_size, crop_affine
from posefast.data.image_decode import decode_image

logger = logging.getLogger("posefast.data")

SAMPLE_FIELDS = ("image_id", "ann_id", "bbox", "keypoints", "image_size", "center", "box_size", "cache_affine", "row")


def select_subset(records, subset, seed):
    """``subset`` records picked deterministically from ``seed`` (all of them if ``subset`` is None)."""
    if subset is None or subset >= len(records):
        if subset is not None:
            logger.warning("subset=%d but only %d usable images: using all", subset, len(records))
        return records
    order = np.random.default_rng(seed).permutation(len(records))[:subset]
    return [records[i] for i in sorted(order)]


def build_samples(records, mode, input_size, padding, source="annotations"):
    """Per-sample arrays (image order, then annotation order) for ``topdown`` or ``image`` mode.

    ``center``/``box_size`` describe the input crop in original pixels (aspect = input W:H).
    topdown: one sample per person, box = person box grown to the aspect, times ``padding``.
    image: one sample per image (its first person), box = the whole image letterboxed.
    """
    aspect = input_size[1] / input_size[0]
    rows = []
    for record in records:
        persons = record.persons if mode == "topdown" else record.persons[:1]
        for person in persons:
            rows.append((record, person))
    if not rows:
        raise BadInputError(f"{source}: no usable person annotations (non-crowd, >= 1 labelled keypoint)",
                            "empty_dataset")
    bbox = np.stack([p.bbox for _, p in rows])
    image_size = np.array([(r.width, r.height) for r, _ in rows], dtype=np.float64)
    if mode == "topdown":
        center, box_size = box_to_center_size(bbox, aspect, padding)
    else:
        whole = np.concatenate([np.full((len(rows), 2), -0.5), image_size], axis=1)
        center, box_size = box_to_center_size(whole, aspect, 1.0)
    return {
        "image_id": np.array([r.image_id for r, _ in rows], dtype=np.int64),
        "ann_id": np.array([p.ann_id for _, p in rows], dtype=np.int64),
        "bbox": bbox,
        "keypoints": np.stack([p.keypoints for _, p in rows]),
        "image_size": image_size,
        "center": center.numpy(),
        "box_size": box_size.numpy(),
    }, [r.file_name for r, _ in rows]


class CocoKeypoints:
    """COCO person keypoints, decoded once into a memory-mapped ``uint8`` crop cache.

    Each sample's cached crop is its input box enlarged by ``cache_margin`` (same centre,
    same pixels per original pixel as the model input), so augmentation (scale, rotation)
    sees real image content rather than black borders. ``cache_affine`` maps original image
    pixels to cached-crop pixels.

    Args:
        ann_file, image_dir: COCO person-keypoints JSON and its image folder.
        mode: ``"topdown"`` (one sample per non-crowd person with >= 1 labelled keypoint) or
            ``"image"`` (the whole image letterboxed, supervising its first such person).
        input_size: model input ``(H, W)``.
        subset: keep only this many usable images, chosen from ``seed``.
        cache_dir: where caches live (default ``$POSEFAST_CACHE_DIR`` or ``~/.cache/posefast``).
        skip_bad: skip bad input (counted in ``skipped``) instead of raising ``BadInputError``.
        cache_margin: cached crop size / input crop size.
        padding: box padding in topdown mode.
        progress: show a tqdm bar while building the cache.
    """

    def __init__(self, ann_file, image_dir, mode="topdown", input_size=(256, 192), subset=None, seed=0,
                 cache_dir=None, skip_bad=False, cache_margin=1.5, padding=1.25, progress=True):
        if mode not in ("topdown", "image"):
            raise ValueError(f"mode must be 'topdown' or 'image', got {mode!r}")
        self.ann_file, self.image_dir, self.mode = ann_file, image_dir, mode
        self.input_size = (int(input_size[0]), int(input_size[1]))
        # Even margins keep the un-augmented crop an integer shift of the cached crop.
        self.cache_size = tuple(s + 2 * int(round(s * (cache_margin - 1) / 2)) for s in self.input_size)
        params = {
            "ann_file": file_identity(ann_file), "image_dir": os.path.abspath(image_dir), "mode": mode,
            "input_size": self.input_size, "cache_size": self.cache_size, "subset": subset,
            "seed": seed if subset is not None else None, "skip_bad": bool(skip_bad), "padding": padding,
        }
        root = cache_dir or default_cache_dir()
        stem = os.path.splitext(os.path.basename(ann_file))[0]
        self.cache_path = os.path.join(root, f"coco-{stem}-{mode}-{cache_key(params)}")
        policy = BadInputPolicy(skip_bad)
        cached = load_cache(self.cache_path)
        if cached is not None and images_changed(image_dir, cached[2]):
            logger.info("%s: its images changed since it was built: building it again", self.cache_path)
            discard_cache(self.cache_path)
            cached = None
        if cached is None:
            os.makedirs(root, exist_ok=True)
            self._build(params, subset, seed, padding, policy, progress)
            cached = load_cache(self.cache_path)
        else:
            policy.merge(cached[2]["skipped"])
        self.images, samples, meta = cached
        for name in SAMPLE_FIELDS:
            setattr(self, name, samples[name])
        self.num_images = int(meta["num_images"])
        self.skipped = dict(policy.skipped)
        policy.report(ann_file)
        turned = meta.get("exif_rotated") or {}
        if turned.get("count"):
            warnings.warn(f"{ann_file}: {turned['count']} image(s) carry an EXIF orientation other than upright "
                          f"(e.g. {turned['examples'][0]}); posefast, like COCO, uses their stored pixels, so "
                          "their keypoints must be annotated on those, not on the turned display", stacklevel=2)

    def _build(self, params, subset, seed, padding, policy, progress):
        records = select_subset(load_person_records(self.ann_file, policy), subset, seed)
        samples, file_names = build_samples(records, self.mode, self.input_size, padding, source=self.ann_file)
        scale = np.array([self.cache_size[1] / self.input_size[1], self.cache_size[0] / self.input_size[0]])
        samples["cache_affine"] = crop_affine(samples["center"], samples["box_size"] * scale, self.cache_size).numpy()
        num = len(file_names)
        identities = image_identities(self.image_dir, sorted(set(file_names)))  # before reading them
        self._exif_rotated = []  # appended to by the decoding threads
        writer = CacheWriter(self.cache_path, num, self.cache_size)
        keep = np.ones(num, dtype=bool)
        by_image = {}
        for i, name in enumerate(file_names):
            by_image.setdefault(name, []).append(i)
        try:
            with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                jobs = [pool.submit(self._crop_image, name, rows, samples) for name, rows in by_image.items()]
                bar = tqdm.tqdm(total=num, desc=f"caching {os.path.basename(self.ann_file)}",
                                unit="sample", disable=not progress)
                for job, rows in zip(jobs, by_image.values()):
                    try:
                        crops = job.result()
                    except BadInputError as error:
                        policy.bad(error.reason, f"{error} (annotation ids {samples['ann_id'][rows].tolist()})")
                        keep[rows] = False
                    else:
                        writer.images[rows] = crops
                    bar.update(len(rows))
                bar.close()
            if not keep.any():
                examples = "; ".join(policy.examples.values())
                raise BadInputError(f"{self.ann_file}: no sample survived loading (skipped: "
                                    f"{format_counts(policy.skipped)}; e.g. {examples})", "empty_dataset")
        except BaseException:
            writer.abort()
            raise
        samples["row"] = np.arange(num, dtype=np.int64)
        samples = {name: samples[name][keep] for name in SAMPLE_FIELDS}
        meta = {"params": params, "num_images": len(set(samples["image_id"].tolist())),
                "num_samples": int(keep.sum()), "skipped": dict(policy.skipped), "image_files": identities,
                "exif_rotated": {"count": len(self._exif_rotated), "examples": sorted(self._exif_rotated)[:3]}}
        writer.publish(samples, meta)

    def _crop_image(self, file_name, rows, samples):
        """Decode one image and warp each of its samples into a cached crop."""
        path = os.path.join(self.image_dir, file_name)
        width, height = samples["image_size"][rows[0]].astype(int)
        image = decode_image(path, (width, height), self._exif_rotated)
        out_h, out_w = self.cache_size
        return np.stack([
            cv2.warpAffine(image, samples["cache_affine"][row], (out_w, out_h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            for row in rows])

    def __len__(self):
        return len(self.row)

    def gather(self, indices, out=None):
        """Cached crops ``uint8 [B, Hc, Wc, 3]`` for sample ``indices`` (one copy, into ``out`` if given)."""
        rows = self.row[np.asarray(indices)]
        return np.take(self.images, rows, axis=0, out=out, mode="clip")  # "clip": no extra buffer copy

    def __getitem__(self, index):
        """One sample as a dict of numpy arrays (the crop plus its metadata)."""
        item = {name: getattr(self, name)[index] for name in SAMPLE_FIELDS if name != "row"}
        item["image"] = self.gather([index])[0]
        return item

    def metadata(self, indices):
        """Per-sample metadata of ``indices`` as float64 / int64 torch tensors."""
        indices = np.asarray(indices)
        return {name: torch.from_numpy(np.ascontiguousarray(getattr(self, name)[indices]))
                for name in SAMPLE_FIELDS if name != "row"}
