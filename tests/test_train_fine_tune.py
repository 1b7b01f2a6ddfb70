"""Fine-tuning: ``--init_from CHECKPOINT`` starts a new run from another run's weights."""
import os
import shutil

import pytest
import torch
import yaml

import posefast.train
from posefast.checkpoint import CheckpointError, load_initial_weights
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

    def recording(model, path, **kwargs):
        result = load_initial_weights(model, path, **kwargs)
        seen.update({key: value.clone() for key, value in model.state_dict().items()})
        return result

    monkeypatch.setattr(posefast.train, "load_initial_weights", recording)
    return seen


def saved_run_record(out_dir):
    with open(os.path.join(out_dir, "config.yaml")) as f:
        return yaml.safe_load(f)


def test_fine_tuning_starts_from_every_weight_with_a_fresh_schedule(tiny_run, tmp_path, loaded_weights, capsys):
    source = torch.load(tiny_run["run"] / "best.pt", weights_only=False)
    train(run_config(tiny_run, tmp_path / "tuned", "--init_from", str(tiny_run["run"] / "best.pt"), "--lr", "1e-3"))
    assert loaded_weights.keys() == source["model"].keys()
    for key, value in source["model"].items():  # batch-norm statistics included
        assert torch.equal(loaded_weights[key], value), key
    out = capsys.readouterr().out
    assert "fine-tuning from" in out and "all weights, a fresh optimiser and schedule" in out
    last = torch.load(tmp_path / "tuned" / "last.pt", weights_only=False)
    assert last["epoch"] == 1 and last["scheduler"]["last_epoch"] == source["metrics"]["step"]  # one epoch's steps
    assert last["pretrained"] is False  # the source started from random weights, so this run does too
    record = saved_run_record(tmp_path / "tuned")
    assert record["init_loaded"] == "all" and record["init_from"] == str(tiny_run["run"] / "best.pt")
    assert not any(torch.equal(last["model"][k], source["model"][k]) for k in source["model"] if k.endswith("weight"))


def test_another_decoder_takes_the_encoder_weights_only(tiny_run, tmp_path, loaded_weights, capsys):
    source = torch.load(tiny_run["run"] / "best.pt", weights_only=False)  # SimplePoseNet
    train(run_config(tiny_run, tmp_path / "unet", "--init_from", str(tiny_run["run"] / "best.pt"), "--model", "unet"))
    encoder = {key: value for key, value in source["model"].items() if key.startswith("encoder.")}
    assert encoder and all(torch.equal(loaded_weights[key], value) for key, value in encoder.items())
    assert "encoder weights only" in capsys.readouterr().out
    assert saved_run_record(tmp_path / "unet")["init_loaded"] == "encoder"


def test_load_initial_weights_by_model_and_stride(tmp_path):
    source = build_model("unet", pretrained="none", output_stride=4)
    path = tmp_path / "unet4.pt"
    torch.save({"model": source.state_dict(), "config": {"model": "unet", "output_stride": 4},
                "pretrained": True}, path)
    same = build_model("unet", pretrained="none", output_stride=4, head_bias=1.0)
    assert load_initial_weights(same, str(path), model_name="unet", output_stride=4) == ("all", True)
    assert torch.equal(same.head.bias, source.head.bias)
    finer = build_model("unet", pretrained="none", output_stride=2)
    assert load_initial_weights(finer, str(path), model_name="unet", output_stride=2) == ("encoder", True)
    assert torch.equal(finer.encoder.stem[0].weight, source.encoder.stem[0].weight)
    torch.save({"model": {"encoder.stem.0.weight": torch.zeros(1)}, "config": {"model": "simple"}}, path)
    with pytest.raises(CheckpointError, match=r"init_from .*unet4.pt: its encoder weights \(its model: simple, "
                                              r"output stride 4\) do not fit this model"):
        load_initial_weights(finer, str(path), model_name="unet", output_stride=2)


def test_a_missing_or_foreign_init_from_stops_before_any_work(tiny_run, tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"init_from: no checkpoint at '.*nothere.pt'"):
        train(run_config(tiny_run, tmp_path / "a", "--init_from", str(tmp_path / "nothere.pt")))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    argv = ["--out_dir", str(tmp_path / "b"), "--pretrained", "none", "--init_from", str(junk)]
    assert posefast.train.main(argv) == 2
    err = capsys.readouterr().err
    assert "checkpoint error: init_from: " in err and "junk.pt is not a readable torch checkpoint" in err
    assert not (tmp_path / "b" / "last.pt").exists()


def test_a_fine_tuned_run_resumes_without_its_source(tiny_run, tmp_path):
    source = tmp_path / "source.pt"
    shutil.copy(tiny_run["run"] / "best.pt", source)
    train(run_config(tiny_run, tmp_path / "tuned", "--init_from", str(source)))
    os.remove(source)  # the weights now come from the run's own last.pt
    cfg = load_config(["--out_dir", str(tmp_path / "tuned"), "--resume", "--epochs", "2"])
    assert cfg.init_from == str(source)
    train(cfg)
    assert torch.load(tmp_path / "tuned" / "last.pt", weights_only=False)["epoch"] == 2
