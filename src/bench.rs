//! `japanim bench` as a library: the engine timed as a stream on synthetic or real frames
//! beside the bare generator ([`run_engine`], a report the command line prints), with the
//! pieces it needs: a synthetic frame source and a discarding sink, so the whole staged
//! stream can be timed without FFmpeg, and the device's peak throughput, so achieved TFLOP/s
//! can be read as a share of it.

use std::path::PathBuf;
use std::time::Instant;

use tch::{Device, Kind, Tensor};

use crate::engine::tiled::TileSettings;
use crate::engine::tiles::{align4, TilePlan};
use crate::engine::{Engine, EngineError};
use crate::frame::{Frame, FramePool, FrameSink, FrameSource, Item, StageError};
use crate::look::{psnr, seam_ratio};
use crate::model::{GeneratorConfig, StyleModel};
use crate::stream::{StreamOptions, StreamStats};
use crate::Error;

/// What to time on the engine.
#[derive(Debug, Clone)]
pub struct EngineBench {
    /// Generator weights.
    pub model: PathBuf,
    /// Device and number format.
    pub device: Device,
    /// Number format on the device.
    pub kind: Kind,
    /// Frame size.
    pub size: (u32, u32),
    /// Frames per generator call.
    pub batch: usize,
    /// Timed frames (rounded up to whole batches), after one warm-up batch.
    pub frames: usize,
    /// Tiles, or whole frames.
    pub tiles: Option<TileSettings>,
    /// Real images to run (scaled to `size`) instead of a synthetic pattern.
    pub images: Vec<PathBuf>,
    /// Batches kept on the device; `None`: the engine's choice.
    pub in_flight: Option<usize>,
    /// Also run whole frames and compare the tiled output with them.
    pub compare: bool,
    /// Frames over this many px are stylized at it and scaled back, as `stylize
    /// --work-size` does (0: at their own size).
    pub work_size: u32,
}

/// What [`run_engine`] measured.
#[derive(Debug, Clone)]
pub struct EngineReport {
    /// The generator timed.
    pub config: GeneratorConfig,
    /// How frames were cut, in words.
    pub layout: String,
    /// Batches kept on the device.
    pub in_flight: usize,
    /// The engine run as a stream.
    pub stats: StreamStats,
    /// Frames/s of that stream.
    pub engine_fps: f64,
    /// Frames/s of the bare generator on tensors already on the device.
    pub bare_fps: f64,
    /// Useful arithmetic per frame (2 × multiply-adds).
    pub flop_per_frame: f64,
    /// Peak resident memory of the process after the engine run, MiB.
    pub peak_host_mib: Option<f64>,
    /// CUDA memory in use and in all after the run, MiB.
    pub device_memory_mib: Option<(f64, f64)>,
    /// The device's name, where known.
    pub device_name: Option<String>,
    /// The device's datasheet peak for this precision, TFLOP/s, where known.
    pub known_peak_tflops: Option<f64>,
    /// With `compare`: the tiled output against whole frames.
    pub comparison: Option<TileComparison>,
}

/// Tiled output against whole frames, over the images of a bench.
#[derive(Debug, Clone, Copy)]
pub struct TileComparison {
    /// Images compared.
    pub images: usize,
    /// Mean PSNR, dB.
    pub psnr: f64,
    /// Lowest PSNR, dB.
    pub psnr_min: f64,
    /// Mean PSNR on a second run of the same frame (temporal statistics settled).
    pub psnr_repeat: f64,
    /// Mean seam ratio of the tiled output at the tile boundaries.
    pub seam_ratio: f64,
    /// The whole frame's seam ratio at the same lines.
    pub whole_seam_ratio: f64,
}

/// Peak resident memory of this process (Linux), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn torch(e: tch::TchError) -> Error {
    EngineError::Torch(e).into()
}

