#!/usr/bin/env bash
# Builds, on a machine with registries, what experiments/gpu/run.sh needs on a borrowed GPU
# machine that reaches none: the xtask binary with the wgpu feature and the Vulkan loader
# (libvulkan.so.1; the GPU's own Vulkan driver comes with its NVIDIA driver), compressed. Everything goes to
# experiments/gpu/bundle/ (ignored by git); carry that folder to the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -e /usr/lib/x86_64-linux-gnu/libvulkan.so.1 ]; then
    echo "needs the Vulkan loader here: apt-get install libvulkan1 mesa-vulkan-drivers" >&2
    exit 1
fi
cargo build --release -p xtask --features wgpu
bundle=experiments/gpu/bundle
rm -rf "$bundle" && mkdir -p "$bundle"
# Stripped and compressed: about 28 MB, under what a borrowed machine's command can carry.
strip -o "$bundle/xtask" target/release/xtask
gzip -9 "$bundle/xtask"
cp -L /usr/lib/x86_64-linux-gnu/libvulkan.so.1 "$bundle/"
du -sh "$bundle"
