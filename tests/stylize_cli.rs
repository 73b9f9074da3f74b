//! `japanim stylize` as a user runs it: images, folders, raw pipes, and bad inputs.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;

use common::*;

#[test]
fn image_of_odd_size_comes_back_at_the_same_size() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("in.png");
    write_png(&input, 33, 17);
    let output = dir.path().join("out.png");
    let out = run(japanim().arg("stylize").arg(&input).arg("-o").arg(&output).arg("--model").arg(&model));
    assert!(out.status.success(), "{}", stderr(&out));
    let img = image::open(&output).unwrap();
    assert_eq!((img.width(), img.height()), (33, 17));
    assert_eq!(listing(dir.path()), ["in.png", "out.png", "tiny.safetensors"], "no temporary file left");
}

#[test]
fn existing_output_is_kept_unless_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("in.png");
    write_png(&input, 16, 16);
    let output = dir.path().join("out.jpg");
    std::fs::write(&output, b"precious").unwrap();
    let out = run(japanim().arg("stylize").arg(&input).arg("-o").arg(&output).arg("--model").arg(&model));
    assert_one_line_error(&out, "already exists: pass --overwrite to replace it");
    assert_eq!(std::fs::read(&output).unwrap(), b"precious");
    let out =
        run(japanim().arg("stylize").arg(&input).arg("-o").arg(&output).arg("--model").arg(&model).arg("--overwrite"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(image::open(&output).unwrap().width(), 16);
}

#[test]
fn a_folder_of_mixed_sizes_runs_through_the_stream_as_each_image_alone() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("photos");
    std::fs::create_dir(&input).unwrap();
    // Two sizes, alternating and repeated, so batches of two break at each change of size.
    for (name, (w, h)) in ["a", "b", "c", "d", "e"].iter().zip([(20, 10), (20, 10), (9, 13), (20, 10), (9, 13)]) {
        write_png(&input.join(format!("{name}.png")), w, h);
    }
    let output = dir.path().join("anime");
    let out = run(japanim()
        .arg("stylize")
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .arg("--model")
        .arg(&model)
        .args(["--batch", "2"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(listing(&output), ["a.png", "b.png", "c.png", "d.png", "e.png"]);
    for name in ["a", "b", "c", "d", "e"] {
        let (folder, alone) = (output.join(format!("{name}.png")), dir.path().join(format!("{name}-alone.png")));
        let out = run(japanim()
            .arg("stylize")
            .arg(input.join(format!("{name}.png")))
            .arg("-o")
            .arg(&alone)
            .arg("--model")
            .arg(&model));
        assert!(out.status.success(), "{}", stderr(&out));
        let (a, b) = (image::open(&folder).unwrap().to_rgb8(), image::open(&alone).unwrap().to_rgb8());
        assert_eq!(a.dimensions(), b.dimensions(), "{name}");
        assert_eq!(a, b, "{name}: the same picture in a folder batch as alone");
    }
}

#[test]
fn saved_settings_re_run_the_same_job() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("in.png");
    write_png(&input, 40, 30);
    let output = dir.path().join("out.png");
    let saved = dir.path().join("settings.toml");
    let settings_line = |out: &std::process::Output| {
        stderr(out)
            .lines()
            .find(|l| l.contains("stylize settings: "))
            .map(|l| l.split("stylize settings: ").nth(1).unwrap().to_string())
    };
    let first = run(japanim()
        .env("RUST_LOG", "info")
        .arg("stylize")
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .arg("--model")
        .arg(&model)
        .args(["--crf", "23", "--tile", "96", "--tile-norm", "refine:2", "--stabilize", "0.5", "--precision", "f32"])
        .arg("--save-settings")
        .arg(&saved));
    assert!(first.status.success(), "{}", stderr(&first));
    let text = std::fs::read_to_string(&saved).unwrap();
    for key in
        ["tile_norm = \"refine:2\"", "tile = 96", "feather = 8", "stabilize = 0.5", "crf = 23", "codec = \"libx264\""]
    {
        assert!(text.contains(key), "{key} in {text}");
    }
    let again = run(japanim()
        .env("RUST_LOG", "info")
        .arg("stylize")
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .arg("--pipeline")
        .arg(&saved)
        .arg("--overwrite"));
    assert!(again.status.success(), "{}", stderr(&again));
    let (a, b) = (settings_line(&first).unwrap(), settings_line(&again).unwrap());
    assert_eq!(a.replace("\"overwrite\":false", "\"overwrite\":true"), b, "the same settings");
    // A bad value in the file is refused with the file's name.
    std::fs::write(&saved, "[stylize]\ntile_norm = \"sometimes\"\n").unwrap();
    let out = run(japanim().arg("stylize").arg(&input).arg("-o").arg(&output).arg("--pipeline").arg(&saved));
    assert_one_line_error(&out, "tile normalisation 'sometimes' is not one of");
}

#[test]
fn folder_of_images_gives_folder_of_same_sized_images() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("photos");
    std::fs::create_dir(&input).unwrap();
    write_png(&input.join("a.png"), 20, 10);
    write_png(&input.join("b.png"), 9, 13);
    std::fs::write(input.join("notes.txt"), b"not an image").unwrap();
    let output = dir.path().join("anime");
    let out = run(japanim().arg("stylize").arg(&input).arg("-o").arg(&output).arg("--model").arg(&model));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(listing(&output), ["a.png", "b.png"]);
    assert_eq!(image::open(output.join("b.png")).unwrap().height(), 13);

    // One unreadable file among good ones: the others are still written, the failure is
    // named, and the run fails at the end with the count.
    std::fs::write(input.join("aa-broken.png"), b"a text file, not a PNG").unwrap();
    let again = dir.path().join("again");
    let out = run(japanim().arg("stylize").arg(&input).arg("-o").arg(&again).arg("--model").arg(&model));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("1 of 3 images in") && err.contains("failed (the other 2 were written"), "{err}");
    assert!(err.contains("aa-broken.png"), "the failure is named: {err}");
    assert_eq!(listing(&again), ["a.png", "b.png"], "the images after the broken one are done too");
    std::fs::remove_file(input.join("aa-broken.png")).unwrap();

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = run(japanim().arg("stylize").arg(&empty).arg("-o").arg(dir.path().join("x")).arg("--model").arg(&model));
    assert_one_line_error(&out, "contains no images");
}

