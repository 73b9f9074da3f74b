//! 8-bit Y'CbCr ↔ RGB conversion for raw YUV4MPEG2 streams.
//!
//! Chroma is upsampled by repeating each sample over its block and downsampled by averaging
//! the block, as FFmpeg's fast paths do; both keep flat colour exact.

use rayon::prelude::*;

/// Chroma subsampling of a planar Y'CbCr picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    /// 4:2:0: one chroma sample per 2×2 block.
    C420,
    /// 4:2:2: one chroma sample per 2×1 block.
    C422,
    /// 4:4:4: full-resolution chroma.
    C444,
    /// Luma only; read as grey.
    Mono,
}

impl Chroma {
    /// Size of one chroma plane of a `width`×`height` picture (0×0 for mono).
    pub fn plane_size(self, width: u32, height: u32) -> (usize, usize) {
        let (w, h) = (width as usize, height as usize);
        match self {
            Chroma::C420 => (w.div_ceil(2), h.div_ceil(2)),
            Chroma::C422 => (w.div_ceil(2), h),
            Chroma::C444 => (w, h),
            Chroma::Mono => (0, 0),
        }
    }

    /// Bytes of one whole picture: luma plus both chroma planes.
    pub fn frame_bytes(self, width: u32, height: u32) -> usize {
        let (cw, ch) = self.plane_size(width, height);
        width as usize * height as usize + 2 * cw * ch
    }

    fn shift(self) -> (usize, usize) {
        match self {
            Chroma::C420 => (1, 1),
            Chroma::C422 => (1, 0),
            Chroma::C444 | Chroma::Mono => (0, 0),
        }
    }
}

/// The Y'CbCr matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matrix {
    /// ITU-R BT.601 (standard definition).
    Bt601,
    /// ITU-R BT.709 (high definition).
    Bt709,
}

impl Matrix {
    /// The usual guess when a stream does not say: BT.709 above 576 lines, else BT.601.
    pub fn for_height(height: u32) -> Self {
        if height > 576 {
            Matrix::Bt709
        } else {
            Matrix::Bt601
        }
    }

    fn kr_kb(self) -> (f32, f32) {
        match self {
            Matrix::Bt601 => (0.299, 0.114),
            Matrix::Bt709 => (0.2126, 0.0722),
        }
    }
}

/// Quantisation range of 8-bit Y'CbCr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// Y' in 16–235, Cb/Cr in 16–240 (video, the default).
    Limited,
    /// All of 0–255 (JPEG).
    Full,
}

impl Range {
    fn scales(self) -> (f32, f32, f32) {
        // (luma offset, luma scale, chroma scale) from normalised values to 8-bit codes.
        match self {
            Range::Limited => (16.0, 219.0, 224.0),
            Range::Full => (0.0, 255.0, 255.0),
        }
    }
}

/// Rounds to the nearest 8-bit value (halves up), clamping. Clamping first makes the value
/// non-negative, so truncating `v + 0.5` rounds: a conversion SSE2 vectorises, unlike
/// `f32::round`, which is a library call per value on baseline x86-64.
#[inline]
fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 255.0) + 0.5) as u8
}

/// Converts planar Y'CbCr to packed RGB. `rgb` must hold `width * height * 3` bytes. Rows
/// are converted in parallel.
#[allow(clippy::too_many_arguments)]
pub fn yuv_to_rgb(
    y: &[u8],
    u: &[u8],
    v: &[u8],
    width: u32,
    height: u32,
    chroma: Chroma,
    matrix: Matrix,
    range: Range,
    rgb: &mut [u8],
) {
    let w = width as usize;
    let (kr, kb) = matrix.kr_kb();
    let kg = 1.0 - kr - kb;
    let (y_off, y_scale, c_scale) = range.scales();
    let (cw, _) = chroma.plane_size(width, height);
    let (sx, sy) = chroma.shift();
    let (r_cr, b_cb) = (2.0 * (1.0 - kr), 2.0 * (1.0 - kb));
    let (g_cb, g_cr) = (2.0 * kb * (1.0 - kb) / kg, 2.0 * kr * (1.0 - kr) / kg);
    rgb[..w * height as usize * 3].par_chunks_mut(w * 3).enumerate().for_each_init(
        || (vec![0f32; w], vec![0f32; w]),
        |(cb, cr), (row, out)| {
            // This row's chroma, upsampled by repetition and scaled, then a straight loop.
            if chroma != Chroma::Mono {
                let crow = (row >> sy) * cw;
                for col in 0..w {
                    let ci = crow + (col >> sx);
                    cb[col] = (f32::from(u[ci]) - 128.0) / c_scale;
                    cr[col] = (f32::from(v[ci]) - 128.0) / c_scale;
                }
            }
            let luma_row = &y[row * w..(row + 1) * w];
            for (((px, &luma), &cb), &cr) in out.chunks_exact_mut(3).zip(luma_row).zip(cb.iter()).zip(cr.iter()) {
                let luma = (f32::from(luma) - y_off) / y_scale;
                px[0] = to_u8(255.0 * (luma + r_cr * cr));
                px[1] = to_u8(255.0 * (luma - g_cb * cb - g_cr * cr));
                px[2] = to_u8(255.0 * (luma + b_cb * cb));
            }
        },
    );
}

