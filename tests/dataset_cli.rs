//! `japanim dataset …` on images the tests make: the layout training reads, the split by
//! source, resuming, and bad inputs.

mod common;

use common::*;

fn frames(dir: &std::path::Path, n: u32, w: u32, h: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 3 + i * 20) as u8, (y * 5) as u8, ((x + y) / 2) as u8])
        });
        img.save(dir.join(format!("f{i:02}.png"))).unwrap();
    }
}

#[test]
fn build_writes_the_training_layout_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (photos, anime, out) = (dir.path().join("photos"), dir.path().join("anime"), dir.path().join("set"));
    frames(&photos, 10, 192, 108);
    frames(&anime, 10, 80, 80);
    image::RgbImage::new(20, 20).save(anime.join("tiny.png")).unwrap(); // smaller than the crop
    let before = listing(&photos);
    let build = || {
        let mut cmd = japanim();
        cmd.env("RUST_LOG", "info")
            .args(["dataset", "build", "--photos"])
            .arg(&photos)
            .arg("--anime")
            .arg(&anime)
            .arg("-o")
            .arg(&out);
        cmd.args([
            "--size",
            "64",
            "--per-image",
            "6",
            "--photo-scales",
            "1,0.6",
            "--val-fraction",
            "0.3",
            "--seed",
            "4",
        ]);
        run(&mut cmd)
    };
    let out1 = build();
    assert!(out1.status.success(), "{}", stderr(&out1));

    let count = |sub: &str| std::fs::read_dir(out.join(sub)).unwrap().count();
    let (pt, pv) = (count("photo/train"), count("photo/val"));
    assert_eq!(pt + pv, 10 * 12, "six crops at two scales of each photo");
    assert!(pv > 0 && pt > 0, "both sides of the split are used: {pt} / {pv}");
    assert_eq!(count("anime/train") + count("anime/val"), 10 * 6);
    assert_eq!(
        listing(&out.join("anime/train")),
        listing(&out.join("anime_smooth/train")),
        "smoothed copies pair by name"
    );
    // The split is by source image: no photo has crops on both sides.
    let stems = |sub: &str| -> std::collections::BTreeSet<String> {
        listing(&out.join(sub)).iter().map(|n| n.split("_s").next().unwrap().to_string()).collect()
    };
    assert!(stems("photo/train").is_disjoint(&stems("photo/val")));
    let manifest = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
    assert!(
        manifest
            .contains("tiny.png,train,0,skipped scale 1: 20x20 (after scaling by 1) is smaller than the 64x64 crop")
            || manifest.contains("tiny.png,val,0,skipped"),
        "{manifest}"
    );
    let record = std::fs::read_to_string(out.join("dataset.toml")).unwrap();
    assert!(record.contains("skipped = 1") && record.contains("val_fraction = 0.3"), "{record}");
    assert_eq!(listing(&photos), before, "sources untouched");

    // Crops are deterministic: a second run finds them all and rewrites nothing.
    let crop = out.join("photo/train").join(&listing(&out.join("photo/train"))[0]);
    let modified = std::fs::metadata(&crop).unwrap().modified().unwrap();
    let out2 = build();
    assert!(out2.status.success());
    assert!(stderr(&out2).contains(&format!("{} crops reused", 10 * 12 + 10 * 6)), "{}", stderr(&out2));
    assert_eq!(std::fs::metadata(&crop).unwrap().modified().unwrap(), modified);
}

#[test]
fn bad_inputs_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (photos, anime) = (dir.path().join("photos"), dir.path().join("anime"));
    frames(&photos, 2, 100, 100);
    std::fs::create_dir_all(&anime).unwrap();
    let out = run(japanim()
        .args(["dataset", "build", "--photos"])
        .arg(&photos)
        .arg("--anime")
        .arg(&anime)
        .arg("-o")
        .arg(dir.path().join("set")));
    assert_one_line_error(&out, "contains no images");
    frames(&anime, 2, 100, 100);
    let out = run(japanim()
        .args(["dataset", "build", "--photos"])
        .arg(&photos)
        .arg("--anime")
        .arg(&anime)
        .arg("-o")
        .arg(photos.join("set")));
    assert_one_line_error(&out, "overlaps source");
    let out = run(japanim().args(["dataset", "crop"]).arg(&photos).arg("-o").arg(photos.join("crops")));
    assert_one_line_error(&out, "is inside the input");
    assert_eq!(listing(&photos), ["f00.png", "f01.png"], "nothing written into the source");
}