/// Runs `stylize - -o -` with `input` on stdin, written in small pieces.
fn pipe(args: &[&str], model: &std::path::Path, input: &[u8]) -> std::process::Output {
    let mut child = japanim()
        .args(["stylize", "-", "-o", "-", "--model"])
        .arg(model)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        for chunk in data.chunks(1000) {
            if stdin.write_all(chunk).is_err() {
                break;
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

#[test]
fn raw_rgb24_through_stdin_and_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let (w, h, n) = (24u32, 10u32, 3);
    let input: Vec<u8> = (0..n).flat_map(|i| pattern(w, h, i)).collect();
    let out = pipe(&["--size", "24x10"], &model, &input);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout.len(), input.len(), "three rgb24 frames out");
    // Deterministic: the same frames give the same bytes.
    let again = pipe(&["--size", "24x10"], &model, &input);
    assert_eq!(again.stdout, out.stdout);
}

#[test]
fn y4m_in_gives_y4m_out() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut input = b"YUV4MPEG2 W16 H8 F30000:1001 Ip A1:1 C420jpeg\n".to_vec();
    for i in 0..4u8 {
        input.extend_from_slice(b"FRAME\n");
        input.extend(std::iter::repeat_n(60 + i * 30, 16 * 8));
        input.extend(std::iter::repeat_n(128u8, 2 * 8 * 4));
    }
    let out = pipe(&[], &model, &input);
    assert!(out.status.success(), "{}", stderr(&out));
    let header = b"YUV4MPEG2 W16 H8 F30000:1001 Ip A1:1 C420jpeg\n";
    assert!(out.stdout.starts_with(header), "{:?}", String::from_utf8_lossy(&out.stdout[..60.min(out.stdout.len())]));
    assert_eq!(out.stdout.len(), header.len() + 4 * (6 + 16 * 8 * 3 / 2));
    let rgb = pipe(&["--output-format", "rgb24"], &model, &input);
    assert_eq!(rgb.stdout.len(), 4 * 16 * 8 * 3);
}

#[test]
fn short_final_frame_on_stdin_is_an_error_naming_the_byte_count() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut input = pattern(8, 8, 0);
    input.extend_from_slice(&[1u8; 100]);
    let out = pipe(&["--size", "8x8"], &model, &input);
    assert_one_line_error(&out, "input ended inside frame 1: got 100 of its 192 bytes");
}

#[test]
fn bad_raw_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = pipe(&[], &model, b"YUV4MPEG2 W8 H8 F25:1 Cfancy\nFRAME\n");
    assert_one_line_error(&out, "unsupported YUV4MPEG2 pixel format 'Cfancy'");
    let out = pipe(&[], &model, &[0u8; 300]);
    assert_one_line_error(&out, "needs --size");
    let out = run(japanim().args(["stylize", "-", "-o", "-", "--size", "0x0"]).arg("--model").arg(&model));
    assert_eq!(out.status.code(), Some(2), "a bad flag is a usage error");
    assert!(stderr(&out).contains("empty"), "{}", stderr(&out));
    let out = run(japanim().args(["stylize", "-", "-o", "-", "--size", "100000x100000"]).arg("--model").arg(&model));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("exceeds the limit"), "{}", stderr(&out));
}

