//! The CartoonGAN edge-smoothing step for anime images: blur only around edges, so the
//! discriminator learns that soft edges are not anime.
//!
//! Exactly the original's OpenCV recipe: grey as `cvtColor(BGR2GRAY)`, `Canny(grey, 100, 200)`
//! (3×3 Sobel with replicated borders, L1 gradient magnitude, non-maximum suppression in four
//! directions, hysteresis over 8-neighbours), `dilate` with a 5×5 square, and at every
//! dilated-edge pixel each channel is replaced by a 5×5 Gaussian of the reflect-padded image
//! (OpenCV's `getGaussianKernel(5, 0)` = [1, 4, 6, 4, 1] / 16, outer product; reflection
//! without repeating the edge pixel, as numpy's `reflect`), rounded to nearest.
//!
//! Canny is written here rather than taken from `imageproc`: imageproc's blurs with σ = 1.4
//! before the gradients (OpenCV's does not), which found 31 % of the recipe's edge pixels on
//! 200 cartoon crops, and took 4.8 ms of the 7 ms per 256² crop. All integer arithmetic, so the result is
//! bit-exact with OpenCV's (checked by benches/dataset.sh on real crops).

use image::{GrayImage, RgbImage};

/// OpenCV's 5-tap Gaussian for `ksize = 5, sigma <= 0`, in sixteenths.
pub const GAUSSIAN_5: [u32; 5] = [1, 4, 6, 4, 1];

/// Canny's thresholds in the CartoonGAN recipe.
pub const CANNY_LOW: i32 = 100;
/// See [`CANNY_LOW`].
pub const CANNY_HIGH: i32 = 200;

/// Grey level as OpenCV's `cvtColor(…, BGR2GRAY)` computes it (see [`super::opencv_grey`]).
pub fn grey(rgb: &RgbImage) -> GrayImage {
    super::opencv_grey(rgb.as_raw(), rgb.width(), rgb.height())
}

/// OpenCV's Canny edges (255 = edge) with a 3×3 Sobel aperture and the L1 gradient norm.
pub fn canny(grey: &GrayImage, low: i32, high: i32) -> GrayImage {
    let (w, h) = (grey.width() as usize, grey.height() as usize);
    // The grey image with a replicated one-pixel border, as Canny's Sobel pads.
    let (pw, src) = (w + 2, grey.as_raw());
    let mut padded = vec![0i32; pw * (h + 2)];
    for py in 0..h + 2 {
        let row = &src[py.saturating_sub(1).min(h - 1) * w..][..w];
        for px in 0..pw {
            padded[py * pw + px] = i32::from(row[px.saturating_sub(1).min(w - 1)]);
        }
    }
    let mut dx = vec![0i32; w * h];
    let mut dy = vec![0i32; w * h];
    // Magnitudes with a one-pixel ring of zeros, so neighbours outside the image never win.
    let mw = w + 2;
    let mut mag = vec![0i32; mw * (h + 2)];
    for y in 0..h {
        let (above, row, below) =
            (&padded[y * pw..][..pw], &padded[(y + 1) * pw..][..pw], &padded[(y + 2) * pw..][..pw]);
        for x in 0..w {
            let gx = (above[x + 2] - above[x]) + 2 * (row[x + 2] - row[x]) + (below[x + 2] - below[x]);
            let gy = (below[x] - above[x]) + 2 * (below[x + 1] - above[x + 1]) + (below[x + 2] - above[x + 2]);
            dx[y * w + x] = gx;
            dy[y * w + x] = gy;
            mag[(y + 1) * mw + x + 1] = gx.abs() + gy.abs();
        }
    }
    // 0: not an edge; 1: weak candidate (a local maximum above `low`); 2: edge.
    let mut state = vec![0u8; w * h];
    let mut stack = Vec::new();
    // tan(22.5°) in 15-bit fixed point, as OpenCV compares the gradient's direction.
    const SHIFT: u32 = 15;
    const TAN_22_5: i64 = 13573;
    for y in 0..h {
        for x in 0..w {
            let m = mag[(y + 1) * mw + x + 1];
            if m <= low {
                continue;
            }
            let mag_at =
                |ox: isize, oy: isize| mag[((y as isize + 1 + oy) as usize) * mw + (x as isize + 1 + ox) as usize];
            let (gx, gy) = (dx[y * w + x], dy[y * w + x]);
            let ax = i64::from(gx.abs());
            let ay = i64::from(gy.abs()) << SHIFT;
            let tan_22_x = ax * TAN_22_5;
            let is_max = if ay < tan_22_x {
                m > mag_at(-1, 0) && m >= mag_at(1, 0)
            } else if ay > tan_22_x + (ax << (SHIFT + 1)) {
                m > mag_at(0, -1) && m >= mag_at(0, 1)
            } else {
                let s = if (gx ^ gy) < 0 { -1 } else { 1 };
                m > mag_at(-s, -1) && m > mag_at(s, 1)
            };
            if is_max {
                if m > high {
                    state[y * w + x] = 2;
                    stack.push((x, y));
                } else {
                    state[y * w + x] = 1;
                }
            }
        }
    }
    // Hysteresis: weak candidates 8-connected to an edge become edges.
    while let Some((x, y)) = stack.pop() {
        for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
            for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                if state[ny * w + nx] == 1 {
                    state[ny * w + nx] = 2;
                    stack.push((nx, ny));
                }
            }
        }
    }
    let edges = state.into_iter().map(|s| if s == 2 { 255 } else { 0 }).collect();
    GrayImage::from_raw(w as u32, h as u32, edges).expect("one byte per pixel")
}