/// Converts packed RGB to planar Y'CbCr. Mono writes luma only. Rows are converted in
/// parallel.
#[allow(clippy::too_many_arguments)]
pub fn rgb_to_yuv(
    rgb: &[u8],
    width: u32,
    height: u32,
    chroma: Chroma,
    matrix: Matrix,
    range: Range,
    y: &mut [u8],
    u: &mut [u8],
    v: &mut [u8],
) {
    let (w, h) = (width as usize, height as usize);
    let (kr, kb) = matrix.kr_kb();
    let kg = 1.0 - kr - kb;
    let (y_off, y_scale, c_scale) = range.scales();
    let (cw, ch) = chroma.plane_size(width, height);
    let (sx, sy) = chroma.shift();
    y[..w * h].par_chunks_mut(w).zip(rgb.par_chunks(w * 3)).for_each(|(luma_row, rgb_row)| {
        for (luma, px) in luma_row.iter_mut().zip(rgb_row.chunks_exact(3)) {
            let (r, g, b) = (f32::from(px[0]), f32::from(px[1]), f32::from(px[2]));
            *luma = to_u8(y_off + y_scale * (kr * r + kg * g + kb * b) / 255.0);
        }
    });
    if chroma == Chroma::Mono {
        return;
    }
    u[..cw * ch].par_chunks_mut(cw).zip(v[..cw * ch].par_chunks_mut(cw)).enumerate().for_each(
        |(crow, (u_row, v_row))| {
            for ccol in 0..cw {
                let (mut cb_sum, mut cr_sum, mut n) = (0.0f32, 0.0f32, 0.0f32);
                for row in (crow << sy)..((crow + 1) << sy).min(h) {
                    for col in (ccol << sx)..((ccol + 1) << sx).min(w) {
                        let o = (row * w + col) * 3;
                        let (r, g, b) = (f32::from(rgb[o]), f32::from(rgb[o + 1]), f32::from(rgb[o + 2]));
                        let luma = kr * r + kg * g + kb * b;
                        cb_sum += (b - luma) / (2.0 * (1.0 - kb));
                        cr_sum += (r - luma) / (2.0 * (1.0 - kr));
                        n += 1.0;
                    }
                }
                u_row[ccol] = to_u8(128.0 + c_scale * cb_sum / n / 255.0);
                v_row[ccol] = to_u8(128.0 + c_scale * cr_sum / n / 255.0);
            }
        },
    );
}

/// Expands limited-range ("TV", 16–235) luma to full-range grey (0–255), rounded to nearest:
/// `⌊((y − 16) · 255 + 109) / 219⌋`, exact because no input lies on a rounding tie
/// (255/219 = 85/73 and 73 is odd). In 16-bit lanes, so it vectorises.
pub fn expand_limited_luma(limited: &[u8], full: &mut [u8]) {
    for (out, &y) in full.iter_mut().zip(limited) {
        let above_black = u16::from(y).clamp(16, 235) - 16;
        *out = ((above_black * 255 + 109) / 219) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_luma_expands_exactly() {
        let limited: Vec<u8> = (0..=255).collect();
        let mut full = vec![0u8; 256];
        expand_limited_luma(&limited, &mut full);
        for (y, &f) in full.iter().enumerate() {
            let expected = ((y as f64 - 16.0) * 255.0 / 219.0).round().clamp(0.0, 255.0) as u8;
            assert_eq!(f, expected, "luma {y}");
        }
    }

    fn round_trip(rgb: &[u8], w: u32, h: u32, chroma: Chroma, range: Range) -> Vec<u8> {
        let (cw, ch) = chroma.plane_size(w, h);
        let (mut y, mut u, mut v) = (vec![0; (w * h) as usize], vec![0; cw * ch], vec![0; cw * ch]);
        rgb_to_yuv(rgb, w, h, chroma, Matrix::Bt709, range, &mut y, &mut u, &mut v);
        let mut out = vec![0; rgb.len()];
        yuv_to_rgb(&y, &u, &v, w, h, chroma, Matrix::Bt709, range, &mut out);
        out
    }

    #[test]
    fn rounding_is_to_nearest_with_halves_up_and_clamped() {
        let cases = [(-3.0, 0), (-0.4, 0), (0.49, 0), (0.5, 1), (1.49, 1), (254.5, 255), (254.49, 254), (300.0, 255)];
        for (value, expected) in cases {
            assert_eq!(to_u8(value), expected, "{value}");
        }
    }

    #[test]
    fn known_values_bt601_limited() {
        // Limited-range white, black and the BT.601 red primary (81, 90, 240).
        let (y, u, v) = ([235, 16, 81], [128, 128, 90], [128, 128, 240]);
        let mut rgb = [0u8; 9];
        yuv_to_rgb(&y, &u, &v, 3, 1, Chroma::C444, Matrix::Bt601, Range::Limited, &mut rgb);
        assert_eq!(&rgb[0..3], &[255, 255, 255]);
        assert_eq!(&rgb[3..6], &[0, 0, 0]);
        assert!(rgb[6] >= 254 && rgb[7] <= 1 && rgb[8] <= 1, "red came back as {:?}", &rgb[6..9]);
    }

    #[test]
    fn flat_colour_survives_every_subsampling() {
        let (w, h) = (5, 3); // odd sizes exercise partial chroma blocks
        let rgb: Vec<u8> = [200u8, 120, 40].iter().copied().cycle().take(w * h * 3).collect();
        for chroma in [Chroma::C420, Chroma::C422, Chroma::C444] {
            for range in [Range::Limited, Range::Full] {
                let back = round_trip(&rgb, w as u32, h as u32, chroma, range);
                let worst = rgb.iter().zip(&back).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
                assert!(worst <= 2, "{chroma:?} {range:?}: off by {worst}");
            }
        }
    }
}
