import sys

import pytest

from posefast.ops import _extension


def test_missing_extension_says_how_to_build(monkeypatch):
    monkeypatch.setitem(sys.modules, "posefast._C", None)  # makes `from posefast import _C` fail
    with pytest.raises(ImportError, match=r"pip install -e \. --no-build-isolation"):
        _extension.load_extension()


def test_all_ops_registered():
    import torch

    for name in ("render_heatmaps", "soft_argmax_forward", "soft_argmax_backward", "pck_counts"):
        assert hasattr(torch.ops.posefast, name)
