//! The CartoonGAN losses, always computed in f32 (inputs from a bf16 forward pass are cast
//! first, so reductions and Gram matrices keep their precision).

use tch::{Kind, Reduction, TchError, Tensor};

use crate::model::vgg::gram;

/// Mean binary cross-entropy of logits against an all-`target` label.
pub fn bce_logits(logits: &Tensor, target: f64) -> Result<Tensor, TchError> {
    let logits = &logits.f_to_kind(Kind::Float)?;
    let labels = logits.f_full_like(target)?;
    logits.f_binary_cross_entropy_with_logits::<Tensor>(&labels, None, None, Reduction::Mean)
}

/// Mean absolute difference.
pub fn l1(a: &Tensor, b: &Tensor) -> Result<Tensor, TchError> {
    a.f_to_kind(Kind::Float)?.f_sub(&b.f_to_kind(Kind::Float)?)?.f_abs()?.f_mean(Kind::Float)
}

/// L1 between the Gram matrices (normalised by C·H·W) of two feature batches, each image
/// of `generated` against the matching image of `style`.
pub fn gram_l1(generated: &Tensor, style: &Tensor) -> Result<Tensor, TchError> {
    l1(&gram(&generated.f_to_kind(Kind::Float)?)?, &gram(&style.f_to_kind(Kind::Float)?)?)
}

/// L1 between the Gram matrix of each image of `generated` and one `target` Gram matrix
/// (C×C, f32).
pub fn gram_l1_to(generated: &Tensor, target: &Tensor) -> Result<Tensor, TchError> {
    let grams = gram(&generated.f_to_kind(Kind::Float)?)?;
    l1(&grams, &target.f_expand_as(&grams)?)
}

/// Truncated total variation: the mean over channels and neighbouring pixel pairs (right and
/// below) of `min(|difference|, threshold)`, for images in [-1, 1]. Small differences (texture,
/// noise, shading) are pulled to zero while edges stronger than `threshold` cost the same
/// whatever their height, so nothing pushes them down: a differentiable stand-in for counting
/// non-flat pixels (L0 gradient smoothing, Xu et al. 2011), the look of flat colour areas
/// with sharp borders. Every channel counts, so texture cannot hide in colour at even luma.
pub fn flatness(images: &Tensor, threshold: f64) -> Result<Tensor, TchError> {
    let x = images.f_to_kind(Kind::Float)?;
    let (_, _, h, w) = x.size4()?;
    let capped = |d: Tensor| d.f_abs()?.f_clamp_max(threshold)?.f_mean(Kind::Float);
    let across = capped(x.f_narrow(3, 1, w - 1)?.f_sub(&x.f_narrow(3, 0, w - 1)?)?)?;
    let down = capped(x.f_narrow(2, 1, h - 1)?.f_sub(&x.f_narrow(2, 0, h - 1)?)?)?;
    across.f_add(&down)?.f_mul_scalar(0.5)
}

/// Chroma (BT.601 Cb and Cr, scaled as the RGB) of RGB images: two channels that a change of
/// luma alone (the same amount added to R, G and B) leaves unchanged.
fn chroma(images: &Tensor) -> Result<Tensor, TchError> {
    let rgb_to_cbcr = Tensor::from_slice(&[-0.168_736f32, -0.331_264, 0.5, 0.5, -0.418_688, -0.081_312])
        .f_reshape([2, 3, 1, 1])?
        .f_to_device(images.device())?;
    images.f_to_kind(Kind::Float)?.f_conv2d::<Tensor>(&rgb_to_cbcr, None, 1, 0, 1, 1)
}

