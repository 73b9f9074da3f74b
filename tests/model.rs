//! Weight files: round trips, and clear errors for damaged or mismatched files.

use std::path::Path;

use japanim::engine::Engine;
use japanim::frame::Frame;
use japanim::model::{GeneratorConfig, StoredPrecision, StyleModel, Upsampling};
use tch::{Device, Kind};

fn frame(width: u32, height: u32) -> Frame {
    let data = (0..width * height * 3).map(|i| ((i * 37 + i / 7) % 256) as u8).collect();
    Frame { width, height, data, pts: None, index: 0 }
}

/// The model's output for `frame`, computed on one thread: these tests compare outputs bit for
/// bit, and with the tests running in parallel libtorch's OpenMP splits of a reduction can
/// differ from call to call and flip a rounding (one run in about 80 failed before).
fn stylize(model: StyleModel, frame: &Frame) -> Vec<u8> {
    tch::set_num_threads(1);
    let mut engine = Engine::new(model);
    let mut out = vec![Vec::new()];
    tch::no_grad(|| engine.stylize(&[frame], &mut out)).unwrap();
    out.remove(0)
}

fn tiny() -> StyleModel {
    StyleModel::init(GeneratorConfig { base_channels: 4, residual_blocks: 2, ..Default::default() }, 3, "test")
}

fn load(path: &Path) -> Result<StyleModel, japanim::model::WeightsError> {
    StyleModel::load(path, Device::Cpu, Kind::Float)
}

#[test]
fn save_load_round_trip_gives_identical_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.safetensors");
    let input = frame(20, 12);
    let model = tiny();
    model.save(StoredPrecision::F32, &path).unwrap();
    let before = stylize(model, &input);
    let loaded = load(&path).unwrap();
    assert_eq!(loaded.info().config, GeneratorConfig { base_channels: 4, residual_blocks: 2, ..Default::default() });
    assert!(!loaded.info().trained);
    assert_eq!(stylize(loaded, &input), before);
}

#[test]
fn half_precision_file_loads_close_to_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let (f32_path, f16_path) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
    let model = tiny();
    model.save(StoredPrecision::F32, &f32_path).unwrap();
    model.save(StoredPrecision::F16, &f16_path).unwrap();
    let full = std::fs::metadata(&f32_path).unwrap().len();
    let half = std::fs::metadata(&f16_path).unwrap().len();
    assert!(half < full * 6 / 10, "f16 file {half} B vs f32 {full} B");
    let input = frame(16, 16);
    let a = stylize(load(&f32_path).unwrap(), &input);
    let b = stylize(load(&f16_path).unwrap(), &input);
    let worst = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
    assert!(worst <= 3, "f16 weights change a pixel by {worst}");
}

#[test]
fn bf16_on_the_cpu_stays_close_to_f32() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.safetensors");
    tiny().save(StoredPrecision::F32, &path).unwrap();
    let input = frame(24, 20);
    let full = stylize(load(&path).unwrap(), &input);
    let half = stylize(StyleModel::load(&path, Device::Cpu, Kind::BFloat16).unwrap(), &input);
    assert_eq!(half.len(), full.len());
    let mse = full.iter().zip(&half).map(|(x, y)| f64::from(x.abs_diff(*y)).powi(2)).sum::<f64>() / full.len() as f64;
    let psnr = 10.0 * (255f64.powi(2) / mse.max(1e-12)).log10();
    // 8 bits of mantissa: about 50 dB on real photos with the default model.
    assert!(psnr > 35.0, "bf16 output is {psnr:.1} dB from f32");
    assert!(half != full, "the bf16 run computed in bf16 (its rounding shows)");
}

#[test]
fn odd_sizes_come_back_at_the_same_size() {
    for (w, h) in [(33, 17), (1, 1), (5, 3), (64, 9)] {
        let out = stylize(tiny(), &frame(w, h));
        assert_eq!(out.len(), (w * h * 3) as usize, "{w}x{h}");
    }
}

#[test]
fn batched_frames_match_single_frames() {
    let model = tiny();
    let (a, b) = (
        frame(24, 16),
        Frame { index: 1, data: frame(24, 16).data.iter().map(|v| v.wrapping_mul(3)).collect(), ..frame(24, 16) },
    );
    let mut engine = Engine::new(model);
    let mut batch = vec![Vec::new(), Vec::new()];
    let mut one = vec![Vec::new()];
    tch::no_grad(|| {
        engine.stylize(&[&a, &b], &mut batch).unwrap();
        engine.stylize(&[&b], &mut one).unwrap();
    });
    let worst = batch[1].iter().zip(&one[0]).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
    assert!(worst <= 1, "batching changed a pixel by {worst}");
}

