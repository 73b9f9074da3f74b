//! One video across machines: `stylize --part K/N` and `join`, checked against one run over
//! the whole video with a lossless codec, on clips the tests make.
#![cfg(feature = "video")]

mod common;

use std::path::{Path, PathBuf};

use common::{assert_one_line_error, ffmpeg, ffprobe, framemd5, japanim, listing, run, stderr, tiny_model};

/// A 10 s clip at 15 frames/s (150 frames) with B-frames, a key frame every 30 frames (5: an
/// odd number) and AAC audio.
fn clip(dir: &Path) -> PathBuf {
    let path = dir.join("clip.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=96x64:rate=15",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        "10",
        "-c:v",
        "libx264",
        "-g",
        "30",
        "-keyint_min",
        "30",
        "-sc_threshold",
        "0",
        "-bf",
        "2",
        "-c:a",
        "aac",
        "-shortest",
        path.to_str().unwrap(),
    ]);
    assert_eq!(
        ffprobe(&["-select_streams", "v", "-show_entries", "packet=flags", "-of", "csv=p=0", path.to_str().unwrap()])
            .lines()
            .filter(|l| l.starts_with('K'))
            .count(),
        5
    );
    path
}

/// Temporal smoothing of past weight 0.5 reaches 6 frames back per layer: the tiny model's 7
/// InstanceNorm layers make a part start 42 frames early, so later parts of the clip seek to
/// a key frame and warm up from there (at the default 0.9 the warm-up would cover the clip).
const STABILIZE: [&str; 2] = ["--stabilize", "0.5"];

/// Stylizes `input` (optionally one part) losslessly with `model`.
fn stylize(input: &Path, output: &Path, model: &Path, part: Option<&str>) -> std::process::Output {
    let mut cmd = japanim();
    cmd.arg("stylize")
        .arg(input)
        .arg("-o")
        .arg(output)
        .arg("--model")
        .arg(model)
        .args(["--codec", "ffv1"])
        .args(STABILIZE);
    if let Some(part) = part {
        cmd.args(["--part", part]);
    }
    run(&mut cmd)
}

/// [`stylize`] of one part, with its log.
fn stylize_logged(input: &Path, output: &Path, model: &Path, part: &str) -> std::process::Output {
    run(japanim()
        .env("RUST_LOG", "info")
        .arg("stylize")
        .arg(input)
        .arg("-o")
        .arg(output)
        .arg("--model")
        .arg(model)
        .args(["--codec", "ffv1", "--part", part])
        .args(STABILIZE))
}

fn join(parts: &[PathBuf], source: &Path, output: &Path) -> std::process::Output {
    run(japanim().arg("join").args(parts).arg("-o").arg(output).arg("--source").arg(source))
}

/// Every audio packet: timestamps, size and MD5 of its bytes.
fn audio_packets(path: &Path) -> String {
    ffprobe(&[
        "-select_streams",
        "a",
        "-show_entries",
        "packet=pts,dts,duration,size,flags,data_hash",
        "-show_data_hash",
        "md5",
        "-of",
        "csv=p=0",
        path.to_str().unwrap(),
    ])
}

