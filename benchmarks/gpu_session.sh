#!/usr/bin/env bash
# One prepared GPU session (the project's lent-GPU check): a few minutes on an H200, every
# command under a time limit:
#   0. MLflow & co. from the carried wheels (.whl), the IMDb archive rebuilt from DATA_DIR;
#   1. the pipeline on the real data on CUDA with params.yaml's recipes, stage by stage
#      (dvc.yaml's stages, in its order), with wall times (the sentiment epoch on a GPU is
#      train-sentiment's reviews_per_s);
#   2. the CUDA benchmarks (char-LM step: the >= 20x target) and a CUDA profile.
# Usage (repo root on the GPU machine): bash benchmarks/gpu_session.sh DATA_DIR OUT_DIR
#   device tool: carry [".whl", ".gpudata"], timeout_s 600,
#   command `bash benchmarks/gpu_session.sh .gpudata $OUT/gpu`
# Everything ends up in OUT_DIR/results.tar.gz (one file). SMOKE=1 DEVICE=cpu rehearses it
# (PYTHON=.venv/bin/python bash benchmarks/gpu_session.sh ../shared/data /tmp/gpu; note that
# it rewrites params.yaml's imdb/gutenberg/device keys, as on the GPU machine).
# DATA_DIR holds 1268-0.txt and the full IMDb archive (with train/unsup) either as
# aclImdb_v1_full.tar.xz (the tar stream of the .tar.gz, recompressed to travel under the
# device tool's 64 MiB; rebuilt here into aclImdb_v1_full.tar.gz) or as the .tar.gz itself.
# Needs no dvc: the stages run as `python3 -m pipeline <stage>`, in dvc.yaml's order.
# Knobs (environment): PHASES (default "pipeline bench variant"; "seeds" runs the sentiment
# recipe at the SEEDS, default "2 3"), PYTHON, DEVICE, SMOKE, BUDGET_S (whole script, default 540 s: it
# bundles before the device tool's 600 s kill), SKIP_STAGES (dvc.yaml names, default
# train_baseline: CPU-only, measured on the CPU machine), BENCH_RESERVE_S (default 130),
# WHEELS (auto|0|1), SITE.
# The carried folders, made once on the development machine (both listed in
# .git/info/exclude, so they travel as carried paths but are never committed):
#   .whl:     .venv/bin/python -m pip download --no-deps --only-binary=:all: --python-version 3.12
#             --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
#             --platform manylinux2014_x86_64 -d .whl  alembic==1.20.1 annotated_types==0.8.0
#             cachetools==7.3.3 cffi==2.1.1 cryptography==50.0.2 databricks_sdk==0.162.0
#             fastapi==0.165.0 importlib_metadata==9.1.0 mako==1.4.3 mlflow_skinny==3.17.2
#             opentelemetry_api==1.45.2 opentelemetry_proto==1.45.2 opentelemetry_sdk==1.45.2
#             opentelemetry_semantic_conventions==0.66b2 pydantic==2.14.4 pydantic_core==2.50.5
#             sqlalchemy==2.1.9 sqlparse==0.6.1 starlette==1.10.0 typing_extensions==4.16.0
#             typing_inspection==0.4.5   (what the GPU image lacks of MLflow's and pydantic's needs)
#   .gpudata: gzip -dc aclImdb_v1_full.tar.gz | xz -9e > .gpudata/aclImdb_v1_full.tar.xz;
#             cp 1268-0.txt .gpudata/
set -uo pipefail
mkdir -p "$2" || exit 1
DATA=$(realpath "$1"); OUT=$(realpath "$2")
[ -n "$DATA" ] && [ -n "$OUT" ] || exit 1
PY=${PYTHON:-python3}
BUDGET=${BUDGET_S:-540}
BENCH_RESERVE=${BENCH_RESERVE_S:-130}  # the two benchmarks (60 s each) and the bundling: no stage runs into it
VARIANT_RESERVE=15  # phase 3 runs in what is left after the benchmarks, down to the bundling
export PYTHONUNBUFFERED=1 MLFLOW_TRACKING_URI="sqlite:///$PWD/mlflow.db"
# No internet there: no telemetry thread trying to phone home.
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true

timed() {  # label, command...: run it, append its wall time to stages.tsv
  local label=$1 t0=$EPOCHREALTIME; shift
  "$@"; local rc=$?
  awk -v a="$t0" -v b="$EPOCHREALTIME" -v s="$label" -v rc="$rc" \
    'BEGIN { printf "setup\t%s\trc=%s\t%.1f s\n", s, rc, b - a }' | tee -a "$OUT/stages.tsv"
  return $rc
}

