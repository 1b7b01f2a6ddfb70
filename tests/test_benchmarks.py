"""benchmarks/run.py end to end at toy sizes on the CPU (seconds): every kind of row it
writes, including the fused pose-loss table, lands in the JSON with sane values."""
import json
import platform

import pytest

from repo_scripts import import_script


@pytest.fixture(scope="module")
def bench_run():
    return import_script("benchmarks", "run")


def test_run_writes_every_row(bench_run, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = bench_run.main(["--device", "cpu", "--quick", "--threads", "1", "--sizes", "4:16x12", "--loss-sizes",
                         "2:16x12", "--repeats", "4", "--budget", "0.05", "--json", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    ops = {(r["op"], r["dtype"]) for r in result["rows"]}
    assert ops == {("render", "float32"), ("pck_counts", "float32")} | {
        (op, dt) for op in ("soft_argmax", "soft_argmax_bwd", "soft_argmax_fwd_bwd") for dt in ("float32", "bfloat16")}
    for row in result["rows"]:
        assert row["posefast_us"] > 0 and row["eager_us"] > 0
        assert row["speedup_vs_eager"] == pytest.approx(row["eager_us"] / row["posefast_us"])
        assert row["gbps"] > 0 and row["pct_copy"] > 0
    assert result["meta"]["copy_gbps"] > 0 and result["meta"]["device_type"] == "cpu"
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":  # same heap behaviour every run
        assert result["meta"]["cpu_allocator"].startswith("glibc mallopt: mmap threshold 32 MiB")

    loss_rows = result["pose_loss"]
    assert [(r["dtype"], r["size"]) for r in loss_rows] == [("float32", "B2 16x12"), ("bfloat16", "B2 16x12")]
    for row in loss_rows:
        assert row["floor_bytes"] == 3 * 2 * 17 * 16 * 12 * (4 if row["dtype"] == "float32" else 2)
        for name in ("fused", "unfused", "eager"):
            assert row[f"{name}_us"] > 0 and row[f"{name}_repeats"] >= 3
        assert row["fused_vs_unfused"] == pytest.approx(row["unfused_us"] / row["fused_us"])
        assert row["floor_x"] > 0
    printed = capsys.readouterr().out
    assert "| float32 | B2 16x12 |" in printed and "x unfused" in printed


def test_unknown_op_is_an_error(bench_run, capsys):
    with pytest.raises(SystemExit):
        bench_run.main(["--device", "cpu", "--ops", "softargmax"])
    assert "unknown op 'softargmax'" in capsys.readouterr().err


def test_pose_loss_table_shows_the_graph_columns_only_when_measured():
    bench = import_script("benchmarks", "pose_loss_bench")
    row = {"dtype": "float32", "size": "B2 16x12", "eager_us": 30.0, "unfused_us": 20.0, "fused_us": 10.0,
           "fused_vs_unfused": 2.0, "fused_vs_eager": 3.0, "fused_gbps": 1.0, "floor_x": 4.0}
    plain = bench.format_rows([row])
    assert "graph" not in plain and plain.splitlines()[-1].endswith("| 4.00 |")
    replayed = bench.format_rows([{**row, "fused_graph_us": 5.0, "graph_floor_x": 2.0},
                                  {**row, "size": "B4 16x12", "graph_error": "RuntimeError: capture failed"}])
    lines = replayed.splitlines()
    assert lines[0].endswith("fused graph us | graph x floor |")
    assert lines[2].endswith("| 4.00 | 5 | 2.00 |") and lines[3].endswith("| 4.00 | - | - |")
    assert lines[4] == "CUDA graph failed for pose_loss float32 B4 16x12: RuntimeError: capture failed"
    timed = bench.format_rows([{**row, "fused_graph_us": 5.0, "graph_floor_x": 2.0, "fused_device_us": 4.0,
                                "device_floor_x": 1.6}]).splitlines()
    assert timed[0].endswith("fused graph us | graph x floor | fused device us | device x floor |")
    assert timed[2].endswith("| 5 | 2.00 | 4 | 1.60 |")


def test_op_table_shows_the_device_columns_only_when_measured():
    run = import_script("benchmarks", "run")
    row = {"op": "render", "dtype": "float32", "size": "B64 64x48", "bytes": 4_000_000, "eager_us": 100.0,
           "compiled_us": 50.0, "posefast_us": 40.0, "speedup_vs_eager": 2.5, "speedup_vs_compiled": 1.25,
           "gbps": 100.0, "pct_copy": 10.0}
    assert "device us" not in run.format_table([row], 1000.0)
    lines = run.format_table([{**row, "graph_us": 10.0, "device_us": 8.0},
                              {**row, "device_error": "RuntimeError: no spin"}], 1000.0).splitlines()
    assert lines[0].rstrip(" |").endswith("graph GB/s | device us | device % copy")
    assert lines[2].replace(" ", "").endswith("|10.0|400.0|8.0|50|")  # 4 MB in 8 us = 500 GB/s = 50 % of 1000
    assert "device time failed for render float32 B64 64x48: RuntimeError: no spin" in lines


def test_profile_kernels_runs_every_op_once_on_the_cpu(capsys):
    profile = import_script("benchmarks", "profile_kernels")
    assert profile.main(["--device", "cpu", "--size", "16x12"]) == 0
    assert "one launch of each posefast kernel at 16x12 on cpu" in capsys.readouterr().out


def data_only(bench_run, tmp_path, *extra):
    """``run.py --data-only`` on a tiny synthetic set (4 per batch); its ``data`` record."""
    out = tmp_path / "data.json"
    assert bench_run.main(["--device", "cpu", "--data-only", "--data-images", "8", "--data-batch", "4",
                           "--data-root", str(tmp_path / "root"), "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())["data"]


def test_data_benchmark_measures_the_mmpose_style_baseline_too(bench_run, tmp_path):
    data = data_only(bench_run, tmp_path, "--data-batches", "2", "--baseline-workers", "1", "--data-rounds", "3")
    for name in ("augmented", "plain", "mmpose_style"):
        rates = data[f"{name}_rounds"]
        assert len(rates) == 3 and min(rates) > 0 and data[f"{name}_samples_per_s"] == sorted(rates)[1]
    assert data["mmpose_style_workers"] == 1
    ratios = [a / b for a, b in zip(data["augmented_rounds"], data["mmpose_style_rounds"])]
    assert data["augmented_vs_mmpose_style_rounds"] == pytest.approx(ratios)
    assert data["augmented_vs_mmpose_style"] == pytest.approx(sorted(ratios)[1])


def test_mmpose_style_baseline_warps_and_renders_where_the_joints_are():
    import numpy as np

    baseline = import_script("benchmarks", "mmpose_style_loader")
    matrix = baseline.warp_matrix((100.0, 50.0), (60.0, 80.0), 0.0, 192, 256)  # a 60x80 box -> 192x256
    corners = np.array([[70.0, 10.0], [130.0, 90.0]]) @ matrix[:, :2].T + matrix[:, 2]
    assert np.allclose(corners, [[0, 0], [192, 256]])
    turned = baseline.warp_matrix((100.0, 50.0), (60.0, 80.0), 90.0, 192, 256)
    assert np.allclose(turned[:, :2] @ [0.0, -10.0], [-32.0, 0.0])  # up in the image turns to the left
    points = np.zeros((17, 2), np.float32)
    points[0], points[1] = (10.2, 20.7), (100.0, 5.0)  # the second off the 48x64 map
    visible = np.zeros(17, bool)
    visible[:2] = True
    heatmaps, weights = baseline.gaussian_targets(points, visible, 48, 64, 2.0)
    assert np.unravel_index(heatmaps[0].argmax(), heatmaps[0].shape) == (21, 10) and heatmaps[0].max() == 1
    assert heatmaps[0, 21, 12] == pytest.approx(np.exp(-4 / 8)) and heatmaps[0, 21, 17] == 0  # 6-sigma window
    assert weights.tolist()[:3] == [1, 0, 0] and not heatmaps[1:].any()


def test_a_failing_baseline_keeps_the_loaders_numbers(bench_run, tmp_path, monkeypatch):
    def broken(*args):
        raise ValueError("no persons")

    monkeypatch.setattr(bench_run, "MmposeStyleBench", broken)
    data = data_only(bench_run, tmp_path, "--data-batches", "1", "--data-rounds", "1")
    assert data["mmpose_style_error"] == "ValueError: no persons" and data["augmented_samples_per_s"] > 0
    assert "mmpose_style_samples_per_s" not in data


def test_a_baseline_that_dies_mid_run_keeps_the_loaders_numbers(bench_run, tmp_path, monkeypatch):
    class DiesInRoundTwo:
        def __init__(self, *args):
            self.rounds, self.closed = 0, False

        def samples_per_s(self, num_batches):
            self.rounds += 1
            if self.rounds == 2:
                raise RuntimeError("DataLoader worker (pid 1) exited unexpectedly")
            return 100.0

        def close(self):
            self.closed = True

    monkeypatch.setattr(bench_run, "MmposeStyleBench", DiesInRoundTwo)
    data = data_only(bench_run, tmp_path, "--data-batches", "1", "--data-rounds", "3")
    assert data["mmpose_style_error"].startswith("RuntimeError: DataLoader worker")
    assert len(data["augmented_rounds"]) == 3 and "mmpose_style_rounds" not in data
    with pytest.raises(SystemExit):
        bench_run.main(["--device", "cpu", "--data-only", "--data-rounds", "0"])