#[test]
fn damaged_and_mismatched_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    tiny().save(StoredPrecision::F32, &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(&truncated).err().unwrap().to_string();
    assert!(err.contains("not a valid safetensors file"), "{err}");

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"\x05\x00\x00\x00\x00\x00\x00\x00hello").unwrap();
    assert!(load(&garbage).err().unwrap().to_string().contains("not a valid safetensors file"));

    let missing = dir.path().join("missing.safetensors");
    let err = load(&missing).err().unwrap().to_string();
    assert!(err.contains("missing.safetensors") && err.contains("No such file"), "{err}");

    // Same tensors, metadata claiming a wider network: the first conv's shape disagrees.
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    let wider = header.replace("\"japanim.base_channels\":\"4\"", "\"japanim.base_channels\":\"8\"");
    assert_ne!(wider, header);
    let mut patched = (wider.len() as u64).to_le_bytes().to_vec();
    patched.extend_from_slice(wider.as_bytes());
    patched.extend_from_slice(&bytes[8 + header_len..]);
    let mismatched = dir.path().join("mismatched.safetensors");
    std::fs::write(&mismatched, patched).unwrap();
    let err = load(&mismatched).err().unwrap().to_string();
    assert!(err.contains("tensor conv_in.bias has shape [4], the architecture needs [8]"), "{err}");

    // A safetensors file that is not a generator at all.
    let plain = dir.path().join("plain.safetensors");
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], &[0u8; 4]).unwrap();
    safetensors::serialize_to_file(vec![("x", view)], None, &plain).unwrap();
    let err = load(&plain).err().unwrap().to_string();
    assert!(err.contains("is not a japanim generator: the file has no metadata"), "{err}");
}

/// The file with its JSON header rewritten by `edit`.
fn with_header(bytes: &[u8], edit: impl Fn(&str) -> String) -> Vec<u8> {
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = edit(std::str::from_utf8(&bytes[8..8 + header_len]).unwrap());
    let mut patched = (header.len() as u64).to_le_bytes().to_vec();
    patched.extend_from_slice(header.as_bytes());
    patched.extend_from_slice(&bytes[8 + header_len..]);
    patched
}

/// A copy of the weights file `source`, named `name` beside it, with `from` replaced by `to`
/// in its JSON header.
fn edited_copy(source: &Path, name: &str, from: &str, to: &str) -> std::path::PathBuf {
    let path = source.with_file_name(name);
    std::fs::write(&path, with_header(&std::fs::read(source).unwrap(), |h| h.replace(from, to))).unwrap();
    path
}

#[test]
fn both_upsampling_layouts_round_trip_and_old_files_load_as_transposed() {
    let dir = tempfile::tempdir().unwrap();
    let input = frame(20, 12);
    let mut outputs = Vec::new();
    for upsampling in [Upsampling::Transposed, Upsampling::Resize] {
        let config = GeneratorConfig { base_channels: 4, residual_blocks: 2, upsampling, ..Default::default() };
        let path = dir.path().join(format!("{upsampling}.safetensors"));
        let model = StyleModel::init(config, 3, "test");
        model.save(StoredPrecision::F32, &path).unwrap();
        let before = stylize(model, &input);
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.info().config, config);
        let names = loaded.variables();
        let (deconv, resize) =
            (names.contains_key("up.0.deconv.weight"), names.contains_key("up.0.resize_conv.weight"));
        assert_eq!((deconv, resize), (upsampling == Upsampling::Transposed, upsampling == Upsampling::Resize));
        assert_eq!(stylize(loaded, &input), before, "{upsampling}");
        outputs.push(before);
    }
    assert_ne!(outputs[0], outputs[1]);

    // A file written before the key existed: the original layout.
    let transposed = std::fs::read(dir.path().join("transposed.safetensors")).unwrap();
    let key = "\"japanim.upsampling\":\"transposed\"";
    let old = with_header(&transposed, |h| h.replace(&format!("{key},"), "").replace(&format!(",{key}"), ""));
    assert!(!String::from_utf8_lossy(&old).contains("japanim.upsampling"));
    let old_path = dir.path().join("old.safetensors");
    std::fs::write(&old_path, old).unwrap();
    let loaded = load(&old_path).unwrap();
    assert_eq!(loaded.info().config.upsampling, Upsampling::Transposed);
    assert_eq!(stylize(loaded, &input), outputs[0]);

    // An unknown layout, and resize weights claimed to be transposed, are refused by name.
    let resize = dir.path().join("resize.safetensors");
    let unknown = edited_copy(&resize, "unknown.safetensors", "\"resize\"", "\"bicubic\"");
    let err = load(&unknown).err().unwrap().to_string();
    assert!(err.contains("upsampling 'bicubic' is not one of transposed, resize"), "{err}");
    let mislabelled = edited_copy(&resize, "mislabelled.safetensors", "\"resize\"", "\"transposed\"");
    let err = load(&mislabelled).err().unwrap().to_string();
    assert!(err.contains("resize_conv") || err.contains("deconv"), "{err}");
}