/// Times the engine as a stream (a source thread copying frames into pool buffers as a
/// decoder would, the engine batching, uploading, running and downloading, a sink taking
/// them), then the bare generator on the same number of frames already on the device.
pub fn run_engine(bench: &EngineBench) -> Result<EngineReport, Error> {
    let load = || StyleModel::load(&bench.model, bench.device, bench.kind);
    let config = load()?.info().config;
    let (w, h) = bench.size;
    let batch = bench.batch.max(1);
    let templates = templates(&bench.images, w, h)?;
    let make_engine = || -> Result<Engine, Error> {
        let engine = match bench.tiles {
            Some(t) => Engine::with_tiles(load()?, t),
            None => Engine::new(load()?),
        };
        Ok(engine.with_work_size(bench.work_size))
    };
    let calls = bench.frames.max(1).div_ceil(batch);
    let frame_count = (calls * batch) as u64;
    let mut engine = make_engine()?;
    // The size the generator runs at: the frame's, or the work size's.
    let (gw, gh) = engine.work_dimensions(w, h);
    tch::no_grad(|| -> Result<(), Error> {
        // Warm-up: cuDNN picks its algorithms for this shape before the clock starts.
        let frames: Vec<&Frame> = (0..batch).map(|i| &templates[i % templates.len()]).collect();
        engine.stylize(&frames, &mut vec![Vec::new(); batch])?;
        Ok(())
    })?;
    let options = StreamOptions { batch, in_flight: bench.in_flight, ..Default::default() };
    let in_flight = options.in_flight.unwrap_or_else(|| engine.batches_in_flight());
    let source = SyntheticSource::new(templates.clone(), frame_count);
    let stats = crate::stream::run(Box::new(source), &mut engine, Box::new(DiscardSink), &options)?;
    drop(engine);
    let peak_host_mib = peak_rss_mib();
    // libtorch's caching allocator keeps the blocks it reserved, so device memory in use after
    // the run is about the engine's peak on the device.
    let device_memory_mib = match bench.device {
        Device::Cuda(n) => crate::device::cuda::memory(n)
            .map(|(free, total)| ((total - free) as f64 / 1048576.0, total as f64 / 1048576.0)),
        _ => None,
    };
    // The bare generator on the same frames, already on the device as padded tensors: what
    // the engine's transfers, conversions, padding and tiling cost on top.
    let bare_seconds = tch::no_grad(|| -> Result<f64, Error> {
        let model = load()?;
        let shape = [batch as i64, 3, i64::from(align4(gh).max(8)), i64::from(align4(gw).max(8))];
        let x =
            Tensor::f_rand(shape, (Kind::Float, bench.device)).and_then(|x| x.f_to_kind(bench.kind)).map_err(torch)?;
        let _ = model.generator().forward(&x).map_err(torch)?;
        synchronize(bench.device);
        let start = Instant::now();
        for _ in 0..calls {
            let _ = model.generator().forward(&x).map_err(torch)?;
        }
        synchronize(bench.device);
        Ok(start.elapsed().as_secs_f64())
    })?;
    let engine_fps = stats.frames as f64 / stats.elapsed.as_secs_f64();
    let bare_fps = frame_count as f64 / bare_seconds;
    let (device_name, known_peak_tflops) = device_peak(bench.device, bench.kind);
    let comparison = if bench.compare {
        let tiles = bench.tiles.ok_or_else(|| Error::Invalid("--compare needs --tile".into()))?;
        Some(compare(&load, &templates, tiles, w, h)?)
    } else {
        None
    };
    Ok(EngineReport {
        config,
        layout: match (gw, gh) == (w, h) {
            true => layout(bench.tiles, w, h)?,
            false => format!("drawn at {gw}x{gh} and scaled back, {}", layout(bench.tiles, gw, gh)?),
        },
        in_flight,
        stats,
        engine_fps,
        bare_fps,
        flop_per_frame: 2.0 * config.macs_per_pixel() * f64::from(gw) * f64::from(gh),
        peak_host_mib,
        device_memory_mib,
        device_name,
        known_peak_tflops,
        comparison,
    })
}

