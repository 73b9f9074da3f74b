//! How far the pixels of one photo can move toward the cartoon set's mean Gram matrix for a
//! given loss of content, measured as `japanim eval` measures (VGG16 conv4_3, the photo at
//! 512 px, 200 style images at 256 px): a bound on what any generator could reach, found by
//! optimising the pixels directly (Gatys et al.) rather than a network.
//!
//! ```sh
//! cargo run --release --example gram_probe -- PHOTO.png GRAM_WEIGHT STEPS [LR OUT.png START.png FLAT_WEIGHT]
//! ```
//! minimises `content L1 + GRAM_WEIGHT · Gram L1 + FLAT_WEIGHT · flatness` (truncated total
//! variation, as `train` uses it) from the photo, or from START (e.g. a model's output), and
//! prints content and Gram L1 of the 8-bit image every 10 steps. Needs `models/vgg16.safetensors`
//! and `../shared/data/train/cartoon`.

use std::path::Path;

use japanim::eval::{load_scaled, to_input};
use japanim::io::image::list_images;
use japanim::model::vgg::{gram, Vgg};
use japanim::train::losses::flatness;
use tch::{nn::OptimizerConfig, Device, Kind, Tensor};

/// An image as `eval` sees it: at most `max_side` px, NCHW in [-1, 1].
fn load(path: &Path, max_side: u32) -> Tensor {
    load_scaled(path, max_side).and_then(|frame| to_input(&frame)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: gram_probe PHOTO GRAM_WEIGHT STEPS [LR OUT.png START.png FLAT_WEIGHT]");
        std::process::exit(2);
    }
    let number = |i: usize, default: f64| args.get(i).map_or(default, |s| s.parse().expect("a number"));
    let (gram_weight, steps, lr, flat_weight) =
        (number(1, 0.0), number(2, 0.0) as i64, number(3, 0.02), number(6, 0.0));
    let vgg = Vgg::load(Path::new("models/vgg16.safetensors"), Device::Cpu).expect("models/vgg16.safetensors");
    let style = list_images(Path::new("../shared/data/train/cartoon")).expect("../shared/data/train/cartoon");
    let stride = style.len().div_ceil(200);
    let style: Vec<_> = style.into_iter().step_by(stride).collect();
    let target = tch::no_grad(|| {
        let sum = style.iter().map(|p| gram(&vgg.features(&load(p, 256)).unwrap()).unwrap()).fold(None, |s, g| {
            Some(match s {
                Some(s) => s + g,
                None => g,
            })
        });
        sum.expect("style images") / style.len() as f64
    });
    let photo = load(Path::new(&args[0]), 512);
    let photo_features = tch::no_grad(|| vgg.features(&photo).unwrap());
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let mut delta = vs.root().zeros("delta", &photo.size());
    if let Some(start) = args.get(5) {
        tch::no_grad(|| delta.copy_(&(load(Path::new(start), 512) - &photo)));
    }
    let mut adam = tch::nn::Adam::default().build(&vs, lr).unwrap();
    let figures = |x: &Tensor| {
        tch::no_grad(|| {
            let f = vgg.features(x).unwrap();
            let content = (&f - &photo_features).abs().mean(Kind::Float);
            let style = (gram(&f).unwrap() - &target).abs().mean(Kind::Float);
            (content, style)
        })
    };
    for step in 0..=steps {
        let x = (&photo + &delta).clamp(-1.0, 1.0);
        if step % 10 == 0 {
            let (content, style) = figures(&(((&x + 1.0) * 127.5).round() / 127.5 - 1.0));
            println!("step {step:4} content {:6.2} gram {:.3}", content.double_value(&[]), style.double_value(&[]));
        }
        let f = vgg.features(&x).unwrap();
        let content = (&f - &photo_features).abs().mean(Kind::Float);
        let style = (gram(&f).unwrap() - &target).abs().mean(Kind::Float);
        let loss = content + style * gram_weight + flatness(&x, 0.1).unwrap() * flat_weight;
        adam.backward_step(&loss);
    }
    if let Some(out) = args.get(4) {
        let x = tch::no_grad(|| ((&photo + &delta).clamp(-1.0, 1.0) + 1.0) * 127.5).round().to_kind(Kind::Uint8);
        let x = x.squeeze_dim(0).permute([1, 2, 0]).contiguous();
        let (h, w) = (x.size()[0] as u32, x.size()[1] as u32);
        let data = Vec::<u8>::try_from(x.flatten(0, -1)).unwrap();
        image::RgbImage::from_raw(w, h, data).unwrap().save(out).unwrap();
    }
}
