"""Pose networks: output shapes and strides, encoder weights loading, no implicit download."""
import pytest
import torch
from torchvision.models import resnet18

from posefast.models import SimplePoseNet, UNetPoseNet, build_encoder, build_model
from posefast.models import encoder as encoder_module


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


def test_encoder_loads_a_torchvision_state_dict_from_a_path(tmp_path):
    reference = resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), path)
    encoder, pretrained = build_encoder(str(path))
    assert pretrained is True
    assert torch.equal(encoder.stem[0].weight, reference.conv1.weight)
    assert torch.equal(encoder.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)


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
    torch.save(resnet18(weights=None).state_dict(), encoder_module.hub_cache_path())
    _, pretrained = build_encoder("auto")
    assert pretrained is True
