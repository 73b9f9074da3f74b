//! Where images' Gram L1 to the cartoon set comes from (VGG16 conv4_3, as `eval`).
//! `gram_parts IMAGE...`: per image, its Gram's mean against the set's, the L1 split into entries
//! below and above the target. `gram_parts --pairs PHOTOS OUT...`: per folder of outputs, the mean
//! content L1 to the photo of the same name and Gram L1, as `eval` gives them for a model.
use std::path::Path;

use japanim::eval::{load_scaled, to_input};
use japanim::io::image::list_images;
use japanim::model::vgg::{gram, Vgg};
use tch::{Device, Kind, Tensor};

fn load(path: &Path, max_side: u32) -> Tensor {
    load_scaled(path, max_side).and_then(|frame| to_input(&frame)).unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || (args[0] == "--pairs" && args.len() < 3) {
        eprintln!("usage: gram_parts IMAGE... | gram_parts --pairs PHOTOS OUTPUTS...");
        std::process::exit(2);
    }
    let vgg = Vgg::load(Path::new("models/vgg16.safetensors"), Device::Cpu).unwrap();
    let style = list_images(Path::new("../shared/data/train/cartoon")).unwrap();
    let stride = style.len().div_ceil(200);
    let style: Vec<_> = style.into_iter().step_by(stride).collect();
    tch::no_grad(|| {
        let grams: Vec<Tensor> = style.iter().map(|p| gram(&vgg.features(&load(p, 256)).unwrap()).unwrap()).collect();
        let target = Tensor::stack(&grams, 0).mean_dim(0, false, Kind::Float);
        let f = |t: &Tensor| t.double_value(&[]);
        if args[0] == "--pairs" {
            let photos = list_images(Path::new(&args[1])).unwrap();
            let photo_features: Vec<Tensor> = photos.iter().map(|p| vgg.features(&load(p, 512)).unwrap()).collect();
            for dir in &args[2..] {
                let (mut c, mut g) = (0.0, 0.0);
                for (photo, fp) in photos.iter().zip(&photo_features) {
                    let fo = vgg.features(&load(&Path::new(dir).join(photo.file_name().unwrap()), 512)).unwrap();
                    c += f(&(&fo - fp).abs().mean(Kind::Float));
                    g += f(&(gram(&fo).unwrap() - &target).abs().mean(Kind::Float));
                }
                let n = photos.len() as f64;
                println!("{dir}: content {:.3} gram {:.4}", c / n, g / n);
            }
            return;
        }
        println!("target mean {:.4}", f(&target.mean(Kind::Float)));
        for p in &args {
            let feats = vgg.features(&load(Path::new(p), 512)).unwrap();
            let g = gram(&feats).unwrap();
            let d = &g - &target;
            println!(
                "{p}: mean {:.4} L1 {:.4} below {:.4} above {:.4} | feat mean {:.3}",
                f(&g.mean(Kind::Float)),
                f(&d.abs().mean(Kind::Float)),
                f(&d.clamp_max(0.0).abs().mean(Kind::Float)),
                f(&d.clamp_min(0.0).mean(Kind::Float)),
                f(&feats.mean(Kind::Float)),
            );
        }
    });
}
