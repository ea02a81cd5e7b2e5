#!/usr/bin/env bash
# The pipeline and the CUDA benchmarks on a machine with an NVIDIA GPU, after `make setup`:
#
#   bash benchmarks/gpu_check.sh OUT_DIR
#
# 1. Every stage of dvc.yaml, in its order, as `python -m pipeline <stage-name> --params
#    OUT_DIR/params.yaml`: params.yaml with `device: cuda` (params.yaml itself is left as
#    it is), each timed with its peak memory (benchmarks/stage_memory.py --params).
# 2. The CUDA benchmarks: the char-LM training step, the book's loop against one cuDNN
#    call per window (bench_charlm_step.py --device cuda), and a profile of both
#    training steps at params.yaml's recipes and the book's (profile_training.py).
# 3. What the stages measured: metrics/*.json and the char LM's samples.
#
# Everything goes under OUT_DIR: results.jsonl (one JSON line per measurement; to put
# them in benchmarks/README.md: `python benchmarks/tables.py record --results
# OUT_DIR/results.jsonl && python benchmarks/tables.py readme`), a log per step, the
# profiles, params.yaml as run, machine.txt.
#
# The stages write their outputs where they always do (data/, metrics/, plots/, and MLflow
# runs in mlflow.db), as `dvc repro` would: run it in a clone whose outputs may be
# replaced (`dvc checkout` brings the committed ones back). The data comes through the
# acquire stages as usual: from the official URLs, or from a local copy named in
# mirrors.local.yaml (pipeline/acquire/mirrors.py). The sentiment model's training speed
# on the GPU is train-sentiment's reviews_per_s metric in MLflow.
#
# Environment: PYTHON (default .venv/bin/python, else python3); STAGES (comma-separated
# stage names of dvc.yaml, e.g. STAGES=train_charlm,evaluate_charlm; default all).
set -uo pipefail
OUT_ARG=${1:?usage: bash benchmarks/gpu_check.sh OUT_DIR}
mkdir -p "$OUT_ARG" || exit 1
OUT=$(cd "$OUT_ARG" && pwd)
cd "$(dirname "$0")/.." || exit 1  # the repository root
if [[ -n ${PYTHON:-} ]]; then PY=$PYTHON
elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python
else PY=python3; fi
export PYTHONUNBUFFERED=1
export BENCH_RUN_ID="gpu-$(date -u +%Y%m%d-%H%M%S)"  # one run id for every line of this check
failed=()

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$PY" -c "import platform, torch
print('python', platform.python_version(), 'torch', torch.__version__, 'CUDA', torch.version.cuda,
      'available:', torch.cuda.is_available())"
} > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: $PY sees no CUDA device (see $OUT/machine.txt)" >&2
  exit 1
fi

# params.yaml with device: cuda, written next to the results.
"$PY" - "$OUT/params.yaml" <<'PY' || exit 1
import sys
import yaml
params = yaml.safe_load(open("params.yaml", encoding="utf-8"))
params["device"] = "cuda"
with open(sys.argv[1], "w", encoding="utf-8") as f:
    f.write("# params.yaml with device: cuda (written by benchmarks/gpu_check.sh)\n")
    yaml.safe_dump(params, f, sort_keys=False)
PY

step() {  # name, command...: run it with its output in OUT/<name>.log; note a failure
  local name=$1 t0=$SECONDS; shift
  echo "== $name: $*"
  "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "   exit $rc after $((SECONDS - t0)) s (log: $OUT/$name.log)"
  (( rc == 0 )) || failed+=("$name")
}

# 1. The stages, in dvc.yaml's order (stage_memory.py reads them from dvc.yaml).
step stages "$PY" benchmarks/stage_memory.py --params "$OUT/params.yaml" \
  ${STAGES:+--stages "$STAGES"} --results "$OUT/results.jsonl"
tail -n 15 "$OUT/stages.log"

# 2. The CUDA benchmarks (on the prepared data the stages left, else synthetic data).
step bench_charlm_step "$PY" benchmarks/bench_charlm_step.py --device cuda \
  --results "$OUT/results.jsonl"
grep -E "^\(|^target|GPU" "$OUT/bench_charlm_step.log" | head -n 12
step profile_training "$PY" benchmarks/profile_training.py --device cuda --recipe params \
  --book --out "$OUT/profile"

# 3. What the stages measured.
mkdir -p "$OUT/metrics"
cp metrics/*.json "$OUT/metrics/" 2>/dev/null
cp data/eval/charlm/samples.txt "$OUT/metrics/" 2>/dev/null

echo "results: $OUT (run id $BENCH_RUN_ID)"
if (( ${#failed[@]} )); then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
