//! The CartoonGAN edge-smoothing step for anime images: blur only around edges, so the
//! discriminator learns that soft edges are not anime.
//!
//! Canny (thresholds 100, 200) on the grey image, dilation with a 5×5 square, and at every
//! dilated-edge pixel each channel is replaced by a 5×5 Gaussian of the reflect-padded image
//! (OpenCV's `getGaussianKernel(5, 0)` = [1, 4, 6, 4, 1] / 16, outer product; reflection
//! without repeating the edge pixel, as numpy's `reflect`). Canny is imageproc's, which blurs
//! with σ = 1.4 before taking gradients (OpenCV's does not), so it finds somewhat fewer edges.

use image::{GrayImage, RgbImage};

/// OpenCV's 5-tap Gaussian for `ksize = 5, sigma <= 0`.
pub const GAUSSIAN_5: [f32; 5] = [0.0625, 0.25, 0.375, 0.25, 0.0625];

/// Canny edges (255 = edge) dilated by a 5×5 square: the pixels that get smoothed.
pub fn smoothing_mask(rgb: &RgbImage) -> GrayImage {
    let grey = image::imageops::grayscale(rgb);
    let edges = imageproc::edges::canny(&grey, 100.0, 200.0);
    imageproc::morphology::dilate(&edges, imageproc::distance_transform::Norm::LInf, 2)
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

/// The 5×5 Gaussian of channel `c` at (x, y) of the reflect-padded image.
pub fn gaussian_at(rgb: &RgbImage, x: u32, y: u32, c: usize) -> u8 {
    let (w, h) = (i64::from(rgb.width()), i64::from(rgb.height()));
    let mut sum = 0.0f32;
    for (dy, ky) in GAUSSIAN_5.iter().enumerate() {
        let yy = reflect(i64::from(y) + dy as i64 - 2, h) as u32;
        for (dx, kx) in GAUSSIAN_5.iter().enumerate() {
            let xx = reflect(i64::from(x) + dx as i64 - 2, w) as u32;
            sum += ky * kx * f32::from(rgb.get_pixel(xx, yy).0[c]);
        }
    }
    sum.round().clamp(0.0, 255.0) as u8
}

/// The edge-smoothed copy of an anime image.
pub fn smooth(rgb: &RgbImage) -> RgbImage {
    let mask = smoothing_mask(rgb);
    let mut out = rgb.clone();
    for (x, y, m) in mask.enumerate_pixels() {
        if m.0[0] > 0 {
            let pixel = [0, 1, 2].map(|c| gaussian_at(rgb, x, y, c));
            out.put_pixel(x, y, image::Rgb(pixel));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let edges = imageproc::edges::canny(&image::imageops::grayscale(&img), 100.0, 200.0);
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
                            s += f64::from(GAUSSIAN_5[ky as usize])
                                * f64::from(GAUSSIAN_5[kx as usize])
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
