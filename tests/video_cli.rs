//! Video files end to end: frame count, rate, timestamps, duration and audio survive;
//! damaged files and unknown output extensions fail cleanly. Test media are made with
//! FFmpeg's own tools.
#![cfg(feature = "video")]

mod common;

use common::*;

fn stylize(input: &std::path::Path, output: &std::path::Path, model: &std::path::Path) -> std::process::Output {
    run(japanim()
        .arg("stylize")
        .arg(input)
        .arg("-o")
        .arg(output)
        .arg("--model")
        .arg(model)
        .args(["--preset", "ultrafast"]))
}

fn probe(path: &std::path::Path, entries: &str, stream: &str) -> String {
    ffprobe(&["-select_streams", stream, "-show_entries", entries, "-of", "compact=p=0:nk=1", path.to_str().unwrap()])
}

/// How many frames of the first video stream decode.
fn video_frames(path: &std::path::Path) -> u64 {
    let count = ffprobe(&[
        "-count_frames",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=nb_read_frames",
        "-of",
        "csv=p=0",
        path.to_str().unwrap(),
    ]);
    count.trim().parse().unwrap()
}

/// MD5 of every packet of the audio stream, copied without decoding.
fn audio_md5(path: &std::path::Path) -> String {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a", "-c", "copy", "-f", "md5", "-"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn video_round_trip_keeps_frames_rate_timestamps_and_audio() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("in.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=96x64:rate=30000/1001:duration=1.5",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=1.5",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        input.to_str().unwrap(),
    ]);
    let output = dir.path().join("out.mp4");
    let out = stylize(&input, &output, &model);
    assert!(out.status.success(), "{}", stderr(&out));

    let (vin, vout) = (
        probe(&input, "stream=nb_frames,r_frame_rate,avg_frame_rate", "v"),
        probe(&output, "stream=nb_frames,r_frame_rate,avg_frame_rate", "v"),
    );
    assert_eq!(vout, vin);
    assert_eq!(vin.trim(), "30000/1001|30000/1001|45");
    let times = |p| ffprobe(&["-select_streams", "v", "-show_entries", "packet=pts_time", "-of", "csv=p=0", p]);
    let sorted = |s: String| {
        let mut v: Vec<String> = s.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(times(output.to_str().unwrap())), sorted(times(input.to_str().unwrap())), "frame timestamps");
    assert_eq!(probe(&output, "format=duration", "v"), probe(&input, "format=duration", "v"));
    let md5 = audio_md5(&input);
    assert!(md5.starts_with("MD5="), "{md5}");
    assert_eq!(audio_md5(&output), md5, "audio copied bit for bit");
    assert_eq!(probe(&output, "stream=codec_name,color_space", "v").trim(), "h264|smpte170m");
    assert_eq!(listing(dir.path()), ["in.mp4", "out.mp4", "tiny.safetensors"]);
}

#[test]
fn hd_video_is_tagged_bt709_and_mkv_works() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("in.mkv");
    // 1280×720 marks HD; 4 frames keep it fast.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=teal:size=1280x720:rate=25:duration=0.16",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        input.to_str().unwrap(),
    ]);
    let output = dir.path().join("out.mkv");
    let out = stylize(&input, &output, &model);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        probe(&output, "stream=width,height,color_space,color_primaries,color_transfer", "v").trim(),
        "1280|720|bt709|bt709|bt709"
    );
    assert_eq!(video_frames(&output), 4);
}

#[test]
fn video_to_stdout_as_y4m() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("in.mp4");
    testsrc_clip(&input, "32x16", "25", 0.2);
    let out = run(japanim().arg("stylize").arg(&input).args(["-o", "-", "--model"]).arg(&model));
    assert!(out.status.success(), "{}", stderr(&out));
    let header = b"YUV4MPEG2 W32 H16 F25:1 Ip A1:1 C420jpeg\n";
    assert!(out.stdout.starts_with(header));
    assert_eq!(out.stdout.len(), header.len() + 5 * (6 + 32 * 16 * 3 / 2));
}

