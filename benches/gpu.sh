#!/usr/bin/env bash
# GPU figures for the engine (#3) and training (#4) issues, prepared for one short device run.
# The device machine has no FFmpeg and no .libtorch: build here without the video feature,
#   cargo build --release --no-default-features
# carry target/release/japanim, and run there (its Python's torch 2.11.0 provides libtorch):
#   benches/gpu.sh          # figures in $OUT/figures.txt (default /tmp/japanim-gpu)
# Every bench block is also printed; a run that fails does not stop the others. Each block
# gives the engine stream's frames/s, the bare generator's, the share of the GPU's peak, and
# memory.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/japanim-gpu}
mkdir -p "$OUT"
FIGURES=$OUT/figures.txt
TORCH_LIB=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$TORCH_LIB:${LD_LIBRARY_PATH:-}"
J=./target/release/japanim
run() {
  echo "\$ japanim $*" | tee -a "$FIGURES"
  timeout 150 "$J" --quiet "$@" 2>&1 | tee -a "$FIGURES"
}
{ "$J" doctor; nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv; } 2>&1 | tee "$FIGURES"

# Correctness first: the shipped model over 16 distinct frames through the whole CUDA stream
# (two batches in flight, asynchronous copies) against the CPU's f32 output, per frame.
W=640; H=360
python3 benches/raw_frames.py make $W $H 16 "$OUT/in.rgb" 2>/dev/null
stylize_raw() { timeout 120 "$J" --quiet stylize - --size ${W}x$H -o - --output-format rgb24 --model models/default.safetensors "$@" < "$OUT/in.rgb"; }
stylize_raw --device cpu > "$OUT/cpu.rgb"
for args in "--precision f32 --batch 4" "--precision bf16 --batch 4" "--precision f16 --batch 3" "--precision bf16 --batch 4 --tile 256"; do
  echo "\$ stylize (raw, cuda) $args" | tee -a "$FIGURES"
  # shellcheck disable=SC2086
  stylize_raw --device cuda $args > "$OUT/cuda.rgb" 2>>"$FIGURES"
  python3 benches/raw_frames.py compare $W $H "$OUT/cpu.rgb" "$OUT/cuda.rgb" 30 2>/dev/null | tee -a "$FIGURES"
done
rm -f "$OUT"/*.rgb

# Full generator (random weights, 64 channels, 8 blocks) at 1080p: whole frames, batches.
for precision in bf16 f16; do
  for batch in 1 4 8; do
    run bench --device cuda --precision "$precision" --size 1920x1080 --batch "$batch" --frames $((batch * 24))
  done
done
# The same without overlapping transfers and computation (one batch in flight).
run bench --device cuda --precision bf16 --size 1920x1080 --batch 4 --frames 48 --in-flight 1
# Tiled, exact (segment by segment) and memory-bounded, at 1080p and 4K.
run bench --device cuda --precision bf16 --size 1920x1080 --tile 1024 --frames 8
run bench --device cuda --precision bf16 --size 3840x2160 --tile 1024 --frames 4
run bench --device cuda --precision bf16 --size 3840x2160 --tile 1024 --tile-norm downscaled:1 --frames 4
# Training steps at 256², mixed precision, batch 8–32, and f32 for comparison.
for batch in 8 16 32; do
  run bench --train --device cuda --precision bf16 --size 256x256 --batch "$batch" --frames 10
done
run bench --train --device cuda --precision f32 --size 256x256 --batch 16 --frames 10
