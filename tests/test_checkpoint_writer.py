"""The background checkpoint writer: what lands on disk is the state at save time, the
files match a synchronous save, and a failed write is raised, naming the path."""
import threading

import pytest
import torch
from torch import nn

from posefast.checkpoint import BackgroundCheckpointer, read_checkpoint, save_checkpoint, snapshot


def make_state():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return dict(model=model, optimizer=optimizer, scheduler=scheduler, scaler=None, epoch=3, config={"lr": 0.01},
                metrics={"epoch": 3}, best=0.5, pretrained=False)


def test_snapshot_copies_tensors_through_nested_containers():
    t = torch.ones(3)
    copy = snapshot({"a": [t, (t, 1)], "b": "x"})
    t.add_(1)
    assert torch.equal(copy["a"][0], torch.ones(3)) and torch.equal(copy["a"][1][0], torch.ones(3))
    assert copy["a"][1][1] == 1 and copy["b"] == "x" and isinstance(copy["a"][1], tuple)


def test_files_hold_the_state_at_save_time_and_match_a_synchronous_save(tmp_path):
    state = make_state()
    save_checkpoint(str(tmp_path / "sync_last.pt"), **state)
    save_checkpoint(str(tmp_path / "sync_best.pt"), weights_only=True, **state)
    with BackgroundCheckpointer() as writer:
        writer.save({str(tmp_path / "last.pt"): False, str(tmp_path / "best.pt"): True}, **state)
        with torch.no_grad():
            state["model"].weight.add_(100.0)  # training goes on while the thread writes
    for name in ("last", "best"):
        ours, sync = read_checkpoint(str(tmp_path / f"{name}.pt")), read_checkpoint(str(tmp_path / f"sync_{name}.pt"))
        assert set(ours) == set(sync)
        for key, value in sync["model"].items():
            assert torch.equal(ours["model"][key], value)
    last = read_checkpoint(str(tmp_path / "last.pt"))
    assert last["epoch"] == 3 and last["best"] == 0.5 and "optimizer" in last and "rng" in last
    sync_moments = read_checkpoint(str(tmp_path / "sync_last.pt"))["optimizer"]["state"][0]["exp_avg"]
    assert torch.equal(last["optimizer"]["state"][0]["exp_avg"], sync_moments)
    assert "optimizer" not in read_checkpoint(str(tmp_path / "best.pt"))


def test_a_failed_write_is_raised_with_its_path(tmp_path):
    state = make_state()
    missing = tmp_path / "no_such_folder" / "last.pt"
    writer = BackgroundCheckpointer()
    writer.save({str(missing): False}, **state)
    with pytest.raises(OSError, match="no_such_folder"):
        writer.wait()
    writer.wait()  # reported once


def test_an_error_leaving_the_block_is_not_hidden_by_a_failed_write(tmp_path):
    """Training failing (say, diverging) while a write also failed: the training error is
    what propagates; the write's is a warning naming its path."""
    missing = tmp_path / "no_such_folder" / "last.pt"
    with pytest.warns(UserWarning, match="no_such_folder"), pytest.raises(ZeroDivisionError):
        with BackgroundCheckpointer() as writer:
            writer.save({str(missing): False}, **make_state())
            raise ZeroDivisionError


def test_save_waits_for_the_previous_write(tmp_path, monkeypatch):
    import posefast.checkpoint as checkpoint

    release, order = threading.Event(), []
    real = checkpoint.write_payload

    def slow_write(payload, path):
        if path.endswith("first.pt"):
            release.wait(5)
        order.append(path.rsplit("/", 1)[-1])
        real(payload, path)

    monkeypatch.setattr(checkpoint, "write_payload", slow_write)
    state = make_state()
    with BackgroundCheckpointer() as writer:
        writer.save({str(tmp_path / "first.pt"): False}, **state)
        threading.Timer(0.2, release.set).start()
        writer.save({str(tmp_path / "second.pt"): False}, **state)
    assert order == ["first.pt", "second.pt"]