#[test]
fn raw_stdin_encodes_to_a_video_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let output = dir.path().join("out.mp4");
    let input: Vec<u8> = (0..6).flat_map(|i| pattern(32, 24, i)).collect();
    let mut child = japanim()
        .args(["stylize", "-", "--size", "32x24", "--fps", "12", "--preset", "ultrafast", "-o"])
        .arg(&output)
        .arg("--model")
        .arg(&model)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(probe(&output, "stream=r_frame_rate,nb_frames", "v").trim(), "12/1|6");

    let out = run(japanim()
        .args(["stylize", "-", "--size", "32x24", "-o"])
        .arg(dir.path().join("nofps.mp4"))
        .arg("--model")
        .arg(&model));
    assert_one_line_error(&out, "needs --fps");
}

#[test]
fn damaged_video_files_fail_cleanly_leaving_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let good = dir.path().join("good.mp4");
    testsrc_clip(&good, "64x48", "25", 1.0);
    let bytes = std::fs::read(&good).unwrap();

    let random = dir.path().join("random.mp4");
    std::fs::write(&random, (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<_>>())
        .unwrap();
    let truncated = dir.path().join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

    for (input, needle) in
        [(&random, "random.mp4: opening the file: Invalid data found"), (&truncated, "truncated.mp4: opening the file")]
    {
        let output = dir.path().join("out.mp4");
        let out = stylize(input, &output, &model);
        assert_one_line_error(&out, needle);
        assert!(!output.exists());
    }
    // An output name no container answers to is refused by that name, before any work.
    let out = stylize(&good, &dir.path().join("out.xyz"), &model);
    assert_one_line_error(&out, "out.xyz: FFmpeg has no container for this file extension");
    assert_eq!(listing(dir.path()), ["good.mp4", "random.mp4", "tiny.safetensors", "truncated.mp4"]);
}

#[test]
fn bench_times_decoding_and_the_whole_pipeline_on_a_video() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("in.mkv");
    testsrc_clip(&input, "48x32", "10", 1.0);
    let temp = dir.path().join("tmp");
    std::fs::create_dir(&temp).unwrap();
    let out = run(japanim().env("TMPDIR", &temp).arg("bench").arg("--video").arg(&input).arg("--model").arg(&model));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("10 frames of 48x32; decoding alone "), "{text}");
    assert!(text.contains("full pipeline (decode → stylize → encode") && text.contains("busy: decoding "), "{text}");
    assert!(listing(&temp).is_empty(), "the encoded file is deleted: {:?}", listing(&temp));
}

/// A command whose files may grow to at most `bytes` (RLIMIT_FSIZE), with SIGXFSZ ignored so
/// a write past it fails with EFBIG instead of killing the process: a full disk without a
/// small filesystem to fill.
fn with_file_size_limit(cmd: &mut std::process::Command, bytes: u64) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

#[test]
fn a_failed_write_names_the_users_output_not_the_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let clip = dir.path().join("clip.mp4");
    testsrc_clip(&clip, "96x64", "25", 2.0);
    let photo = dir.path().join("photo.png");
    write_png(&photo, 96, 64);
    for (input, output) in [(&clip, dir.path().join("anime.mp4")), (&photo, dir.path().join("anime.png"))] {
        let mut cmd = japanim();
        cmd.arg("stylize").arg(input).arg("-o").arg(&output).arg("--model").arg(&model);
        let out = run(with_file_size_limit(&mut cmd, 2000));
        let name = output.file_name().unwrap().to_str().unwrap();
        assert_one_line_error(&out, &format!("{}: ", output.display()));
        assert!(!stderr(&out).contains("partial"), "the temporary file is named: {}", stderr(&out));
        assert!(!output.exists(), "{name} must not exist after a failed write");
    }
    assert_eq!(listing(dir.path()), ["clip.mp4", "photo.png", "tiny.safetensors"], "no temporary file left");
}

