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
    let out = run(japanim()
        .args(["eval", "--max-side", "256", "--model"])
        .arg(&model)
        .arg("--photos")
        .arg(&photos)
        .arg("--style")
        .arg(&photos)
        .arg("--vgg")
        .arg(&vgg));
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