#[test]
fn anti_aliasing_and_reflect_padding_round_trip_and_old_files_load_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let input = frame(40, 24);
    let base =
        GeneratorConfig { base_channels: 4, residual_blocks: 2, upsampling: Upsampling::Resize, ..Default::default() };
    let options = [
        ("antialias", GeneratorConfig { antialias: true, ..base }, ", anti-aliased"),
        ("reflect_padding", GeneratorConfig { reflect_padding: true, ..base }, ", reflect padding"),
    ];
    for (key, config, shown) in options {
        let path = dir.path().join(format!("{key}.safetensors"));
        let model = StyleModel::init(config, 3, "test");
        model.save(StoredPrecision::F32, &path).unwrap();
        let before = stylize(model, &input);
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.info().config, config);
        assert!(loaded.info().config.to_string().ends_with(shown), "{}", loaded.info().config);
        assert_eq!(stylize(loaded, &input), before);
        // The same weights without the key (neither option has tensors): a file written
        // before it existed is the plain layout, and computes differently.
        let quoted = format!("\"japanim.{key}\"");
        let old_path = edited_copy(&path, &format!("old-{key}.safetensors"), &quoted, "\"japanim.note\"");
        let old = load(&old_path).unwrap();
        assert_eq!(old.info().config, base, "{key}");
        assert_ne!(stylize(old, &input), before, "{key}");
        let (on, one) = (format!("{quoted}:\"true\""), format!("{quoted}:\"1\""));
        let bad_path = edited_copy(&path, &format!("bad-{key}.safetensors"), &on, &one);
        let err = load(&bad_path).err().unwrap().to_string();
        assert!(err.contains(&format!("japanim.{key} = \"1\" is not true or false")), "{err}");
    }
}

#[test]
fn a_detail_path_starts_as_the_network_without_it_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let input = frame(40, 24);
    let base = GeneratorConfig {
        base_channels: 4,
        residual_blocks: 2,
        upsampling: Upsampling::Resize,
        input_skip: true,
        outlines: true,
        ..Default::default()
    };
    let config = GeneratorConfig { detail_channels: 6, ..base };
    // Made after every other layer, with its last convolution at zero: the same seed gives the
    // same network, and the path adds nothing until trained.
    let without = stylize(StyleModel::init(base, 3, "test"), &input);
    let model = StyleModel::init(config, 3, "test");
    let path = dir.path().join("detail.safetensors");
    model.save(StoredPrecision::F32, &path).unwrap();
    assert_eq!(stylize(model, &input), without);
    let loaded = load(&path).unwrap();
    assert_eq!(loaded.info().config, config);
    assert!(loaded.info().config.to_string().contains(", detail path of 6 channels"), "{}", loaded.info().config);
    assert_eq!(stylize(loaded, &input), without);
    assert!(config.macs_per_pixel() > base.macs_per_pixel());
    // Without the key, the file's detail tensors belong to no layout it names.
    let old_path = edited_copy(&path, "old.safetensors", "\"japanim.detail_channels\"", "\"japanim.note\"");
    let err = load(&old_path).err().unwrap().to_string();
    assert!(err.contains("detail.0.") && err.contains("old.safetensors"), "{err}");
    let bad_path = edited_copy(
        &path,
        "bad.safetensors",
        "\"japanim.detail_channels\":\"6\"",
        "\"japanim.detail_channels\":\"300\"",
    );
    let err = load(&bad_path).err().unwrap().to_string();
    assert!(err.contains("japanim.detail_channels = \"300\" is not a whole number from 0 to 256"), "{err}");
}

