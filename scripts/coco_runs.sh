#!/usr/bin/env bash
# The COCO runs of docs/RESULTS_COCO.md: train, then evaluate best.pt (with the flip test;
# both decodings), one run after another, then the tables. Usage:
#   bash scripts/coco_runs.sh OUT_ROOT STAGE...     STAGE: ablations | abl_NAME | topdown | image | best | NAME
# (NAME: configs/coco_cpu_NAME.yaml). Run from the repository root: the configs' data_dir is
# ../shared/data/coco_kpts, relative to the cwd; DATA_DIR=... overrides it. PYTHON picks the
# interpreter (default: python). EXTRA="--key value ..." is appended to every training
# command: the configs are CPU-sized, so a GPU run scales them up, e.g.
#   DATA_DIR=.carry/coco_kpts_small EXTRA="--input_size 256,192 --epochs 60 --batch_size 128 --lr 4e-3" \
#     bash scripts/coco_runs.sh "$OUT/runs" topdown
set -euo pipefail
out_root=${1:?usage: coco_cpu_runs.sh OUT_ROOT STAGE...}; shift
py=${PYTHON:-python}
data=()
[[ -n "${DATA_DIR:-}" ]] && data=(--data_dir "$DATA_DIR")
uniform="[$(printf '1,%.0s' {1..16})1]"
read -r -a extra <<< "${EXTRA:-}"

run() {  # run NAME CONFIG [--key value ...]
  local name=$1 config=$2; shift 2
  local dir="$out_root/$name"
  mkdir -p "$dir"
  local start=$SECONDS
  "$py" -m posefast.train --config "$config" "${data[@]}" --out_dir "$dir" --progress false "$@" "${extra[@]}" 2>&1 | tee "$dir/train.log"
  echo "wall_s $((SECONDS - start))" | tee -a "$dir/train.log"
  "$py" -m posefast.evaluate --checkpoint "$dir/best.pt" --flip --no-progress 2>&1 | tee "$dir/eval.log"
}

# Ablations: our protocol on a shorter schedule (600 of the train images, 4 epochs), one change each.
declare -A ABLATION=([abl_base]="" [abl_mse]="--loss mse" [abl_mse_bias0]="--loss mse --head_bias 0"
                     [abl_no_coord]="--coord_weight 0" [abl_uniform_weights]="--joint_weights $uniform")
ABLATION_ORDER=(abl_base abl_mse abl_mse_bias0 abl_no_coord abl_uniform_weights)
ablation() {  # ablation NAME
  # shellcheck disable=SC2086  # the overrides are words
  run "$1" configs/coco_cpu_topdown_simple.yaml --train_subset 600 --epochs 4 ${ABLATION[$1]}
}

for stage in "$@"; do
  case $stage in
    ablations) for name in "${ABLATION_ORDER[@]}"; do ablation "$name"; done ;;
    abl_*) [[ -v "ABLATION[$stage]" ]] || { echo "unknown ablation $stage"; exit 2; }
           ablation "$stage" ;;
    topdown) run topdown_simple configs/coco_cpu_topdown_simple.yaml
             run topdown_unet configs/coco_cpu_topdown_unet.yaml ;;
    image) run image_simple configs/coco_cpu_image_simple.yaml
           run image_unet configs/coco_cpu_image_unet.yaml ;;
    best) run coco_best configs/coco_best.yaml ;;
    *) run "$stage" "configs/coco_cpu_$stage.yaml" ;;
  esac
done
"$py" scripts/coco_results_table.py "$out_root" | tee "$out_root/tables.md"
