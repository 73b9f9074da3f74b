//! `japanim eval` on photo sets, as a user runs it: its figures' invariants and its errors.

mod common;

use common::{assert_one_line_error, japanim, pattern, random_vgg_file as vgg_file, run, stderr, tiny_model};

/// The numbers after a row's label.
fn row(report: &str, label: &str) -> Vec<f64> {
    let line = report.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no {label:?} row in {report}"));
    line[label.len()..].split_whitespace().map(|v| v.parse().unwrap_or(f64::NAN)).collect()
}

#[test]
fn photos_measured_against_themselves_are_the_style_set() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for (i, (w, h)) in [(64u32, 48u32), (56, 40), (72, 64)].into_iter().enumerate() {
        let data = pattern(w, h, i as u32 * 5 + 2);
        image::save_buffer(photos.join(format!("p{i}.png")), &data, w, h, image::ExtendedColorType::Rgb8).unwrap();
    }
    let (vgg, model) = (vgg_file(dir.path()), tiny_model(dir.path()));
    let csv = dir.path().join("per-image.csv");
    let out = run(japanim()
        .args(["eval", "--max-side", "256", "--model"])
        .arg(&model)
        .arg("--photos")
        .arg(&photos)
        .arg("--style")
        .arg(&photos)
        .arg("--vgg")
        .arg(&vgg)
        .arg("--per-image")
        .arg(&csv));
    assert!(out.status.success(), "{}", stderr(&out));
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(report.starts_with("3 photos (longer side ≤ 256 px), style set: 3 images"), "{report}");
    // Columns: content, Gram each, Gram set, each inside, set inside, flat share, grid score.
    let photos_row = row(&report, "input photos (unchanged)");
    let style_row = row(&report, "style images themselves (at 256 px; set: halves)");
    assert_eq!(photos_row.len(), 7, "{report}");
    // Each way of measuring, the photos' mean Gram is the style set's: no distance; each
    // photo is as far from it as each style image.
    for (each, set) in [(1, 2), (3, 4)] {
        assert_eq!(photos_row[set], 0.0, "{report}");
        assert!(photos_row[each] > 0.0 && photos_row[each] == style_row[each], "{report}");
    }
    // Away from the edges the figures are others: the zero padding counts in the first two.
    assert_ne!(photos_row[1], photos_row[3], "{report}");
    assert_eq!(photos_row[5], style_row[5], "flat share: {report}");
    let model_row = row(&report, &model.display().to_string());
    assert!(model_row[0] > 0.0 && model_row.iter().all(|v| v.is_finite()), "{report}");

    // --per-image: each photo unchanged (model empty), then each output; their means are the
    // report's rows (content, Gram each, each inside, flat share, grid score).
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("model,photo,content_l1,gram_each,gram_each_inside,flat_share,grid_score"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 6, "{text}");
    for (i, r) in rows.iter().enumerate() {
        let (want_model, photo) = if i < 3 { (String::new(), i) } else { (model.display().to_string(), i - 3) };
        assert_eq!(r[0], want_model, "{text}");
        assert_eq!(r[1], photos.join(format!("p{photo}.png")).display().to_string(), "{text}");
    }
    let mean = |from: usize, column: usize| {
        rows[from..from + 3].iter().map(|r| r[column].parse::<f64>().unwrap()).sum::<f64>() / 3.0
    };
    for (from, report_row) in [(0, &photos_row), (3, &model_row)] {
        for (column, report_column) in [(2, 0), (3, 1), (4, 3), (5, 5), (6, 6)] {
            let (each, reported) = (mean(from, column), report_row[report_column]);
            assert!(
                (each - reported).abs() < 2e-3 * reported.abs().max(1.0),
                "column {column}: {each} against {reported}: {text}"
            );
        }
    }
    assert!(rows[..3].iter().all(|r| r[2] == "0.0000"), "{text}");
}

#[test]
fn an_existing_per_image_file_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("figures.csv");
    std::fs::write(&csv, "mine").unwrap();
    // No VGG file either: the refusal comes first.
    let out = run(japanim()
        .args(["eval", "--model", "m.safetensors", "--photos", "p", "--style", "s", "--vgg", "v.safetensors"])
        .arg("--per-image")
        .arg(&csv));
    assert_one_line_error(&out, &format!("{} already exists: pass --overwrite to replace it", csv.display()));
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), "mine");
}

#[test]
fn a_folder_without_images_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (vgg, model) = (vgg_file(dir.path()), tiny_model(dir.path()));
    let out = run(japanim()
        .args(["eval", "--model"])
        .arg(&model)
        .arg("--photos")
        .arg(&empty)
        .arg("--style")
        .arg(&empty)
        .arg("--vgg")
        .arg(&vgg));
    assert_one_line_error(&out, &format!("{} and {} must each hold images", empty.display(), empty.display()));
}
