//! Tile plans: where tiles of one shape sit in a frame, which part of each (its core) is
//! kept, and feathered blend weights. Plain arithmetic on rectangles, no tensors.
//!
//! Cores partition the frame. A tile extends its core by a halo on each side, except at the
//! frame's edges, where the tile is moved inside the frame instead of padded: the network
//! then sees the frame's real border exactly as a whole-frame pass does. All positions are
//! multiples of 4 (the generator's two stride-2 stages), so a core maps exactly onto every
//! layer's grid.

/// One tile: its position in the (padded) frame and its core, in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// Left edge of the tile.
    pub x: u32,
    /// Top edge of the tile.
    pub y: u32,
    /// Core: left, top, right, bottom (exclusive), in frame pixels.
    pub core: [u32; 4],
}

/// Tiles of one shape covering a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TilePlan {
    /// Tile width (all tiles).
    pub width: u32,
    /// Tile height (all tiles).
    pub height: u32,
    /// The tiles, row by row.
    pub tiles: Vec<Tile>,
}

/// Rounds up to a multiple of 4.
pub fn align4(v: u32) -> u32 {
    v.div_ceil(4) * 4
}

/// Tiles along one axis of length `len` (a multiple of 4): (origin, core start, core end).
fn axis(len: u32, tile: u32, halo: u32) -> (u32, Vec<(u32, u32, u32)>) {
    if tile >= len {
        return (len, vec![(0, 0, len)]);
    }
    let step = tile - 2 * halo;
    let count = len.div_ceil(step);
    let spans = (0..count)
        .map(|i| {
            let (start, end) = (i * step, ((i + 1) * step).min(len));
            (start.saturating_sub(halo).min(len - tile), start, end)
        })
        .collect();
    (tile, spans)
}

/// The tile length along an axis: the fewest tiles whose cores plus halos fit in `max_tile`,
/// sized to share the axis evenly (so little is computed twice).
fn tile_length(len: u32, max_tile: u32, halo: u32) -> u32 {
    if len <= max_tile {
        return len;
    }
    (2..)
        .map(|n| align4(len.div_ceil(n) + 2 * halo))
        .find(|&t| t <= max_tile)
        .expect("max_tile exceeds 2·halo + 4, so some count fits")
}

impl TilePlan {
    /// Plans tiles of at most `max_tile` px a side with `halo` over a `width`×`height` frame
    /// (multiples of 4). Sizes are rounded up to multiples of 4; a tile must exceed twice the
    /// halo by at least 4 px.
    pub fn new(width: u32, height: u32, max_tile: u32, halo: u32) -> Result<Self, String> {
        let (max_tile, halo) = (max_tile / 4 * 4, align4(halo));
        if max_tile < 2 * halo + 4 {
            return Err(format!("tile {max_tile} must be larger than twice the halo ({halo})"));
        }
        debug_assert!(width.is_multiple_of(4) && height.is_multiple_of(4));
        let (tw, xs) = axis(width, tile_length(width, max_tile, halo), halo);
        let (th, ys) = axis(height, tile_length(height, max_tile, halo), halo);
        let mut tiles = Vec::with_capacity(xs.len() * ys.len());
        for &(y, cy0, cy1) in &ys {
            for &(x, cx0, cx1) in &xs {
                tiles.push(Tile { x, y, core: [cx0, cy0, cx1, cy1] });
            }
        }
        Ok(Self { width: tw, height: th, tiles })
    }

    /// Pixels computed per frame pixel (≥ 1): the cost of the halos.
    pub fn overhead(&self, width: u32, height: u32) -> f64 {
        (self.tiles.len() as f64 * f64::from(self.width) * f64::from(self.height))
            / (f64::from(width) * f64::from(height))
    }
}

/// Cosine feathering weight of a pixel at `d` px inside a core edge that borders another
/// core (negative: outside, in the halo), over a band of `2 * feather` px centred on the edge.
pub fn feather_weight(d: f64, feather: f64) -> f64 {
    if feather <= 0.0 {
        return if d >= 0.0 { 1.0 } else { 0.0 };
    }
    let t = ((d + feather) / (2.0 * feather)).clamp(0.0, 1.0);
    0.5 - 0.5 * (std::f64::consts::PI * t).cos()
}

