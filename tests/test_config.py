"""Config: YAML + CLI overrides, type checks, clear errors for bad keys, values and paths."""
import dataclasses
import glob
import os

import pytest
import torch

from posefast.config import (REPO_ROOT, ConfigError, TrainConfig, check_output_dir, coco_paths, load_config,
                             to_dict)
from posefast.train import main


def test_defaults_are_the_synthetic_run_and_match_its_yaml():
    assert load_config([]) == TrainConfig()
    assert load_config(["--config", os.path.join(REPO_ROOT, "configs", "synthetic_simple.yaml")]) == TrainConfig()


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO_ROOT, "configs", "*.yaml"))))
def test_every_shipped_config_loads(path):
    cfg = load_config(["--config", path])
    assert cfg.input_size[0] % 32 == 0


def test_cli_overrides_yaml_and_converts_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 7\nlr: 0.01\nmodel: unet\noutput_stride: 2\n")
    cfg = load_config(["--config", str(path), "--epochs", "3", "--lr=1e-3", "--input-size", "64,32",
                       "--resume", "--joint_weights", "none", "--amp", "false", "--out_dir", "123"])
    assert (cfg.epochs, cfg.lr, cfg.model, cfg.output_stride) == (3, 1e-3, "unet", 2)
    assert cfg.input_size == (64, 32) and cfg.resume is True and cfg.amp is False
    assert cfg.joint_weights is None and cfg.out_dir == "123"
    assert load_config(["--joint_weights", "[" + ",".join(["2"] * 17) + "]"]).joint_weights == [2.0] * 17


@pytest.mark.parametrize("argv, message", [
    (["--epoch", "3"], "unknown config key 'epoch'.*did you mean epochs"),
    (["--lr", "fast"], "lr: expected a number"),
    (["--epochs", "2.5"], "epochs: expected an integer"),
    (["--amp", "maybe"], "amp: expected true/false"),
    (["--input_size", "[64]"], "input_size: expected 2 values"),
    (["--input_size", "64,48"], "multiples of 32"),
    (["--model", "hourglass"], "model: 'hourglass' is not one of"),
    (["--model", "simple", "--output_stride", "2"], "output_stride 4"),
    (["--epochs"], "needs a value"),
    (["stray"], "unexpected argument"),
    (["--config", "/nonexistent/x.yaml"], "config file not found"),
    (["--sigma", "5e-7"], r"sigma must be in \[1e-06"),
    (["--sigma", "nan"], "sigma must be > 0, got nan"),
    (["--beta", "1e39"], "beta at most 3.40282e\\+38"),
    (["--coord_weight", "inf"], "coord_weight must be a finite number"),
    (["--device", "gpu"], "device must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    (["--augment", "--augment_options", "{rotaton: 10}"], "augment_options: unknown key 'rotaton'; did you mean rotation"),
    (["--augment", "--augment_options", "{half_body_prob:0.5}"], "with a space after the colon"),
    (["--augment", "--augment_options", "{rotation: abc}"], "augment_options.rotation: expected a number, got 'abc'"),
    (["--augment", "--augment_options", "{half_body_min_joints: 6.5}"], "half_body_min_joints: expected an integer"),
    (["--augment", "--augment_options", "{flip_prob: 1.5}"], r"flip_prob must be in \[0, 1\], got 1.5"),
    (["--augment", "--augment_options", "{scale: 1}"], r"scale must be in \[0, 1\)"),
])
def test_bad_command_lines_are_config_errors(argv, message):
    with pytest.raises(ConfigError, match=message):
        load_config(argv)


def test_unknown_key_in_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: 2\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rate.*bad.yaml"):
        load_config(["--config", str(path)])


def test_yaml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("epochs: [1\n")
    with pytest.raises(ConfigError, match="broken.yaml is not valid YAML"):
        load_config(["--config", str(path)])


def test_augment_options_are_checked_and_converted():
    cfg = load_config(["--augment", "--augment_options", "{rotation: 10, half_body_prob: 0.3, half_body_min_joints: 6}"])
    assert cfg.augment_options == {"rotation": 10.0, "half_body_prob": 0.3, "half_body_min_joints": 6}


def test_missing_dataset_folder_is_a_clear_error(tmp_path):
    cfg = load_config(["--dataset", "coco", "--data_dir", str(tmp_path / "nowhere")])
    # (not match="missing": tmp_path's own name, test_missing_..., would satisfy it)
    with pytest.raises(ConfigError, match=r"train_json=.*nowhere.train\.json \(not found, from data_dir"):
        coco_paths(cfg)


def test_dataset_paths_of_the_wrong_kind_and_of_one_split(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "val.json").write_text("{}")
    cfg = load_config(["--dataset", "coco", "--data_dir", str(tmp_path), "--train_json", str(tmp_path / "images")])
    with pytest.raises(ConfigError, match=r"train_json=.*images \(not a file\)"):
        coco_paths(cfg)
    # evaluation needs the validation files only
    assert coco_paths(cfg, splits=("val",)) == {"val_json": str(tmp_path / "val.json"),
                                                 "val_images": str(tmp_path / "images")}


def test_saved_config_with_paths_beside_a_synthetic_dataset_still_loads():
    from posefast.config import config_from_dict

    saved = {**to_dict(TrainConfig()), "data_dir": "../shared/data/coco_kpts", "pretrained_loaded": False}
    assert config_from_dict(saved) == TrainConfig()  # what that run used: the paths were ignored
    with pytest.raises(ConfigError, match="add --dataset coco"):
        load_config(["--data_dir", "../shared/data/coco_kpts"])


def test_relative_dataset_paths_resolve_against_the_repo_root(tmp_path, monkeypatch, coco_dir):
    monkeypatch.chdir(tmp_path)
    rel = os.path.relpath(coco_dir, REPO_ROOT)
    paths = coco_paths(load_config(["--dataset", "coco", "--data_dir", rel]))
    assert os.path.samefile(paths["val_json"], os.path.join(coco_dir, "val.json"))


def test_unwritable_output_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="not writable"):
        check_output_dir(str(blocker / "run"))
    assert os.path.isdir(check_output_dir(str(tmp_path / "new" / "run")))


