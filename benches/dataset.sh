#!/usr/bin/env bash
# Dataset-tool benchmark: japanim against the original scripts' approach on the same inputs,
# on this machine, in one run. Reads ../shared/data (photos and cartoons); writes under /tmp.
#   benches/dataset.sh            (after scripts/setup.sh and cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
J=./target/release/japanim
W=${BENCH_DIR:-/tmp/japanim-bench}
PY=${PYTHON:-$W/venv/bin/python}
mkdir -p "$W"
if [ ! -x "$PY" ]; then
  python3 -m venv "$W/venv" && "$W/venv/bin/pip" install -q numpy opencv-python-headless
fi
# A 1080p H.264 clip: the 13 shared travel frames, 2 s each at 25 fps, with film-grain noise
# so every frame decodes as real footage does (650 frames, 12 cuts).
part=${1:-all}   # all | keyframes | smooth | crop
clip=$W/travel-1080p.mp4
if [ ! -f "$clip" ]; then
  ffmpeg -v error -y -framerate 0.5 -pattern_type glob -i '../shared/data/photos/*.jpg' \
    -vf "fps=25,format=yuv420p,noise=alls=6:allf=t" -c:v libx264 -preset veryfast -crf 20 "$clip"
fi
calc() { awk "BEGIN { print $* }"; }
t() { local s=$(date +%s.%N); "$@" >/dev/null 2>&1; calc "$(date +%s.%N) - $s"; }
if [ "$part" = all ] || [ "$part" = keyframes ]; then
frames=$(ffprobe -v error -count_packets -select_streams v -show_entries stream=nb_read_packets -of csv=p=0 "$clip")
decode=$(t ffmpeg -v error -threads 2 -i "$clip" -f null -)
rm -rf "$W/kf"; ours=$(t $J --quiet dataset keyframes "$clip" -o "$W/kf")
rm -rf "$W/kf-orig"; orig=$($PY benches/original_approach.py keyframes "$clip" "$W/kf-orig" | grep -o '[0-9.]* s,' | tr -d ' s,')
echo "keyframes on $frames frames of 1080p H.264:"
printf '  FFmpeg decode alone   %6.2f s  %6.1f frames/s\n' "$decode" "$(calc "$frames / $decode")"
printf '  japanim keyframes     %6.2f s  %6.1f frames/s  (%.2fx the decode time)\n' "$ours" "$(calc "$frames / $ours")" "$(calc "$ours / $decode")"
printf '  original approach     %6.2f s  %6.1f frames/s  (japanim is %.2fx faster)\n' "$orig" "$(calc "$frames / $orig")" "$(calc "$orig / $ours")"

fi

# Smoothing: 1000 anime crops of 256² (enough that japanim's 0.3 s of loading libtorch at
# start-up, which the Python timings do not include, weighs little).
if [ "$part" = all ] || [ "$part" = smooth ]; then
rm -rf "$W/crops" "$W/smooth" "$W/smooth-v" "$W/smooth-l"
$J --quiet dataset crop ../shared/data/train/cartoon -o "$W/crops-all" --size 256 --per-image 1 >/dev/null 2>&1 || true
mkdir -p "$W/crops"; ls "$W/crops-all" | sed -n 1,1000p | while read -r f; do cp "$W/crops-all/$f" "$W/crops/"; done
n=$(ls "$W/crops" | wc -l)
ours=$(t $J --quiet dataset smooth "$W/crops" -o "$W/smooth")
vec=$($PY benches/original_approach.py smooth-vector "$W/crops" "$W/smooth-v" | grep -o '[0-9.]* s,' | tr -d ' s,')
loop=$($PY benches/original_approach.py smooth-loop "$W/crops" "$W/smooth-l" 10 | grep -o '[0-9.]* s,' | tr -d ' s,')
echo "edge smoothing of $n anime crops (256²):"
printf '  japanim smooth        %6.2f s  %7.1f images/s\n' "$ours" "$(calc "$n / $ours")"
printf '  OpenCV/numpy vector   %6.2f s  %7.1f images/s  (japanim %.2fx)\n' "$vec" "$(calc "$n / $vec")" "$(calc "$vec / $ours")"
printf '  original pixel loop   %6.2f s  %7.2f images/s  (10 images; japanim %.0fx)\n' "$loop" "$(calc "10 / $loop")" "$(calc "($loop / 10) / ($ours / $n)")"
echo "  japanim vs OpenCV's result: $($PY benches/original_approach.py compare "$W/smooth" "$W/smooth-v")"

fi

# Cropping: six 256² crops of each of the 48 1080p training photos.
if [ "$part" = all ] || [ "$part" = crop ]; then
rm -rf "$W/c1" "$W/c2"
photos=../shared/data/train/photos
n=$(ls "$photos" | wc -l)
ours=$(t $J --quiet dataset crop "$photos" -o "$W/c1" --size 256 --per-image 6)
orig=$($PY benches/original_approach.py crop "$photos" "$W/c2" | grep -o '[0-9.]* s,' | tr -d ' s,')
echo "cropping $n 1080p photos into 6 crops each:"
printf '  japanim crop          %6.2f s  %6.2f images/s\n' "$ours" "$(calc "$n / $ours")"
printf '  original approach     %6.2f s  %6.2f images/s  (japanim %.2fx)\n' "$orig" "$(calc "$n / $orig")" "$(calc "$orig / $ours")"
fi
startup=$(t $J --version)
echo "japanim's start-up (loading libtorch; included in its times above, not in Python's): $startup s"