/// The receptive-field radius of a generator, in input pixels: how far a tile's halo must
/// reach for its core to be exact.
pub fn receptive_radius(residual_blocks: i64, antialias: bool) -> u32 {
    // conv_in 7×7: 3; down 0: s2 3×3 (1) + 3×3 at ½ (2); down 1: s2 (2) + 3×3 at ¼ (4);
    // residual blocks: two 3×3 at ¼ each (8); up 0: deconv (4) + 3×3 at ½ (2); up 1: deconv (2)
    // + 3×3 (1); conv_out 7×7: 3. Anti-aliased: the blurs before the strides (1 at full, 2 at
    // ½) and the bilinear doublings (4 out of ¼, 2 out of ½).
    let blurs = if antialias { 1 + 2 + 4 + 2 } else { 0 };
    3 + 1 + 2 + 2 + 4 + 8 * residual_blocks.max(0) as u32 + 4 + 2 + 2 + 1 + 3 + blurs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered_once(plan: &TilePlan, w: u32, h: u32) {
        let mut count = vec![0u8; (w * h) as usize];
        for t in &plan.tiles {
            let [x0, y0, x1, y1] = t.core;
            assert!(t.x % 4 == 0 && t.y % 4 == 0 && x0 % 4 == 0 && y0 % 4 == 0, "{t:?}");
            assert!(t.x + plan.width <= w && t.y + plan.height <= h, "tile inside the frame: {t:?}");
            assert!(
                x0 >= t.x && x1 <= t.x + plan.width && y0 >= t.y && y1 <= t.y + plan.height,
                "core inside its tile: {t:?}"
            );
            for y in y0..y1 {
                for x in x0..x1 {
                    count[(y * w + x) as usize] += 1;
                }
            }
        }
        assert!(count.iter().all(|&c| c == 1), "cores partition the frame");
    }

    #[test]
    fn cores_partition_the_frame_and_halos_are_kept() {
        for (w, h, tile, halo) in
            [(1920, 1080, 512, 88), (1920, 1080, 256, 64), (100, 60, 64, 12), (64, 64, 512, 88), (3840, 2160, 512, 88)]
        {
            let plan = TilePlan::new(w, h, tile, halo).unwrap();
            covered_once(&plan, w, h);
            let halo = align4(halo);
            for t in &plan.tiles {
                let [x0, y0, x1, y1] = t.core;
                // Away from the frame's edges every core keeps a full halo of context.
                assert!(x0 == 0 || x0 - t.x >= halo, "{t:?}");
                assert!(y0 == 0 || y0 - t.y >= halo, "{t:?}");
                assert!(x1 == w || t.x + plan.width - x1 >= halo, "{t:?}");
                assert!(y1 == h || t.y + plan.height - y1 >= halo, "{t:?}");
            }
        }
    }

    #[test]
    fn small_frames_are_one_tile_and_bad_sizes_are_refused() {
        let plan = TilePlan::new(64, 32, 512, 88).unwrap();
        assert_eq!((plan.width, plan.height, plan.tiles.len()), (64, 32, 1));
        assert!(TilePlan::new(640, 480, 128, 64).unwrap_err().contains("larger than twice the halo"));
        let plan = TilePlan::new(1920, 1080, 512, 88).unwrap();
        // 6 × 4 tiles of (320 + 2·88) × (270 + 2·88 → 448) px.
        assert_eq!((plan.width, plan.height, plan.tiles.len()), (496, 448, 24));
        assert!((plan.overhead(1920, 1080) - 24.0 * 496.0 * 448.0 / (1920.0 * 1080.0)).abs() < 1e-9);
    }

    #[test]
    fn feathering_is_a_partition_of_unity() {
        for d in [-8.0, -3.5, 0.0, 2.0, 8.0] {
            assert!((feather_weight(d, 8.0) + feather_weight(-d, 8.0) - 1.0).abs() < 1e-12);
        }
        assert_eq!(feather_weight(10.0, 8.0), 1.0);
        assert_eq!(receptive_radius(8, false), 88);
        assert_eq!(receptive_radius(8, true), 97);
    }
}
