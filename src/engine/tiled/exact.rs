//! The exact strategy: the network segment by segment over tiles, each InstanceNorm layer
//! with its whole-frame statistics, the activations between segments stitched whole (in
//! memory or in temporary files); and its own tile planner (cores on the 4-px grid).

use super::*;

/// Halo of the exact strategy, in input pixels: one segment's receptive-field radius is at
/// most 6 px (a stride-2 and a plain 3×3 convolution at quarter resolution; 8 when anti-aliased:
/// the blur before the stride, or the bilinear doubling out of quarter resolution), and regions must
/// start on multiples of 4 so that every resolution's grid lines up.
pub const EXACT_HALO: i64 = 8;

/// Core side of the exact strategy's tiles of at most `max_tile` px: a multiple of 4.
pub fn exact_core(max_tile: u32) -> i64 {
    (i64::from(max_tile) - 2 * EXACT_HALO).max(4) / 4 * 4
}

/// One tile of the exact strategy: its core and the region (core plus halo, clipped to the
/// frame) it is computed from, in input pixels: (x0, y0, x1, y1) each.
#[derive(Debug, Clone, Copy)]
pub(super) struct ExactTile {
    core: [i64; 4],
    region: [i64; 4],
}

/// The exact strategy's tiles of a `width`×`height` frame with `core`-px cores, grouped by
/// region shape (interior, edge and corner tiles differ) so each group runs as a batch.
pub(super) fn exact_tiles(width: i64, height: i64, core: i64) -> Vec<Vec<ExactTile>> {
    let mut groups: Vec<((i64, i64), Vec<ExactTile>)> = Vec::new();
    for y0 in (0..height).step_by(core as usize) {
        for x0 in (0..width).step_by(core as usize) {
            let (x1, y1) = ((x0 + core).min(width), (y0 + core).min(height));
            let region = [
                (x0 - EXACT_HALO).max(0),
                (y0 - EXACT_HALO).max(0),
                (x1 + EXACT_HALO).min(width),
                (y1 + EXACT_HALO).min(height),
            ];
            let shape = (region[2] - region[0], region[3] - region[1]);
            let tile = ExactTile { core: [x0, y0, x1, y1], region };
            match groups.iter_mut().find(|(s, _)| *s == shape) {
                Some((_, tiles)) => tiles.push(tile),
                None => groups.push((shape, vec![tile])),
            }
        }
    }
    groups.into_iter().map(|(_, tiles)| tiles).collect()
}

/// One frame (1×3×H×W, sides multiples of 4) segment by segment over tiles whose cores are
/// `core` px (a multiple of 4) with [`EXACT_HALO`] around them, up to `batch` tiles of one
/// shape per call. The activations between segments are kept in temporary files when
/// `on_disk`, so memory holds only the tiles being run. With a `smoother`, each layer takes
/// the smoothed whole-frame statistics instead of the frame's own.
pub(super) fn run_exact(
    generator: &Generator,
    frame: &Tensor,
    (core, batch): (i64, usize),
    on_disk: bool,
    mut smoother: Option<&mut StatisticsSmoother>,
) -> Result<Tensor, TchError> {
    let (_, _, height, width) = frame.size4()?;
    let groups = exact_tiles(width, height, core);
    let segments = generator.segments();
    let mut input = Activation::Memory(frame.shallow_clone());
    let mut skip: Option<Activation> = None;
    for k in 0..segments {
        // Segment 0 normalises nothing; every later one its input, with the frame's statistics.
        let (mean, var) = match (k, smoother.as_deref_mut()) {
            (0, _) => (Tensor::new(), Tensor::new()),
            (_, None) => input.mean_var()?,
            (_, Some(smoother)) => {
                let (mean, var) = input.mean_var()?;
                smoother.smooth(k - 1, &mean, &var)?
            }
        };
        let mut hook = FrameStatistics { mean, var };
        let scale_in = width / input.width()?;
        let mut next: Option<(Activation, Option<Activation>)> = None;
        for tiles in groups.iter().flat_map(|g| g.chunks(batch.max(1))) {
            let stack = |whole: &Activation| -> Result<Tensor, TchError> {
                let parts = tiles
                    .iter()
                    .map(|tile| whole.crop(tile.region.map(|v| v / scale_in)))
                    .collect::<Result<Vec<_>, _>>()?;
                if parts.len() == 1 {
                    Ok(parts.into_iter().next().expect("one part"))
                } else {
                    Tensor::f_cat(&parts, 0)
                }
            };
            let regions = Segment { input: stack(&input)?, skip: skip.as_ref().map(stack).transpose()? };
            let out = generator.segment(k, &regions, &mut hook)?;
            let [rx0, _, rx1, _] = tiles[0].region;
            let scale_out = (rx1 - rx0) / out.input.size4()?.3;
            if next.is_none() {
                // The image the last segment makes is the result: it stays in memory.
                let whole = |part: &Tensor| -> Result<Activation, TchError> {
                    let shape = [part.size4()?.1, height / scale_out, width / scale_out];
                    Activation::zeros(on_disk && k + 1 < segments, shape, part.kind(), part.device())
                };
                next = Some((whole(&out.input)?, out.skip.as_ref().map(whole).transpose()?));
            }
            let (target, target_skip) = next.as_mut().expect("made above");
            // Each tile's core of the result, at the output's resolution, into the whole frame.
            for (i, tile) in tiles.iter().enumerate() {
                let ([x0, y0, x1, y1], [rx0, ry0, _, _]) = (tile.core, tile.region);
                let (cx, cy, cw, ch) = (x0 / scale_out, y0 / scale_out, (x1 - x0) / scale_out, (y1 - y0) / scale_out);
                let core_of = |part: &Tensor| -> Result<Tensor, TchError> {
                    part.f_narrow(0, i as i64, 1)?.f_narrow(2, cy - ry0 / scale_out, ch)?.f_narrow(
                        3,
                        cx - rx0 / scale_out,
                        cw,
                    )
                };
                target.place(cx, cy, &core_of(&out.input)?)?;
                if let (Some(whole), Some(part)) = (target_skip.as_mut(), &out.skip) {
                    whole.place(cx, cy, &core_of(part)?)?;
                }
            }
        }
        (input, skip) = next.expect("a frame has at least one tile");
    }
    generator.finish(&input.into_tensor()?, frame)
}
