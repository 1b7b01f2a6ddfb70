"""Shared parametrisation for the op tests: devices and tolerances per dtype."""
import pytest
import torch

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda,
                                pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a visible CUDA GPU")]),
]

# absolute tolerance of a [0, 1] map rendered in dtype vs float64
RENDER_ATOL = {torch.float64: 1e-12, torch.float32: 2e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}
