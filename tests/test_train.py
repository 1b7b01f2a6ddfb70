"""Training loop on a tiny synthetic set: learning, exact resume, DDP (gloo), benchmark."""
import json
import math
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

import posefast.train
from posefast.config import REPO_ROOT, load_config, to_dict
from posefast.train import train
from posefast.train_benchmark import benchmark_training

TINY = ["--input_size", "64,32", "--pretrained", "none", "--progress", "false", "--amp", "false"]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """Folder holding the synthetic set and crop caches shared by this module's runs."""
    return tmp_path_factory.mktemp("posefast_tiny")


def tiny_config(root, out_dir, *extra, **overrides):
    argv = TINY + ["--synthetic_root", str(root / "synthetic"), "--cache_dir", str(root / "cache"),
                   "--out_dir", str(out_dir), *extra]
    return load_config(argv, **overrides)


def read_metrics(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_short_run_loss_falls_and_pck_rises(tiny_root, tmp_path):
    cfg = tiny_config(tiny_root, tmp_path / "run", synthetic_train=96, synthetic_val=32, epochs=6, batch_size=16,
                      lr=3e-3, warmup_epochs=0.5)
    train(cfg)
    records = read_metrics(tmp_path / "run")
    assert [r["epoch"] for r in records] == list(range(1, 7))
    assert records[-1]["loss"] < 0.7 * records[0]["loss"]
    first, last = records[0]["val"], records[-1]["val"]
    assert last["pck_torso"] > first["pck_torso"] + 0.1
    assert last["pck_bbox"] > first["pck_bbox"]
    assert set(last["pck_torso_per_joint"]) >= {"nose", "left_ankle"}
    assert records[-1]["pretrained"] is False and records[-1]["samples_per_s"] > 0
    ckpt = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert ckpt["pretrained"] is False and ckpt["best"] == max(r["val"]["pck_torso"] for r in records)
    assert set(ckpt) == {"model", "epoch", "config", "metrics", "best", "pretrained"}  # weights only
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert {"model", "optimizer", "scheduler", "scaler", "epoch", "config", "metrics", "rng"} <= set(last)
    assert os.path.getsize(tmp_path / "run" / "best.pt") < 0.5 * os.path.getsize(tmp_path / "run" / "last.pt")


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny_root, tmp_path):
    common = dict(synthetic_train=24, synthetic_val=8, epochs=2, batch_size=8)
    train(tiny_config(tiny_root, tmp_path / "straight", **common))
    train(tiny_config(tiny_root, tmp_path / "resumed", **common), stop_after=1)
    assert len(read_metrics(tmp_path / "resumed")) == 1
    train(tiny_config(tiny_root, tmp_path / "resumed", "--resume", **common))
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 2
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]
    ra, rb = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "resumed")
    assert [r["loss"] for r in ra] == [r["loss"] for r in rb]


def test_resume_without_a_checkpoint_is_an_error(tiny_root, tmp_path):
    from posefast.config import ConfigError

    with pytest.raises(ConfigError, match="no checkpoint"):
        train(tiny_config(tiny_root, tmp_path / "empty", "--resume", synthetic_train=24, synthetic_val=8))


@pytest.fixture(scope="module")
def one_epoch_run(tiny_root):
    """A finished one-epoch run (UNetPoseNet, so the defaults differ from it)."""
    out = tiny_root / "one_epoch"
    train(tiny_config(tiny_root, out, model="unet", synthetic_train=24, synthetic_val=8, epochs=1, batch_size=8))
    return out


def test_resume_without_config_continues_the_run_as_configured(one_epoch_run):
    cfg = load_config(["--out_dir", str(one_epoch_run), "--resume", "--epochs", "3"])
    saved = torch.load(one_epoch_run / "last.pt", weights_only=False)["config"]
    assert cfg.model == "unet" and cfg.epochs == 3 and cfg.resume
    assert {k: v for k, v in to_dict(cfg).items() if k not in ("epochs", "resume")} == \
        {k: v for k, v in saved.items() if k not in ("epochs", "resume")}


