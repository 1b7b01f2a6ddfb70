"""scripts/coco_results_table.py turns real run folders (a trained, evaluated checkpoint)
into the tables of docs/RESULTS_COCO.md."""
import json
import shutil

import pytest

from repo_scripts import import_script


@pytest.fixture(scope="module")
def table_module():
    return import_script("scripts", "coco_results_table")


def test_tables_from_evaluated_runs(tiny_run, tmp_path, table_module):
    from posefast.evaluate import evaluate_checkpoint

    root = tmp_path / "runs"
    for name, wall in (("topdown_simple", 125), ("abl_base", 61)):
        folder = root / name
        shutil.copytree(tiny_run["run"], folder)
        (folder / "train.log").write_text(f"epoch 1/1 ...\nwall_s {wall}\n")
        evaluate_checkpoint(str(folder / "best.pt"), out_dir=str(folder / "eval"), flip=True, device="cpu",
                            progress=False)
    report = json.loads((root / "topdown_simple" / "eval" / "eval.json").read_text())
    pck = report["results"]["soft_argmax"]["pck_torso"]

    main = table_module.main_table(str(root))
    row = [line for line in main.splitlines() if line.startswith("| topdown_simple |")]
    assert len(row) == 1 and f"| {pck:.3f} |" in row[0] and "| 2m05s |" in row[0]
    assert "image_unet" not in main  # runs that are missing are left out

    joints = table_module.per_joint_table(str(root))
    assert joints.count("\n") == 2 + 16 and "| left_wrist |" in joints

    ablations = table_module.ablation_lines(str(root))
    assert "| +0.000 |" in ablations and "flip test" in ablations and "argmax" in ablations
    assert "| ablation (all train images, 1 epoch) |" in ablations  # the baseline run's own schedule
    assert table_module.main([str(root)]) == 0


def test_seed_table_pairs_each_ablation_with_its_own_seeds_baseline(tiny_run, tmp_path, table_module):
    from posefast.evaluate import evaluate_checkpoint

    evaluated = tmp_path / "evaluated"
    shutil.copytree(tiny_run["run"], evaluated)
    (evaluated / "train.log").write_text("wall_s 10\n")
    evaluate_checkpoint(str(evaluated / "best.pt"), out_dir=str(evaluated / "eval"), flip=True, device="cpu",
                        progress=False)
    # torso PCK per (seed, run): the no-coord ablation beats its own seed's baseline by 0.02 and 0.04
    # although seed 1's baseline alone is higher than seed 0's ablation.
    torso = {("seed0", "abl_base"): 0.30, ("seed0", "abl_no_coord"): 0.32,
             ("seed1", "abl_base"): 0.40, ("seed1", "abl_no_coord"): 0.44, ("seed2", "abl_base"): 0.35}
    for (seed, name), value in torso.items():
        folder = tmp_path / seed / name
        shutil.copytree(evaluated, folder)
        path = folder / "eval" / "eval.json"
        report = json.loads(path.read_text())
        report["results"]["soft_argmax"]["pck_torso"] = value
        path.write_text(json.dumps(report))

    table = table_module.seed_ablation_table([str(tmp_path / s) for s in ("seed0", "seed1", "seed2", "missing")])
    assert "(all train images, 1 epoch; 3 seeds: seed0, seed1, seed2)" in table
    row = [line for line in table.splitlines() if line.startswith("| coordinate")]
    assert len(row) == 1
    assert "(2 of 3 seeds)" in row[0] and "| +0.030 +- 0.014 |" in row[0]
    assert "seed0: 0.320 (+0.020), seed1: 0.440 (+0.040)" in row[0]
    base = [line for line in table.splitlines() if line.startswith("| baseline: BCE")]
    assert "| 0.350 +- 0.050 |" in base[0] and "| +0.000 +- 0.000 |" in base[0]
    assert "flip test" in table and "argmax" in table
    assert table_module.main(["--seeds", str(tmp_path / "seed0")]) == 0
