//! Helpers shared by the command-line tests: the binary, tiny models and inputs the tests
//! make themselves.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `japanim` binary under test.
pub fn japanim() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_japanim"));
    cmd.env_remove("JAPANIM_MODEL").env("RUST_LOG", "error").stdin(Stdio::null());
    cmd
}

/// Runs a command and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary runs")
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a failed run that printed exactly one error line and did not panic.
pub fn assert_one_line_error(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure, got success; stderr: {err}");
    assert_eq!(out.status.code(), Some(1), "exit code; stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {err}");
    assert!(lines[0].starts_with("japanim: error: "), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

/// Writes a tiny untrained generator (4 base channels, 1 residual block) and returns its path.
pub fn tiny_model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.safetensors");
    let out = run(japanim()
        .args(["model", "init", "--base-channels", "4", "--residual-blocks", "1", "--seed", "7", "-o"])
        .arg(&path));
    assert!(out.status.success(), "{}", stderr(&out));
    path
}

/// Writes a VGG16 conv base with random weights (seed 11) and returns its path: what the
/// perceptual losses and `eval` need, without the 30 MB ImageNet file.
pub fn random_vgg_file(dir: &Path) -> PathBuf {
    use japanim::model::vgg::{Vgg, VggInput, VggVariant};
    let path = dir.join("vgg.safetensors");
    japanim::model::with_seed(11, || Vgg::random(VggVariant::Vgg16, VggInput::Caffe, tch::Device::Cpu))
        .save(&path, "random, for tests")
        .unwrap();
    path
}

/// A deterministic RGB test pattern.
pub fn pattern(width: u32, height: u32, seed: u32) -> Vec<u8> {
    (0..width * height * 3).map(|i| ((i * 31 + seed * 17 + (i / (width * 3)) * 7) % 256) as u8).collect()
}

/// Writes a PNG of the test pattern.
pub fn write_png(path: &Path, width: u32, height: u32) {
    image::save_buffer(path, &pattern(width, height, 1), width, height, image::ExtendedColorType::Rgb8).unwrap();
}

/// Runs FFmpeg's command-line tool (installed by scripts/setup.sh) to make test media.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg is installed by scripts/setup.sh");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Writes an H.264 clip of FFmpeg's `testsrc` pattern: `size` as `WxH`, `rate` frames a second.
pub fn testsrc_clip(path: &Path, size: &str, rate: &str, seconds: f64) {
    let source = format!("testsrc=size={size}:rate={rate}:duration={seconds}");
    ffmpeg(&["-f", "lavfi", "-i", &source, "-c:v", "libx264", path.to_str().unwrap()]);
}

/// Runs ffprobe and returns its standard output.
pub fn ffprobe(args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .output()
        .expect("ffprobe is installed by scripts/setup.sh");
    assert!(out.status.success(), "ffprobe {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Files in a folder, names only, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Every decoded video frame of a file as FFmpeg's framemd5 lists it: timestamps and the MD5
/// of its pixels, one line each.
pub fn framemd5(path: &Path) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg is installed by scripts/setup.sh");
    assert!(out.status.success(), "framemd5 of {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().filter(|l| !l.starts_with('#')).map(str::to_string).collect()
}