#[test]
fn a_video_cut_into_3_and_7_parts_joins_to_exactly_the_frames_of_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = clip(dir.path());
    let whole = dir.path().join("whole.mkv");
    let out = stylize(&input, &whole, &model, None);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = framemd5(&whole);
    assert_eq!(expected.len(), 150);

    // Part 2 of 3 (frames 100..150) warms up from frame 58, so it decodes from key frame 30.
    let probe = dir.path().join("probe.mkv");
    let out = stylize_logged(&input, &probe, &model, "2/3");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("frames 100..150 of 150 (42 warm-up frames first; decoding from key frame 30)"),
        "{}",
        stderr(&out)
    );

    for n in [3, 7] {
        // Made in reverse order, as a scheduler may run them.
        let parts: Vec<PathBuf> = (0..n).map(|k| dir.path().join(format!("p{n}-{k}.mkv"))).collect();
        for k in (0..n).rev() {
            let out = stylize(&input, &parts[k], &model, Some(&format!("{k}/{n}")));
            assert!(out.status.success(), "part {k}/{n}: {}", stderr(&out));
        }
        // Part 3 of 7 holds frames 64..85 and part 6 frames 128..150: no key frame of their own.
        let joined = dir.path().join(format!("joined{n}.mkv"));
        let out = join(&parts, &input, &joined);
        assert!(out.status.success(), "join {n}: {}", stderr(&out));
        // The same pixels at the same timestamps, frame for frame, though each part started
        // its temporal smoothing elsewhere (its warm-up covers it).
        assert_eq!(framemd5(&joined), expected, "{n} parts");
        assert_eq!(audio_packets(&joined), audio_packets(&whole), "{n} parts: audio copied bit for bit, once");
    }
    // The audio is the source's, untouched: the same bytes in every packet.
    let hashes = |text: String| {
        text.split([',', '\n']).filter(|field| field.starts_with("MD5:")).map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(hashes(audio_packets(&dir.path().join("joined7.mkv"))), hashes(audio_packets(&input)));
}

/// Every decoded video frame's timestamp, in the stream's time base.
fn frame_times(path: &Path) -> Vec<String> {
    ffprobe(&["-select_streams", "v", "-show_entries", "frame=pts", "-of", "csv=p=0", path.to_str().unwrap()])
        .lines()
        .filter_map(|l| l.split(',').next().filter(|t| !t.is_empty()).map(str::to_string))
        .collect()
}