/// `frame` extended by `margin` px of its mirror image on every side (reflection about the
/// edge pixels, as torch's reflection padding); `margin` below each side.
fn mirrored(frame: &Frame, margin: u32) -> Frame {
    let reflect = |i: i64, n: i64| {
        if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        }
    };
    let (w, h, m) = (frame.width, frame.height, margin);
    let mut data = Vec::new();
    for y in 0..h + 2 * m {
        for x in 0..w + 2 * m {
            let sx = reflect(i64::from(x) - i64::from(m), i64::from(w));
            let sy = reflect(i64::from(y) - i64::from(m), i64::from(h));
            let at = ((sy * i64::from(w) + sx) * 3) as usize;
            data.extend_from_slice(&frame.data[at..at + 3]);
        }
    }
    Frame { width: w + 2 * m, height: h + 2 * m, data, pts: None, index: 0 }
}

#[test]
fn a_margin_is_the_mirrored_frame_cut_back_whole_or_tiled() {
    let dir = tempfile::tempdir().unwrap();
    let config = GeneratorConfig {
        base_channels: 4,
        residual_blocks: 2,
        upsampling: Upsampling::Resize,
        input_skip: true,
        margin: 8,
        ..Default::default()
    };
    let path = dir.path().join("margin.safetensors");
    StyleModel::init(config, 3, "test").save(StoredPrecision::F32, &path).unwrap();
    let model = load(&path).unwrap();
    assert_eq!(model.info().config, config);
    assert!(model.info().config.to_string().contains(", margin 8 px"), "{}", model.info().config);
    let input = frame(40, 24);
    let framed = stylize(model, &input);
    assert_eq!(framed.len(), input.data.len());

    // The same weights without the key (a file from before it): margin 0. Run on the mirrored
    // frame and cut back, they give the margin's output exactly.
    let old_path = edited_copy(&path, "old.safetensors", "\"japanim.margin\"", "\"japanim.note\"");
    let old = load(&old_path).unwrap();
    assert_eq!(old.info().config.margin, 0);
    let padded = mirrored(&input, 8);
    let whole = stylize(old, &padded);
    let mut cut = Vec::new();
    for y in 8..8 + 24usize {
        cut.extend_from_slice(&whole[(y * 56 + 8) * 3..(y * 56 + 48) * 3]);
    }
    assert_eq!(cut, framed, "margin = mirrored frame, run, cut back");
    let plain = stylize(load(&old_path).unwrap(), &input);
    assert_ne!(plain, framed, "the margin changes what the network sees at the edges");

    // Exact tiles around the margin: the whole-frame result up to float rounding.
    let settings = japanim::engine::tiled::TileSettings {
        max_tile: 32,
        halo: japanim::engine::tiled::EXACT_HALO as u32,
        feather: 0,
        batch: 2,
        norm: japanim::engine::tiled::NormStrategy::Exact,
    };
    let mut engine = Engine::with_tiles(load(&path).unwrap(), settings);
    let mut out = vec![Vec::new()];
    tch::no_grad(|| engine.stylize(&[&input], &mut out)).unwrap();
    let most = out[0].iter().zip(&framed).map(|(&a, &b)| a.abs_diff(b)).max().unwrap();
    assert!(most <= 1, "tiled with a margin: largest difference {most}");

    // A frame smaller than the margin is mirrored again from the new edge, and comes back
    // at its own size.
    let small = frame(4, 4);
    assert_eq!(stylize(load(&path).unwrap(), &small).len(), small.data.len());

    let bad_path = edited_copy(&path, "bad.safetensors", "\"japanim.margin\":\"8\"", "\"japanim.margin\":\"6\"");
    let err = load(&bad_path).err().unwrap().to_string();
    assert!(err.contains("japanim.margin = \"6\" is not a multiple of 4 from 0 to 256"), "{err}");
}