#[test]
fn crop_and_smooth_commands() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    frames(&src, 2, 300, 200);
    let crops = dir.path().join("crops");
    let out = run(japanim().args(["dataset", "crop"]).arg(&src).arg("-o").arg(&crops).args([
        "--size",
        "96",
        "--per-image",
        "3",
        "--seed",
        "1",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(listing(&crops).len(), 6);
    assert_eq!(image::open(crops.join("f00_0.png")).unwrap().width(), 96);
    let smooth = dir.path().join("smooth");
    let out = run(japanim().args(["dataset", "smooth"]).arg(&crops).arg("-o").arg(&smooth));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(listing(&smooth), listing(&crops));

    // An unreadable file among good ones is skipped with its name and reason; the rest is done.
    std::fs::write(src.join("f02.png"), b"not a png").unwrap();
    let crops2 = dir.path().join("crops2");
    let out = run(japanim()
        .env("RUST_LOG", "warn")
        .args(["dataset", "crop", "--size", "96", "--per-image", "3"])
        .arg(&src)
        .arg("-o")
        .arg(&crops2));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(listing(&crops2).len(), 6, "the two good images are cropped");
    assert!(stderr(&out).contains("skipped") && stderr(&out).contains("f02.png"), "{}", stderr(&out));
    // Every image unreadable: an error, not an empty success.
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("a.png"), b"nope").unwrap();
    let out = run(japanim().args(["dataset", "smooth"]).arg(&bad).arg("-o").arg(dir.path().join("smooth2")));
    assert_one_line_error(&out, "no image could be used");
}

/// A video of four static shots of 40 frames each: A, B, black, A again (cuts at 40, 80, 120).
#[cfg(feature = "video")]
fn shots_video(dir: &std::path::Path) -> std::path::PathBuf {
    let pattern = |seed: u32| {
        image::RgbImage::from_fn(160, 120, move |x, y| {
            image::Rgb([((x * seed) % 256) as u8, ((y * 3 + x * seed / 2) % 256) as u8, ((x ^ y) * seed % 256) as u8])
        })
    };
    pattern(3).save(dir.join("a.png")).unwrap();
    pattern(7).save(dir.join("b.png")).unwrap();
    image::RgbImage::new(160, 120).save(dir.join("black.png")).unwrap();
    stills_video(dir, &["a", "b", "black", "a"], "1.6", "format=yuv420p", "shots.mp4")
}

/// An H.264 video of still shots (`NAME.png` in `dir`, each shown for `seconds` at 25 fps),
/// cut together and passed through the FFmpeg filter `then`.
#[cfg(feature = "video")]
fn stills_video(dir: &std::path::Path, stills: &[&str], seconds: &str, then: &str, name: &str) -> std::path::PathBuf {
    let video = dir.join(name);
    let mut args: Vec<String> = Vec::new();
    for still in stills {
        args.extend(["-loop", "1", "-framerate", "25", "-t", seconds, "-i"].map(String::from));
        args.push(dir.join(format!("{still}.png")).to_str().unwrap().to_string());
    }
    let inputs: String = (0..stills.len()).map(|i| format!("[{i}]")).collect();
    args.extend(["-filter_complex".to_string(), format!("{inputs}concat=n={}:v=1:a=0,{then}", stills.len())]);
    args.extend(["-c:v", "libx264", "-crf", "18"].map(String::from));
    args.push(video.to_str().unwrap().to_string());
    ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    video
}

#[cfg(feature = "video")]
#[test]
fn keyframes_finds_the_cuts_and_drops_repeats_and_black() {
    let dir = tempfile::tempdir().unwrap();
    let video = shots_video(dir.path());
    let out = dir.path().join("frames");
    let bad = dir.path().join("broken.mp4");
    std::fs::write(&bad, b"not a video at all").unwrap();
    let result = run(japanim()
        .args(["dataset", "keyframes"])
        .arg(&video)
        .arg(&bad)
        .arg("-o")
        .arg(&out)
        .args(["--window", "25", "--plot"]));
    assert!(result.status.success(), "{}", stderr(&result));
    assert_eq!(listing(&out), ["manifest.csv", "shots_000000.png", "shots_000040.png", "shots_curve.png"]);
    let manifest = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
    let rows: Vec<&str> = manifest.lines().collect();
    assert_eq!(rows[0], "source,frame,seconds,score,zscore,status,file");
    let status = |frame: u64| -> String {
        rows.iter()
            .find(|r| r.split(',').nth(1) == Some(&frame.to_string()))
            .map(|r| r.split(',').nth(5).unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(status(0), "kept");
    assert_eq!(status(40), "kept");
    assert!(status(80).contains("dropped: nearly black"), "{manifest}");
    assert!(status(120).contains("dropped: near-duplicate of frame 0"), "{manifest}");
    assert!(rows.iter().any(|r| r.contains("broken.mp4") && r.contains("skipped:")), "{manifest}");
    assert_eq!(rows.len(), 6, "four candidates and one skipped video: {manifest}");
    let frame = image::open(out.join("shots_000040.png")).unwrap();
    assert_eq!((frame.width(), frame.height()), (160, 120));
}

/// 10-bit video (phones' HEVC, many anime encodes) is read at its depth: the same shots give
/// the same key frames and difference scores as their 8-bit encoding.
#[cfg(feature = "video")]
#[test]
fn keyframes_of_10_bit_video_match_8_bit() {
    let dir = tempfile::tempdir().unwrap();
    shots_video(dir.path());
    stills_video(dir.path(), &["a", "b", "black", "a"], "1.6", "format=yuv420p10le", "deep.mp4");
    let picks = |name: &str| -> Vec<(String, f64, String)> {
        let out = dir.path().join(format!("frames-{name}"));
        let result = run(japanim().args(["dataset", "keyframes"]).arg(dir.path().join(name)).arg("-o").arg(&out));
        assert!(result.status.success(), "{}", stderr(&result));
        let manifest = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
        manifest
            .lines()
            .skip(1)
            .map(|row| {
                let cells: Vec<&str> = row.split(',').collect();
                (cells[1].to_string(), cells[3].parse().unwrap(), cells[5].to_string())
            })
            .collect()
    };
    let (eight, ten) = (picks("shots.mp4"), picks("deep.mp4"));
    assert_eq!(eight.len(), ten.len(), "{eight:?} {ten:?}");
    for ((frame8, score8, status8), (frame10, score10, status10)) in eight.iter().zip(&ten) {
        assert_eq!((frame8, status8), (frame10, status10), "{eight:?} {ten:?}");
        assert!((score8 - score10).abs() <= 0.05 * score8.max(100.0), "scores {eight:?} {ten:?}");
    }
}

#[cfg(feature = "video")]
#[test]
fn build_takes_video_sources_and_splits_them_whole() {
    let dir = tempfile::tempdir().unwrap();
    let video = shots_video(dir.path());
    let anime = dir.path().join("anime");
    frames(&anime, 3, 80, 80);
    let out = dir.path().join("set");
    let result = run(japanim()
        .args(["dataset", "build", "--photos"])
        .arg(&video)
        .arg("--anime")
        .arg(&anime)
        .arg("-o")
        .arg(&out)
        .args(["--size", "64", "--per-image", "2"]));
    assert!(result.status.success(), "{}", stderr(&result));
    let photo_crops = listing(&out.join("photo/train")).len() + listing(&out.join("photo/val")).len();
    assert_eq!(photo_crops, 4, "two key frames, two crops each");
    assert!(
        listing(&out.join("photo/train")).is_empty() || listing(&out.join("photo/val")).is_empty(),
        "one video lands on one side"
    );
    assert_eq!(listing(&out.join("keyframes/photo/shots")).len(), 3, "two frames and their manifest");
}

#[cfg(feature = "video")]
#[test]
fn build_reuses_key_frames_picked_earlier_as_a_cluster_task_does() {
    let dir = tempfile::tempdir().unwrap();
    let video = shots_video(dir.path());
    let anime = dir.path().join("anime");
    frames(&anime, 3, 80, 80);
    let out = dir.path().join("set");
    // The array task of pipelines/slurm/dataset-from-films.sbatch: key frames into the
    // folder `build` keeps them in.
    let picked = out.join("keyframes/photo/shots");
    let result = run(japanim().args(["dataset", "keyframes"]).arg(&video).arg("-o").arg(&picked));
    assert!(result.status.success(), "{}", stderr(&result));
    let frames_before = listing(&picked);
    let build = || {
        run(japanim()
            .env("RUST_LOG", "info")
            .args(["dataset", "build", "--photos"])
            .arg(&video)
            .arg("--anime")
            .arg(&anime)
            .arg("-o")
            .arg(&out)
            .args(["--size", "64", "--per-image", "2"]))
    };
    let result = build();
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(stderr(&result).contains("reusing the 2 key frames"), "{}", stderr(&result));
    assert_eq!(listing(&out.join("photo/train")).len() + listing(&out.join("photo/val")).len(), 4);
    assert_eq!(listing(&picked), frames_before, "nothing picked again");
    // A frame gone: the video is read again.
    let frame = frames_before.iter().find(|n| n.ends_with(".png")).unwrap();
    std::fs::remove_file(picked.join(frame)).unwrap();
    let result = build();
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(!stderr(&result).contains("reusing"), "{}", stderr(&result));
    assert!(picked.join(frame).is_file());
}

#[test]
fn build_reads_a_pipeline_file_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    frames(&dir.path().join("photos"), 3, 120, 90);
    frames(&dir.path().join("anime"), 3, 80, 80);
    let pipeline = dir.path().join("p.toml");
    std::fs::write(&pipeline, "[dataset]\nphotos = [\"photos\"]\nanime = [\"anime\"]\noutput = \"set\"\nsize = 64\nper_image = 2\nval_fraction = 0.0\n").unwrap();
    let out = run(japanim().args(["dataset", "build", "--pipeline"]).arg(&pipeline).args(["--per-image", "3"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let set = dir.path().join("set");
    assert_eq!(listing(&set.join("photo/train")).len(), 9, "three photos × three crops (the flag wins)");
    assert_eq!(image::open(set.join("anime/train").join(&listing(&set.join("anime/train"))[0])).unwrap().width(), 64);
    let out = run(japanim().args(["dataset", "build", "-o"]).arg(dir.path().join("x")));
    assert_one_line_error(&out, "needs --photos and --anime");
}

#[cfg(feature = "video")]
#[test]
fn letterbox_bars_are_cut_off_key_frames() {
    let dir = tempfile::tempdir().unwrap();
    // Two shots of 160×120 picture inside a 160×160 frame: black bars of 20 rows above and below.
    let shot = |seed: u32, name: &str| {
        image::RgbImage::from_fn(160, 120, move |x, y| {
            image::Rgb([
                (60 + (x * seed) % 190) as u8,
                (60 + (y * 3 + x) % 190) as u8,
                (60 + (x ^ y) * seed % 190) as u8,
            ])
        })
        .save(dir.path().join(name))
        .unwrap();
    };
    shot(3, "a.png");
    shot(7, "b.png");
    let video = stills_video(dir.path(), &["a", "b"], "1.2", "pad=160:160:0:20:black,format=yuv420p", "film.mp4");
    let out = dir.path().join("frames");
    let result = run(japanim().args(["dataset", "keyframes"]).arg(&video).arg("-o").arg(&out).arg("--letterbox"));
    assert!(result.status.success(), "{}", stderr(&result));
    let frames: Vec<String> = listing(&out).into_iter().filter(|n| n.starts_with("film_")).collect();
    assert_eq!(frames, ["film_000000.png", "film_000030.png"]);
    for name in &frames {
        let img = image::open(out.join(name)).unwrap();
        assert_eq!((img.width(), img.height()), (160, 120), "{name}: bars cut");
    }
    // A re-run keeps the frames and does not cut them again.
    let again = run(japanim().args(["dataset", "keyframes"]).arg(&video).arg("-o").arg(&out).arg("--letterbox"));
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(image::open(out.join(&frames[1])).unwrap().height(), 120);
}
