#!/usr/bin/env bash
# The GPU measurements of the training and performance issues, in one run (`make gpu-check`), in order of
# importance, each step under its own time limit and the whole under a deadline, so one that fails or
# runs long costs only itself. Results go to $GPU_OUT (JSON per step, logs); a table is printed last.
#
#   1. training throughput of every method at the paper's batch 8, 256 px (synthetic batches; bf16
#      autocast, channels_last, fused Adam): images/s, TFLOP/s, fraction of the GPU's peak, recipe hours
#   2. the real trainer (`safin train`, paper profile, data loader with train.num_workers=auto on the
#      sample set cached at 512 px) for SAFIN: images/s end to end, non-deterministic (cudnn autotuning)
#   3. SAFIN inference at 2048 and 4096 px (content and style), fast path
#   4. the data loader alone: pairs/s with 1, 4, 8 and 15 decoding processes
#   5. the real trainer in deterministic mode (the paper profile's default) for SAFIN
#   6. the training throughput with torch.compile, SAFIN
#   7. the trainer under torchrun (DistributedDataParallel, nccl), one process
#   8. inference of every method at 1024 px, fast and naive paths
#
# Environment: PY (default python3), SAFIN (default "$PY -m pipeline.cli"), GPU_OUT (default metrics/gpu),
# DEADLINE_S (default 450), TRAIN_ITERS (default 1000), DEVICE (default auto), SIZES_BIG ("2048 4096"),
# SIZE_TABLE (1024), TRAIN_RUNS (30), TRAIN_WARMUP (5), LOADER_WORKERS ("1 4 8 15"), METHODS (default:
# benchmark.methods), ONLY (step names to run, default all). Runs from the repository root; the trainer's files go to a temp dir. The
# trainer runs use random encoder weights (throughput does not depend on them; a GPU box may be offline)
# and no dvclive logging.
set -u
PY=${PY:-python3}
SAFIN=${SAFIN:-$PY -m pipeline.cli}
OUT=${GPU_OUT:-metrics/gpu}
DEADLINE_S=${DEADLINE_S:-450}
ITERS=${TRAIN_ITERS:-1000}
DEVICE=${DEVICE:-auto}
SIZES_BIG=${SIZES_BIG:-"2048 4096"}
LOADER_WORKERS=${LOADER_WORKERS:-"1 4 8 15"}
SIZE_TABLE=${SIZE_TABLE:-1024}
TRAIN_RUNS=${TRAIN_RUNS:-30}
TRAIN_WARMUP=${TRAIN_WARMUP:-5}
METHODS=${METHODS:-}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
WORK=$(mktemp -d)
START=$(date +%s)
trap 'rm -rf "$WORK"' EXIT

left() { echo $(( DEADLINE_S - ($(date +%s) - START) )); }

# step NAME LIMIT_S COMMAND...: run when at least LIMIT_S/2 seconds are left, under min(LIMIT_S, left)
step() {
  local name=$1 limit=$2; shift 2
  wanted "$name" || return 0
  local l; l=$(left)
  if (( l < limit / 2 )); then echo "== $name: skipped ($l s left)" | tee -a "$OUT/steps.txt"; return; fi
  (( limit > l )) && limit=$l
  local t0; t0=$(date +%s)
  echo "== $name (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/steps.txt"
  tail -n 15 "$OUT/$name.log"
}

# the environment
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true
  "$PY" -c "import torch, os; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.is_available() and torch.cuda.get_device_name(0), 'cpus', os.cpu_count())"
} | tee "$OUT/environment.txt"

