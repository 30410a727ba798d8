#!/usr/bin/env bash
# Fill .whl/ with the wheels a bare GPU machine (Python 3.12, PyTorch preinstalled, no network) needs to run
# `medzoo speed --gpu` and the tests marked gpu: medzoo's own dependencies (and pytest) that its image lacks or
# holds at another version, pinned to the versions in constraints.txt. Run here, in the repository root; then benchmarks/gpu_bench.sh runs there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PACKAGES=(omegaconf antlr4-python3-runtime open_clip_torch ftfy wcwidth evaluate datasets dill multiprocess
          transformers tokenizers huggingface_hub httpx2 httpcore2 truststore peft pluggy click safetensors timm
          accelerate hf-xet pytest iniconfig pygments)
# QLoRA's GPU test needs bitsandbytes, a wheel larger than the rest together: WITH_QLORA=1 adds it
if [[ "${WITH_QLORA:-0}" == 1 ]]; then PACKAGES+=(bitsandbytes); fi
PLATFORMS=()
for tag in manylinux_2_39 manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 \
           manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
  PLATFORMS+=(--platform "${tag}_x86_64")
done
mkdir -p .whl
for name in "${PACKAGES[@]}"; do
  pin=$(grep -i -m1 "^${name//-/[-_]}==" constraints.txt || true)
  spec=${pin:-$name}
  if ! "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${PLATFORMS[@]}" -d .whl "$spec" 2>/dev/null; then
    # pure-Python projects published as source only (antlr4's runtime): build a py3 wheel here
    "$PYTHON" -m pip wheel -q --no-deps -w .whl "$spec"
  fi
done
du -sh .whl
ls .whl
