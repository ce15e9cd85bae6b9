#!/usr/bin/env bash
# The GPU proof run (bench/device/gpu_proof.py): xsmall pre-trained on real text in bf16, beside the plain-MLM anchor
# and the random-init control, measured on retrieval and zero-shot classification. Two stages:
#
#   bash bench/device/gpu_proof.sh prepare [REAL_TEXT_DIR]   # on this machine: .gpu/ gets the wheels the GPU image
#                                                     # lacks and the real text (the GPU machine has no network
#                                                     # and ../shared does not travel)
#   bash bench/device/gpu_proof.sh device                    # on the GPU machine, from the repo root, with .gpu carried:
#                                                     #   run(command="bash bench/device/gpu_proof.sh device",
#                                                     #       carry=[".gpu"], timeout_s=540)
#   bash bench/device/gpu_proof.sh smoke                     # this machine: the device stage's plumbing on a CPU, tiny
#
# The device stage takes about 8 minutes: ~1 to install, the pre-training budget (--budget, 150 wall-s) for
# factory and about as long for the anchor, then the evaluations. Results: $OUT/proof.{json,md,log} (the
# run tool brings $OUT back), and the table on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
stage="${1:-}"
GPU=.gpu
LANGS="en de es fr it ja pt ru zh"

prepare() {
    local real="${1:-/tmp/real}"
    [ -f "$real/en.txt" ] || { echo "no real text in $real: run python3 ../shared/data/real_text.py $real" >&2; exit 2; }
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    rm -rf "$GPU" && mkdir -p "$GPU/whl" "$GPU/real/aligned" "$GPU/real/topic"
    for lang in $LANGS; do
        cp "$real/$lang.txt" "$GPU/real/"
        cp "$real/aligned/$lang.txt" "$GPU/real/aligned/"
        if [ -f "$real/topic/$lang.jsonl" ]; then cp "$real/topic/$lang.jsonl" "$GPU/real/topic/"; fi
    done
    # What factory needs and the GPU image (python 3.12) does not hold: datasets and its two pure-Python
    # needs, and langdetect (an sdist only: built into a wheel here).
    local pyver=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
                 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
    python -m pip download -q --no-deps --only-binary=:all: "${pyver[@]}" -d "$GPU/whl" \
        "datasets==$(python -c 'import datasets; print(datasets.__version__)')" dill multiprocess
    python -m pip wheel -q --no-deps -w "$GPU/whl" langdetect
    du -sh "$GPU"
}

install() {
    # the carried wheels into /tmp/site (never over the image's torch); factory itself from this checkout
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$GPU"/whl/*.whl
    export PYTHONPATH="$PWD:/tmp/site"
}

device() {
    local out="${OUT:-$PWD/gpu-proof-out}"
    mkdir -p "$out"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
    install
    export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
    python3 -c 'import torch, factory, datasets; print("torch", torch.__version__, "datasets", datasets.__version__)'
    python3 -m bench.device.gpu_proof --data "$GPU/real" --out /tmp/gpu-proof "$@" 2>&1 | tee "$out/proof.log"
    cp /tmp/gpu-proof/proof.json /tmp/gpu-proof/proof.md "$out/"
}

smoke() {
    local out
    out="$(mktemp -d)"
    python -m bench.device.gpu_proof --data "${1:-$GPU/real}" --out "$out" --smoke
    test -s "$out/proof.json" && echo "gpu_proof smoke: passed ($out)"
}

case "$stage" in
    prepare) shift; prepare "$@" ;;
    device) shift; device "$@" ;;
    smoke) shift; smoke "$@" ;;
    *) echo "usage: bash bench/device/gpu_proof.sh prepare [REAL_TEXT_DIR] | device [bench.device.gpu_proof options] | smoke" >&2
       exit 2 ;;
esac
