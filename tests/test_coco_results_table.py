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
    assert table_module.main([str(root)]) == 0
