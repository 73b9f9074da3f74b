"""The japanim training step written in PyTorch, for timing against `japanim train` on the
same machine, threads and libtorch (torch 2.11.0). Random data and a random VGG16 conv base:
the step's cost does not depend on the values.

  python benches/reference_step.py --base-channels 32 --residual-blocks 4 --crop 128 --batch 4
  python benches/reference_step.py --device cuda --crop 256 --batch 16

Prints seconds per adversarial step (mean of the timed steps after warm-up).
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def lrelu(x):
    return torch.maximum(x, 0.2 * x)


class Generator(nn.Module):
    def __init__(self, c=64, blocks=8):
        super().__init__()
        self.conv_in, self.norm_in = nn.Conv2d(3, c, 7), nn.InstanceNorm2d(c, affine=True)
        self.down = nn.ModuleList(
            nn.ModuleList([nn.Conv2d(c << i, c << (i + 1), 3, 2, 1), nn.Conv2d(c << (i + 1), c << (i + 1), 3, 1, 1),
                           nn.InstanceNorm2d(c << (i + 1), affine=True)]) for i in range(2))
        self.res = nn.ModuleList(
            nn.ModuleList([nn.Conv2d(4 * c, 4 * c, 3, 1, 1), nn.InstanceNorm2d(4 * c, affine=True),
                           nn.Conv2d(4 * c, 4 * c, 3, 1, 1), nn.InstanceNorm2d(4 * c, affine=True)]) for _ in range(blocks))
        self.up = nn.ModuleList(
            nn.ModuleList([nn.ConvTranspose2d(c << (2 - i), c << (1 - i), 3, 2, 1, 1), nn.Conv2d(c << (1 - i), c << (1 - i), 3, 1, 1),
                           nn.InstanceNorm2d(c << (1 - i), affine=True)]) for i in range(2))
        self.conv_out = nn.Conv2d(c, 3, 7)

    def forward(self, x):
        h = lrelu(self.norm_in(self.conv_in(F.pad(x, (3, 3, 3, 3), mode="reflect"))))
        for s2, conv, norm in self.down:
            h = lrelu(norm(conv(s2(h))))
        for c1, n1, c2, n2 in self.res:
            h = h + n2(c2(lrelu(n1(c1(h)))))
        for deconv, conv, norm in self.up:
            h = lrelu(norm(conv(deconv(h))))
        return torch.tanh(self.conv_out(F.pad(h, (3, 3, 3, 3), mode="reflect")))


class Discriminator(nn.Module):
    def __init__(self, c=32):
        super().__init__()
        spec = [(3, c, 1, False), (c, 2 * c, 2, False), (2 * c, 4 * c, 1, True), (4 * c, 4 * c, 2, False),
                (4 * c, 8 * c, 1, True), (8 * c, 8 * c, 1, True), (8 * c, 1, 1, False)]
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, s, 1) for i, o, s, _ in spec)
        self.norms = nn.ModuleList(nn.InstanceNorm2d(o, affine=True) if n else nn.Identity() for _, o, _, n in spec)

    def forward(self, x):
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = conv(x)
            if i < len(self.convs) - 1:
                x = lrelu(norm(x))
        return x


def vgg16_conv4(device):
    layers, cin = [], 3
    for b, (cout, n) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3)]):
        for _ in range(n):
            layers += [nn.Conv2d(cin, cout, 3, 1, 1), nn.ReLU()]
            cin = cout
        if b < 3:
            layers.append(nn.MaxPool2d(2))
    vgg = nn.Sequential(*layers).to(device).eval()
    for p in vgg.parameters():
        p.requires_grad_(False)
    mean = torch.tensor([103.939, 116.779, 123.68], device=device).view(1, 3, 1, 1)
    return lambda x: vgg(127.5 * (x + 1).flip(1) - mean)


def gram(f):
    n, c, h, w = f.shape
    f = f.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--base-channels", type=int, default=64)
    a.add_argument("--residual-blocks", type=int, default=8)
    a.add_argument("--crop", type=int, default=256)
    a.add_argument("--batch", type=int, default=8)
    a.add_argument("--steps", type=int, default=5)
    a.add_argument("--device", default="cpu")
    args = a.parse_args()
    dev = torch.device(args.device)
    g, d = Generator(args.base_channels, args.residual_blocks).to(dev), Discriminator().to(dev)
    vgg = vgg16_conv4(dev)
    opt_g = torch.optim.Adam(g.parameters(), 1e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 1e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    shape = (args.batch, 3, args.crop, args.crop)
    times = []
    for step in range(args.steps + 1):
        photo, anime, smooth = (torch.rand(shape, device=dev) * 2 - 1 for _ in range(3))
        start = time.perf_counter()
        with torch.no_grad():
            photo_f = vgg(photo)
            fake = g(photo)
        dr, df, ds = d(anime), d(fake), d(smooth)
        d_loss = bce(dr, torch.ones_like(dr)) + bce(df, torch.zeros_like(df)) + bce(ds, torch.zeros_like(ds))
        opt_d.zero_grad(); d_loss.backward(); opt_d.step()
        fake = g(photo)
        out = d(fake)
        fake_f = vgg(fake)
        with torch.no_grad():
            anime_f = vgg(anime)
        loss = bce(out, torch.ones_like(out)) + 10 * (fake_f - photo_f).abs().mean() + (gram(fake_f) - gram(anime_f)).abs().mean()
        opt_g.zero_grad(); loss.backward(); opt_g.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if step > 0:
            times.append(time.perf_counter() - start)
    print(f"pytorch step {args.base_channels}ch/{args.residual_blocks}res {args.crop}² batch {args.batch} on {dev} "
          f"({torch.get_num_threads()} threads): {sum(times) / len(times):.3f} s/step")


if __name__ == "__main__":
    main()
