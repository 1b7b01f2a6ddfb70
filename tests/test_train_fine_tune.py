"""Fine-tuning: ``--init_from CHECKPOINT`` starts a new run from another run's weights."""
import os
import shutil

import pytest
import torch
import yaml

import posefast.train
from posefast.checkpoint import CheckpointError, file_sha256, load_initial_weights
from posefast.config import ConfigError, load_config
from posefast.models import build_model
from posefast.train import train


def run_config(tiny_run, out_dir, *extra):
    """A one-epoch run on ``tiny_run``'s synthetic set (and crop caches) into ``out_dir``."""
    root = tiny_run["root"]
    return load_config(["--input_size", "64,32", "--pretrained", "none", "--progress", "false", "--amp", "false",
                        "--device", "cpu", "--synthetic_root", str(root / "synthetic"), "--cache_dir",
                        str(root / "cache"), "--synthetic_train", "16", "--synthetic_val", "6", "--epochs", "1",
                        "--batch_size", "8", "--out_dir", str(out_dir), *extra])


@pytest.fixture
def loaded_weights(monkeypatch):
    """The model's state right after ``init_from`` was loaded into it, keyed by parameter name."""
    seen = {}

    def recording(model, path, model_name, **kwargs):
        result = load_initial_weights(model, path, model_name, **kwargs)
        seen.update({key: value.clone() for key, value in model.state_dict().items()})
        return result

    monkeypatch.setattr(posefast.train, "load_initial_weights", recording)
    return seen


def run_record(out_dir):
    with open(os.path.join(out_dir, "config.yaml")) as f:
        return yaml.safe_load(f)


def test_fine_tuning_starts_from_every_weight_with_a_fresh_schedule(tiny_run, tmp_path, loaded_weights, capsys):
    source = torch.load(tiny_run["run"] / "best.pt", weights_only=False)
    source["pretrained"] = True  # as if its run had started from ImageNet weights
    source_path = tmp_path / "source" / "best.pt"
    source_path.parent.mkdir()
    torch.save(source, source_path)
    train(run_config(tiny_run, tmp_path / "tuned", "--init_from", str(source_path), "--lr", "1e-3"))
    assert loaded_weights.keys() == source["model"].keys()
    for key, value in source["model"].items():  # batch-norm statistics included
        assert torch.equal(loaded_weights[key], value), key
    out = capsys.readouterr().out
    assert f"fine-tuning from {source_path} (epoch 1, sha256 " in out and "all " in out
    last = torch.load(tmp_path / "tuned" / "last.pt", weights_only=False)
    assert last["epoch"] == 1 and last["scheduler"]["last_epoch"] == source["metrics"]["step"]  # one epoch's steps
    assert last["pretrained"] is True  # the weights descend from the source's ImageNet start (--pretrained none)
    assert run_record(tmp_path / "tuned")["pretrained_loaded"] is True
    record = run_record(tmp_path / "tuned")["init_source"]
    assert record == last["init_source"] == torch.load(tmp_path / "tuned" / "best.pt", weights_only=False)["init_source"]
    assert record["path"] == str(source_path) and record["sha256"] == file_sha256(str(source_path))
    assert record["epoch"] == 1 and record["loaded"] == f"all {len(source['model'])} tensors"
    assert not any(torch.equal(last["model"][k], source["model"][k]) for k in source["model"] if k.endswith("weight"))


def test_another_decoder_takes_the_encoder_weights_only_and_says_so(tiny_run, tmp_path, loaded_weights, capsys):
    source = torch.load(tiny_run["run"] / "best.pt", weights_only=False)  # SimplePoseNet
    with pytest.warns(UserWarning, match=r"decoder tensors of this unet model start from scratch \(its model: "
                                         r"simple, output stride 4; .*give --model simple --output_stride 4"):
        train(run_config(tiny_run, tmp_path / "unet", "--init_from", str(tiny_run["run"] / "best.pt"),
                         "--model", "unet"))
    encoder = {key: value for key, value in source["model"].items() if key.startswith("encoder.")}
    assert encoder and all(torch.equal(loaded_weights[key], value) for key, value in encoder.items())
    fresh = build_model("unet", pretrained="none", head_bias=-4.0)
    assert torch.equal(loaded_weights["head.bias"], fresh.head.bias)  # not SimplePoseNet's, though it fits
    loaded = run_record(tmp_path / "unet")["init_source"]["loaded"]
    assert f"{len(encoder)} of " in loaded and "the encoder and 0 decoder tensors; its model: simple" in loaded
    assert loaded in capsys.readouterr().out