# the paper profile's parameters, with the data and runs in the work dir
"$PY" - "$WORK" <<'EOF'
import sys, yaml
from pathlib import Path
from pipeline.params import load_params, profile_keys
work = Path(sys.argv[1])
p = load_params()
for dotted, value in profile_keys("paper").items():
    node = p
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
p["data"]["out"] = str(work / "data")
p["train"]["out"] = str(work / "train")
(work / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
EOF
# the sample set cached at 512 px, for the steps that read it (the trainers and the loader; the others use synthetic
# batches or the sample images themselves)
wanted() {
  [[ -z "${ONLY:-}" ]] && return 0
  local name; for name in "$@"; do [[ " $ONLY " == *" $name "* ]] && return 0; done
  return 1
}
if wanted trainer_safin loader trainer_safin_deterministic trainer_torchrun; then
  for kind in content style; do
    $SAFIN prepare-images data/sample/$kind "$WORK/data/$kind" --size 512 --workers 8 >/dev/null 2>&1 \
      || echo "prepare-images $kind failed"
  done
fi

P="$WORK/params.yaml"
method_args=(); for m in $METHODS; do method_args+=(--method "$m"); done
step train_throughput 240 $SAFIN bench --params "$P" --train-only --train-runs "$TRAIN_RUNS" --train-warmup "$TRAIN_WARMUP" \
  "${method_args[@]}" --out "$OUT/train_throughput.json"
step trainer_safin 150 $SAFIN train --params "$P" --method safin --max-iter "$ITERS" --device "$DEVICE" --no-progress \
  --out-dir "$WORK/train/safin" --set live=false --set encoder_weights=random --set deterministic=false --set checkpoint_every=100000
cp "$WORK/train/safin/summary.json" "$OUT/trainer_safin.json" 2>/dev/null
inference_args=(); for s in $SIZES_BIG; do inference_args+=(--size "$s"); done
step inference_safin_big 150 $SAFIN bench --params "$P" --method safin "${inference_args[@]}" --no-naive --runs 3 \
  --wct-size 0 --train-runs 0 --out "$OUT/inference_safin_big.json"
loader_args=(); for w in $LOADER_WORKERS; do loader_args+=(--loader-workers "$w"); done
step loader 90 $SAFIN bench --params "$P" --train-only --train-runs 0 --method safin "${loader_args[@]}" \
  --out "$OUT/loader.json"
step trainer_safin_deterministic 120 $SAFIN train --params "$P" --method safin --max-iter "$ITERS" --device "$DEVICE" \
  --no-progress --out-dir "$WORK/train/safin_det" --set live=false --set encoder_weights=random --set deterministic=true --set checkpoint_every=100000
cp "$WORK/train/safin_det/summary.json" "$OUT/trainer_safin_deterministic.json" 2>/dev/null
step train_throughput_compiled 180 $SAFIN bench --params "$P" --train-only --method safin --compile \
  --train-runs "$TRAIN_RUNS" --train-warmup "$TRAIN_WARMUP" --out "$OUT/train_throughput_compiled.json"
step trainer_torchrun 90 "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 -m pipeline.cli train \
  --params "$P" --method safin --max-iter 200 --device "$DEVICE" --no-progress --out-dir "$WORK/train/safin_ddp" \
  --set live=false --set encoder_weights=random --set deterministic=false --set checkpoint_every=100000
cp "$WORK/train/safin_ddp/summary.json" "$OUT/trainer_torchrun.json" 2>/dev/null
step inference_table 200 $SAFIN bench --params "$P" "${method_args[@]}" --size "$SIZE_TABLE" --runs 3 --train-runs 0 --wct-size 512 \
  --out "$OUT/inference_table.json"

echo "== summary ($(( $(date +%s) - START )) s)"
"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
from evaluation.speed import table
out = Path(sys.argv[1])
for name in ("train_throughput", "train_throughput_compiled", "inference_safin_big", "loader", "inference_table"):
    f = out / f"{name}.json"
    if f.exists():
        print(f"-- {name}\n" + table(json.loads(f.read_text())))
for name in ("trainer_safin", "trainer_safin_deterministic", "trainer_torchrun"):
    f = out / f"{name}.json"
    if f.exists():
        doc = json.loads(f.read_text())
        print(f"-- {name}: {doc['iterations']} it, {doc['images_per_s']:.1f} img/s on {doc['device']}, "
              f"world {doc['world_size']}, losses {doc['final_losses']}")
EOF