/// Dilation by a (2r+1)×(2r+1) square, as OpenCV's `dilate` (outside the image counts as 0):
/// a running maximum along rows, then along columns.
pub fn dilate_square(mask: &GrayImage, radius: usize) -> GrayImage {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let src = mask.as_raw();
    let mut rows = vec![0u8; w * h];
    for y in 0..h {
        let (line, target) = (&src[y * w..(y + 1) * w], &mut rows[y * w..(y + 1) * w]);
        target.copy_from_slice(line);
        // The maximum with the row shifted left and right by 1..=radius (slices, so it vectorises).
        for shift in 1..=radius.min(w.saturating_sub(1)) {
            for (o, &v) in target[..w - shift].iter_mut().zip(&line[shift..]) {
                *o = (*o).max(v);
            }
            for (o, &v) in target[shift..].iter_mut().zip(&line[..w - shift]) {
                *o = (*o).max(v);
            }
        }
    }
    // Columns: each output row is the element-wise maximum of the rows around it.
    let mut out = vec![0u8; w * h];
    for y in 0..h {
        let target = &mut out[y * w..(y + 1) * w];
        for yy in y.saturating_sub(radius)..=(y + radius).min(h - 1) {
            for (o, &r) in target.iter_mut().zip(&rows[yy * w..(yy + 1) * w]) {
                *o = (*o).max(r);
            }
        }
    }
    GrayImage::from_raw(w as u32, h as u32, out).expect("one byte per pixel")
}

/// Canny edges (255 = edge) dilated by a 5×5 square: the pixels that get smoothed.
pub fn smoothing_mask(rgb: &RgbImage) -> GrayImage {
    dilate_square(&canny(&grey(rgb), CANNY_LOW, CANNY_HIGH), 2)
}

/// Mirror index without repeating the edge (…, 2, 1, | 0, 1, 2, …, n−1, | n−2, …).
fn reflect(i: i64, n: i64) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - m }) as usize
}

/// The 5×5 Gaussian of every channel at (x, y) of the reflect-padded image, rounded.
pub fn gaussian_at(rgb: &RgbImage, x: u32, y: u32) -> [u8; 3] {
    let (w, h) = (i64::from(rgb.width()), i64::from(rgb.height()));
    let data = rgb.as_raw();
    let interior = x >= 2 && y >= 2 && i64::from(x) + 2 < w && i64::from(y) + 2 < h;
    let mut sum = [0u32; 3];
    for (dy, ky) in GAUSSIAN_5.iter().enumerate() {
        let yy = if interior { y as usize + dy - 2 } else { reflect(i64::from(y) + dy as i64 - 2, h) };
        for (dx, kx) in GAUSSIAN_5.iter().enumerate() {
            let xx = if interior { x as usize + dx - 2 } else { reflect(i64::from(x) + dx as i64 - 2, w) };
            let base = (yy * w as usize + xx) * 3;
            for c in 0..3 {
                sum[c] += ky * kx * u32::from(data[base + c]);
            }
        }
    }
    // The kernel sums to 256: rounding to nearest is adding half before the shift.
    sum.map(|s| ((s + 128) >> 8) as u8)
}

