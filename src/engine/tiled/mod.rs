//! Tiled inference with frame-consistent InstanceNorm.
//!
//! Naive tiling shows seams because InstanceNorm normalises each tile with the tile's own
//! statistics. Here every tile of a frame is normalised with the frame's statistics, which
//! the engine measures itself: while tiles run, each InstanceNorm layer's input is summed
//! over the tile's core (the cores partition the frame) into per-frame moments. Those moments
//! are exact for a layer once the layers before it used exact statistics, so repeating the
//! pass converges on the whole-frame result (`Refine`); for video, the previous frame's
//! statistics seed each frame and are refreshed by it (`Temporal`, one pass per frame).
//!
//! `Exact` runs the network the other way round, segment by segment (see
//! [`Generator::segment`]): each segment runs over every tile, its tile cores are stitched
//! into a whole-frame activation, and the next InstanceNorm layer takes that activation's
//! statistics. The result is the whole-frame forward's up to float rounding, at about the
//! cost of one pass (halos of 8 px suffice, since one segment sees at most 6 px, 8 anti-aliased). The
//! activations between segments are whole-frame: in memory, memory grows with the frame;
//! `ExactOnDisk` (and `Exact` where they would crowd memory) keeps them in temporary files,
//! so memory is bounded by the tile at the cost of writing and reading them
//! (the `activation` module).
//!
//! By concern: this file holds the strategies, their settings and the runner that picks one;
//! `exact` the segment-by-segment runner and its own tile planner; `hooks` the InstanceNorm
//! hooks that gather and apply frame statistics over tiles.

mod exact;
mod hooks;

pub use exact::{exact_core, EXACT_HALO};

use std::collections::HashMap;

use tch::{Device, Kind, TchError, Tensor};

use super::activation::Activation;
use super::moments::Moments;
use super::temporal::StatisticsSmoother;
use super::tiles::{feather_weight, TilePlan};
use crate::model::generator::{Generator, Segment};
use exact::run_exact;
use hooks::{cut_between, finish, FrameStatistics, TileHook};

/// How tiles are normalised; written and read as its flag text (`exact`, `refine:3`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormStrategy {
    /// Each tile with its own statistics (seams; for comparison).
    Tile,
    /// Frame statistics gathered by N measuring passes before the output pass.
    Refine(u32),
    /// The previous frame's statistics, refreshed every frame (one pass; the first frame is
    /// seeded by a downscaled pass and one refining pass).
    Temporal,
    /// Statistics of one whole-frame pass at reduced size (the frame scaled to fit in a
    /// tile), then N refining passes.
    Downscaled(u32),
    /// Segment by segment over tiles, each InstanceNorm with its whole-frame statistics:
    /// the whole-frame result, with memory for whole-frame activations between segments (kept
    /// in temporary files instead where they would crowd the available memory).
    Exact,
    /// `Exact` with the activations between segments always in temporary files: memory
    /// bounded by the tile, at the cost of writing and reading them.
    ExactOnDisk,
}

impl std::fmt::Display for NormStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tile => f.write_str("tile"),
            Self::Refine(n) => write!(f, "refine:{n}"),
            Self::Temporal => f.write_str("temporal"),
            Self::Downscaled(n) => write!(f, "downscaled:{n}"),
            Self::Exact => f.write_str("exact"),
            Self::ExactOnDisk => f.write_str("exact:disk"),
        }
    }
}

impl serde::Serialize for NormStrategy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for NormStrategy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl NormStrategy {
    /// Whether the strategy gives the whole-frame result in one segment-by-segment pass.
    pub fn is_exact(self) -> bool {
        matches!(self, Self::Exact | Self::ExactOnDisk)
    }
}

impl std::str::FromStr for NormStrategy {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "tile normalisation '{text}' is not one of exact, exact:disk, tile, temporal, refine:N, downscaled:N"
            )
        };
        if text == "exact:disk" {
            return Ok(Self::ExactOnDisk);
        }
        let (name, n) = match text.split_once(':') {
            Some((name, n)) => (name, Some(n.parse::<u32>().map_err(|_| bad())?)),
            None => (text, None),
        };
        match (name, n) {
            ("tile", None) => Ok(Self::Tile),
            ("exact", None) => Ok(Self::Exact),
            ("temporal", None) => Ok(Self::Temporal),
            ("refine", Some(n)) if n >= 1 => Ok(Self::Refine(n)),
            ("downscaled", n) => Ok(Self::Downscaled(n.unwrap_or(0))),
            _ => Err(bad()),
        }
    }
}

