"""The on-disk decoded-image cache: one ``uint8`` memory-mapped array of crops per dataset.

A cache lives in ``<cache_dir>/<name>-<key>/`` with ``images.npy`` (``[rows, Hc, Wc, 3]``,
opened with ``np.load(mmap_mode="r")``), ``samples.npz`` (per-sample metadata) and
``meta.json`` (the parameters, human readable). The key hashes everything that shapes the
content, so changing any of it (or editing the annotation file) builds a new cache; an image
it was built from that is put back, removed, replaced or edited since (``meta.json`` records
each one's size and mtime) makes it build again in place. A cache is written to a temporary
folder and renamed into place only once complete.
"""
import hashlib
import json
import os
import shutil
import uuid

import numpy as np

CACHE_FORMAT_VERSION = 1


def default_cache_dir():
    """``$POSEFAST_CACHE_DIR`` if set, else ``~/.cache/posefast``."""
    return os.environ.get("POSEFAST_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "posefast")


def file_identity(path):
    """A string that changes when the file is replaced or edited: absolute path, size, mtime."""
    stat = os.stat(path)
    return f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}"


def image_identities(image_dir, file_names):
    """``{file_name: [size, mtime_ns]}`` of the images a cache is built from (``None`` for one
    that is missing): what :func:`images_changed` compares against."""
    identities = {}
    for name in file_names:
        try:
            stat = os.stat(os.path.join(image_dir, name))
        except OSError:
            identities[name] = None
        else:
            identities[name] = [stat.st_size, stat.st_mtime_ns]
    return identities


def images_changed(image_dir, meta):
    """Whether an image a cache was built from has been added back, removed, replaced or
    edited since (one ``stat`` per image the cache uses; a cache that did not record its
    images counts as changed)."""
    recorded = meta.get("image_files")
    return recorded is None or image_identities(image_dir, recorded) != recorded


def discard_cache(cache_dir):
    """Remove a published cache (a stale one, before it is built again)."""
    shutil.rmtree(cache_dir, ignore_errors=True)


def cache_key(params):
    """A short hash of a JSON-serialisable dict of parameters (plus the cache format version)."""
    payload = json.dumps({"format": CACHE_FORMAT_VERSION, **params}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class CacheWriter:
    """Writes a new cache into a temporary folder, then publishes it atomically."""

    def __init__(self, final_dir, num_rows, crop_hw):
        self.final_dir = final_dir
        self.tmp_dir = f"{final_dir}.tmp-{uuid.uuid4().hex[:8]}"
        os.makedirs(self.tmp_dir)
        self.images = np.lib.format.open_memmap(
            os.path.join(self.tmp_dir, "images.npy"), mode="w+", dtype=np.uint8,
            shape=(max(num_rows, 1), crop_hw[0], crop_hw[1], 3))

    def publish(self, samples, meta):
        """Flush the images, write the metadata and move the folder to its final name."""
        self.images.flush()
        del self.images
        np.savez(os.path.join(self.tmp_dir, "samples.npz"), **samples)
        with open(os.path.join(self.tmp_dir, "meta.json"), "w") as handle:
            json.dump(meta, handle, indent=1, sort_keys=True)
        try:
            os.rename(self.tmp_dir, self.final_dir)
        except OSError:  # another process published the same cache first: use theirs
            shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def abort(self):
        """Remove the partial cache."""
        self.images = None
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


def load_cache(cache_dir):
    """``(images memmap, samples dict, meta dict)`` of a complete cache, or ``None``."""
    meta_path = os.path.join(cache_dir, "meta.json")
    if not os.path.isfile(meta_path):
        return None
    with open(meta_path) as handle:
        meta = json.load(handle)
    with np.load(os.path.join(cache_dir, "samples.npz")) as archive:
        samples = {name: archive[name] for name in archive.files}
    images = np.load(os.path.join(cache_dir, "images.npy"), mmap_mode="r")
    return images, samples, meta
