#!/usr/bin/env bash
# One prepared GPU session (the project's lent-GPU check): a few minutes on an H200, every
# command under a time limit:
#   1. the pipeline on the real data on CUDA with params.yaml's recipes, stage by stage,
#      with wall times (the sentiment epoch on a GPU is train-sentiment's reviews_per_s);
#   2. the CUDA benchmarks (char-LM step: the >= 20x target) and a CUDA profile.
# Usage (repo root on the GPU machine): bash benchmarks/gpu_session.sh DATA_DIR OUT_DIR
# Everything ends up in OUT_DIR/results.tar.gz (one file). SMOKE=1 DEVICE=cpu rehearses it.
# DATA_DIR holds aclImdb_v1_labeled.tar.gz and 1268-0.txt. Needs dvc-free deps only:
# the stages run as `python3 -m pipeline <stage>`, in dvc.yaml's order.
set -uo pipefail
DATA=$(realpath "$1"); OUT=$(realpath "$2")
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 MLFLOW_TRACKING_URI="sqlite:///$PWD/mlflow.db"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
"$PY" - "$DATA" <<'PY'
import os, sys, yaml
data = sys.argv[1]
p = yaml.safe_load(open("params.yaml"))
p["device"] = os.environ.get("DEVICE", "cuda")
p["imdb"].update(url=f"{data}/aclImdb_v1_labeled.tar.gz",
                 sha256="3c27c84c5b647935a2b44ee9c5b3fc302d26b6d268caf4c6a360aa7cb1f5fce7")
p["gutenberg"]["url"] = f"{data}/1268-0.txt"
if os.environ.get("SMOKE"):  # a minute-long rehearsal of this script on a CPU
    p["imdb"].update(limit=100, val_size=50)
    p["sentiment"]["epochs"] = 1
    p["charlm"].update(steps=20, eval_every=10)
yaml.safe_dump(p, open("params.yaml", "w"), sort_keys=False)
PY

stage() {  # name, time limit (s), params file
  local t0=$EPOCHREALTIME
  timeout "$2" "$PY" -m pipeline "$1" --params "$3" > "$OUT/log_$1_$(basename "$3" .yaml).txt" 2>&1
  local rc=$?
  awk -v a="$t0" -v b="$EPOCHREALTIME" -v p="$(basename "$3")" -v s="$1" -v rc="$rc" \
    'BEGIN { printf "%s\t%s\trc=%s\t%.1f s\n", p, s, rc, b - a }' | tee -a "$OUT/stages.tsv"
}

# 1. The pipeline with params.yaml's recipes, on CUDA.
for s in acquire-imdb acquire-gutenberg prepare-imdb prepare-gutenberg pretrain-sentiment; do
  stage $s 120 params.yaml
done
for s in train-sentiment evaluate-sentiment train-charlm evaluate-charlm; do stage $s 240 params.yaml; done
mkdir -p "$OUT/default" && cp metrics/*.json data/eval/charlm/samples.txt "$OUT/default/" 2>/dev/null

# 2. Benchmarks on CUDA.
timeout 60 "$PY" benchmarks/bench_charlm_step.py --device "${DEVICE:-cuda}" ${SMOKE:+--quick} --results "$OUT/bench.jsonl" > "$OUT/bench_charlm_step.txt" 2>&1
timeout 60 "$PY" benchmarks/profile_training.py --device "${DEVICE:-cuda}" --book ${SMOKE:+--quick} > "$OUT/profile_cuda.txt" 2>&1
cp mlflow.db "$OUT/" 2>/dev/null
# The device tool returns at most 8 files: bundle everything into one archive.
tar -czf "$OUT.tar.gz" -C "$(dirname "$OUT")" "$(basename "$OUT")" && rm -rf "$OUT" && mkdir -p "$OUT" \
  && mv "$OUT.tar.gz" "$OUT/results.tar.gz"
echo "done"