/// Tiling settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TileSettings {
    /// Largest tile side in pixels.
    pub max_tile: u32,
    /// Context kept around each tile's core (the receptive-field radius for exact results).
    pub halo: u32,
    /// Width of the cosine blend on each side of a core boundary (≤ halo).
    pub feather: u32,
    /// Tiles per generator call.
    pub batch: usize,
    /// Normalisation strategy.
    pub norm: NormStrategy,
}

/// Per-layer (mean, biased variance) of one frame, f32 on the device.
pub type FrameStats = Vec<(Tensor, Tensor)>;

/// Runs a generator over frames tile by tile.
pub struct TiledRunner {
    settings: TileSettings,
    plans: HashMap<(i64, i64), (TilePlan, Vec<Tensor>)>,
    previous: Option<((i64, i64), FrameStats)>,
    /// The exact strategy's choice for the last frame size (width, height): on disk or not.
    on_disk: Option<((i64, i64), bool)>,
}

impl TiledRunner {
    /// A runner with these settings.
    pub fn new(settings: TileSettings) -> Self {
        Self { settings, plans: HashMap::new(), previous: None, on_disk: None }
    }

    /// The settings.
    pub fn settings(&self) -> &TileSettings {
        &self.settings
    }

    fn plan(
        &mut self,
        width: i64,
        height: i64,
        device: Device,
        kind: Kind,
    ) -> Result<&(TilePlan, Vec<Tensor>), TchError> {
        if !self.plans.contains_key(&(width, height)) {
            let s = self.settings;
            let plan = TilePlan::new(width as u32, height as u32, s.max_tile, s.halo).map_err(TchError::Kind)?;
            let feather = f64::from(s.feather.min(s.halo));
            let weights = plan
                .tiles
                .iter()
                .map(|t| {
                    let [x0, y0, x1, y1] = t.core;
                    let ramp = |origin: u32, len: u32, c0: u32, c1: u32, frame: u32| -> Vec<f32> {
                        (0..len)
                            .map(|i| {
                                let centre = f64::from(origin + i) + 0.5;
                                let low = if c0 > 0 { feather_weight(centre - f64::from(c0), feather) } else { 1.0 };
                                let high =
                                    if c1 < frame { feather_weight(f64::from(c1) - centre, feather) } else { 1.0 };
                                (low * high) as f32
                            })
                            .collect()
                    };
                    let wx = Tensor::from_slice(&ramp(t.x, plan.width, x0, x1, width as u32));
                    let wy = Tensor::from_slice(&ramp(t.y, plan.height, y0, y1, height as u32));
                    wy.f_view([1, 1, plan.height as i64, 1])?
                        .f_mul(&wx.f_view([1, 1, 1, plan.width as i64])?)?
                        .f_to_device(device)?
                        .f_to_kind(kind)
                })
                .collect::<Result<Vec<_>, TchError>>()?;
            self.plans.insert((width, height), (plan, weights));
        }
        Ok(&self.plans[&(width, height)])
    }

    /// One pass over every tile of every frame: optionally normalising with `given`
    /// statistics, measuring new ones, and blending outputs into `outputs`.
    fn pass(
        &mut self,
        generator: &Generator,
        frames: &[Tensor],
        given: Option<&[FrameStats]>,
        measure: bool,
        mut outputs: Option<&mut [Tensor]>,
    ) -> Result<Option<Vec<FrameStats>>, TchError> {
        let (_, _, height, width) = frames[0].size4()?;
        let batch = self.settings.batch.max(1);
        let (plan, weights) = self.plan(width, height, frames[0].device(), frames[0].kind())?;
        let (plan, weights) = (plan.clone(), weights.iter().map(Tensor::shallow_clone).collect::<Vec<_>>());
        let jobs: Vec<(usize, usize)> =
            (0..frames.len()).flat_map(|f| (0..plan.tiles.len()).map(move |t| (f, t))).collect();
        let mut acc: Vec<Vec<Option<Moments>>> =
            (0..frames.len()).map(|_| (0..generator.norm_layers()).map(|_| None).collect()).collect();
        let (tw, th) = (i64::from(plan.width), i64::from(plan.height));
        for chunk in jobs.chunks(batch) {
            let inputs = chunk
                .iter()
                .map(|&(f, t)| {
                    let tile = plan.tiles[t];
                    frames[f].f_narrow(2, i64::from(tile.y), th)?.f_narrow(3, i64::from(tile.x), tw)
                })
                .collect::<Result<Vec<_>, TchError>>()?;
            let samples: Vec<(usize, [i64; 4])> = chunk
                .iter()
                .map(|&(f, t)| {
                    let tile = plan.tiles[t];
                    let [x0, y0, x1, y1] = tile.core.map(i64::from);
                    let (ox, oy) = (i64::from(tile.x), i64::from(tile.y));
                    (f, [x0 - ox, y0 - oy, x1 - ox, y1 - oy])
                })
                .collect();
            let mut hook = TileHook { samples: &samples, tile_height: th, given, collect: measure.then_some(&mut acc) };
            let y = generator.forward_with(&Tensor::f_cat(&inputs, 0)?, &mut hook)?;
            if let Some(outputs) = outputs.as_deref_mut() {
                for (i, &(f, t)) in chunk.iter().enumerate() {
                    let tile = plan.tiles[t];
                    let mut region =
                        outputs[f].f_narrow(2, i64::from(tile.y), th)?.f_narrow(3, i64::from(tile.x), tw)?;
                    let _ = region.f_add_(&y.f_narrow(0, i as i64, 1)?.f_mul(&weights[t])?)?;
                }
            }
        }
        if !measure {
            return Ok(None);
        }
        Ok(Some(acc.into_iter().map(finish).collect::<Result<Vec<_>, _>>()?))
    }