#[test]
fn a_phone_video_keeps_its_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let stored = dir.path().join("stored.mp4");
    let input = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=1", "-c:v", "libx264"];
    ffmpeg(&[&input[..], &[stored.to_str().unwrap()]].concat());
    // Stored 64x48, shown turned by 90°: what a phone held upright writes. FFmpeg 5.1's muxer
    // turns the rotate tag into a display matrix when the stream is copied.
    let clip = dir.path().join("portrait.mp4");
    let tag = ["-c", "copy", "-metadata:s:v:0", "rotate=90"];
    ffmpeg(&[&["-i", stored.to_str().unwrap()][..], &tag, &[clip.to_str().unwrap()]].concat());
    let rotation = |path: &std::path::Path| probe(path, "stream_side_data=rotation", "v:0");
    assert_eq!(rotation(&clip).trim(), "90", "the test clip carries a display matrix");
    assert_eq!(rotation(&stored).trim(), "", "and the stored one none");
    let output = dir.path().join("anime.mp4");
    let out = stylize(&clip, &output, &model);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(rotation(&output).trim(), "90", "the output keeps the rotation");
    assert!(probe(&output, "stream=width,height", "v:0").starts_with("64|48"), "frames are stored as they were");
}

#[test]
fn damaged_packets_are_counted_and_can_be_made_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let good = dir.path().join("good.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=128x96:rate=25:duration=2",
        "-c:v",
        "libx264",
        "-g",
        "10",
        good.to_str().unwrap(),
    ]);
    // Garbage over 2 % of the file in the middle of its media data (the index is at the end).
    let mut bytes = std::fs::read(&good).unwrap();
    let (start, len) = (bytes.len() / 2, bytes.len() / 50);
    for (i, b) in bytes[start..start + len].iter_mut().enumerate() {
        *b ^= (i as u8).wrapping_mul(151) | 1;
    }
    let damaged = dir.path().join("damaged.mp4");
    std::fs::write(&damaged, bytes).unwrap();

    let output = dir.path().join("anime.mp4");
    let out = run(japanim()
        .env("RUST_LOG", "warn")
        .arg("stylize")
        .arg(&damaged)
        .arg("-o")
        .arg(&output)
        .arg("--model")
        .arg(&model)
        .args(["--preset", "ultrafast"]));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("damaged.mp4: decode errors in ") && err.contains(" frames (at "), "{err}");

    let strict = dir.path().join("strict.mp4");
    let mut cmd = japanim();
    cmd.arg("stylize").arg(&damaged).arg("-o").arg(&strict).arg("--model").arg(&model).arg("--strict-decode");
    let out = run(&mut cmd);
    assert_one_line_error(&out, "(decode errors are fatal with --strict-decode)");
    assert!(stderr(&out).contains("damaged.mp4: "), "{}", stderr(&out));
    assert!(!strict.exists());
}

/// A phone's HDR video (PQ or HLG, BT.2020, 10-bit) is tone-mapped to SDR on decoding: the
/// frames look like the SDR picture it was made from, and the output is tagged SDR BT.709.
#[test]
fn hdr_video_is_tone_mapped_to_sdr() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let still = dir.path().join("still.png");
    let (w, h) = (96u32, 64u32);
    let picture = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(40 + x * 2) as u8, (60 + y * 2) as u8, if (x / 16 + y / 16) % 2 == 0 { 200 } else { 70 }])
    });
    picture.save(&still).unwrap();
    for (transfer, name) in [("smpte2084", "pq"), ("arib-std-b67", "hlg")] {
        // SDR white carried at HDR reference white (203 nits, BT.2408), as phones place it.
        let clip = dir.path().join(format!("{name}.mp4"));
        let to_hdr = format!(
            "zscale=tin=709:min=709:pin=709:rin=full:t=linear:m=709:p=709:npl=203,format=gbrpf32le,\
             zscale=p=2020:t={transfer}:m=2020_ncl:r=limited:npl=203,format=yuv420p10le"
        );
        ffmpeg(&[
            "-loop",
            "1",
            "-i",
            still.to_str().unwrap(),
            "-t",
            "0.12",
            "-r",
            "25",
            "-vf",
            &to_hdr,
            "-c:v",
            "libx264",
            "-qp",
            "0",
            "-color_primaries",
            "bt2020",
            "-color_trc",
            transfer,
            "-colorspace",
            "bt2020nc",
            clip.to_str().unwrap(),
        ]);
        assert_eq!(probe(&clip, "stream=color_transfer", "v").trim(), transfer);
        // Key frames are saved as SDR pictures, about 12 levels from the still (read as SDR
        // code values, as before, they were 22 (HLG) and 36 (PQ) levels off).
        let frames = dir.path().join(format!("frames-{name}"));
        let out = run(japanim().args(["dataset", "keyframes"]).arg(&clip).arg("-o").arg(&frames));
        assert!(out.status.success(), "{}", stderr(&out));
        let first = image::open(frames.join(format!("{name}_000000.png"))).unwrap().to_rgb8();
        let error: f64 =
            first.as_raw().iter().zip(picture.as_raw()).map(|(&a, &b)| f64::from(a.abs_diff(b))).sum::<f64>()
                / first.as_raw().len() as f64;
        assert!(error < 16.0, "{name}: mean error {error:.1} levels");
        let output = dir.path().join(format!("{name}-anime.mp4"));
        let out = run(japanim()
            .env("RUST_LOG", "info")
            .arg("stylize")
            .arg(&clip)
            .arg("-o")
            .arg(&output)
            .arg("--model")
            .arg(&model));
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("tone-mapped to SDR BT.709"), "{}", stderr(&out));
        assert_eq!(
            probe(&output, "stream=color_space,color_primaries,color_transfer", "v").trim(),
            "bt709|bt709|bt709"
        );
    }
}