#[test]
fn smoothed_statistics_are_the_same_whole_tiled_and_batched_and_reset_at_a_cut() {
    use japanim::engine::tiled::{NormStrategy, TileSettings, EXACT_HALO};
    // A slowly changing shot of three frames, then a cut to a different picture.
    let base = frame(48, 40);
    let shifted = |k: u8| Frame {
        index: u64::from(k),
        data: base.data.iter().map(|v| v.saturating_add(k * 6)).collect(),
        ..base.clone()
    };
    let cut = Frame { index: 3, data: base.data.iter().map(|v| 255 - v / 3).collect(), ..base.clone() };
    let frames = [shifted(0), shifted(1), shifted(2), cut];
    let run = |mut engine: Engine, batch: usize| -> (Vec<Vec<u8>>, Option<u64>) {
        let mut results = Vec::new();
        for chunk in frames.chunks(batch) {
            let refs: Vec<&Frame> = chunk.iter().collect();
            let mut out = vec![Vec::new(); chunk.len()];
            tch::no_grad(|| engine.stylize(&refs, &mut out)).unwrap();
            results.extend(out);
        }
        (results, engine.shots())
    };
    let exact = TileSettings { max_tile: 32, halo: EXACT_HALO as u32, feather: 0, batch: 1, norm: NormStrategy::Exact };
    let (plain, _) = run(Engine::new(tiny()), 1);
    let (whole, shots) = run(Engine::new(tiny()).with_temporal_smoothing(0.8), 1);
    let (batched, _) = run(Engine::new(tiny()).with_temporal_smoothing(0.8), 3);
    let (tiled, tiled_shots) = run(Engine::with_tiles(tiny(), exact).with_temporal_smoothing(0.8), 1);
    assert_eq!((shots, tiled_shots), (Some(2), Some(2)), "the first frame and the cut start shots");
    let worst = |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
    for i in 0..frames.len() {
        assert!(worst(&whole[i], &batched[i]) <= 1, "frame {i}: batching changed the result");
        assert!(worst(&whole[i], &tiled[i]) <= 1, "frame {i}: exact tiles changed the result");
    }
    // A shot's first frame uses its own statistics; later ones differ from their own.
    assert!(worst(&whole[0], &plain[0]) <= 1 && worst(&whole[3], &plain[3]) <= 1);
    assert!(worst(&whole[2], &plain[2]) > 1, "the third frame is normalised with the shot's average");
}

#[test]
fn the_input_skip_round_trips_and_makes_the_output_see_the_input_colour() {
    let dir = tempfile::tempdir().unwrap();
    let even = frame(20, 12);
    let input = Frame { data: even.data.iter().map(|v| v & !1).collect(), ..even };
    // The same picture, exactly, with a constant colour offset and half the contrast.
    let tinted = Frame {
        data: input.data.iter().enumerate().map(|(i, v)| v / 2 + [40, 90, 10][i % 3]).collect(),
        ..input.clone()
    };
    let config = GeneratorConfig {
        base_channels: 4,
        residual_blocks: 2,
        upsampling: Upsampling::Resize,
        input_skip: true,
        ..Default::default()
    };
    let path = dir.path().join("skip.safetensors");
    let model = StyleModel::init(config, 3, "test");
    assert!(model.variables().contains_key("input_skip.weight"));
    model.save(StoredPrecision::F32, &path).unwrap();
    let before = stylize(model, &input);
    let loaded = load(&path).unwrap();
    assert_eq!(loaded.info().config, config);
    assert_eq!(stylize(loaded, &input), before);

    // InstanceNorm after the first convolution makes the original layout blind to a global
    // offset and contrast: both pictures give the same output. The skip's does not.
    let worst = |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
    let plain = GeneratorConfig { input_skip: false, ..config };
    let blind =
        (stylize(StyleModel::init(plain, 3, "test"), &input), stylize(StyleModel::init(plain, 3, "test"), &tinted));
    assert!(worst(&blind.0, &blind.1) <= 1, "the original layout ignores a global tint");
    let seeing = (before, stylize(load(&path).unwrap(), &tinted));
    assert!(worst(&seeing.0, &seeing.1) > 20, "with the skip the tint shows");

    // A file claiming a skip it does not hold, or holding one it does not claim, is refused.
    let claimed = "\"japanim.input_skip\":\"true\"";
    let unclaimed = edited_copy(&path, "unclaimed.safetensors", claimed, "\"japanim.input_skip\":\"false\"");
    let err = load(&unclaimed).err().unwrap().to_string();
    assert!(err.contains("unexpected tensor input_skip.") && err.contains("no input skip"), "{err}");
    let odd = edited_copy(&path, "odd.safetensors", claimed, "\"japanim.input_skip\":\"yes\"");
    let err = load(&odd).err().unwrap().to_string();
    assert!(err.contains("japanim.input_skip = \"yes\" is not true or false"), "{err}");
}