    /// Per-frame statistics from a whole-frame pass over each frame scaled down to fit a tile.
    fn downscaled_stats(&self, generator: &Generator, frames: &[Tensor]) -> Result<Vec<FrameStats>, TchError> {
        let (_, _, h, w) = frames[0].size4()?;
        let limit = i64::from(self.settings.max_tile.max(8));
        let factor = (h.max(w) as f64 / limit as f64).max(1.0);
        let (sh, sw) = (((h as f64 / factor) as i64 / 4 * 4).max(8), ((w as f64 / factor) as i64 / 4 * 4).max(8));
        frames
            .iter()
            .map(|f| {
                let small = f
                    .f_to_kind(Kind::Float)?
                    .f_upsample_bilinear2d([sh, sw], false, None, None)?
                    .f_to_kind(f.kind())?;
                let samples = [(0usize, [0, 0, sw, sh])];
                let mut acc = vec![(0..generator.norm_layers()).map(|_| None).collect::<Vec<_>>()];
                let mut hook = TileHook { samples: &samples, tile_height: sh, given: None, collect: Some(&mut acc) };
                let _ = generator.forward_with(&small, &mut hook)?;
                finish(acc.pop().expect("one frame"))
            })
            .collect()
    }

    /// Whether the exact strategy keeps a frame's activations on disk: always for
    /// `ExactOnDisk`; for `Exact` when in memory they would crowd the available memory,
    /// decided once per frame size.
    fn exact_on_disk(&mut self, generator: &Generator, frame: &Tensor) -> Result<bool, TchError> {
        if self.settings.norm == NormStrategy::ExactOnDisk {
            return Ok(true);
        }
        let (_, _, height, width) = frame.size4()?;
        if let Some((size, on_disk)) = self.on_disk {
            if size == (width, height) {
                return Ok(on_disk);
            }
        }
        let needed = super::exact_tiles_bytes(generator.config().base_channels, width, height, frame.kind());
        let available = super::available_memory(frame.device());
        let on_disk = available.is_some_and(|available| super::crowds_memory(needed, available));
        if on_disk {
            tracing::info!(
                "exact tiles of {width}x{height} frames would keep about {:.1} GB of activations in the {:.1} GB \
                 available: keeping them in temporary files in {} instead (same output)",
                needed / 1e9,
                available.unwrap_or_default() / 1e9,
                std::env::temp_dir().display()
            );
        }
        self.on_disk = Some(((width, height), on_disk));
        Ok(on_disk)
    }

    /// Stylizes padded frames (each 1×3×H×W in [-1, 1], sides multiples of 4).
    pub fn run(&mut self, generator: &Generator, frames: &[Tensor]) -> Result<Vec<Tensor>, TchError> {
        self.run_smoothed(generator, frames, None)
    }

