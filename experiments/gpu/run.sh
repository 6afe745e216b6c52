#!/usr/bin/env bash
# On a borrowed GPU machine (an H100 or H200 lent for a few minutes, no registries), from the
# repository root, after experiments/gpu/prepare.sh built experiments/gpu/bundle/ elsewhere:
#
#   bash experiments/gpu/run.sh [OUT_DIR]
#
# 1. the official reference files through WGPU on the GPU (logits within 1e-3);
# 2. tokens/s, model FLOP utilisation, kernel launches per step and device memory (what the
#    allocator reserves, the peak, and what is in use between steps) of training steps of the
#    paper's Memory Mosaic and GPT (12 layers, d 768, 12 heads, GPT-2 vocabulary, block 512),
#    in f32 (where our CubeCL kernels run), then in bf16 (or f16 where the GPU's Vulkan driver
#    has no bf16 arithmetic) with f32 master weights (Burn's tensor operations throughout).
# Every result line is JSON, also written to OUT_DIR/gpu.jsonl (default: $OUT or /tmp). At most
# about 9 minutes (each step has its own timeout), to fit one call of a borrowed machine.
set -uo pipefail
cd "$(dirname "$0")/../.."
bundle=experiments/gpu/bundle
out=${1:-${OUT:-/tmp}}
mkdir -p "$out"
log="$out/gpu.jsonl"
: >"$log"

if [ ! -f "$bundle/xtask.gz" ]; then
    echo "no $bundle/xtask.gz: run experiments/gpu/prepare.sh on a machine with registries" >&2
    exit 1
fi
bin=$(mktemp -d)
gunzip -c "$bundle/xtask.gz" >"$bin/xtask" && chmod +x "$bin/xtask"
xtask="$bin/xtask"
export LD_LIBRARY_PATH="$PWD/$bundle${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export MOSAIC_DEVICE=wgpu
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$out/gpu.txt"
# The NVIDIA driver's Vulkan ICD; without it WGPU would find no GPU (or only a CPU driver).
ls /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ 2>/dev/null | tee -a "$out/gpu.txt"

echo "== reference files on WGPU"
timeout 90 "$xtask" reference --tolerance 1e-3 2>&1 | tee "$out/reference.txt"

# MODEL_ARGS replaces the paper's shape, to try the script on a small model first.
shape=${MODEL_ARGS:---layers 12 --heads 12 --width 768 --vocab 50257 --block 512}
bench() { # model precision batch
    # shellcheck disable=SC2086
    timeout 110 "$xtask" bench train --model "$1" --precision "$2" --batch "$3" $shape --steps 5 --json \
        2>>"$out/bench.err" | tee -a "$log"
}
echo "== training steps: $shape"
for model in memory_mosaic gpt; do
    bench "$model" f32 8
    bench "$model" bf16 8 || bench "$model" f16 8
done
tail -5 "$out/bench.err" 2>/dev/null
echo "results: $log"
