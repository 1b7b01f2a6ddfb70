"""Pose networks: output shapes and strides, encoder weights loading, no implicit download."""
import pytest
import torch

from posefast.models import ResNet18Encoder, SimplePoseNet, UNetPoseNet, build_encoder, build_model
from posefast.models import encoder as encoder_module


def torchvision_layout_state(seed: int = 0) -> dict:
    """A random ResNet-18 state dict laid out as torchvision saves it (conv1/bn1 at the top, fc)."""
    torch.manual_seed(seed)
    state = {}
    for key, value in ResNet18Encoder().state_dict().items():
        key = key.replace("stem.0.", "conv1.").replace("stem.1.", "bn1.")
        state[key] = value.clone() if value.dtype == torch.long else torch.randn_like(value)
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    return state


def test_simple_pose_net_is_stride_4():
    model = SimplePoseNet(pretrained="none").eval()
    out = model(torch.randn(2, 3, 128, 96))
    assert model.output_stride == 4 and out.shape == (2, 17, 32, 24)
    assert model.pretrained is False


@pytest.mark.parametrize("stride", [4, 2, 1])
def test_unet_output_stride(stride):
    model = UNetPoseNet(pretrained="none", output_stride=stride).eval()
    out = model(torch.randn(1, 3, 64, 32))
    assert model.output_stride == stride and out.shape == (1, 17, 64 // stride, 32 // stride)


def test_unet_rejects_bad_stride_and_simple_rejects_other_strides():
    with pytest.raises(ValueError):
        UNetPoseNet(pretrained="none", output_stride=8)
    with pytest.raises(ValueError):
        build_model("simple", pretrained="none", output_stride=2)
    with pytest.raises(ValueError):
        build_model("hourglass", pretrained="none")


def test_models_are_trainable_end_to_end():
    model = build_model("unet", pretrained="none", output_stride=2)
    model(torch.randn(2, 3, 64, 32)).square().mean().backward()
    assert model.encoder.stem[0].weight.grad.abs().sum() > 0
    assert model.head.weight.grad.abs().sum() > 0


def test_encoder_is_resnet18_with_torchvision_names():
    state = ResNet18Encoder().state_dict()
    assert sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var",
                                                                        "num_batches_tracked"))) == 11_176_512
    assert len(state) == 120
    for key in ["stem.0.weight", "stem.1.running_var", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.bias", "layer4.1.bn2.num_batches_tracked"]:
        assert key in state
    assert "layer1.0.downsample.0.weight" not in state
    features = ResNet18Encoder().eval()(torch.randn(1, 3, 64, 32))
    assert {s: tuple(f.shape[1:]) for s, f in features.items()} == {
        2: (64, 32, 16), 4: (64, 16, 8), 8: (128, 8, 4), 16: (256, 4, 2), 32: (512, 2, 1)}


def test_encoder_loads_a_torchvision_state_dict_from_a_path(tmp_path):
    reference = torchvision_layout_state()
    path = tmp_path / "r18.pth"
    torch.save(reference, path)
    encoder, pretrained = build_encoder(str(path))
    assert pretrained is True
    assert torch.equal(encoder.stem[0].weight, reference["conv1.weight"])
    assert torch.equal(encoder.layer4[1].bn2.running_var, reference["layer4.1.bn2.running_var"])


def test_encoder_rejects_a_state_dict_of_another_network():
    state = torchvision_layout_state()
    state["layer3.1.conv2.weight"] = torch.randn(256, 256, 1, 1)
    with pytest.raises(RuntimeError, match="layer3.1.conv2.weight"):
        ResNet18Encoder().load_imagenet_state(state)
    del state["layer3.1.conv2.weight"]
    with pytest.raises(ValueError, match="missing"):
        ResNet18Encoder().load_imagenet_state(state)


def test_encoder_computes_what_torchvision_resnet18_computes():
    models = pytest.importorskip("torchvision.models", reason="torchvision is optional")
    reference = models.resnet18(weights=None).eval()
    encoder = ResNet18Encoder().eval()
    encoder.load_imagenet_state(reference.state_dict())
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        r = reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))
        expected = reference.layer4(reference.layer3(reference.layer2(reference.layer1(r))))
        assert torch.equal(encoder(x)[32], expected)


def test_missing_weights_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        build_encoder(str(tmp_path / "absent.pth"))


def test_auto_without_hub_cache_warns_and_is_random(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.warns(UserWarning, match="RANDOM"):
        _, pretrained = build_encoder("auto")
    assert pretrained is False


def test_auto_uses_the_hub_cache_when_present(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    torch.save(torchvision_layout_state(), encoder_module.hub_cache_path())
    _, pretrained = build_encoder("auto")
    assert pretrained is True


def test_decoders_check_their_input_and_agree_on_nan():
    from posefast.models.decode import argmax_quarter_offset, joint_confidence

    with pytest.raises(ValueError, match=r"logits must have shape \[B, K, H, W\]"):
        argmax_quarter_offset(torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match="H > 0 and W > 0"):
        argmax_quarter_offset(torch.randn(2, 3, 0, 8))
    with pytest.raises(ValueError, match="loss must be 'bce' or 'mse'"):
        joint_confidence(torch.randn(2, 3, 8, 6), "MSE")
    maps = torch.randn(1, 2, 8, 6)
    maps[0, 1, 3, 3] = float("nan")
    points = argmax_quarter_offset(maps)
    assert torch.isfinite(points[0, 0]).all() and points[0, 1].isnan().all()
    assert not argmax_quarter_offset(maps.requires_grad_()).requires_grad