    /// [`Self::run`], with each layer's statistics smoothed over time by `smoother` (frames in
    /// order); only the exact strategies measure whole-frame statistics to smooth.
    pub fn run_smoothed(
        &mut self,
        generator: &Generator,
        frames: &[Tensor],
        mut smoother: Option<&mut StatisticsSmoother>,
    ) -> Result<Vec<Tensor>, TchError> {
        if self.settings.norm.is_exact() {
            let core = exact_core(self.settings.max_tile);
            let batch = self.settings.batch;
            return frames
                .iter()
                .map(|frame| {
                    let on_disk = self.exact_on_disk(generator, frame)?;
                    run_exact(generator, frame, (core, batch), on_disk, smoother.as_deref_mut())
                })
                .collect();
        }
        if smoother.is_some() {
            return Err(TchError::Kind("temporal smoothing needs exact tiles (--tile-norm exact)".into()));
        }
        let mut outputs = frames.iter().map(|f| f.f_zeros_like()).collect::<Result<Vec<_>, _>>()?;
        let (_, _, h, w) = frames[0].size4()?;
        let refine = |runner: &mut Self,
                      mut stats: Option<Vec<FrameStats>>,
                      passes: u32|
         -> Result<Option<Vec<FrameStats>>, TchError> {
            for _ in 0..passes {
                stats = runner.pass(generator, frames, stats.as_deref(), true, None)?;
            }
            Ok(stats)
        };
        match self.settings.norm {
            NormStrategy::Exact | NormStrategy::ExactOnDisk => unreachable!("handled above"),
            NormStrategy::Tile => {
                self.pass(generator, frames, None, false, Some(&mut outputs))?;
            }
            NormStrategy::Refine(passes) => {
                let stats = refine(self, None, passes)?;
                self.pass(generator, frames, stats.as_deref(), false, Some(&mut outputs))?;
            }
            NormStrategy::Downscaled(passes) => {
                let seed = self.downscaled_stats(generator, frames)?;
                let stats = refine(self, Some(seed), passes)?;
                self.pass(generator, frames, stats.as_deref(), false, Some(&mut outputs))?;
            }
            NormStrategy::Temporal => {
                let carried = match self.previous.take() {
                    Some((size, stats)) if size == (w, h) => Some(stats),
                    _ => None,
                };
                let fresh = |runner: &mut Self| -> Result<Vec<FrameStats>, TchError> {
                    let seed = runner.downscaled_stats(generator, frames)?;
                    Ok(refine(runner, Some(seed), 1)?.expect("one pass measures"))
                };
                let seed = match carried {
                    Some(stats) => frames
                        .iter()
                        .map(|_| stats.iter().map(|(m, v)| (m.shallow_clone(), v.shallow_clone())).collect())
                        .collect(),
                    None => fresh(self)?,
                };
                let mut measured =
                    self.pass(generator, frames, Some(&seed), true, Some(&mut outputs))?.expect("measured");
                // A cut: the first layer's statistics (which no earlier layer influences) moved
                // far from the ones used. Redo these frames from fresh statistics.
                if cut_between(&seed, &measured)? {
                    let seed = fresh(self)?;
                    for out in &mut outputs {
                        let _ = out.f_zero_()?;
                    }
                    measured = self.pass(generator, frames, Some(&seed), true, Some(&mut outputs))?.expect("measured");
                }
                self.previous = measured.into_iter().last().map(|s| ((w, h), s));
            }
        }
        Ok(outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::exact::exact_tiles;
    use super::*;
    use crate::model::{GeneratorConfig, Upsampling};

    #[test]
    fn one_tile_with_measured_statistics_is_the_plain_forward() {
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let g = crate::model::with_global_rng(|| {
            Generator::new(&vs.root(), GeneratorConfig { base_channels: 4, residual_blocks: 1, ..Default::default() })
        });
        let x = Tensor::rand([1, 3, 24, 32], (Kind::Float, Device::Cpu)) * 2 - 1;
        let plain = tch::no_grad(|| g.forward(&x)).unwrap();
        for norm in [NormStrategy::Tile, NormStrategy::Refine(1), NormStrategy::Refine(3)] {
            let mut runner = TiledRunner::new(TileSettings { max_tile: 64, halo: 8, feather: 0, batch: 2, norm });
            let y = tch::no_grad(|| runner.run(&g, &[x.shallow_clone()])).unwrap().remove(0);
            let diff = (&y - &plain).abs().max().double_value(&[]);
            assert!(diff < 1e-4, "{norm:?}: {diff}");
        }
    }

    #[test]
    fn measuring_passes_converge_on_the_whole_frame_result() {
        // Each measuring pass makes one more layer's statistics exact (the layers before it
        // were normalised exactly), so one pass per InstanceNorm layer reproduces the
        // whole-frame pass, given halos that cover the receptive field.
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let g = crate::model::with_global_rng(|| {
            Generator::new(&vs.root(), GeneratorConfig { base_channels: 4, residual_blocks: 1, ..Default::default() })
        });
        let x = Tensor::rand([1, 3, 24, 160], (Kind::Float, Device::Cpu)) * 2 - 1;
        let plain = tch::no_grad(|| g.forward(&x)).unwrap();
        let halo = super::super::tiles::receptive_radius(1, false);
        let error = |norm| {
            let mut runner = TiledRunner::new(TileSettings { max_tile: 144, halo, feather: 0, batch: 2, norm });
            let y = tch::no_grad(|| runner.run(&g, &[x.shallow_clone()])).unwrap().remove(0);
            (&y - &plain).abs().max().double_value(&[])
        };
        assert_eq!(TilePlan::new(160, 24, 144, halo).unwrap().tiles.len(), 2);
        let naive = error(NormStrategy::Tile);
        let exact = error(NormStrategy::Refine(g.norm_layers() as u32));
        assert!(exact < 1e-4, "after {} passes: {exact}", g.norm_layers());
        assert!(naive > 1e-2, "naive tiles differ: {naive}");
    }

    #[test]
    fn segment_by_segment_is_the_whole_frame_forward() {
        // Cores of 16 px (far below the receptive field) over a frame they do not divide,
        // two residual blocks (the skip crosses segments), and edge regions only 4 px wide.
        // Both upsampling layouts: the resize layer's nearest-neighbour step must line up
        // across tile boundaries as the transposed convolution's does.
        // With an input skip (its filter made random here), the filter runs on the whole frame,
        // and so do the outlines. Anti-aliased, the blurs and bilinear doublings fill the halo
        // exactly (8 px), so a halo one pixel short would show here.
        // A detail path (its last layer made non-zero here) runs on the whole frame too.
        let layouts = [
            (Upsampling::Transposed, false, false, false, 0),
            (Upsampling::Resize, false, false, false, 0),
            (Upsampling::Resize, true, false, false, 0),
            (Upsampling::Resize, true, true, false, 0),
            (Upsampling::Resize, true, true, true, 0),
            (Upsampling::Transposed, false, false, true, 0),
            (Upsampling::Resize, true, true, false, 4),
            (Upsampling::Transposed, false, false, false, 4),
        ];
        // And every layout padding by reflection (edge tiles reflect where the frame does).
        let layouts = layouts.into_iter().flat_map(|l| [(l, false), (l, true)]);
        for ((upsampling, input_skip, outlines, antialias, detail_channels), reflect_padding) in layouts {
            let vs = tch::nn::VarStore::new(Device::Cpu);
            let config = GeneratorConfig {
                base_channels: 4,
                residual_blocks: 2,
                upsampling,
                input_skip,
                outlines,
                antialias,
                reflect_padding,
                detail_channels,
                ..Default::default()
            };
            let g = crate::model::with_global_rng(|| Generator::new(&vs.root(), config));
            let randomised = [(input_skip, "input_skip.weight"), (detail_channels > 0, "detail.2.weight")];
            for (_, name) in randomised.into_iter().filter(|(on, _)| *on) {
                let mut weight = vs.variables()[name].shallow_clone();
                tch::no_grad(|| weight.copy_(&(Tensor::randn_like(&weight) * 0.1)));
            }
            let x = Tensor::rand([1, 3, 36, 84], (Kind::Float, Device::Cpu)) * 2 - 1;
            let plain = tch::no_grad(|| g.forward(&x)).unwrap();
            let settings =
                TileSettings { max_tile: 32, halo: EXACT_HALO as u32, feather: 0, batch: 1, norm: NormStrategy::Exact };
            // Regions are 24, 32, 32, 32, 28 and 12 px wide and 24, 28 and 12 px high: in each
            // row the three interior tiles share a shape and run as one batch (or 2 + 1).
            let groups = exact_tiles(84, 36, exact_core(32));
            assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [1, 3, 1, 1, 1, 3, 1, 1, 1, 3, 1, 1]);
            // The activations between segments in memory or in temporary files: the same result.
            for (batch, norm) in
                [1, 2, 3].into_iter().flat_map(|b| [(b, NormStrategy::Exact), (b, NormStrategy::ExactOnDisk)])
            {
                let settings = TileSettings { batch, norm, ..settings };
                let y = tch::no_grad(|| TiledRunner::new(settings).run(&g, &[x.shallow_clone()])).unwrap().remove(0);
                assert_eq!(y.size(), plain.size());
                let diff = (&y - &plain).abs().max().double_value(&[]);
                assert!(diff < 1e-5, "{config}, batch {batch}, {norm:?}: largest difference {diff}");
            }
            let naive = TileSettings { norm: NormStrategy::Tile, halo: 8, ..settings };
            let z = tch::no_grad(|| TiledRunner::new(naive).run(&g, &[x.shallow_clone()])).unwrap().remove(0);
            assert!((&z - &plain).abs().max().double_value(&[]) > 1e-2, "per-tile statistics differ, for contrast");
        }
    }
}