/// The edge-smoothed copy of an anime image.
pub fn smooth(rgb: &RgbImage) -> RgbImage {
    let mask = smoothing_mask(rgb);
    let mut out = rgb.clone();
    for (x, y, m) in mask.enumerate_pixels() {
        if m.0[0] > 0 {
            out.put_pixel(x, y, image::Rgb(gaussian_at(rgb, x, y)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference image of `canny_matches_opencv`, and `cv2.Canny(image, 100, 200)` of it
    /// as printed by OpenCV 5.0 (`#` = edge): a disc on a ramp with texture, so it has
    /// suppressed non-maxima, weak edges kept by hysteresis and edges at the border.
    const REFERENCE_EDGES: [&str; 30] = [
        "........................................",
        "........................................",
        "........................................",
        "........................................",
        "........................................",
        "................######..................",
        ".............###......##................",
        "............##.........##...............",
        "...........##...........##..............",
        "..........##.............##.............",
        "..........#...............#.............",
        ".........#................#.............",
        ".........#.................#............",
        ".........#.................#............",
        "..........#................#............",
        "..........#...............#.............",
        ".........#................#.............",
        ".........#................#.............",
        "..........#...............#.............",
        "..........##.............##.............",
        "...........##...........##.........##.#.",
        "............##.........##.........#..#.#",
        ".............###.###.###.........#.....#",
        "..............#.#...#.............#.....",
        "..................................#.....",
        "..................................#.....",
        ".................................#......",
        ".................................#......",
        ".................................#......",
        ".................................#......",
    ];

    #[test]
    fn canny_matches_opencv() {
        let image = GrayImage::from_fn(40, 30, |x, y| {
            let base = if (x as i32 - 18).pow(2) + (y as i32 - 14).pow(2) < 81 { 180 } else { 60 };
            let corner = if x > 33 && y > 20 { 40 } else { 0 };
            image::Luma([(base + x * 2 + ((x * 7 + y * 13) % 11) * 3 + corner).min(255) as u8])
        });
        let edges = canny(&image, CANNY_LOW, CANNY_HIGH);
        let drawn: Vec<String> =
            edges.rows().map(|row| row.map(|p| if p.0[0] > 0 { '#' } else { '.' }).collect()).collect();
        assert_eq!(drawn, REFERENCE_EDGES);
    }

    #[test]
    fn grey_is_opencvs_fixed_point_luma() {
        // cv2.cvtColor of these BGR pixels gives 76, 150, 29, 255 and 128.
        let rgb =
            RgbImage::from_raw(5, 1, vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 128, 128, 128]).unwrap();
        assert_eq!(grey(&rgb).into_raw(), [76, 150, 29, 255, 128]);
    }

    #[test]
    fn dilation_is_the_maximum_over_the_square() {
        let mask = GrayImage::from_fn(23, 17, |x, y| image::Luma([if (x * 31 + y * 17) % 41 == 0 { 255 } else { 0 }]));
        let dilated = dilate_square(&mask, 2);
        for (x, y, p) in dilated.enumerate_pixels() {
            let expected = (x.saturating_sub(2)..=(x + 2).min(22))
                .flat_map(|xx| (y.saturating_sub(2)..=(y + 2).min(16)).map(move |yy| (xx, yy)))
                .map(|(xx, yy)| mask.get_pixel(xx, yy).0[0])
                .max()
                .unwrap();
            assert_eq!(p.0[0], expected, "({x}, {y})");
        }
    }

    #[test]
    fn reflection_matches_numpy() {
        // np.pad(range(4), 2, mode="reflect") = [2, 1, 0, 1, 2, 3, 2, 1]
        let idx: Vec<usize> = (-2..6).map(|i| reflect(i, 4)).collect();
        assert_eq!(idx, [2, 1, 0, 1, 2, 3, 2, 1]);
    }

    fn two_tone() -> RgbImage {
        // Left half dark blue, right half yellow: one strong vertical edge at x = 12.
        RgbImage::from_fn(24, 16, |x, _| if x < 12 { image::Rgb([20, 30, 120]) } else { image::Rgb([250, 220, 40]) })
    }

    #[test]
    fn only_pixels_near_edges_change() {
        let img = two_tone();
        let edges = canny(&grey(&img), CANNY_LOW, CANNY_HIGH);
        assert!(edges.pixels().any(|p| p.0[0] > 0), "the test image has an edge");
        let out = smooth(&img);
        let mut changed = 0;
        for (x, y, p) in out.enumerate_pixels() {
            if p != img.get_pixel(x, y) {
                changed += 1;
                // Within 2 px (the 5×5 dilation) of a Canny edge pixel.
                let near = (x.saturating_sub(2)..=(x + 2).min(23))
                    .any(|ex| (y.saturating_sub(2)..=(y + 2).min(15)).any(|ey| edges.get_pixel(ex, ey).0[0] > 0));
                assert!(near, "pixel ({x}, {y}) changed far from any edge");
            }
        }
        assert!(changed > 0, "pixels beside the edge are smoothed");
    }

    #[test]
    fn matches_the_formula_computed_directly() {
        let img = two_tone();
        let out = smooth(&img);
        let mask = smoothing_mask(&img);
        // Direct computation with explicit numpy-style padding and the outer-product kernel.
        let (w, h) = (24i64, 16i64);
        for (x, y, m) in mask.enumerate_pixels() {
            for c in 0..3 {
                let expected = if m.0[0] > 0 {
                    let mut s = 0.0f64;
                    for ky in 0..5i64 {
                        for kx in 0..5i64 {
                            let (px, py) = (reflect(i64::from(x) + kx - 2, w), reflect(i64::from(y) + ky - 2, h));
                            s += f64::from(GAUSSIAN_5[ky as usize]) / 16.0 * f64::from(GAUSSIAN_5[kx as usize]) / 16.0
                                * f64::from(img.get_pixel(px as u32, py as u32).0[c]);
                        }
                    }
                    s.round() as u8
                } else {
                    img.get_pixel(x, y).0[c]
                };
                assert_eq!(out.get_pixel(x, y).0[c], expected, "({x}, {y}) channel {c}");
            }
        }
        // At the edge, the blend of blue and yellow: x = 11 takes 11/16 of blue... spot check.
        assert_eq!(
            out.get_pixel(11, 8).0[0],
            ((20.0 * (0.0625 + 0.25 + 0.375) + 250.0 * (0.25 + 0.0625)) as f32).round() as u8
        );
    }
}
