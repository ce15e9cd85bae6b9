#!/usr/bin/env bash
# The training paths on a lent GPU in one command, under 8 minutes (bench/device/gpu_check.py says what it runs).
#
#   bash bench/device/gpu_check.sh --prepare   # here, once: .gpu-check/data (vocab + shards of recipes/demo/corpus)
#   bash bench/device/gpu_check.sh --cpu       # here: the same plumbing at tiny sizes on CPU
#   bash bench/device/gpu_check.sh             # on the GPU machine, through the device tool:
#       run(command="bash bench/device/gpu_check.sh", carry=[".gpu-check"], timeout_s=540)
#
# The GPU machine has no network. Its image holds torch, accelerate, transformers, sentencepiece, pyarrow,
# safetensors, click, pyyaml and huggingface_hub, which is all `factory pretrain` imports; the data travels in
# .gpu-check (ignored by git, hence `carry`). Wheels in .gpu-check/wheels, if any, are installed first (make
# them here with the device README's `pip download ... -d .gpu-check/wheels NAME==VERSION`).
# Figures go to stdout and to $OUT/gpu_check.json ($OUT: the device tool's folder; else .gpu-check).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PYTHON="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

shopt -s nullglob
wheels=(.gpu-check/wheels/*.whl)
if (( ${#wheels[@]} )); then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "${wheels[@]}"
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [[ "${1:-}" != "--prepare" && "${1:-}" != "--cpu" ]] && command -v nvidia-smi >/dev/null; then
    nvidia-smi -L || true
fi
"$PYTHON" -c 'import sys, torch, accelerate; print(f"python {sys.version.split()[0]}, torch {torch.__version__}, accelerate {accelerate.__version__}")'
exec "$PYTHON" -m bench.device.gpu_check "$@"
