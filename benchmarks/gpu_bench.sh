#!/usr/bin/env bash
# Run on a bare GPU machine from the repository root, with .whl/ filled by benchmarks/gpu_wheelhouse.sh:
# installs the wheels into /tmp/site, makes this checkout importable as `medzoo`, records the machine and runs
# the GPU section of `medzoo speed` (bf16 steps at LLaVA-Med v1.5 shapes, MFU, peak memory, projected curriculum),
# then the tests marked `gpu` (QLoRA through the real bitsandbytes 4-bit layers on CUDA, among them).
# The report (JSON and markdown), the GPU tests' log and nvidia-smi's output go to $OUT (default: bench-gpu/).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
mkdir -p /tmp/medzoo-path
ln -sfn "$PWD" /tmp/medzoo-path/medzoo
export PYTHONPATH=/tmp/site:/tmp/medzoo-path PYTHONUNBUFFERED=1
OUT=${OUT:-bench-gpu}
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" || true
python3 -m medzoo.app.cli speed --gpu --skip training --skip inference --skip levers "$@" --json \
  | tee "$OUT/bench-gpu.json"
python3 - "$OUT/bench-gpu.json" > "$OUT/bench-gpu.md" <<'EOF'
import json
import sys

from medzoo.app.speedbench.report import render

print(render(json.load(open(sys.argv[1]))))
EOF
cat "$OUT/bench-gpu.md"
# -m gpu after pyproject's addopts ('not slow and not gpu') selects the GPU tests; -rs names any skip (a missing
# bitsandbytes shows there rather than passing unnoticed)
python3 -m pytest -m gpu -rs -p no:cacheprovider tests/test_tuning_strategies.py tests/test_speedbench.py \
  2>&1 | tee "$OUT/gpu-tests.txt"