fn synchronize(device: Device) {
    if let Device::Cuda(n) = device {
        tch::Cuda::synchronize(n as i64);
    }
}

/// The frames to repeat: a fixed pattern, or the images scaled to `w`×`h`.
fn templates(images: &[PathBuf], w: u32, h: u32) -> Result<Vec<Frame>, Error> {
    if images.is_empty() {
        let data = (0..Frame::byte_len(w, h)).map(|j| ((j * 7) % 251) as u8).collect();
        return Ok(vec![Frame { width: w, height: h, data, pts: None, index: 0 }]);
    }
    images
        .iter()
        .map(|p| {
            let img = crate::io::image::read_rgb(p)?;
            let img = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
            Ok(Frame { width: w, height: h, data: img.into_raw(), pts: None, index: 0 })
        })
        .collect()
}

/// How frames are cut, in words.
fn layout(tiles: Option<TileSettings>, w: u32, h: u32) -> Result<String, Error> {
    Ok(match tiles {
        Some(t) if t.norm.is_exact() => format!(
            "tiles ≤{} px (cores of {} px, halo {} px, segment by segment), {:?}",
            t.max_tile,
            crate::engine::tiled::exact_core(t.max_tile),
            crate::engine::tiled::EXACT_HALO,
            t.norm
        ),
        Some(t) => {
            let (pw, ph) = (align4(w).max(8), align4(h).max(8));
            let plan = TilePlan::new(pw, ph, t.max_tile, t.halo).map_err(Error::Invalid)?;
            format!(
                "tiles ≤{} px ({} of {}x{}, halo {}, {:.2}x pixels), {:?}",
                t.max_tile,
                plan.tiles.len(),
                plan.width,
                plan.height,
                t.halo,
                plan.overhead(pw, ph),
                t.norm
            )
        }
        None => "whole frames".to_string(),
    })
}

