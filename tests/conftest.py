import os

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cuda_available():
    return torch.cuda.is_available()


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a visible CUDA GPU")


@pytest.fixture
def coco_dir():
    """The real COCO keypoints subset, via POSEFAST_COCO_DIR (default ../shared/data/coco_kpts)."""
    path = os.environ.get("POSEFAST_COCO_DIR", os.path.join(REPO, "..", "shared", "data", "coco_kpts"))
    if not os.path.isfile(os.path.join(path, "val.json")):
        pytest.skip(f"COCO keypoints subset not found at {path} (set POSEFAST_COCO_DIR)")
    return path


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (skipped when none is visible)")
    config.addinivalue_line("markers", "slow: longer end-to-end runs")