def test_a_unet_of_another_stride_shares_its_matching_decoder_tensors(tmp_path):
    source = build_model("unet", pretrained="none", output_stride=4)
    path = tmp_path / "unet4.pt"
    torch.save({"model": source.state_dict(), "config": {"model": "unet", "output_stride": 4}, "epoch": 7,
                "best": 0.5, "pretrained": True}, path)
    same = build_model("unet", pretrained="none", output_stride=4, head_bias=1.0)
    record = load_initial_weights(same, str(path), "unet")
    assert record["loaded"] == f"all {len(source.state_dict())} tensors" and record["pretrained"] is True
    assert record["epoch"] == 7 and record["best_pck_torso"] == 0.5 and torch.equal(same.head.bias, source.head.bias)
    finer = build_model("unet", pretrained="none", output_stride=2)
    ours, theirs = finer.state_dict(), source.state_dict()
    shared = [k for k in ours if k in theirs and ours[k].shape == theirs[k].shape and not k.startswith("encoder.")]
    with pytest.warns(UserWarning, match="start from scratch"):
        record = load_initial_weights(finer, str(path), "unet")
    assert shared and f"the encoder and {len(shared)} decoder tensors; its model: unet, output stride 4" in record["loaded"]
    assert all(torch.equal(finer.state_dict()[k], theirs[k]) for k in shared)


def test_an_encoder_that_does_not_fit_is_named(tmp_path):
    path = tmp_path / "odd.pt"
    torch.save({"model": {"encoder.stem.0.weight": torch.zeros(1)}, "config": {"model": "simple"}}, path)
    with pytest.raises(CheckpointError, match=r"init_from: .*odd.pt: its encoder weights \(its model: simple, "
                                              r"output stride 4\) do not fit a ResNet-18 encoder: \d+ of \d+ tensors"):
        load_initial_weights(build_model("unet", pretrained="none"), str(path), "unet")


def test_a_checkpoint_that_would_run_code_is_not_loaded(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "extra": Shout()}, path)
    with pytest.raises(CheckpointError, match=r"evil.pt holds a Python object posefast does not load "
                                              r"\(\S+\): checkpoints are read with torch.load\(weights_only=True\)"):
        load_initial_weights(build_model("simple", pretrained="none"), str(path), "simple")
    assert not Shout.called


class Shout:
    """Pickled as a call to its own ``shout``: what loading would run."""
    called = False

    def __reduce__(self):
        return (Shout.shout, ())

    @staticmethod
    def shout():
        Shout.called = True


def test_bad_init_from_stops_before_any_work(tiny_run, tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"init_from: no checkpoint file at '.*nothere.pt'"):
        train(run_config(tiny_run, tmp_path / "a", "--init_from", str(tmp_path / "nothere.pt")))
    with pytest.raises(ConfigError, match=r"did you mean .*run/best.pt\?"):
        train(run_config(tiny_run, tmp_path / "a", "--init_from", str(tiny_run["run"])))
    foreign = {"junk.pt": b"not a checkpoint", "linear.pt": {"model": torch.nn.Linear(2, 2), "config": {}},
               "resnet.pt": {"model": {"conv1.weight": torch.zeros(1)}, "config": {}},
               "torchvision.pt": {"conv1.weight": torch.zeros(1), "fc.bias": torch.zeros(1)}}
    for name, content in foreign.items():
        path = tmp_path / name
        path.write_bytes(content) if isinstance(content, bytes) else torch.save(content, path)
        out = tmp_path / f"run_{name}"
        assert posefast.train.main(["--out_dir", str(out), "--pretrained", "none", "--init_from", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"checkpoint error: init_from: {path}" in err, err
        assert not out.exists()  # refused before the data or the run folder were touched
        if name == "torchvision.pt":
            assert "a torchvision state dict, go to --pretrained PATH" in err


def test_init_from_inside_its_own_out_dir_is_refused(tiny_run, tmp_path):
    run = tmp_path / "victim"
    shutil.copytree(tiny_run["run"], run)
    before = (run / "best.pt").read_bytes()
    with pytest.raises(ConfigError, match="is this run's own best.pt in out_dir .* give the fine-tuned run another "
                                          "--out_dir"):
        train(run_config(tiny_run, run, "--init_from", str(run / "best.pt")))
    assert (run / "best.pt").read_bytes() == before
    shutil.copy(run / "best.pt", run / "start.pt")  # a file training does not write is fine
    train(run_config(tiny_run, run, "--init_from", str(run / "start.pt")))
    assert (run / "start.pt").read_bytes() == before


def test_a_fine_tuned_run_resumes_without_its_source_and_keeps_its_record(tiny_run, tmp_path):
    source = tmp_path / "source.pt"
    shutil.copy(tiny_run["run"] / "best.pt", source)
    train(run_config(tiny_run, tmp_path / "tuned", "--init_from", str(source)))
    record = run_record(tmp_path / "tuned")["init_source"]
    os.remove(source)  # the weights now come from the run's own last.pt
    cfg = load_config(["--out_dir", str(tmp_path / "tuned"), "--resume", "--epochs", "2"])
    assert cfg.init_from == str(source)
    train(cfg)
    last = torch.load(tmp_path / "tuned" / "last.pt", weights_only=False)
    assert last["epoch"] == 2 and last["init_source"] == record == run_record(tmp_path / "tuned")["init_source"]
    other = load_config(["--out_dir", str(tmp_path / "tuned"), "--resume", "--epochs", "3", "--init_from", "x.pt"])
    with pytest.raises(ConfigError, match=r"init_from: '.*source.pt' -> 'x.pt'"):
        train(other)