#[test]
fn x264_parts_in_matroska_join_into_mp4_with_the_sources_timestamps() {
    // Matroska keeps milliseconds and no decode timestamps for B-frames; the join restores
    // the source's exact times and makes decode timestamps that rise across the cuts.
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = clip(dir.path());
    let parts: Vec<PathBuf> = (0..3).map(|k| dir.path().join(format!("p{k}.mkv"))).collect();
    for (k, part) in parts.iter().enumerate() {
        let out = run(japanim()
            .arg("stylize")
            .arg(&input)
            .arg("-o")
            .arg(part)
            .arg("--model")
            .arg(&model)
            .args(["--part", &format!("{k}/3")])
            .args(STABILIZE));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let joined = dir.path().join("joined.mp4");
    let out = join(&parts, &input, &joined);
    assert!(out.status.success(), "{}", stderr(&out));
    let times = frame_times(&joined);
    assert_eq!(times.len(), 150);
    assert_eq!(times, frame_times(&input), "the source's timestamps, exactly");
    let duration = |path: &Path| {
        ffprobe(&["-select_streams", "v", "-show_entries", "stream=duration", "-of", "csv=p=0", path.to_str().unwrap()])
            .trim()
            .to_string()
    };
    assert_eq!(duration(&joined), duration(&input), "frame durations carried over");
    let decoded = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(&joined)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(decoded.status.success() && decoded.stderr.is_empty(), "{}", String::from_utf8_lossy(&decoded.stderr));
}

#[test]
fn a_part_killed_midway_is_redone_and_a_join_refuses_a_missing_duplicate_or_foreign_part() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = clip(dir.path());
    let parts: Vec<PathBuf> = (0..3).map(|k| dir.path().join(format!("part-{k}.mkv"))).collect();

    // Killed as soon as its temporary file appears: no part-1.mkv, only a hidden temporary
    // file that no join takes for a part.
    let mut child = japanim()
        .arg("stylize")
        .arg(&input)
        .arg("-o")
        .arg(&parts[1])
        .arg("--model")
        .arg(&model)
        .args(["--codec", "ffv1", "--part", "1/3"])
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !listing(dir.path()).iter().any(|n| n.starts_with(".part-1.partial")) {
        assert!(started.elapsed().as_secs() < 60, "the part never started writing");
        assert!(child.try_wait().unwrap().is_none(), "the part finished before it could be killed");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = child.kill();
    child.wait().unwrap();
    assert!(!parts[1].exists(), "a killed part leaves no part file");

    for k in [0, 2] {
        assert!(stylize(&input, &parts[k], &model, Some(&format!("{k}/3"))).status.success());
    }
    let joined = dir.path().join("joined.mkv");
    let out = join(&[parts[0].clone(), parts[2].clone()], &input, &joined);
    assert_one_line_error(&out, "part 1/3 is missing");
    let temp = listing(dir.path()).into_iter().find(|n| n.starts_with(".part-1.partial")).unwrap();
    let out = join(&[parts[0].clone(), dir.path().join(temp), parts[2].clone()], &input, &joined);
    assert!(!out.status.success(), "a half-written part is refused: {}", stderr(&out));
    assert!(!joined.exists(), "a refused join writes nothing");

    // The re-run task writes the part; a second re-run keeps it.
    assert!(stylize(&input, &parts[1], &model, Some("1/3")).status.success());
    let modified = std::fs::metadata(&parts[1]).unwrap().modified().unwrap();
    let out = stylize(&input, &parts[1], &model, Some("1/3"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&parts[1]).unwrap().modified().unwrap(), modified, "a finished part is kept");

    let out = join(&[parts[0].clone(), parts[1].clone(), parts[1].clone(), parts[2].clone()], &input, &joined);
    assert_one_line_error(&out, "part 1/3 is given twice");
    // A part of the same video with another encoder.
    let x264 = dir.path().join("x264.mkv");
    let out = run(japanim()
        .arg("stylize")
        .arg(&input)
        .arg("-o")
        .arg(&x264)
        .arg("--model")
        .arg(&model)
        .args(["--part", "1/3"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = join(&[parts[0].clone(), x264, parts[2].clone()], &input, &joined);
    assert_one_line_error(&out, "was made with other settings");
    // Parts of another video.
    let other = dir.path().join("other.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=96x64:rate=15",
        "-t",
        "2",
        "-c:v",
        "libx264",
        other.to_str().unwrap(),
    ]);
    let out = join(&parts, &other, &joined);
    assert_one_line_error(&out, "was made from another video");
    assert!(!joined.exists());

    let out = join(&parts, &input, &joined);
    assert!(out.status.success(), "{}", stderr(&out));
    let whole = dir.path().join("whole.mkv");
    assert!(stylize(&input, &whole, &model, None).status.success());
    assert_eq!(framemd5(&joined), framemd5(&whole));
}

#[test]
fn part_numbers_come_from_the_flag_or_the_schedulers_array_index() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = clip(dir.path());
    let out =
        run(japanim().arg("stylize").arg(&input).args(["-o", "x.mkv", "--part", "3/3"]).arg("--model").arg(&model));
    assert_one_line_error(&out, "--part 3/3: the part number must be below 3");
    let out = run(japanim()
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .arg("stylize")
        .arg(&input)
        .args(["-o", "x.mkv", "--part", "auto/3"]));
    assert_one_line_error(&out, "neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set");
    let out =
        run(japanim().arg("stylize").arg(&input).args(["-o", "x.mkv", "--part", "0/151"]).arg("--model").arg(&model));
    assert_one_line_error(&out, "the video has 150 frames: it cannot be cut into 151 parts");

    // A SLURM array task and a Kubernetes Indexed Job pod give the same part.
    let label =
        |path: &Path| ffprobe(&["-show_entries", "format_tags=comment", "-of", "csv=p=0", path.to_str().unwrap()]);
    let (slurm, k8s) = (dir.path().join("slurm.mkv"), dir.path().join("k8s.mkv"));
    for (path, var) in [(&slurm, "SLURM_ARRAY_TASK_ID"), (&k8s, "JOB_COMPLETION_INDEX")] {
        let out = run(japanim()
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env(var, "2")
            .arg("stylize")
            .arg(&input)
            .arg("-o")
            .arg(path)
            .arg("--model")
            .arg(&model)
            .args(["--codec", "ffv1", "--part", "auto/3"]));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(label(&slurm), label(&k8s));
    assert!(label(&slurm).starts_with("japanim-part/1 part=2/3 frames=100..150 of=150 "), "{}", label(&slurm));
}

#[test]
fn cluster_slurm_writes_the_scripts_and_overwrite_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("film.mp4");
    std::fs::write(&input, b"not read by a dry run").unwrap();
    let work = dir.path().join("out.mp4.parts");
    std::fs::create_dir(&work).unwrap();
    for name in ["part-0.mkv", "part-7.mkv", "notes.mkv"] {
        std::fs::write(work.join(name), b"an earlier run").unwrap();
    }
    let submit = |extra: &[&str]| {
        run(japanim()
            .args(["cluster", "slurm"])
            .arg(&input)
            .arg("-o")
            .arg(dir.path().join("out.mp4"))
            .args(["--parts", "3", "--dry-run"])
            .args(extra))
    };
    let out = submit(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--dependency=afterok:$array --kill-on-invalid-dep=yes"));
    let script = std::fs::read_to_string(work.join("parts.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-2") && script.contains("--part auto/3"), "{script}");
    assert!(work.join("part-0.mkv").exists(), "a re-submission keeps earlier parts");
    let out = submit(&["--overwrite"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(listing(&work), ["join.sbatch", "notes.mkv", "parts.sbatch"], "--overwrite removes earlier parts only");
}

/// Interlaced video is deinterlaced, which looks one frame back: a part that starts on a key
/// frame decodes from the key frame before it, so the parts still join to one run's frames.
#[test]
fn interlaced_parts_join_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("interlaced.mp4");
    // 20 frames of moving pattern, interlaced top field first, a key frame every 5.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=96x64:rate=50",
        "-vf",
        "tinterlace=interleave_top",
        "-frames:v",
        "20",
        "-c:v",
        "libx264",
        "-flags",
        "+ildct+ilme",
        "-x264-params",
        "tff=1",
        "-g",
        "5",
        "-keyint_min",
        "5",
        "-sc_threshold",
        "0",
        "-bf",
        "0",
        input.to_str().unwrap(),
    ]);
    let field_order = ffprobe(&[
        "-select_streams",
        "v",
        "-show_entries",
        "stream=field_order",
        "-of",
        "csv=p=0",
        input.to_str().unwrap(),
    ]);
    assert_eq!(field_order.trim(), "tt");
    let stylize0 = |output: &Path, part: Option<&str>| {
        let mut cmd = japanim();
        cmd.env("RUST_LOG", "info").arg("stylize").arg(&input).arg("-o").arg(output).arg("--model").arg(&model);
        cmd.args(["--codec", "ffv1", "--stabilize", "0"]);
        if let Some(part) = part {
            cmd.args(["--part", part]);
        }
        run(&mut cmd)
    };
    let whole = dir.path().join("whole.mkv");
    let out = stylize0(&whole, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("frames are deinterlaced"), "{}", stderr(&out));
    let expected = framemd5(&whole);
    assert_eq!(expected.len(), 20);
    let parts: Vec<PathBuf> = (0..4).map(|k| dir.path().join(format!("p{k}.mkv"))).collect();
    for (k, part) in parts.iter().enumerate() {
        let out = stylize0(part, Some(&format!("{k}/4")));
        assert!(out.status.success(), "part {k}: {}", stderr(&out));
        if k == 2 {
            // Frames 10..15 start on key frame 10; the deinterlacer needs frame 9.
            assert!(stderr(&out).contains("decoding from key frame 5"), "{}", stderr(&out));
        }
    }
    let joined = dir.path().join("joined.mkv");
    let out = join(&parts, &input, &joined);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(framemd5(&joined), expected);
}
