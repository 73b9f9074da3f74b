"""The original JapanimationGAN dataset scripts' approach, re-implemented for timing against
japanim on the same inputs (see benches/dataset.sh). Needs numpy and opencv-python-headless.

  python original_approach.py keyframes VIDEO OUT_DIR [WINDOW]
  python original_approach.py smooth-loop IN_DIR OUT_DIR [LIMIT]   # per-pixel Python loop
  python original_approach.py smooth-vector IN_DIR OUT_DIR         # same maths, vectorised
  python original_approach.py crop IN_DIR OUT_DIR                  # six 256² crops, 3×2 grid
  python original_approach.py compare DIR_A DIR_B                  # differing values of same-named images
"""
import os
import sys
import time

import cv2
import numpy as np


def keyframes(video, out, window=25):
    # Pass 1: difference scores (grey, 3×3 Gaussian, absdiff, Otsu, changed-pixel count).
    cap = cv2.VideoCapture(video)
    prev, scores = None, []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        grey = cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (3, 3), 0)
        if prev is None:
            scores.append(grey.size)
        else:
            diff = cv2.absdiff(grey, prev)
            _, mask = cv2.threshold(diff, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            scores.append(cv2.countNonZero(mask))
        prev = grey
    cap.release()
    s = np.array(scores, dtype=np.float64)
    z = (s - s.mean()) / (s.std() + 1e-9)
    half = window // 2
    keep = [i for i in range(len(z)) if z[i] == z[max(0, i - half):i + half + 1].max()]
    # Pass 2: decode again and save the picked frames.
    cap = cv2.VideoCapture(video)
    index, wanted = 0, set(keep)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if index in wanted:
            cv2.imwrite(os.path.join(out, f"{index:06}.png"), frame)
        index += 1
    cap.release()
    return index, len(keep)


def smooth_loop(path, out):
    bgr = cv2.imread(path)
    grey = cv2.imread(path, 0)
    edges = cv2.Canny(grey, 100, 200)
    dilated = cv2.dilate(edges, np.ones((5, 5), np.uint8))
    gauss = cv2.getGaussianKernel(5, 0)
    gauss = gauss * gauss.transpose(1, 0)
    pad = np.pad(bgr, ((2, 2), (2, 2), (0, 0)), mode="reflect")
    result = np.copy(bgr)
    idx = np.where(dilated != 0)
    for i in range(np.sum(dilated != 0)):
        y, x = idx[0][i], idx[1][i]
        for c in range(3):
            result[y, x, c] = np.sum(np.multiply(pad[y:y + 5, x:x + 5, c], gauss))
    cv2.imwrite(out, result)


def smooth_vector(path, out):
    bgr = cv2.imread(path)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    mask = cv2.dilate(cv2.Canny(grey, 100, 200), np.ones((5, 5), np.uint8)) != 0
    blurred = cv2.GaussianBlur(bgr, (5, 5), 0, borderType=cv2.BORDER_REFLECT_101)
    result = bgr.copy()
    result[mask] = blurred[mask]
    cv2.imwrite(out, result)


def crop(path, out_dir, size=256, rng=np.random.default_rng(0)):
    img = cv2.imread(path)
    h, w = img.shape[:2]
    stem = os.path.splitext(os.path.basename(path))[0]
    for r in range(2):
        for c in range(3):
            x0, x1 = c * w // 3, (c + 1) * w // 3
            y0, y1 = r * h // 2, (r + 1) * h // 2
            x = rng.integers(x0, x1 - size + 1)
            y = rng.integers(y0, y1 - size + 1)
            cv2.imwrite(os.path.join(out_dir, f"{stem}_{r * 3 + c}.png"), img[y:y + size, x:x + size])


def images(folder, limit=None):
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".png", ".jpg", ".jpeg")))
    return [os.path.join(folder, n) for n in names[:limit]]


def main():
    cv2.setNumThreads(2)
    mode, src, out = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "compare":
        names = sorted(os.listdir(src))
        differing = sum(int(np.sum(cv2.imread(os.path.join(src, n)) != cv2.imread(os.path.join(out, n)))) for n in names)
        print(f"{differing} of {len(names) * 256 * 256 * 3} values differ")
        return
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    if mode == "keyframes":
        frames, kept = keyframes(src, out, int(sys.argv[4]) if len(sys.argv) > 4 else 25)
        secs = time.perf_counter() - start
        print(f"original keyframes: {frames} frames, {kept} kept, {secs:.2f} s, {frames / secs:.1f} frames/s")
        return
    limit = int(sys.argv[4]) if len(sys.argv) > 4 else None
    paths = images(src, limit)
    for p in paths:
        name = os.path.join(out, os.path.splitext(os.path.basename(p))[0] + ".png")
        if mode == "smooth-loop":
            smooth_loop(p, name)
        elif mode == "smooth-vector":
            smooth_vector(p, name)
        elif mode == "crop":
            crop(p, out)
    secs = time.perf_counter() - start
    print(f"original {mode}: {len(paths)} images, {secs:.2f} s, {len(paths) / secs:.2f} images/s")


if __name__ == "__main__":
    main()
