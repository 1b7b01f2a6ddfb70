"""PoseLoader: flip swap, augment/invert round trip, visibility, targets, image alignment, sharding."""
import os

import numpy as np
import pytest
import torch

import kernels_py
from posefast.data import AugmentConfig, CocoKeypoints, PoseLoader, benchmark_loader, invert_keypoints
from posefast.data.image_decode import decode_image
from posefast.data.normalize import denormalize_to_uint8, normalize_images
from posefast.data.warp import center_crop_images
from posefast.skeleton import FLIP_INDEX


@pytest.fixture(scope="module")
def dataset(coco_dir, tmp_path_factory):
    return CocoKeypoints(os.path.join(coco_dir, "val.json"), os.path.join(coco_dir, "images"), subset=16,
                         cache_dir=str(tmp_path_factory.mktemp("cache")), progress=False)


def first_batch(dataset, augment, batch_size=16, **kwargs):
    options = dict(shuffle=False, drop_last=False, device="cpu", output_stride=4)
    options.update(kwargs)
    return next(iter(PoseLoader(dataset, batch_size, augment=augment, **options)))


def test_batch_fields(dataset):
    batch = first_batch(dataset, AugmentConfig())
    b = len(batch)
    assert batch.images.shape == (b, 3, 256, 192) and batch.images.dtype == torch.float32
    assert batch.keypoints.shape == (b, 17, 2) and batch.visible.shape == (b, 17)
    assert batch.targets.shape == (b, 17, 64, 48) and batch.affine.shape == (b, 2, 3)
    assert batch.bbox.shape == (b, 4) and batch.image_ids.dtype == torch.int64 and batch.ann_ids.dtype == torch.int64
    assert batch.gt_keypoints_orig.shape == (b, 17, 2) and batch.gt_visible_orig.shape == (b, 17)
    assert -3 < batch.images.mean() < 3 and set(batch.visible.unique().tolist()) <= {0.0, 1.0}


def test_horizontal_flip_mirrors_image_and_swaps_joints(dataset):
    plain = first_batch(dataset, None)
    flip = first_batch(dataset, AugmentConfig(scale=0.0, rotation=0.0, flip_prob=1.0))
    assert flip.flipped.all() and not plain.flipped.any()
    assert torch.allclose(flip.images, plain.images.flip(-1), atol=1e-3)
    mirrored = plain.keypoints[:, FLIP_INDEX].clone()
    mirrored[..., 0] = 191 - mirrored[..., 0]
    vis = plain.visible[:, FLIP_INDEX]
    assert torch.equal(flip.visible, vis)
    assert torch.allclose(flip.keypoints[vis > 0], mirrored[vis > 0], atol=1e-3)
    assert torch.allclose(flip.targets, plain.targets[:, FLIP_INDEX].flip(-1), atol=1e-4)
    # Left shoulder of a flipped sample = the right shoulder of the original, mirrored.
    assert torch.allclose(flip.keypoints[:, 5][vis[:, 5] > 0], mirrored[:, 5][vis[:, 5] > 0], atol=1e-3)


@pytest.mark.parametrize("half_body_prob", [0.0, 1.0])
def test_augment_then_invert_returns_original_keypoints(dataset, half_body_prob):
    for epoch in range(2):
        loader = PoseLoader(dataset, 8, shuffle=True, drop_last=False, device="cpu", output_stride=4,
                            augment=AugmentConfig(half_body_prob=half_body_prob), seed=epoch)
        for batch in loader:
            back = invert_keypoints(batch.keypoints, batch.affine, batch.flipped)
            labelled = batch.gt_visible_orig > 0
            assert (back - batch.gt_keypoints_orig)[labelled].abs().max() < 0.5
            # Without the flip flags, joint order stays the input's (swapped for flipped samples).
            raw = invert_keypoints(batch.keypoints, batch.affine)
            expected = torch.where(batch.flipped[:, None, None], batch.gt_keypoints_orig[:, FLIP_INDEX],
                                   batch.gt_keypoints_orig)
            keep = torch.where(batch.flipped[:, None], labelled[:, FLIP_INDEX], labelled)
            assert (raw - expected)[keep].abs().max() < 0.5