/// Each template through whole frames and through tiles (twice, so temporal statistics settle).
fn compare(
    load: &dyn Fn() -> Result<StyleModel, crate::model::WeightsError>,
    templates: &[Frame],
    tiles: TileSettings,
    w: u32,
    h: u32,
) -> Result<TileComparison, Error> {
    let plan = TilePlan::new(align4(w).max(8), align4(h).max(8), tiles.max_tile, tiles.halo).map_err(Error::Invalid)?;
    let mut whole = Engine::new(load()?);
    let (mut first, mut repeat, mut seams, mut whole_seams) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for frame in templates {
        let (mut reference, mut tiled_out) = (vec![Vec::new()], vec![Vec::new()]);
        let mut tiled = Engine::with_tiles(load()?, tiles);
        tch::no_grad(|| -> Result<(), Error> {
            whole.stylize(&[frame], &mut reference)?;
            tiled.stylize(&[frame], &mut tiled_out)?;
            first.push(psnr(&tiled_out[0], &reference[0]));
            seams.push(seam_ratio(&tiled_out[0], w, h, &plan));
            whole_seams.push(seam_ratio(&reference[0], w, h, &plan));
            tiled.stylize(&[frame], &mut tiled_out)?;
            repeat.push(psnr(&tiled_out[0], &reference[0]));
            Ok(())
        })?;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Ok(TileComparison {
        images: templates.len(),
        psnr: mean(&first),
        psnr_min: first.iter().copied().fold(f64::INFINITY, f64::min),
        psnr_repeat: mean(&repeat),
        seam_ratio: mean(&seams),
        whole_seam_ratio: mean(&whole_seams),
    })
}

/// Yields `count` frames cycling through `templates`, each copied into a pool buffer as a
/// decoder would write it.
pub struct SyntheticSource {
    templates: Vec<Frame>,
    count: u64,
    next: u64,
}

impl SyntheticSource {
    /// `count` frames made from `templates` (at least one).
    pub fn new(templates: Vec<Frame>, count: u64) -> Self {
        assert!(!templates.is_empty(), "a synthetic source needs a frame to repeat");
        Self { templates, count, next: 0 }
    }
}

impl FrameSource for SyntheticSource {
    fn next_item(&mut self, pool: &mut FramePool) -> Result<Option<Item>, StageError> {
        if self.next == self.count {
            return Ok(None);
        }
        let template = &self.templates[(self.next % self.templates.len() as u64) as usize];
        let mut data = pool.take(template.data.len());
        data.copy_from_slice(&template.data);
        let frame = Frame {
            width: template.width,
            height: template.height,
            data,
            pts: Some(self.next as i64),
            index: self.next,
        };
        self.next += 1;
        Ok(Some(Item::Frame(frame)))
    }
}

/// Drops every frame: the cheapest possible output stage.
#[derive(Debug, Default)]
pub struct DiscardSink;

impl FrameSink for DiscardSink {
    fn write_frame(&mut self, _frame: &Frame) -> Result<(), StageError> {
        Ok(())
    }

    fn finish(&mut self) -> Result<(), StageError> {
        Ok(())
    }
}

/// The device's name and peak dense throughput in TFLOP/s for `kind`, where japanim knows
/// it (CUDA devices by name; see [`peak_tflops`]). f32 on CUDA counts
/// TF32 tensor cores, which cuDNN uses for f32 convolutions by default.
pub fn device_peak(device: Device, kind: Kind) -> (Option<String>, Option<f64>) {
    match device {
        Device::Cuda(index) => {
            let name = crate::device::cuda::device_name(index);
            let peak = name.as_deref().and_then(|n| peak_tflops(n, kind != Kind::Float));
            (name, peak)
        }
        _ => (None, None),
    }
}

/// Peak dense tensor-core throughput of known data-centre and workstation GPUs, in TFLOP/s,
/// for 16-bit (bf16, f16) and for f32 (which cuDNN runs as TF32 by default): datasheet
/// figures without sparsity. The first entry whose words all occur in the device's name
/// wins, so more specific names come first.
const PEAKS: &[(&[&str], f64, f64)] = &[
    (&["H100", "PCIe"], 756.0, 378.0),
    (&["H100", "NVL"], 835.0, 418.0),
    (&["H100"], 989.0, 495.0),
    (&["H200", "NVL"], 835.0, 418.0),
    (&["H200"], 989.0, 495.0),
    (&["H20"], 148.0, 74.0),
    (&["B200"], 2250.0, 1100.0),
    (&["A100"], 312.0, 156.0),
    (&["A10"], 125.0, 62.5),
    (&["L40S"], 362.0, 183.0),
    (&["L40"], 181.0, 90.5),
    (&["L4"], 121.0, 60.0),
    (&["RTX", "4090"], 165.0, 82.6),
];

/// The datasheet peak in TFLOP/s of a GPU named `name` for 16-bit (`half`) or f32
/// arithmetic, when it is one japanim knows.
pub fn peak_tflops(name: &str, half: bool) -> Option<f64> {
    let words: Vec<&str> = name.split_whitespace().collect();
    PEAKS
        .iter()
        .find(|(needed, _, _)| needed.iter().all(|n| words.iter().any(|w| w.eq_ignore_ascii_case(n))))
        .map(|&(_, half_peak, f32_peak)| if half { half_peak } else { f32_peak })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_of_named_devices() {
        assert_eq!(peak_tflops("NVIDIA H100 80GB HBM3", true), Some(989.0));
        assert_eq!(peak_tflops("NVIDIA H100 PCIe", true), Some(756.0));
        assert_eq!(peak_tflops("NVIDIA H200", false), Some(495.0));
        assert_eq!(peak_tflops("NVIDIA H200 NVL", true), Some(835.0));
        assert_eq!(peak_tflops("NVIDIA L4", true), Some(121.0));
        assert_eq!(peak_tflops("NVIDIA L40S", true), Some(362.0));
        assert_eq!(peak_tflops("NVIDIA GeForce RTX 4090", true), Some(165.0));
        assert_eq!(peak_tflops("Some Future GPU", true), None);
    }
}