#[test]
fn outlines_only_darken_and_fall_on_the_dark_side_of_edges() {
    let dir = tempfile::tempdir().unwrap();
    // Left half dark grey, right half light grey.
    let (width, height) = (48u32, 32u32);
    let data = (0..width * height).flat_map(|i| [if i % width < width / 2 { 60u8 } else { 200 }; 3]).collect();
    let input = Frame { width, height, data, pts: None, index: 0 };
    let config = GeneratorConfig {
        base_channels: 4,
        residual_blocks: 2,
        upsampling: Upsampling::Resize,
        input_skip: true,
        outlines: true,
        outline_ink: 45,
        antialias: false,
        margin: 0,
        reflect_padding: false,
        detail_channels: 0,
    };
    let path = dir.path().join("lines.safetensors");
    StyleModel::init(config, 3, "test").save(StoredPrecision::F32, &path).unwrap();
    let loaded = load(&path).unwrap();
    assert_eq!(loaded.info().config, config);
    let lined = stylize(loaded, &input);
    // The same weights without outlines (they have no tensors): only the metadata differs.
    let plain_path =
        edited_copy(&path, "plain.safetensors", "\"japanim.outlines\":\"true\"", "\"japanim.outlines\":\"false\"");
    let plain_model = load(&plain_path).unwrap();
    assert!(!plain_model.info().config.outlines);
    let plain = stylize(plain_model, &input);
    assert!(lined.iter().zip(&plain).all(|(a, b)| a <= b), "outlines only darken");
    // Mean over the middle rows of one column.
    let column = |image: &[u8], x: u32| -> f64 {
        (8..24).map(|y| f64::from(image[((y * width + x) * 3) as usize])).sum::<f64>() / 16.0
    };
    for x in (2..8).chain(40..46) {
        assert_eq!(column(&lined, x), column(&plain, x), "no line far from the edge (column {x})");
    }
    assert!(column(&lined, 23) < column(&plain, 23) - 20.0, "a line just left of the edge");
    assert!(column(&lined, 25) > column(&plain, 25) - 2.0, "none on its light side");

    // The ink is capped at the file's outline_ink: the same weights at 70 % (what a file
    // without the key means) draw the line darker, and no pixel keeps less than 30 % of it.
    let heavy_path = edited_copy(&path, "heavy.safetensors", "\"japanim.outline_ink\"", "\"japanim.note\"");
    let heavy_model = load(&heavy_path).unwrap();
    assert_eq!(heavy_model.info().config.outline_ink, 70, "a file without the key is 70");
    let heavy = stylize(heavy_model, &input);
    assert!(column(&heavy, 23) < column(&lined, 23) - 5.0, "more ink at 70 % than at 45 %");
    // In [0, 1]: lined = plain · (1 − ink), so (lined + 1) / (plain + 1) ≥ 1 − cap, in 8-bit steps.
    for (cap, image) in [(0.45, &lined), (0.7, &heavy)] {
        let kept =
            image.iter().zip(&plain).map(|(&a, &b)| (f64::from(a) + 1.0) / (f64::from(b) + 1.0)).fold(1.0, f64::min);
        assert!(kept >= 1.0 - cap - 0.02, "ink cap {cap}: kept {kept}");
        assert!(kept < 1.0 - cap + 0.1, "ink cap {cap} is reached: kept {kept}");
    }
}

#[test]
fn the_work_size_is_read_from_the_file_and_checked() {
    // The shipped default draws frames over 960 px at 960 px.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default.safetensors");
    assert_eq!(load(&shipped).unwrap().info().work_size, 960);
    // A new model has none; the key round trips; a file from before it has none; a size
    // under the least is refused.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let config = GeneratorConfig { base_channels: 4, residual_blocks: 1, ..Default::default() };
    StyleModel::init(config, 3, "test").save(StoredPrecision::F32, &path).unwrap();
    assert_eq!(load(&path).unwrap().info().work_size, 0);
    let edited = |name: &str, to: &str| edited_copy(&path, name, "\"japanim.work_size\":\"0\"", to);
    assert_eq!(load(&edited("w.safetensors", "\"japanim.work_size\":\"320\"")).unwrap().info().work_size, 320);
    assert_eq!(load(&edited("old.safetensors", "\"japanim.note\":\"0\"")).unwrap().info().work_size, 0);
    let err = load(&edited("bad.safetensors", "\"japanim.work_size\":\"10\"")).err().unwrap().to_string();
    assert!(err.contains("japanim.work_size = \"10\" is not 0 or a whole number from 64"), "{err}");
}
