#!/usr/bin/env bash
# GPU figures for the engine (#3) and training (#4) issues, prepared for one short device run
# (about 5 minutes). The device machine has no FFmpeg and no .libtorch: build here without the
# video feature, stripped (6 MB instead of 98, under the device's 64 MiB carry limit),
#   CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols \
#     cargo build --release --no-default-features --target-dir target/gpu
# carry target/gpu/release/japanim and models/vgg16.safetensors (for the training run), and
# run there (its Python's torch 2.11.0 provides libtorch):
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
J=${J:-./target/gpu/release/japanim}
WORK=$(mktemp -d)
run() {
  echo "\$ japanim $*" | tee -a "$FIGURES"
  timeout 150 "$J" --quiet "$@" 2>&1 | tee -a "$FIGURES"
}
{ "$J" doctor; nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv; } 2>&1 | tee "$FIGURES"
# Libraries the binary cannot find (none expected: libtorch comes from the Python torch).
ldd "$J" | grep "not found" | tee -a "$FIGURES"

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

# GPU utilisation (SM %, memory %) once a second while the inference benchmarks run.
nvidia-smi dmon -s u -d 1 > "$OUT/dmon.txt" 2>&1 &
DMON=$!

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
run bench --device cuda --precision bf16 --size 3840x2160 --tile 1024 --tile-batch 1 --frames 4
run bench --device cuda --precision bf16 --size 3840x2160 --tile 1024 --tile-norm downscaled:1 --frames 4
kill $DMON 2>/dev/null

# Training steps at 256², mixed precision, batch 8–32, and f32 for comparison.
for batch in 8 16 32; do
  run bench --train --device cuda --precision bf16 --size 256x256 --batch "$batch" --frames 10
done
run bench --train --device cuda --precision f32 --size 256x256 --batch 16 --frames 10

# A real run: 32 generated photos and 32 flat-coloured "anime" images through `dataset build`,
# then 40 steps of the full model at 256², batch 16, bf16 (loader thread, validation, sample
# grid, checkpoints on the GPU). Seconds per step come from its metrics.csv.
python3 - "$WORK/src" <<'PY' 2>/dev/null
import os, sys, torch
from PIL import Image
root = sys.argv[1]
for kind in ("photo", "anime"):
    os.makedirs(os.path.join(root, kind), exist_ok=True)
    for i in range(32):
        g = torch.Generator().manual_seed(i + (100 if kind == "anime" else 0))
        small = torch.rand(3, 10 if kind == "anime" else 40, 10 if kind == "anime" else 40, generator=g)
        mode = "nearest" if kind == "anime" else "bilinear"
        img = torch.nn.functional.interpolate(small[None], size=(320, 320), mode=mode)[0]
        data = (img * 255).byte().permute(1, 2, 0).contiguous()
        Image.frombytes("RGB", (320, 320), bytes(data.flatten().tolist())).save(os.path.join(root, kind, f"{i:02}.png"))
PY
"$J" --quiet dataset build --photos "$WORK/src/photo" --anime "$WORK/src/anime" -o "$WORK/data" --size 256 --per-image 1 2>&1 | tee -a "$FIGURES"
cat > "$WORK/train.toml" <<TOML
crop = 256
batch = 16
steps_per_epoch = 20
pretrain_epochs = 1
epochs = 1
checkpoint_every = 20
precision = "bf16"
device = "cuda"
vgg = "$PWD/models/vgg16.safetensors"
TOML
echo "\$ japanim train (full model, 256², batch 16, bf16, 20 pre-training + 20 adversarial steps)" | tee -a "$FIGURES"
timeout 240 "$J" --quiet train --data "$WORK/data" --out "$WORK/run" --config "$WORK/train.toml" 2>&1 | tee -a "$FIGURES"
python3 - "$WORK/run/metrics.csv" <<'PY' 2>&1 | tee -a "$FIGURES"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
for phase in ("pretrain", "adversarial"):
    s = [float(r["seconds"]) for r in rows if r["phase"] == phase][2:]
    if s:
        print(f"{phase}: {len(s)} steps after 2 warm-up, {sum(s) / len(s):.3f} s/step, {len(s) / sum(s):.2f} steps/s")
PY
cp "$WORK/run/samples/epoch-0002.png" "$OUT/train-samples.png" 2>/dev/null
rm -rf "$WORK"