#[test]
fn closed_pipe_downstream_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut child = japanim()
        .args(["stylize", "-", "-o", "-", "--size", "64x64", "--model"])
        .arg(&model)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let frame = pattern(64, 64, 0);
        for _ in 0..400 {
            if stdin.write_all(&frame).is_err() {
                break;
            }
        }
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut first = vec![0u8; 100];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout); // like `| head -c 100`
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "exit {:?}: {}", out.status, stderr(&out));
    assert!(!stderr(&out).contains("error"), "{}", stderr(&out));
}

#[test]
fn text_output_into_a_closed_pipe_ends_quietly() {
    // `japanim model info … | head -0`: the reader is gone before the first line is written.
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    for args in [vec!["doctor".into()], vec!["model".into(), "info".into(), model.display().to_string()]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = japanim().args(&args).stdout(writer).stderr(Stdio::piped()).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).is_empty(), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn missing_and_empty_inputs_fail_cleanly_leaving_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let output = dir.path().join("out.mp4");
    let out = run(japanim()
        .arg("stylize")
        .arg(dir.path().join("nope.mp4"))
        .arg("-o")
        .arg(&output)
        .arg("--model")
        .arg(&model));
    assert_one_line_error(&out, "nope.mp4: No such file or directory");
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let out = run(japanim().arg("stylize").arg(&empty).arg("-o").arg(&output).arg("--model").arg(&model));
    assert_one_line_error(&out, "is an empty file");
    assert_eq!(listing(dir.path()), ["empty.mp4", "tiny.safetensors"]);
}

#[test]
fn bad_model_files_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.png");
    write_png(&input, 8, 8);
    let fake = dir.path().join("fake.safetensors");
    std::fs::write(&fake, b"definitely not weights").unwrap();
    let out =
        run(japanim().arg("stylize").arg(&input).arg("-o").arg(dir.path().join("o.png")).arg("--model").arg(&fake));
    assert_one_line_error(&out, "is not a valid safetensors file");
    assert_eq!(listing(dir.path()), ["fake.safetensors", "in.png"]);
}

