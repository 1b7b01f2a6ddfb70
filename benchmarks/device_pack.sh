# Sourced by the GPU-session scripts (benchmarks/device_check.sh, scripts/device_coco.sh).
#
# The device tool brings back at most 8 files from $OUT, at most two folders down, and of a
# command killed at its time limit only what $OUT holds at that moment. So the scripts write
# their results into a work folder and keep $OUT at two files: the script's log and one
# tarball of the work folder, rewritten every PACK_EVERY seconds (default 20) and at exit.
# Checkpoints (*.pt) and built modules (*.so) are left out of the tarball.
#
#   source benchmarks/device_pack.sh
#   start_packing WORK_DIR "$OUT/NAME.tar.gz"
#
# Also: time_left (seconds until DEADLINE_S after the script's start, default 570, so the
# whole script ends inside the tool's 600 s limit), stage_limit N (N, or less when less
# time is left; at least 1), for `timeout "$(stage_limit 300)" CMD`, and stage TEXT (a log
# heading with the time spent and left), and install_wheels DIR (pip-installs the wheels in DIR,
# carried for packages the GPU machine lacks, into /tmp/site and puts that on PYTHONPATH).

PACK_T0=${PACK_T0:-$(date +%s)}

pack_now() {
  [ -n "${PACK_WORK:-}" ] || return 0
  tar -czf "$PACK_TARBALL.part" -C "$PACK_WORK" --exclude='*.pt' --exclude='*.so' . 2>/dev/null \
    && mv -f "$PACK_TARBALL.part" "$PACK_TARBALL"
}

start_packing() {  # start_packing WORK_DIR TARBALL
  PACK_WORK=$1
  PACK_TARBALL=$2
  mkdir -p "$PACK_WORK"
  # no output: a sleep left over after exit must not hold the script's stdout open
  (while sleep "${PACK_EVERY:-20}"; do pack_now; done) >/dev/null 2>&1 &
  PACK_PID=$!
  trap 'kill "$PACK_PID" 2>/dev/null; pack_now' EXIT
  trap 'exit 143' TERM INT  # so a kill still runs the EXIT trap
}

time_left() {
  echo $(( ${DEADLINE_S:-570} - ($(date +%s) - PACK_T0) ))
}

stage_limit() {  # stage_limit MAX_SECONDS
  local left
  left=$(( $(time_left) - 15 ))  # 15 s to pack and exit
  [ "$left" -gt "$1" ] && left=$1
  [ "$left" -lt 1 ] && left=1
  echo "$left"
}

stage() {  # stage TEXT
  echo
  echo "=== [$(( $(date +%s) - PACK_T0 ))s, $(time_left)s left] $*"
}

install_wheels() {  # install_wheels DIR: carried wheels (e.g. pycocotools) for ${PY:-python3}
  ls "$1"/*.whl >/dev/null 2>&1 || return 0
  stage "install carried wheels ($1)"
  "${PY:-python3}" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$1"/*.whl && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
}
