//! Tiled stylizing through the command line, against whole frames of the same model.

mod common;

use common::*;

fn stylize(
    dir: &std::path::Path,
    model: &std::path::Path,
    name: &str,
    extra: &[&str],
) -> (std::process::Output, Vec<u8>) {
    let output = dir.join(name);
    let out = run(japanim()
        .arg("stylize")
        .arg(dir.join("in.png"))
        .arg("-o")
        .arg(&output)
        .arg("--model")
        .arg(model)
        // Exactness is a property of the f32 arithmetic; on a CPU with bf16 instructions the
        // default would be bf16, whose rounding differs between a tile and the whole frame.
        .args(["--precision", "f32"])
        .args(extra));
    let pixels = if out.status.success() { image::open(&output).unwrap().to_rgb8().into_raw() } else { Vec::new() };
    (out, pixels)
}

#[test]
fn tiles_with_measured_frame_statistics_reproduce_the_whole_frame() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path()); // 4 channels, 1 residual block: 7 InstanceNorm layers
    write_png(&dir.path().join("in.png"), 300, 200);
    let (out, whole) = stylize(dir.path(), &model, "whole.png", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (out, exact) =
        stylize(dir.path(), &model, "exact.png", &["--tile", "128", "--tile-norm", "refine:7", "--feather", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(exact.len(), whole.len(), "same size");
    let p = japanim::look::psnr(&exact, &whole);
    assert!(p >= 45.0, "seven measuring passes: {p:.1} dB");
    let (out, naive) = stylize(dir.path(), &model, "naive.png", &["--tile", "128", "--tile-norm", "tile"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(japanim::look::psnr(&naive, &whole) < p, "per-tile statistics are further off");
    let (out, temporal) = stylize(dir.path(), &model, "temporal.png", &["--tile", "128", "--tile-norm", "temporal"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(temporal.len(), whole.len());
    // The default, segment by segment: the whole-frame result in one pass, even with tiles
    // far smaller than the receptive field (cores of 24 px here).
    for tile in ["128", "40"] {
        let (out, segmented) = stylize(dir.path(), &model, &format!("exact-{tile}.png"), &["--tile", tile]);
        assert!(out.status.success(), "{}", stderr(&out));
        let p = japanim::look::psnr(&segmented, &whole);
        assert!(p >= 60.0, "exact tiles of {tile} px: {p:.1} dB");
    }
    // The activations between segments in temporary files: the same result, no file left.
    let spill = dir.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    let output = dir.path().join("exact-disk.png");
    let out = run(japanim()
        .env("TMPDIR", &spill)
        .arg("stylize")
        .arg(dir.path().join("in.png"))
        .arg("-o")
        .arg(&output)
        .arg("--model")
        .arg(&model)
        .args(["--precision", "f32", "--tile", "40", "--tile-norm", "exact:disk"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let on_disk = image::open(&output).unwrap().to_rgb8().into_raw();
    let p = japanim::look::psnr(&on_disk, &whole);
    assert!(p >= 60.0, "exact tiles of 40 px on disk: {p:.1} dB");
    assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0);
}

#[test]
fn a_tile_too_small_for_its_halo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    write_png(&dir.path().join("in.png"), 64, 64);
    let (out, _) = stylize(dir.path(), &model, "o.png", &["--tile", "40", "--tile-norm", "downscaled:1"]);
    assert_one_line_error(&out, "--tile 40: tile 40 must be larger than twice the halo (32)");
    let (out, _) = stylize(dir.path(), &model, "o.png", &["--tile", "16"]);
    assert_one_line_error(&out, "--tile 16: tile 16 must be larger than twice the halo (8)");
    let (out, _) = stylize(dir.path(), &model, "o.png", &["--tile", "128", "--tile-norm", "magic"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not one of exact, exact:disk, tile, temporal, refine:N, downscaled:N"));
}