#[test]
fn a_copied_binary_runs_on_its_built_in_model() {
    // A copy of the binary outside the source tree, with no models/ folder anywhere near it.
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("japanim");
    std::fs::copy(env!("CARGO_BIN_EXE_japanim"), &exe).unwrap();
    let input = dir.path().join("in.png");
    write_png(&input, 24, 16);
    let out = run(std::process::Command::new(&exe)
        .current_dir(dir.path())
        .env_remove("JAPANIM_MODEL")
        .args(["stylize", "in.png", "-o", "out.png"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let shipped = dir.path().join("shipped.png");
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default.safetensors");
    let out = run(japanim().arg("stylize").arg(&input).arg("-o").arg(&shipped).args(["--model", model]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        image::open(dir.path().join("out.png")).unwrap(),
        image::open(&shipped).unwrap(),
        "the built-in model is the shipped file"
    );
    // $JAPANIM_MODEL still overrides it, and a bad one is named.
    let out = run(std::process::Command::new(&exe)
        .current_dir(dir.path())
        .env("JAPANIM_MODEL", dir.path().join("missing.safetensors"))
        .env("RUST_LOG", "error")
        .args(["stylize", "in.png", "-o", "again.png"]));
    assert_one_line_error(&out, "missing.safetensors");
}

#[test]
fn pipeline_file_settings_apply_and_flags_override_them() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("in.png");
    write_png(&input, 8, 8);
    let pipeline = dir.path().join("p.toml");
    std::fs::write(&pipeline, "[stylize]\nmodel = \"tiny.safetensors\"\nprecision = \"f16\"\n").unwrap();
    let out = run(japanim()
        .arg("stylize")
        .arg(&input)
        .arg("-o")
        .arg(dir.path().join("o.png"))
        .arg("--pipeline")
        .arg(&pipeline));
    assert_one_line_error(&out, "--precision f16 runs on a CUDA device only");
    let out = run(japanim()
        .arg("stylize")
        .arg(&input)
        .arg("-o")
        .arg(dir.path().join("o.png"))
        .arg("--pipeline")
        .arg(&pipeline)
        .args(["--precision", "f32"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let _ = model;
}

#[cfg(feature = "video")]
#[test]
fn interrupting_removes_the_unfinished_output() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let output = dir.path().join("out.mp4");
    // Ctrl-C, and a kill as a service manager or `timeout` sends it.
    for signal in ["-INT", "-TERM"] {
        let mut child = japanim()
            .args(["stylize", "-", "--size", "32x32", "--fps", "25", "--preset", "ultrafast", "-o"])
            .arg(&output)
            .arg("--model")
            .arg(&model)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&pattern(32, 32, 0).repeat(5)).unwrap();
        stdin.flush().unwrap();
        // Wait until the encoder's temporary file exists, then interrupt.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !listing(dir.path()).iter().any(|n| n.contains(".partial-")) {
            assert!(std::time::Instant::now() < deadline, "no temporary output appeared");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let status = std::process::Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        assert_eq!(out.status.code(), Some(130), "{signal}: {}", stderr(&out));
        assert_eq!(listing(dir.path()), ["tiny.safetensors"], "{signal}: nothing half-written is left");
    }
}

#[test]
fn bench_times_the_engine_stream_against_the_bare_generator() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let temp = dir.path().join("tmp");
    std::fs::create_dir(&temp).unwrap();
    let out = run(japanim()
        .env("TMPDIR", &temp)
        .args(["bench", "--size", "40x24", "--batch", "2", "--frames", "5", "--in-flight", "2"])
        .args(["--peak-tflops", "2", "--model"])
        .arg(&model));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    // 5 frames in batches of 2 run as 3 full batches.
    assert!(text.contains("engine stream: ") && text.contains("2 batch(es) in flight, 6 frames"), "{text}");
    assert!(text.contains("bare generator: ") && text.contains("engine at "), "{text}");
    assert!(text.contains("% of the 2 TFLOP/s peak"), "{text}");
    let fps: f64 = text
        .split("engine stream: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("frames/s figure");
    assert!(fps > 0.0 && fps.is_finite(), "{text}");
    assert!(listing(&temp).is_empty(), "the bench leaves no files behind: {:?}", listing(&temp));

    let out = run(japanim().args(["bench", "--size", "40x24", "--in-flight", "0"]));
    assert!(!out.status.success() && stderr(&out).contains("--in-flight"), "{}", stderr(&out));

    // With a work size, the generator runs on the scaled frames.
    let out =
        run(japanim().args(["bench", "--size", "80x48", "--frames", "1", "--work-size", "64", "--model"]).arg(&model));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("80x48, batch 1, drawn at 64x38 and scaled back"), "{text}");
}

#[test]
fn stabilize_smooths_later_frames_only_and_checks_its_weight() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let (w, h) = (24u32, 10u32);
    // One shot: the same picture, a little brighter each frame.
    let frame = |k: u8| pattern(w, h, 0).into_iter().map(|v| v.saturating_add(4 * k)).collect::<Vec<u8>>();
    let input: Vec<u8> = (0..3).flat_map(frame).collect();
    // f32: in bf16 the smoothed path (statistics in f32, applied in bf16) rounds otherwise
    // than libtorch's instance norm even with a frame's own statistics.
    let plain = pipe(&["--size", "24x10", "--stabilize", "0", "--precision", "f32"], &model, &input);
    let smoothed = pipe(&["--size", "24x10", "--precision", "f32"], &model, &input);
    assert!(plain.status.success() && smoothed.status.success(), "{}", stderr(&smoothed));
    let len = (w * h * 3) as usize;
    assert_eq!(plain.stdout[..len], smoothed.stdout[..len], "a shot's first frame takes its own statistics");
    assert_ne!(plain.stdout[2 * len..], smoothed.stdout[2 * len..], "later frames take the shot's average");
    let bad = pipe(&["--size", "24x10", "--stabilize", "1.5"], &model, &input);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--stabilize 1.5 must be from 0 (off) to below 1"), "{}", stderr(&bad));
}

/// A JPEG of the test pattern with an EXIF APP1 segment giving `orientation` (1–8).
fn jpeg_with_orientation(width: u32, height: u32, orientation: u8) -> Vec<u8> {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode(&pattern(width, height, 1), width, height, image::ExtendedColorType::Rgb8)
        .unwrap();
    // "Exif\0\0", a big-endian TIFF header, one IFD entry: tag 0x0112 (Orientation), SHORT, 1.
    let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0".to_vec();
    exif.extend_from_slice(&[orientation, 0, 0, 0, 0, 0, 0]);
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&exif);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn a_phone_photo_comes_out_upright() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    // Stored 40x24; EXIF orientation 6 means "turn 90° clockwise to show".
    let input = dir.path().join("portrait.jpg");
    std::fs::write(&input, jpeg_with_orientation(40, 24, 6)).unwrap();
    let output = dir.path().join("anime.png");
    let out = run(japanim().arg("stylize").arg(&input).arg("-o").arg(&output).arg("--model").arg(&model));
    assert!(out.status.success(), "{}", stderr(&out));
    let img = image::open(&output).unwrap();
    assert_eq!((img.width(), img.height()), (24, 40), "stylized upright");
}

#[test]
fn large_frames_are_stylized_at_the_work_size_and_scaled_back() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let f32 = ["--precision", "f32"];
    // Smooth frames (a gradient with a bright square), so the half-size copies below are
    // close whichever filter makes them.
    let (w, h) = (160u32, 96u32);
    let frame = |k: u32| -> Vec<u8> {
        (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .flat_map(|(x, y)| {
                let inside = (40 + 8 * k..90 + 8 * k).contains(&x) && (30..70).contains(&y);
                let v = if inside { 230 } else { (x + y) as u8 };
                [v, (255 - v as u32 / 2) as u8, (y * 2) as u8]
            })
            .collect()
    };
    let input: Vec<u8> = (0..2).flat_map(frame).collect();
    let size = ["--size", "160x96"];
    let full = pipe(&[&size[..], &["--work-size", "0"], &f32].concat(), &model, &input);
    let scaled = pipe(&[&size[..], &["--work-size", "80"], &f32].concat(), &model, &input);
    assert!(full.status.success() && scaled.status.success(), "{}", stderr(&scaled));
    assert_eq!(scaled.stdout.len(), input.len(), "frames come back at their own size");
    assert_ne!(scaled.stdout, full.stdout);
    // The frames at 80×48 (2×2 means), stylized at that size: the scaled run's output is
    // about their stylization scaled up (the engine scales down with another filter), so its
    // own 2×2 means are far closer to it than the full-size run's (measured: 18 against 58).
    let half = |data: &[u8], width: u32| -> Vec<u8> {
        let (hw, rows) = (width / 2, data.len() as u32 / (width * 3) / 2);
        (0..rows * hw * 3)
            .map(|i| {
                let (y, x, c) = (i / (hw * 3), (i / 3) % hw, i % 3);
                let at = |dy: u32, dx: u32| u32::from(data[(((2 * y + dy) * width + 2 * x + dx) * 3 + c) as usize]);
                ((at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1) + 2) / 4) as u8
            })
            .collect()
    };
    let small = pipe(&[&["--size", "80x48", "--work-size", "0"][..], &f32].concat(), &model, &half(&input, w));
    assert!(small.status.success(), "{}", stderr(&small));
    let distance = |a: &[u8], b: &[u8]| {
        a.iter().zip(b).map(|(&a, &b)| (f64::from(a) - f64::from(b)).abs()).sum::<f64>() / a.len() as f64
    };
    let (from_scaled, from_full) =
        (distance(&half(&scaled.stdout, w), &small.stdout), distance(&half(&full.stdout, w), &small.stdout));
    assert!(from_scaled < 0.5 * from_full, "scaled {from_scaled}, full size {from_full}");

    // Frames no larger than the work size are stylized as they are.
    let (tw, th) = (24u32, 10u32);
    let tiny: Vec<u8> = (0..2).flat_map(|i| pattern(tw, th, i)).collect();
    let as_is = pipe(&["--size", "24x10", "--work-size", "64"], &model, &tiny);
    let full_size = pipe(&["--size", "24x10", "--work-size", "0"], &model, &tiny);
    assert!(as_is.status.success() && as_is.stdout == full_size.stdout, "{}", stderr(&as_is));
    let bad = pipe(&["--size", "24x10", "--work-size", "10"], &model, &tiny);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("work size 10 must be 0 (frames at their own size) or at least 64"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn the_default_model_draws_large_frames_at_its_work_size() {
    // 1000 px wide: over the default model's 960.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("wide.png");
    write_png(&input, 1000, 24);
    let stylize = |name: &str, extra: &[&str]| -> Vec<u8> {
        let output = dir.path().join(name);
        let out = run(japanim().arg("stylize").arg(&input).arg("-o").arg(&output).args(extra));
        assert!(out.status.success(), "{}", stderr(&out));
        image::open(&output).unwrap().to_rgb8().into_raw()
    };
    let by_model = stylize("model.png", &[]);
    assert_eq!(by_model.len(), 1000 * 24 * 3);
    assert_eq!(by_model, stylize("960.png", &["--work-size", "960"]), "the model's 960 px");
    assert_ne!(by_model, stylize("full.png", &["--work-size", "0"]));
}
