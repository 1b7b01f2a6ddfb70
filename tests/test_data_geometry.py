"""Pixel-centre conventions of the affine helpers and the grid_sample warp."""
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from posefast.data.geometry import (apply_affine, box_to_center_size, compose, crop_affine, invert_affine,
                                    invert_keypoints)
from posefast.data.warp import center_crop_images, grid_theta, sampling_grid, warp_images


def test_crop_affine_maps_box_edges_to_image_edges():
    affine = crop_affine(torch.tensor([[50.0, 40.0]]), torch.tensor([[30.0, 40.0]]), (256, 192))
    corners = torch.tensor([[[35.0, 20.0], [65.0, 60.0], [50.0, 40.0]]], dtype=torch.float64)
    out = apply_affine(affine, corners)[0]
    assert torch.allclose(out[0], torch.tensor([-0.5, -0.5], dtype=torch.float64))
    assert torch.allclose(out[1], torch.tensor([191.5, 255.5], dtype=torch.float64))
    assert torch.allclose(out[2], torch.tensor([95.5, 127.5], dtype=torch.float64))


def test_box_to_center_size_grows_to_aspect_and_pads():
    center, size = box_to_center_size(torch.tensor([[10.0, 20.0, 30.0, 100.0], [0.0, 0.0, 90.0, 40.0]]), 0.75, 1.25)
    assert torch.allclose(center[0], torch.tensor([25.0, 70.0], dtype=torch.float64))
    assert torch.allclose(size, torch.tensor([[75.0 * 1.25, 100.0 * 1.25], [90.0 * 1.25, 120.0 * 1.25]],
                                             dtype=torch.float64))


def test_compose_and_invert_round_trip():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(5, 2, 3, generator=gen, dtype=torch.float64)
    points = torch.randn(5, 17, 2, generator=gen, dtype=torch.float64) * 100
    back = apply_affine(compose(invert_affine(a), a), points)
    assert torch.allclose(back, points, atol=1e-8)
    assert torch.allclose(invert_keypoints(apply_affine(a, points), a), points, atol=1e-8)


def test_sampling_grid_equals_affine_grid():
    theta = torch.randn(3, 2, 3, generator=torch.Generator().manual_seed(1))
    expected = F.affine_grid(theta, (3, 3, 20, 15), align_corners=False)
    assert torch.allclose(sampling_grid(theta, (20, 15)), expected, atol=1e-6)


def test_warp_transpose_is_exact():
    """x_src = y_out, y_src = x_out lands exactly on pixel centres: no blur if the convention is right."""
    gen = torch.Generator().manual_seed(2)
    crops = torch.randint(0, 256, (2, 12, 9, 3), dtype=torch.uint8, generator=gen)
    transpose = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64).expand(2, 2, 3)
    out = warp_images(crops, transpose, (9, 12))
    assert torch.allclose(out, crops.permute(0, 3, 2, 1).float(), atol=1e-2)  # a half-pixel slip would blur by tens


def test_warp_matches_cv2_warp_affine():
    """Bilinear scale + rotation + shift agrees with cv2.warpAffine (also pixel-centre based) inside the image."""
    rng = np.random.default_rng(3)
    source = cv2.GaussianBlur(rng.integers(0, 256, (60, 50, 3)).astype(np.uint8), (5, 5), 1.5)
    angle, scale = np.deg2rad(20), 0.8
    out_to_src = np.array([[scale * np.cos(angle), -scale * np.sin(angle), 12.3],
                           [scale * np.sin(angle), scale * np.cos(angle), 4.7]])
    expected = cv2.warpAffine(source, out_to_src, (30, 40), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    got = warp_images(torch.from_numpy(source)[None], torch.from_numpy(out_to_src)[None], (40, 30))
    got = got[0].permute(1, 2, 0).numpy()
    assert np.abs(got[2:-2, 2:-2] - expected[2:-2, 2:-2]).max() <= 2.0  # cv2 uses 5-bit fixed-point weights


def test_center_crop_equals_integer_shift_warp():
    crops = torch.randint(0, 256, (3, 20, 16, 3), dtype=torch.uint8)
    shift = torch.tensor([[1.0, 0.0, 4.0], [0.0, 1.0, 6.0]], dtype=torch.float64).expand(3, 2, 3)
    assert torch.allclose(center_crop_images(crops, (8, 8)), warp_images(crops, shift, (8, 8)), atol=1e-2)


def test_grid_theta_identity_for_same_size():
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)[None]
    assert torch.allclose(grid_theta(identity, (7, 5), (7, 5)), identity, atol=1e-12)


@pytest.mark.parametrize("flipped", [False, True])
def test_invert_keypoints_undoes_flip_swap(flipped):
    from posefast.skeleton import FLIP_INDEX
    points = torch.arange(34, dtype=torch.float64).view(1, 17, 2)
    affine = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    swapped = points[:, FLIP_INDEX] if flipped else points
    assert torch.equal(invert_keypoints(swapped, affine, torch.tensor([flipped])), points)
