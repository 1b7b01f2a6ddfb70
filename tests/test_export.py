"""posefast.export: ONNX round trip against PyTorch with onnxruntime."""
import numpy as np
import pytest
import torch

pytest.importorskip("onnx", reason="ONNX export needs onnx (pip install onnx onnxruntime)")
onnxruntime = pytest.importorskip("onnxruntime", reason="the export check needs onnxruntime")

from posefast.checkpoint import load_trained_model  # noqa: E402
from posefast.export import check_images, compare_with_onnxruntime, heatmap_tolerance  # noqa: E402
from posefast.export import main as export_main  # noqa: E402


@pytest.fixture(scope="module")
def exported(tiny_run):
    path = tiny_run["root"] / "model.onnx"
    assert export_main(["--checkpoint", str(tiny_run["run"] / "best.pt"), "--onnx", str(path),
                        "--images", tiny_run["image_dir"], "--check-count", "3"]) == 0
    return path


def test_onnx_matches_pytorch_for_any_batch_size(exported, tiny_run, capsys):
    model, cfg, _ = load_trained_model(str(tiny_run["run"] / "best.pt"))
    images = check_images(cfg.input_size, count=5)  # synthetic people, not the images of the export check
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    for batch in (1, 5):
        ours = session.run(["heatmaps"], {"image": images[:batch].numpy()})[0]
        with torch.no_grad():
            theirs = model(images[:batch]).numpy()
        assert ours.shape == theirs.shape == (batch, 17, cfg.input_size[0] // 4, cfg.input_size[1] // 4)
        np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=1e-4)


def test_the_check_catches_a_different_network(exported, tiny_run):
    model, cfg, _ = load_trained_model(str(tiny_run["run"] / "best.pt"))
    with torch.no_grad():
        model.head.bias.add_(torch.linspace(-1, 1, 17))  # not the network that was exported
    report = compare_with_onnxruntime(model, str(exported), check_images(cfg.input_size, count=2), model.output_stride)
    assert report["max_abs_heatmap_diff"] > 0.5


def test_heatmap_tolerance_grows_with_the_logits_only_past_a_hundred():
    """float32 rounding of logits ~1e5 (a briefly trained network in eval mode) is not a mismatch."""
    assert heatmap_tolerance(0.0) == heatmap_tolerance(100.0) == 1e-3
    assert heatmap_tolerance(1e5) == pytest.approx(1.0)


def test_export_of_a_bad_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert export_main(["--checkpoint", str(tmp_path / "none.pt"), "--onnx", str(tmp_path / "m.onnx")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