/// Mean squared difference between the chroma of `a` and of `b` (RGB images, N×3×H×W), each
/// averaged over cells of `cell`×`cell` pixels (a partial last row or column of cells is
/// dropped): how far each region's colour has moved, blind to luma and to any pattern finer
/// than a cell that averages out within it. Squared, so a concentrated change of colour (a
/// blot) costs more than the same total change spread over the picture.
pub fn local_chroma_l2(a: &Tensor, b: &Tensor, cell: i64) -> Result<Tensor, TchError> {
    let cells = |x: &Tensor| chroma(x)?.f_avg_pool2d([cell, cell], [cell, cell], [0, 0], false, true, None::<i64>);
    cells(a)?.f_sub(&cells(b)?)?.f_square()?.f_mean(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatness_counts_small_steps_and_caps_edges() {
        // One channel, 2×3: rows [0, 0.02, 1] and [0, 0.02, 1].
        let x = Tensor::from_slice(&[0.0f32, 0.02, 1.0, 0.0, 0.02, 1.0]).reshape([1, 1, 2, 3]);
        // Across: |0.02|, min(|0.98|, 0.1) twice each → mean 0.06; down: all 0.
        let got = flatness(&x, 0.1).unwrap().double_value(&[]);
        assert!((got - 0.03).abs() < 1e-7, "{got}");
        assert_eq!(
            flatness(&Tensor::zeros([1, 3, 4, 4], (Kind::Float, tch::Device::Cpu)), 0.1).unwrap().double_value(&[]),
            0.0
        );
        // A taller edge costs no more than the threshold: nothing pulls it down.
        let tall = Tensor::from_slice(&[0.0f32, 0.02, 2.0, 0.0, 0.02, 2.0]).reshape([1, 1, 2, 3]);
        assert_eq!(flatness(&tall, 0.1).unwrap().double_value(&[]), got);
    }

    #[test]
    fn local_chroma_sees_blots_not_luma_or_fine_texture() {
        let base = Tensor::rand([1, 3, 16, 16], (Kind::Float, tch::Device::Cpu)) * 2.0 - 1.0;
        let l2 = |x: &Tensor| local_chroma_l2(x, &base, 8).unwrap().double_value(&[]);
        assert_eq!(l2(&base), 0.0);
        // Brighter or darker alike in R, G and B: no change of chroma.
        assert!(l2(&(&base + 0.3)) < 1e-10);
        // A red/green checkerboard of single pixels averages out within each 8-px cell.
        let checker = Tensor::from_slice(&[1.0f32, -1.0, -1.0, 1.0]).reshape([1, 1, 2, 2]).repeat([1, 1, 8, 8]);
        let fine = &base + Tensor::cat(&[&checker * 0.2, &checker * -0.2, checker.zeros_like()], 1);
        assert!(l2(&fine) < 1e-10);
        // +0.4 red in one 8×8 cell of the four: Cr + 0.2, Cb − 0.0675, squared, over 2 channels × 4 cells.
        let blot = base.copy();
        let _ = blot.narrow(1, 0, 1).narrow(2, 0, 8).narrow(3, 0, 8).g_add_scalar_(0.4);
        let want = ((0.4 * 0.5f64).powi(2) + (0.4 * 0.168_736f64).powi(2)) / 8.0;
        assert!((l2(&blot) - want).abs() < 1e-6, "{} against {want}", l2(&blot));
        // The same total change spread over the four cells costs a quarter as much.
        let spread = &base + Tensor::cat(&[base.narrow(1, 0, 1).full_like(0.1), base.narrow(1, 0, 2).zeros_like()], 1);
        assert!((l2(&spread) - want / 4.0).abs() < 1e-6, "{}", l2(&spread));
    }

    #[test]
    fn bce_by_hand() {
        let logits = Tensor::from_slice(&[0.0f32, 2.0]);
        let real = bce_logits(&logits, 1.0).unwrap().double_value(&[]);
        let want = (2f64.ln() + (1.0 + (-2f64).exp()).ln()) / 2.0;
        assert!((real - want).abs() < 1e-6);
        let fake = bce_logits(&logits, 0.0).unwrap().double_value(&[]);
        assert!((fake - (2f64.ln() + (1.0 + 2f64.exp()).ln()) / 2.0).abs() < 1e-6);
    }

    #[test]
    fn gram_l1_by_hand() {
        let a = Tensor::from_slice(&[1f32, 2., 3., 4.]).view([1, 2, 1, 2]);
        let b = Tensor::zeros([1, 2, 1, 2], (Kind::Float, tch::Device::Cpu));
        // gram(a) = [[5, 11], [11, 25]] / 4; mean |·| = 52 / 16.
        assert!((gram_l1(&a, &b).unwrap().double_value(&[]) - 52.0 / 16.0).abs() < 1e-6);
        // Against one target matrix, broadcast over the batch: the same figure.
        let zero = Tensor::zeros([2, 2], (Kind::Float, tch::Device::Cpu));
        assert!((gram_l1_to(&a, &zero).unwrap().double_value(&[]) - 52.0 / 16.0).abs() < 1e-6);
    }
}
