#!/usr/bin/env python3
"""Raw rgb24 frames for the GPU checks (needs only torch, which the GPU machine has).

  raw_frames.py make W H N OUT        N distinct smooth test frames
  raw_frames.py compare W H A B [DB]  per-frame PSNR of B against A (min, mean); exits 1 when
                                      a frame is under DB (default 30) or the files differ in size
"""
import math
import sys

import torch


def make(width, height, count, path):
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
    with open(path, "wb") as out:
        for i in range(count):
            r = 127 + 120 * torch.sin(x / (17 + i) + i)
            g = 127 + 120 * torch.cos(y / (23 + 2 * i) - i)
            b = 127 + 120 * torch.sin((x + y) / (31 + i))
            frame = torch.stack([r, g, b], dim=-1).clamp(0, 255).to(torch.uint8)
            out.write(bytes(frame.flatten().tolist()))  # no numpy needed


def read(path):
    with open(path, "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)


def compare(width, height, a, b, threshold):
    size = width * height * 3
    fa, fb = read(a), read(b)
    if fa.numel() != fb.numel() or fa.numel() % size:
        print(f"{a}: {fa.numel()} bytes, {b}: {fb.numel()} bytes: not the same frames")
        return 1
    fa = fa.view(-1, size).double()
    fb = fb.view(-1, size).double()
    mse = ((fa - fb) ** 2).mean(dim=1).clamp(min=1e-10)
    if mse.max().item() <= 1e-10:
        print(f"{b} vs {a}: {mse.numel()} frames, identical")
        return 0
    psnr = [10 * math.log10(255.0**2 / m) for m in mse.tolist()]
    print(f"{b} vs {a}: {len(psnr)} frames, PSNR min {min(psnr):.2f} dB, mean {sum(psnr) / len(psnr):.2f} dB")
    return 0 if min(psnr) >= threshold else 1


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        threshold = float(sys.argv[6]) if len(sys.argv) > 6 else 30.0
        sys.exit(compare(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], threshold))