/// Interlaced video comes out progressive, a frame for each frame: the comb of alternating
/// lines on moving edges is gone from key frames and from the stylized video.
#[test]
fn interlaced_video_is_deinterlaced() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("interlaced.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=50",
        "-vf",
        "tinterlace=interleave_top",
        "-frames:v",
        "6",
        "-c:v",
        "libx264",
        "-qp",
        "0",
        "-flags",
        "+ildct+ilme",
        "-x264-params",
        "tff=1",
        input.to_str().unwrap(),
    ]);
    // The comb: how far each row is from the mean of its neighbours.
    let comb = |image: &image::RgbImage| -> f64 {
        let grey = image::imageops::grayscale(image);
        let (w, h) = grey.dimensions();
        let mut total = 0.0;
        for y in 1..h - 1 {
            for x in 0..w {
                let (up, here, down) = (grey[(x, y - 1)][0], grey[(x, y)][0], grey[(x, y + 1)][0]);
                total += (f64::from(here) - (f64::from(up) + f64::from(down)) / 2.0).abs();
            }
        }
        total / f64::from(w * (h - 2))
    };
    let stored = dir.path().join("stored.png");
    ffmpeg(&["-i", input.to_str().unwrap(), "-frames:v", "1", stored.to_str().unwrap()]);
    let frames = dir.path().join("frames");
    let out = run(japanim().args(["dataset", "keyframes"]).arg(&input).arg("-o").arg(&frames));
    assert!(out.status.success(), "{}", stderr(&out));
    let (combed, progressive) = (
        comb(&image::open(&stored).unwrap().to_rgb8()),
        comb(&image::open(frames.join("interlaced_000000.png")).unwrap().to_rgb8()),
    );
    assert!(progressive < combed / 2.0, "comb {combed:.2} as stored, {progressive:.2} deinterlaced");
    let output = dir.path().join("anime.mp4");
    let out = stylize(&input, &output, &model);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(video_frames(&output), 6);
}

/// A codec the container has no place for is refused before any work, naming the output.
#[test]
fn a_codec_the_container_cannot_hold_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("in.mp4");
    testsrc_clip(&input, "64x48", "25", 0.2);
    let output = dir.path().join("out.mp4");
    let out = run(japanim()
        .arg("stylize")
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .arg("--model")
        .arg(&model)
        .args(["--codec", "ffv1"]));
    assert_one_line_error(&out, "out.mp4: this container (mp4) cannot hold ffv1 video");
    assert!(!output.exists());
    assert_eq!(listing(dir.path()), ["in.mp4", "tiny.safetensors"], "no temporary file left");
}