# 0a. Wheels first: the GPU machine's python3 (3.12) has torch, numpy, pandas, pyarrow,
# scikit-learn, pyyaml ... but no mlflow, pydantic, sqlalchemy or alembic. .whl holds
# exactly what is missing (mlflow-skinny, not the UI-carrying mlflow wheel). WHEELS=auto
# installs them only where `import mlflow` fails (so a rehearsal in .venv leaves them).
SITE=${SITE:-/tmp/site}
install_wheels() {
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .whl/*.whl > "$OUT/pip_install.txt" 2>&1 || return 1
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  # pipeline/serving.py pins the model's requirements with importlib.metadata.version("mlflow"),
  # which only the full `mlflow` distribution answers: record the installed mlflow-skinny
  # (the same mlflow package code) under that name too.
  "$PY" - "$SITE" <<'PY'
import importlib.metadata as md, pathlib, sys
try:
    md.version("mlflow")
except md.PackageNotFoundError:
    v = md.version("mlflow-skinny")
    d = pathlib.Path(sys.argv[1]) / f"mlflow-{v}.dist-info"
    d.mkdir(exist_ok=True)
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: mlflow\nVersion: {v}\n"
                                f"Summary: stand-in: mlflow-skinny {v} is installed\n")
    (d / "INSTALLER").write_text("gpu_session.sh\n")
    (d / "RECORD").write_text("")
    print(f"mlflow {v}: recorded as mlflow-skinny {v}")
PY
  "$PY" -c "import mlflow, pydantic, sqlalchemy, alembic, cryptography
print('mlflow', mlflow.__version__, 'pydantic', pydantic.VERSION, 'sqlalchemy', sqlalchemy.__version__)" \
    >> "$OUT/pip_install.txt" 2>&1
}
case ${WHEELS:-auto} in
  0) ;;
  1) timed wheels install_wheels || { cat "$OUT/pip_install.txt"; exit 1; } ;;
  *) if compgen -G ".whl/*.whl" > /dev/null && ! "$PY" -c "import mlflow" 2> /dev/null; then
       timed wheels install_wheels || { cat "$OUT/pip_install.txt"; exit 1; }
     fi ;;
esac
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1

# 0b. The full IMDb archive: rebuilt from the .tar.xz (its tar stream must be the one of
# the original aclImdb_v1_full.tar.gz, sha256 dabdcc18...), then its own sha256 goes into
# params.yaml, as acquire-imdb verifies the file it reads against imdb.sha256.
TAR_SHA256=7a3f59f092b40c483f3713638626930560c5fbd9609595fd1182808c1346bfb3  # uncompressed tar
timed data "$PY" - "$DATA" "$TAR_SHA256" <<'PY' || exit 1
import gzip, hashlib, lzma, os, shutil, sys, yaml
data, tar_sha256 = sys.argv[1], sys.argv[2]
tgz, txz = f"{data}/aclImdb_v1_full.tar.gz", f"{data}/aclImdb_v1_full.tar.xz"
if os.path.exists(txz) and not os.path.exists(tgz):
    h = hashlib.sha256()
    with lzma.open(txz) as src, open(tgz + ".part", "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", compresslevel=1, fileobj=raw, mtime=0) as dst:
        while chunk := src.read(1 << 22):
            h.update(chunk)
            dst.write(chunk)
    if h.hexdigest() != tar_sha256:
        sys.exit(f"{txz}: tar stream sha256 {h.hexdigest()}, expected {tar_sha256}")
    os.replace(tgz + ".part", tgz)
    print(f"rebuilt {tgz} from {txz} (tar stream sha256 verified)")
h = hashlib.sha256()
with open(tgz, "rb") as f:
    while chunk := f.read(1 << 22):
        h.update(chunk)
print(f"{tgz}: {os.path.getsize(tgz)} bytes, sha256 {h.hexdigest()}")
p = yaml.safe_load(open("params.yaml"))
p["device"] = os.environ.get("DEVICE", "cuda")
p["imdb"].update(url=tgz, sha256=h.hexdigest())
p["gutenberg"]["url"] = f"{data}/1268-0.txt"
if os.environ.get("SMOKE"):  # a minute-long rehearsal of this script on a CPU
    p["imdb"].update(limit=100, val_size=50)
    p["sentiment"]["epochs"] = 1
    p["charlm"].update(steps=20, eval_every=10)
yaml.safe_dump(p, open("params.yaml", "w"), sort_keys=False)
PY

left() { echo $(( BUDGET - SECONDS - $1 )); }  # seconds left before a reserve
stage() {  # name, time limit (s), params file: the limit shrinks to what the budget leaves
  local lim=$2 room; room=$(left "${RESERVE:-$BENCH_RESERVE}")
  (( room < lim )) && lim=$room
  if (( lim < 10 )); then
    printf "%s\t%s\tskipped (budget)\t0.0 s\n" "$(basename "$3")" "$1" | tee -a "$OUT/stages.tsv"
    return
  fi
  local t0=$EPOCHREALTIME
  timeout "$lim" "$PY" -m pipeline "$1" --params "$3" > "$OUT/log_$1_$(basename "$3" .yaml).txt" 2>&1
  local rc=$?
  awk -v a="$t0" -v b="$EPOCHREALTIME" -v p="$(basename "$3")" -v s="$1" -v rc="$rc" -v l="$lim" \
    'BEGIN { printf "%s\t%s\trc=%s\t%.1f s\t(limit %s s)\n", p, s, rc, b - a, l }' | tee -a "$OUT/stages.tsv"
}

# 1. The pipeline with params.yaml's recipes, on CUDA: dvc.yaml's stages in its order
# (read now, so renamed stages need no edit here), `acquire_imdb` -> `acquire-imdb`.
# Data stages 180 s each at most, training and evaluation 300 s.
PHASES=" ${PHASES:-pipeline bench variant} "
mapfile -t STAGES < <("$PY" -c "import yaml; print('\n'.join(yaml.safe_load(open('dvc.yaml'))['stages']))")
(( ${#STAGES[@]} )) || { echo "no stages read from dvc.yaml" | tee -a "$OUT/stages.tsv"; }
if [[ $PHASES == *" pipeline "* ]]; then
for s in "${STAGES[@]}"; do
  case " ${SKIP_STAGES-train_baseline} " in
    *" $s "*) printf "params.yaml\t%s\tskipped (SKIP_STAGES)\t0.0 s\n" "${s//_/-}" | tee -a "$OUT/stages.tsv"
              continue ;;
  esac
  case $s in acquire_*|prepare_*) stage "${s//_/-}" 180 params.yaml ;;
             *) stage "${s//_/-}" 300 params.yaml ;; esac
done
mkdir -p "$OUT/default" && cp metrics/*.json data/eval/charlm/samples.txt "$OUT/default/" 2>/dev/null
fi

# 1b. PHASES=seeds: the sentiment recipe at other seeds (SEEDS, default "2 3": other
# validation splits, initial weights, batch orders), each from prepare-imdb on.
if [[ $PHASES == *" seeds "* ]]; then
  RESERVE=$VARIANT_RESERVE
  [ -d data/raw/imdb ] || stage acquire-imdb 180 params.yaml
  for seed in ${SEEDS:-2 3}; do
    "$PY" -c "import yaml; p = yaml.safe_load(open('params.yaml')); p['seed'] = $seed
yaml.safe_dump(p, open('params_seed$seed.yaml', 'w'), sort_keys=False)"
    for s in prepare-imdb pretrain train-sentiment evaluate-sentiment; do
      stage $s 300 "params_seed$seed.yaml"
    done
    mkdir -p "$OUT/seed_$seed" && cp metrics/sentiment.json "$OUT/seed_$seed/" 2>/dev/null
  done
  RESERVE=
fi

# 2. Benchmarks on CUDA (60 s each at most, less if the stages used the reserve).
if [[ $PHASES == *" bench "* ]]; then
  bench_lim() { local r; r=$(left 15); (( r > 60 )) && r=60; (( r < 1 )) && r=1; echo $r; }
  timeout "$(bench_lim)" "$PY" benchmarks/bench_charlm_step.py --device "${DEVICE:-cuda}" ${SMOKE:+--quick} --results "$OUT/bench.jsonl" > "$OUT/bench_charlm_step.txt" 2>&1
  timeout "$(bench_lim)" "$PY" benchmarks/profile_training.py --device "${DEVICE:-cuda}" --book ${SMOKE:+--quick} > "$OUT/profile_cuda.txt" 2>&1
fi

# 3. With what the budget leaves: Dai & Le's route, the word LM pretrained on the training
# and unlabelled reviews (sentiment.pretrained: lm), then the classifier from it.
if [[ $PHASES == *" variant "* ]]; then
mkdir -p "$OUT/variant_lm"; RESERVE=$VARIANT_RESERVE
"$PY" - <<'PY'
import yaml
p = yaml.safe_load(open("params.yaml"))
p["sentiment"]["pretrained"] = "lm"
yaml.safe_dump(p, open("params_lm.yaml", "w"), sort_keys=False)
PY
for s in pretrain train-sentiment evaluate-sentiment; do stage $s 300 params_lm.yaml; done
cp metrics/sentiment.json "$OUT/variant_lm/" 2>/dev/null
fi
cp mlflow.db "$OUT/" 2>/dev/null
# The device tool returns at most 8 files: bundle everything into one archive.
tar -czf "$OUT.tar.gz" -C "$(dirname "$OUT")" "$(basename "$OUT")" && rm -rf "$OUT" && mkdir -p "$OUT" \
  && mv "$OUT.tar.gz" "$OUT/results.tar.gz"
echo "done in $SECONDS s"