def test_keypoints_leaving_the_crop_become_invisible(dataset):
    # Zooming in 2x pushes many labelled joints out of the crop.
    batch = first_batch(dataset, AugmentConfig(scale=0.0, rotation=0.0, flip_prob=0.0, half_body_prob=0.0))
    zoom = first_batch(dataset, AugmentConfig(scale=0.5, rotation=0.0, flip_prob=0.0), batch_size=16)
    x, y = zoom.keypoints.unbind(-1)
    inside = (x >= -0.5) & (x < 191.5) & (y >= -0.5) & (y < 255.5)
    labelled = zoom.gt_visible_orig > 0
    assert torch.equal(zoom.visible > 0, labelled & inside)
    assert (labelled & ~inside).any()  # the case really occurs in this batch
    assert torch.equal(batch.visible > 0, labelled & ((batch.keypoints[..., 0] >= -0.5) & (batch.keypoints[..., 0] < 191.5)
                                                      & (batch.keypoints[..., 1] >= -0.5) & (batch.keypoints[..., 1] < 255.5)))


@pytest.mark.parametrize("stride", [4, 8])
def test_targets_follow_the_model_stride(dataset, stride):
    batch = first_batch(dataset, AugmentConfig(), output_stride=stride, sigma=1.5)
    size = (256 // stride, 192 // stride)
    assert torch.allclose(batch.heatmap_keypoints, (batch.keypoints + 0.5) / stride - 0.5)
    expected = kernels_py.render_heatmaps(batch.heatmap_keypoints, batch.visible, size, 1.5)
    assert batch.targets.shape[-2:] == size and torch.allclose(batch.targets, expected, atol=1e-5)
    assert first_batch(dataset, None, output_stride=stride, render_targets=False).targets is None


def test_images_align_with_original_pixels(dataset, coco_dir):
    """Pixels of an augmented input, mapped back through the affine, match the original JPEG."""
    batch = first_batch(dataset, AugmentConfig(rotation_prob=1.0, flip_prob=0.5))
    pixels = denormalize_to_uint8(batch.images).astype(np.float64)
    rng = np.random.default_rng(0)
    errors = []
    for i in range(len(batch)):
        record = dataset[int(batch.indices[i])]
        original = decode_image(os.path.join(coco_dir, "images", f"{int(record['image_id']):012d}.jpg")).astype(float)
        ij = torch.from_numpy(rng.integers([20, 20], [236, 172], (200, 2)).astype(np.float64))
        xy = invert_keypoints(ij.flip(-1)[None], batch.affine[i:i + 1])[0].numpy()
        height, width = original.shape[:2]
        ok = (xy[:, 0] > 1) & (xy[:, 0] < width - 2) & (xy[:, 1] > 1) & (xy[:, 1] < height - 2)
        x0, y0 = np.floor(xy[ok]).astype(int).T
        fx, fy = (xy[ok] - np.floor(xy[ok])).T[..., None]
        sample = (original[y0, x0] * (1 - fx) * (1 - fy) + original[y0, x0 + 1] * fx * (1 - fy)
                  + original[y0 + 1, x0] * (1 - fx) * fy + original[y0 + 1, x0 + 1] * fx * fy)
        ii, jj = ij.numpy()[ok].astype(int).T
        errors.append(np.abs(pixels[i, ii, jj] - sample))
    errors = np.concatenate(errors)
    # Two bilinear resamplings differ a little on real photos (median ~0.4, mean ~1 grey levels);
    # a quarter-pixel slip anywhere in the chain already gives a median ~1.4 and mean ~2.9.
    assert np.median(errors) < 1.0 and errors.mean() < 2.0


def test_sharding_epochs_and_determinism(dataset):
    def order(loader):
        return torch.cat([batch.indices for batch in loader]).tolist()

    make = lambda rank, world, seed=0: PoseLoader(dataset, 5, shuffle=True, drop_last=False, device="cpu",  # noqa: E731
                                                  augment=None, output_stride=4, render_targets=False,
                                                  rank=rank, world_size=world, seed=seed)
    shards = [make(rank, 3) for rank in range(3)]
    seen = [order(loader) for loader in shards]
    per_rank = -(-len(dataset) // 3)  # padded by wrapping around to a multiple of 3
    assert [len(s) for s in seen] == [per_rank] * 3 and all(len(loader) == -(-per_rank // 5) for loader in shards)
    assert set(sum(seen, [])) == set(range(len(dataset)))
    single = make(0, 1)
    first = order(single)
    assert sorted(first) == list(range(len(dataset))) and first == order(make(0, 1))
    single.set_epoch(1)
    assert order(single) != first
    assert order(make(0, 1, seed=1)) != first
    dropped = PoseLoader(dataset, 5, shuffle=True, drop_last=True, device="cpu", augment=None, output_stride=4)
    assert len(dropped) == len(dataset) // 5 and [len(b) for b in dropped] == [5] * (len(dataset) // 5)


def test_every_batch_pairs_its_crops_with_its_own_samples(dataset):
    """The epoch's geometry is computed in one pass and sliced per batch: each batch's images,
    boxes, ids and keypoints must still belong to the samples named by its ``indices``."""
    loader = PoseLoader(dataset, 5, shuffle=True, drop_last=False, device="cpu", augment=None, output_stride=4,
                        seed=2)
    loader.set_epoch(1)
    batches = list(loader)
    assert len(batches) > 2 and sorted(torch.cat([b.indices for b in batches]).tolist()) == list(range(len(dataset)))
    for batch in batches:
        rows = batch.indices.numpy()
        crops = torch.from_numpy(dataset.gather(rows))
        assert torch.equal(batch.images, normalize_images(center_crop_images(crops, (256, 192))))
        assert batch.ann_ids.tolist() == dataset.ann_id[rows].tolist()
        assert torch.equal(batch.bbox, torch.from_numpy(dataset.bbox[rows]).float())
        assert torch.equal(batch.gt_keypoints_orig, torch.from_numpy(dataset.keypoints[rows][..., :2]).float())


def test_augmentation_is_reproducible(dataset):
    a = first_batch(dataset, AugmentConfig(), seed=7)
    b = first_batch(dataset, AugmentConfig(), seed=7)
    c = first_batch(dataset, AugmentConfig(), seed=8)
    assert torch.equal(a.affine, b.affine) and torch.equal(a.images, b.images)
    assert not torch.equal(a.affine, c.affine)


def test_benchmark_loader_reports_throughput(dataset):
    loader = PoseLoader(dataset, 8, shuffle=True, drop_last=True, device="cpu", augment=AugmentConfig(),
                        output_stride=4)
    assert benchmark_loader(loader, num_batches=3, warmup=1) > 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a visible CUDA GPU")
@pytest.mark.parametrize("augment", [None, AugmentConfig(half_body_prob=0.3)])
def test_cuda_batches_match_cpu(dataset, augment):
    """Pinned buffers, non-blocking copies and the GPU warp give the CPU pipeline's batches."""
    options = dict(shuffle=True, drop_last=False, augment=augment, output_stride=4, seed=3, prefetch=1)
    cpu_batches = list(PoseLoader(dataset, 4, device="cpu", **options))
    cuda_batches = list(PoseLoader(dataset, 4, device="cuda", **options))
    assert len(cpu_batches) == len(cuda_batches)
    for cpu, gpu in zip(cpu_batches, cuda_batches):
        assert gpu.images.is_cuda and gpu.targets.is_cuda
        assert torch.equal(cpu.indices, gpu.indices.cpu()) and torch.equal(cpu.affine, gpu.affine.cpu())
        assert torch.allclose(cpu.images, gpu.images.cpu(), atol=1e-3)
        assert torch.allclose(cpu.targets, gpu.targets.cpu(), atol=1e-4)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a visible CUDA GPU")
@pytest.mark.parametrize("side_stream", [True, False])
def test_cuda_copies_ahead_of_a_busy_stream_stay_ordered(dataset, side_stream):
    """Crops copied ahead on the loader's own stream while the consumer's stream lags behind a
    long kernel: every batch still holds its own samples, and the pinned buffers (prefetch 1:
    three of them, reused every third batch) are never overwritten before their copy is done."""
    options = dict(shuffle=True, drop_last=False, augment=None, output_stride=4, seed=5, prefetch=1,
                   render_targets=False)
    cpu_batches = list(PoseLoader(dataset, 2, device="cpu", **options))
    loader = PoseLoader(dataset, 2, device="cuda", side_stream=side_stream, **options)
    assert loader.side_stream == side_stream and len(cpu_batches) > 3
    cuda_images = []
    for batch in loader:
        torch.cuda._sleep(20_000_000)  # ~10 ms of the consumer's stream: the copies run far ahead
        cuda_images.append(batch.images.clone())
    for cpu, images in zip(cpu_batches, cuda_images, strict=True):
        assert torch.allclose(cpu.images, images.cpu(), atol=1e-4)  # a race would swap whole crops
