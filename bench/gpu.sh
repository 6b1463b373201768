#!/usr/bin/env bash
# The quality benchmark on one GPU, as one prepared script (~10 minutes on one H200): MovieLens-1M
# with OMDb people, Semantic IDs, `neo train` with a full budget, then `neo eval` on the test split
# for every user, next to popularity, item-kNN and SASRec-CE trained in the same harness.
#
#   bash bench/gpu.sh                 # in a checkout; OUT=/some/dir bash bench/gpu.sh to keep the outputs
#
# It installs nothing beyond `make install` (skipped when $PY already imports neo_sdk and torch sees a
# GPU, e.g. an environment prepared by hand with a CUDA torch). Budgets, all overridable:
#   MINUTES=6            neo train --max-minutes (both stages; probes off, neo eval measures instead)
#   SASREC_MINUTES=2     SASRec-CE's training budget inside neo eval (it trains on the CPU cores)
#   TRAIN_ARGS=...       extra neo train flags (default: the GPU recipe of bench/RESULTS.md, batch 16, LR 5e-4)
#   EVAL_ARGS=...        extra neo eval flags (e.g. "--users 1000" for a shorter run)
# Writes catalog.db, sids.json, the bundle, eval/report.md, eval/report.json, eval/*.png and run.log
# under $OUT (default /tmp/neo_gpu), and prints the report's table last.
set -euo pipefail
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 TQDM_DISABLE=1
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/neo_gpu}
MINUTES=${MINUTES:-6}
SASREC_MINUTES=${SASREC_MINUTES:-2}
TRAIN_ARGS=${TRAIN_ARGS:---batch-size 16 --lr 5e-4}
EVAL_ARGS=${EVAL_ARGS:-}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
LOG=$OUT/run.log
: >"$LOG"

step() {  # step NAME CMD...: run, log with timestamps, stop the script on failure
  local name=$1; shift
  echo "== $name $(date +%T)" | tee -a "$LOG"
  "$@" 2>&1 | tee -a "$LOG"
}

if ! "$PY" -c "import neo_sdk, torch; assert torch.cuda.is_available()" 2>/dev/null; then
  step "make install" make install
  PY=.venv/bin/python
fi
NEO=("$PY" -m neo_sdk)
nvidia-smi --query-gpu=name,memory.total --format=csv | tee -a "$LOG"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$LOG"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this script needs one')"

DB=$OUT/catalog.db
if [ ! -f "$DB" ]; then
  rm -f "$DB.tmp"
  step "import MovieLens-1M with people" "${NEO[@]}" catalog import movielens-1m --with-people --db "$DB.tmp"
  mv "$DB.tmp" "$DB"
fi
step "catalog" "${NEO[@]}" catalog stats --db "$DB"
step "sids" "${NEO[@]}" sids build --db "$DB"
"${NEO[@]}" sids report --db "$DB" --json >"$OUT/sids.json"
# shellcheck disable=SC2086  # TRAIN_ARGS is a list of flags
step "train ($MINUTES min)" "${NEO[@]}" train --db "$DB" --out "$OUT/bundle" --max-minutes "$MINUTES" --no-probes \
  $TRAIN_ARGS
echo "== eval (test, all users) $(date +%T)" | tee -a "$LOG"
# shellcheck disable=SC2086  # progress (stderr) to the terminal and the log; the table to table.txt
"${NEO[@]}" eval --bundle "$OUT/bundle" --db "$DB" --split test --users all --sasrec-minutes "$SASREC_MINUTES" \
  --batch-size 32 --device cuda --out "$OUT/eval" $EVAL_ARGS >"$OUT/table.txt" 2> >(tee -a "$LOG" >&2)
echo "== report $(date +%T): $OUT/eval/report.md" | tee -a "$LOG"
tee -a "$LOG" <"$OUT/table.txt"