def test_main_reports_config_errors_before_any_work(tmp_path, capsys):
    assert main(["--dataset", "coco", "--data_dir", str(tmp_path / "absent"), "--out_dir", str(tmp_path / "run")]) == 2
    assert "configuration error" in capsys.readouterr().err
    assert main(["--optimizer", "sgd"]) == 2
    assert main(["--pretrained", str(tmp_path / "absent.pth"), "--out_dir", str(tmp_path / "run")]) == 2
    assert "pretrained: no weights file" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["--device", "cuda", "--out_dir", str(tmp_path / "run")]) == 2
        assert "this machine has 0 CUDA device(s)" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "run" / "last.pt")


def test_to_dict_round_trips():
    cfg = load_config(["--input_size", "96,64", "--joint_weights", ",".join(["1.5"] * 17)])
    assert load_config(**to_dict(cfg)) == cfg
    assert set(to_dict(cfg)) == {f.name for f in dataclasses.fields(TrainConfig)}


def test_help_lists_every_key_with_its_default_and_comment(capsys):
    from posefast.config import FIELDS

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0][2:] for line in out.splitlines() if line.startswith("  --")]
    assert listed == list(FIELDS)  # every key, once, in the dataclass's order
    assert "  --skip_bad (bool, default False): coco: skip (and count)" in out
    assert "  --input_size (tuple[int, int], default [96, 64]): (H, W), multiples of 32" in out
    # a block comment above a field is that field's (and only that field's) help
    assert "--cudnn_benchmark (bool, default True): CUDA: cuDNN times" in out
    assert "--compile (bool, default False): torch.compile the model" in out
    assert "\nevaluation and output:\n" in out and "\nloss:\n" in out