def test_resume_refuses_a_changed_configuration(one_epoch_run, tiny_root, capsys):
    from posefast.config import ConfigError

    with pytest.raises(ConfigError, match=r"another configuration \(model: 'unet' -> 'simple'\)"):
        train(tiny_config(tiny_root, one_epoch_run, "--resume", model="simple", synthetic_train=24, synthetic_val=8,
                          epochs=2))
    # what a user typing defaults by mistake gets from the command line: exit 2, the keys named
    code = posefast.train.main(["--config", os.path.join(REPO_ROOT, "configs", "synthetic_simple.yaml"),
                                "--out_dir", str(one_epoch_run), "--resume", "--epochs", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "configuration error" in err and "model: 'unet' -> 'simple'" in err


def test_resume_without_the_runs_config_yaml_says_it_is_missing(one_epoch_run, tmp_path):
    from posefast.config import ConfigError

    run = tmp_path / "only_last"
    run.mkdir()
    shutil.copy(one_epoch_run / "last.pt", run)  # config.yaml not copied: the defaults fill in
    with pytest.raises(ConfigError, match=r"model: 'unet' -> 'simple'.*config.yaml is missing, so this command "
                                          r"started from the defaults"):
        train(load_config(["--out_dir", str(run), "--resume", "--epochs", "2"]))


def test_resume_of_a_finished_run_says_there_is_nothing_to_do(one_epoch_run, capsys):
    before = (one_epoch_run / "metrics.jsonl").read_text()
    assert posefast.train.main(["--out_dir", str(one_epoch_run), "--resume"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert (one_epoch_run / "metrics.jsonl").read_text() == before


def test_resume_refuses_another_number_of_processes(one_epoch_run, tmp_path):
    from posefast.config import ConfigError

    run = tmp_path / "copy"
    shutil.copytree(one_epoch_run, run)
    ckpt = torch.load(run / "last.pt", weights_only=False)
    ckpt["metrics"]["world_size"] = 2  # as if trained under torchrun --nproc_per_node 2
    torch.save(ckpt, run / "last.pt")
    cfg = load_config(["--out_dir", str(run), "--resume", "--epochs", "2"])
    assert cfg.out_dir == str(run)  # the run folder named, not the out_dir its config.yaml recorded
    with pytest.raises(ConfigError, match=r"trained by 2 process\(es\), this run has 1"):
        train(cfg)


def test_a_run_its_time_budget_ended_is_finished_unless_epochs_grow():
    from posefast.resume import run_is_finished

    cut = {"epoch": 4, "config": {"epochs": 10}, "metrics": {"epoch": 4, "epochs": 4}}  # budget kept 4 of 10
    interrupted = {"epoch": 4, "config": {"epochs": 10}, "metrics": {"epoch": 4, "epochs": 10}}
    done = {"epoch": 10, "config": {"epochs": 10}, "metrics": {"epoch": 10, "epochs": 10}}
    cfg = load_config(["--epochs", "10"])
    assert run_is_finished(cut, cfg) and run_is_finished(done, cfg) and not run_is_finished(interrupted, cfg)
    longer = load_config(["--epochs", "12"])
    assert not run_is_finished(cut, longer) and not run_is_finished(done, longer)


def test_weights_file_that_is_not_a_resnet18_is_a_config_error(one_epoch_run, tiny_root, tmp_path):
    from posefast.config import ConfigError

    with pytest.raises(ConfigError, match=r"pretrained '.*best.pt': this is a posefast training checkpoint, not "
                                          r"ImageNet weights: fine-tune from it with --init_from PATH"):
        train(tiny_config(tiny_root, tmp_path / "run", "--pretrained", str(one_epoch_run / "best.pt"),
                          synthetic_train=24, synthetic_val=8, epochs=1))
    torch.save({"conv9.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ConfigError, match=r"pretrained '.*other.pth': not a ResNet-18 state dict"):
        train(tiny_config(tiny_root, tmp_path / "run", "--pretrained", str(tmp_path / "other.pth"),
                          synthetic_train=24, synthetic_val=8, epochs=1))


def test_a_diverging_run_stops_and_says_so(tiny_root, tmp_path, capsys):
    argv = TINY + ["--synthetic_root", str(tiny_root / "synthetic"), "--cache_dir", str(tiny_root / "cache"),
                   "--out_dir", str(tmp_path / "run"), "--synthetic_train", "24", "--synthetic_val", "8",
                   "--batch_size", "8", "--epochs", "3", "--lr", "1e30", "--grad_clip", "0"]
    assert posefast.train.main(argv) == 1
    err = capsys.readouterr().err
    assert re.search(r"training diverged: the training loss of epoch 1 is (nan|inf)", err)
    assert "lower lr (now 1e+30)" in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_ddp_with_gloo_on_two_processes(tiny_root, tmp_path):
    out = tmp_path / "ddp"
    argv = TINY + ["--synthetic_root", str(tiny_root / "synthetic"), "--cache_dir", str(tiny_root / "cache"),
                   "--out_dir", str(out), "--synthetic_train", "24", "--synthetic_val", "8", "--epochs", "2",
                   "--batch_size", "4", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "posefast.train", *argv]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_metrics(out)
    assert [r["epoch"] for r in records] == [1, 2]  # rank 1 appended nothing
    assert all(r["world_size"] == 2 for r in records)
    people = {split: people_with_keypoints(tiny_root, split) for split in ("train", "val")}
    assert records[-1]["val"]["samples"] == people["val"]  # both shards merged, wrap-around padding removed
    assert records[-1]["step"] == 2 * ((people["train"] // 2) // 4)  # each rank: half the samples, batches of 4
    assert sorted(os.listdir(out)) == ["best.pt", "config.yaml", "curves.png", "last.pt", "metrics.jsonl",
                                       "per_joint_pck.png", "val_overlay.png"]


def people_with_keypoints(root, split):
    """Top-down samples of the 24/8-image synthetic set: persons with >= 1 labelled joint."""
    folder = next(p for p in (root / "synthetic").iterdir() if p.name.startswith("train24_val8_"))
    with open(folder / f"{split}.json") as f:
        return sum(1 for a in json.load(f)["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"])


def test_benchmark_training_runs_on_cpu_at_a_tiny_size(tiny_root):
    result = benchmark_training(batch_size=4, input_size=(64, 32), steps=2, warmup=1, device="cpu", num_images=8,
                                synthetic_root=str(tiny_root / "synthetic_bench"), cache_dir=str(tiny_root / "cache"))
    assert result["end_to_end_images_per_s"] > 0 and result["model_only_images_per_s"] > 0
    assert result["loader_only_images_per_s"] > 0
    assert result["batch_size"] == 4 and result["device"] == "cpu"


def test_weights_only_checkpoint_cannot_resume_and_says_so(tmp_path):
    from posefast.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    state = dict(model=model, optimizer=optimizer, scheduler=scheduler, scaler=None, epoch=1, config={},
                 metrics={}, best=0.5, pretrained=False)
    save_checkpoint(str(tmp_path / "best.pt"), **state, weights_only=True)
    save_checkpoint(str(tmp_path / "last.pt"), **state)
    with pytest.raises(CheckpointError, match="best.pt holds weights only.*last.pt"):
        load_checkpoint(str(tmp_path / "best.pt"), model=model, optimizer=optimizer, scheduler=scheduler)
    ckpt = load_checkpoint(str(tmp_path / "best.pt"), model=model, restore_rng=False)
    assert ckpt["best"] == 0.5 and "optimizer" not in ckpt
    assert load_checkpoint(str(tmp_path / "last.pt"), model=model, optimizer=optimizer, scheduler=scheduler)["epoch"] == 1


def test_cpu_amp_trains_in_bf16_and_is_off_by_default(tiny_root, tmp_path, capsys, monkeypatch):
    import posefast.train as train_module

    cpu = torch.device("cpu")
    assert train_module.use_amp(load_config([]), cpu) is False
    cfg = tiny_config(tiny_root, tmp_path / "run", "--cpu_amp", "true", synthetic_train=48, synthetic_val=16,
                      epochs=2, batch_size=16, lr=3e-3)
    assert train_module.use_amp(cfg, cpu) is True
    dtypes = []
    step = train_module.train_step

    def recording_step(model, loss_fn, optimizer, batch, **kw):
        with train_module.autocast(kw["amp"], batch.images.device):
            dtypes.append(model(batch.images[:1]).dtype)
        assert kw["channels_last"] is True
        return step(model, loss_fn, optimizer, batch, **kw)

    monkeypatch.setattr(train_module, "train_step", recording_step)
    train(cfg)
    assert set(dtypes) == {torch.bfloat16}
    assert "bf16) on cpu" in capsys.readouterr().out
    records = read_metrics(tmp_path / "run")
    assert len(records) == 2 and records[-1]["loss"] < records[0]["loss"]
    assert all(0 <= r["val"]["pck_torso"] <= 1 for r in records)


def test_bf16_on_a_cpu_without_native_support_warns_once(monkeypatch):
    import warnings

    import posefast.train as train_module

    monkeypatch.setattr(train_module, "cpu_has_native_bf16", lambda: False)
    train_module.warn_bf16_without_native_support.cache_clear()
    cfg = load_config(["--cpu_amp", "true"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert train_module.use_amp(cfg, torch.device("cpu")) is True
        assert train_module.use_amp(cfg, torch.device("cpu")) is True  # each epoch asks again
    assert [str(w.message)[:38] for w in caught] == ["cpu_amp: this CPU has no native bf16 ("]
    train_module.warn_bf16_without_native_support.cache_clear()


def test_time_limit_is_a_config_error_when_not_positive(tiny_root, tmp_path):
    from posefast.config import ConfigError

    with pytest.raises(ConfigError, match="time_limit_min"):
        tiny_config(tiny_root, tmp_path / "x", "--time_limit_min", "0")


def test_a_run_over_its_time_limit_stops_with_its_schedule_ended(tiny_root, tmp_path):
    # a limit far below one epoch's time: the first epoch runs, then the plan shrinks to it
    cfg = tiny_config(tiny_root, tmp_path / "run", synthetic_train=24, synthetic_val=8, epochs=5, batch_size=8,
                      time_limit_min=1e-5)
    train(cfg)
    records = read_metrics(tmp_path / "run")
    assert [(r["epoch"], r["epochs"]) for r in records] == [(1, 1)]
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    steps = last["scheduler"]["last_epoch"]  # the steps taken: the shortened schedule ends on them
    assert steps > 0 and last["scheduler"]["lr_lambdas"][0]["total_steps"] == steps


def test_a_generous_time_limit_changes_nothing(tiny_root, tmp_path):
    common = dict(synthetic_train=24, synthetic_val=8, epochs=2, batch_size=8)
    train(tiny_config(tiny_root, tmp_path / "plain", **common))
    train(tiny_config(tiny_root, tmp_path / "budget", time_limit_min=600.0, **common))
    a, b = read_metrics(tmp_path / "plain"), read_metrics(tmp_path / "budget")
    assert [r["epochs"] for r in b] == [2, 2]
    assert [r["loss"] for r in a] == [r["loss"] for r in b]


@pytest.mark.parametrize("interval, epochs_with_pictures", [(0.0, [1, 2, 3]), (3600.0, [1, 3])])
def test_pictures_after_the_first_and_last_epoch_and_every_interval(tiny_root, tmp_path, monkeypatch,
                                                                    interval, epochs_with_pictures):
    import posefast.train as train_module

    written = []
    real = train_module.write_training_pictures

    def record(out_dir, model, val_loader, val_record, cfg, epoch):
        written.append(len(read_metrics(out_dir)))  # the epochs logged so far
        assert epoch == written[-1]
        real(out_dir, model, val_loader, val_record, cfg, epoch)

    monkeypatch.setattr(train_module, "write_training_pictures", record)
    train(tiny_config(tiny_root, tmp_path / "run", synthetic_train=24, synthetic_val=8, epochs=3, batch_size=8,
                      pictures_interval_s=interval))
    assert written == epochs_with_pictures
    assert {"val_overlay.png", "per_joint_pck.png", "curves.png"} <= set(os.listdir(tmp_path / "run"))


def test_pictures_interval_is_a_config_error_when_negative(tiny_root, tmp_path):
    from posefast.config import ConfigError

    with pytest.raises(ConfigError, match="pictures_interval_s"):
        tiny_config(tiny_root, tmp_path / "x", "--pictures_interval_s", "-1")


def test_resume_drops_log_lines_past_the_checkpoint(tiny_root, tmp_path):
    """A run killed after logging an epoch but before its last.pt landed logs it once on resume."""
    common = dict(synthetic_train=24, synthetic_val=8, epochs=3, batch_size=8)
    train(tiny_config(tiny_root, tmp_path / "run", **common), stop_after=1)
    log = tmp_path / "run" / "metrics.jsonl"
    stale = {**read_metrics(tmp_path / "run")[0], "epoch": 2}
    with open(log, "a") as f:
        f.write(json.dumps(stale) + "\n")  # epoch 2 logged, its checkpoint never written
    train(tiny_config(tiny_root, tmp_path / "run", resume=True, **common))
    assert [r["epoch"] for r in read_metrics(tmp_path / "run")] == [1, 2, 3]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a visible CUDA GPU")
def test_resume_on_cuda(tiny_root, tmp_path):
    """last.pt loaded onto the GPU: the random generators' states go back to the CPU."""
    common = dict(synthetic_train=24, synthetic_val=8, epochs=2, batch_size=8, device="cuda")
    train(tiny_config(tiny_root, tmp_path / "run", **common), stop_after=1)
    loaded = []
    real_load = posefast.train.load_checkpoint

    def recording_load(*args, **kwargs):
        loaded.append(kwargs["optimizer"])
        return real_load(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(posefast.train, "load_checkpoint", recording_load)
        train(tiny_config(tiny_root, tmp_path / "run", resume=True, **common))
    assert [r["epoch"] for r in read_metrics(tmp_path / "run")] == [1, 2]
    # Adam's step counters stay on the CPU as in a fresh optimizer (on the GPU, every step reads
    # each with .item(), a wait for the device), its moments go to the GPU
    state = list(loaded[0].state.values())
    assert state and all(s["step"].device.type == "cpu" and s["exp_avg"].is_cuda for s in state)


def test_no_per_step_item_calls_when_progress_is_off(tiny_root, tmp_path, monkeypatch):
    """``.item()`` waits for the device: the training and validation loops must not call it per
    batch (with the progress bar off, tqdm's counter stays 0, and ``n % 10 == 0`` held every step)."""
    callers = []
    item = torch.Tensor.item

    def counting_item(self):
        callers.append(sys._getframe(1).f_code.co_name)
        return item(self)

    monkeypatch.setattr(torch.Tensor, "item", counting_item)
    train(tiny_config(tiny_root, tmp_path / "run", synthetic_train=24, synthetic_val=8, epochs=1, batch_size=4))
    assert len(read_metrics(tmp_path / "run")) == 1
    assert "train_one_epoch" not in callers and "evaluate" not in callers, callers


def test_progress_bar_reads_the_loss_every_tenth_step_only(tiny_root, tmp_path, monkeypatch):
    """With the bar shown, ``.item()`` (a wait for the device) on steps 0, 10, 20...: not on
    every step on which tqdm's own counter, refreshed only every 0.1 s, holds a multiple of 10."""
    callers, steps = [], []
    item, step = torch.Tensor.item, posefast.train.train_step

    def counting_item(self):
        callers.append(sys._getframe(1).f_code.co_name)
        return item(self)

    def counting_step(*args, **kwargs):
        steps.append(1)
        return step(*args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "item", counting_item)
    monkeypatch.setattr(posefast.train, "train_step", counting_step)
    # steps faster than tqdm's refresh interval, whatever this machine's speed: bar.n stays 0
    class LazyTqdm(posefast.train.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, mininterval=3600, **kwargs)

    monkeypatch.setattr(posefast.train, "tqdm", LazyTqdm)
    train(tiny_config(tiny_root, tmp_path / "run", synthetic_train=48, synthetic_val=8, epochs=1, batch_size=4,
                      progress=True))
    assert len(steps) > 10 and callers.count("train_one_epoch") == math.ceil(len(steps) / 10), (len(steps), callers)


def test_model_only_benchmark_in_a_fresh_process(tiny_root):
    """The cuDNN-heuristics A/B's model-only number comes from a spawned process (run here on
    the CPU, where the mechanism is the same)."""
    from posefast.train_benchmark import model_only_in_fresh_process

    rate = model_only_in_fresh_process(batch_size=4, input_size=(64, 32), steps=2, warmup=1, device="cpu",
                                       num_images=8, synthetic_root=str(tiny_root / "bench_synthetic"),
                                       cache_dir=str(tiny_root / "bench_cache"), cudnn_benchmark=False)
    assert rate is not None and rate > 0
    with pytest.warns(UserWarning, match="fresh process failed"):
        assert model_only_in_fresh_process(batch_size=4, input_size=(65, 32), device="cpu", num_images=8,
                                           synthetic_root=str(tiny_root / "bench_synthetic"),
                                           cache_dir=str(tiny_root / "bench_cache")) is None  # not ~/.cache


def test_a_side_process_that_dies_is_reported_not_waited_for():
    """A spawned process killed outright (a crash, the OOM killer): None and a warning, where
    multiprocessing.Pool.apply would wait for the lost result forever."""
    from posefast.train_benchmark import in_fresh_process

    with pytest.warns(UserWarning, match="dying in a fresh process failed: BrokenProcessPool"):
        assert in_fresh_process("dying", os._exit, 3) is None


def test_cudnn_benchmark_is_a_config_switch(tiny_root, tmp_path):
    assert tiny_config(tiny_root, tmp_path / "a").cudnn_benchmark is True
    assert tiny_config(tiny_root, tmp_path / "b", "--cudnn_benchmark", "false").cudnn_benchmark is False


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a visible CUDA GPU")
@pytest.mark.parametrize("on", [True, False])
def test_cudnn_benchmark_follows_the_config_on_cuda(tiny_root, tmp_path, monkeypatch, on):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", not on)  # restored afterwards
    train(tiny_config(tiny_root, tmp_path / "run", synthetic_train=16, synthetic_val=8, epochs=1, batch_size=8,
                      device="cuda", cudnn_benchmark=on))
    assert torch.backends.cudnn.benchmark is on
