import os

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cuda_available():
    return torch.cuda.is_available()


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a visible CUDA GPU")


@pytest.fixture(scope="session")
def coco_dir():
    """The real COCO keypoints subset, via POSEFAST_COCO_DIR (default ../shared/data/coco_kpts)."""
    path = os.environ.get("POSEFAST_COCO_DIR", os.path.join(REPO, "..", "shared", "data", "coco_kpts"))
    if not os.path.isfile(os.path.join(path, "val.json")):
        pytest.skip(f"COCO keypoints subset not found at {path} (set POSEFAST_COCO_DIR)")
    return path


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (skipped when none is visible)")
    config.addinivalue_line("markers", "slow: longer end-to-end runs")
    config.addinivalue_line("markers", "current_kernels: checks a fix in csrc/ made after the last kernels that passed "
                            "on a GPU (scripts/device_prepare.sh's FALLBACK_COMMIT); benchmarks/device_check.sh "
                            "leaves it out when it falls back to those kernels")
    emu_dir = os.environ.get("POSEFAST_CUDA_EMU")
    if emu_dir:  # the CPU op tests then test the CUDA kernels, emulated (tests/cuda_emu)
        from cuda_emu.build import route_cpu_ops_to_emulation

        route_cpu_ops_to_emulation(emu_dir)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One short CPU training run shared by the evaluation / inference / export / plot tests:
    SimplePoseNet on 16 + 6 synthetic images at 64x32 input, 1 epoch. Returns
    ``{"root", "run" (its out_dir, with best.pt), "val_json", "image_dir"}``."""
    from posefast.config import load_config
    from posefast.train import dataset_files, train

    root = tmp_path_factory.mktemp("tiny_run")
    argv = ["--input_size", "64,32", "--pretrained", "none", "--progress", "false", "--amp", "false",
            "--device", "cpu", "--synthetic_root", str(root / "synthetic"), "--cache_dir", str(root / "cache"),
            "--out_dir", str(root / "run"), "--synthetic_train", "16", "--synthetic_val", "6", "--epochs", "1",
            "--batch_size", "8"]
    cfg = load_config(argv)
    train(cfg)
    files = dataset_files(cfg)
    return {"root": root, "run": root / "run", "val_json": files["val_json"], "image_dir": files["val_images"]}
