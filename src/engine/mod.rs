//! Frames in, stylized frames out: u8 ↔ tensor conversion on the device, padding to the
//! generator's size grid, batching. Knows tensors and frames, not files or containers.

mod activation;
mod moments;
pub mod temporal;
pub mod tiled;
pub mod tiles;

use tch::{Device, Kind, TchError, Tensor};

use crate::frame::Frame;
use crate::model::StyleModel;

/// Errors while stylizing.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// libtorch failed (out of device memory, most often).
    #[error("inference failed: {0}")]
    Torch(#[from] TchError),
    /// A frame's buffer does not hold its size's bytes.
    #[error("a {width}x{height} frame must hold {} bytes of RGB, not {found}", Frame::byte_len(*width, *height))]
    FrameBytes {
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
        /// Bytes found.
        found: usize,
    },
    /// The device failed while running queued work.
    #[error("{0}")]
    Device(String),
    /// Frames of one batch differ in size.
    #[error("frames of one batch must share a size: {0}x{1} vs {2}x{3}")]
    MixedSizes(u32, u32, u32, u32),
}

/// Sides are padded to a multiple of this (two stride-2 stages) and to at least
/// [`MIN_SIDE`], so the bottleneck is at least 2×2 and InstanceNorm has statistics to take.
const SIZE_MULTIPLE: i64 = 4;
const MIN_SIDE: i64 = 8;

fn padded(side: i64) -> i64 {
    ((side + SIZE_MULTIPLE - 1) / SIZE_MULTIPLE * SIZE_MULTIPLE).max(MIN_SIDE)
}

/// Pads an NCHW batch on the right and bottom: by reflection where the side is long enough,
/// else by repeating the edge (reflection cannot pad by more than side − 1).
fn pad_to_grid(x: &Tensor, height: i64, width: i64) -> Result<Tensor, TchError> {
    let (pad_h, pad_w) = (padded(height) - height, padded(width) - width);
    if pad_h == 0 && pad_w == 0 {
        return Ok(x.shallow_clone());
    }
    if pad_h < height && pad_w < width {
        x.f_reflection_pad2d([0, pad_w, 0, pad_h])
    } else {
        x.f_replication_pad2d([0, pad_w, 0, pad_h])
    }
}

/// Runs a model over frames, whole or in tiles.
pub struct Engine {
    model: StyleModel,
    uploads: UploadRing,
    tiled: Option<tiled::TiledRunner>,
    /// Whether the engine may switch to tiles by itself (see [`Engine::with_automatic_tiles`]).
    automatic_tiles: bool,
    /// The batch shape (width, height, frames) whose memory was checked last: checked once,
    /// since after a batch the CUDA caching allocator holds memory that looks used.
    checked: Option<(i64, i64, i64)>,
    /// Statistics smoothed over time, for the frames of a video (see [`temporal`]).
    smoother: Option<temporal::StatisticsSmoother>,
    /// Frames with a longer side over this are stylized scaled down to it and the result
    /// scaled back up (see [`Engine::with_work_size`]).
    work_size: Option<u32>,
    /// The frame size whose scaling to the work size was logged last.
    work_logged: Option<(u32, u32)>,
}

/// Largest batch the engine picks by itself ([`Engine::automatic_batch`]).
pub const MAX_AUTOMATIC_BATCH: usize = 8;

/// Tile side the engine picks by itself: on the CPU for every frame with a side over it, and
/// elsewhere when whole frames would not fit in memory.
///
/// On the CPU, exact tiles of 512 px were never slower than whole frames and always took less
/// memory, for the same output (float rounding: 72–81 dB). `japanim bench --model
/// models/default.safetensors --size S --tile 0|512` on a 2-core AVX2 EPYC (2026-12-03), ms a
/// frame and peak MiB, whole → tiles: 640×272 1,124 → 1,076 and 381 → 322; 960×540 3,097 →
/// 3,088 and 766 → 521; 1280×720 5,921 → 5,106 and 1,132 → 618; 1920×1080 12,652 → 10,267 and
/// 2,329 → 1,071. On a 2-core AVX512-BF16 EPYC, 1080p: 4.5 → 4.1 s. The tiles' working set
/// stays in cache.
pub const AUTOMATIC_TILE: u32 = 512;

/// Estimated peak bytes of a whole-frame forward pass on the CPU: about seven activations of
/// the first layer's width at full resolution (measured with jemalloc keeping freed pages:
/// 1.88 GB for the 32-channel model on 1080p f32, 7.1 such activations). Used for GPUs too,
/// where it is rougher (cuDNN workspaces, the caching allocator): not yet measured there.
pub fn whole_frame_bytes(base_channels: i64, width: i64, height: i64, batch: i64, kind: Kind) -> f64 {
    7.5 * first_layer_bytes(base_channels, width, height, kind) * batch as f64
}

/// Bytes of one activation of the first layer's width at full resolution.
fn first_layer_bytes(base_channels: i64, width: i64, height: i64, kind: Kind) -> f64 {
    base_channels as f64 * width as f64 * height as f64 * kind.elt_size_in_bytes() as f64
}

/// Estimated peak bytes of exact tiles with the activations between segments in memory:
/// about three activations of the first layer's width at full resolution (measured: 3.1 GB
/// for the 32-channel model on 4K f32, of which the two activations are 2.1 GB).
pub fn exact_tiles_bytes(base_channels: i64, width: i64, height: i64, kind: Kind) -> f64 {
    3.0 * first_layer_bytes(base_channels, width, height, kind)
}

/// Bytes available for new allocations on `device`: the kernel's MemAvailable for the CPU
/// (Linux), the CUDA runtime's free memory for a GPU.
fn available_memory(device: Device) -> Option<f64> {
    match device {
        Device::Cpu => {
            let text = std::fs::read_to_string("/proc/meminfo").ok()?;
            let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
            Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? * 1024.0)
        }
        Device::Cuda(index) => crate::device::cuda::memory(index).map(|(free, _)| free as f64),
        _ => None,
    }
}

/// Whether work needing `needed` bytes would crowd `available` bytes: take more than 70 %
/// of it (then whole frames are tiled, and exact tiles keep their activations on disk).
pub fn crowds_memory(needed: f64, available: f64) -> bool {
    needed > 0.7 * available
}

impl Engine {
    /// An engine that runs whole frames.
    pub fn new(model: StyleModel) -> Self {
        Self {
            model,
            uploads: UploadRing::default(),
            tiled: None,
            automatic_tiles: false,
            checked: None,
            smoother: None,
            work_size: None,
            work_logged: None,
        }
    }

    /// Stylizes frames whose longer side is over `work_size` px scaled down to it
    /// (antialiased bilinear) and scales the result back to the frame's size (bicubic).
    /// A model draws its look at the scale of the pictures it was trained on: the default's
    /// surface filter and outlines have fixed sizes in pixels, so a 1080p frame stylized
    /// whole comes out barely flatter than the photo, and at half size as a cartoon, with a
    /// quarter of the pixels to compute. Tiles, batches and temporal smoothing work on the
    /// scaled frames as on any others.
    pub fn with_work_size(mut self, work_size: u32) -> Self {
        self.work_size = Some(work_size).filter(|&n| n > 0);
        self
    }

    /// The size frames of `width`×`height` are stylized at ([`Engine::with_work_size`]).
    pub fn work_dimensions(&self, width: u32, height: u32) -> (u32, u32) {
        match self.work_size {
            Some(limit) if width.max(height) > limit => {
                let scale = f64::from(limit) / f64::from(width.max(height));
                let side = |v: u32| ((f64::from(v) * scale).round() as u32).clamp(1, limit);
                (side(width), side(height))
            }
            _ => (width, height),
        }
    }

    /// Normalises each layer of consecutive frames with a moving average of the whole-frame
    /// statistics over the shot, giving the past `past_weight` (0 < w < 1), instead of each
    /// frame's own: steadier video. For frames of one video, in order; with tiles, only the
    /// exact strategies.
    pub fn with_temporal_smoothing(mut self, past_weight: f64) -> Self {
        self.smoother = Some(temporal::StatisticsSmoother::new(past_weight));
        self
    }

    /// Frames a run must stylize before a frame to give it exactly the output of a run from
    /// the start of the video: the temporal smoothing's reach through every layer (0 without
    /// smoothing). Only whole frames and exact tiles carry nothing else between frames.
    pub fn warm_up_frames(&self) -> u64 {
        self.smoother.as_ref().map_or(0, |s| s.warm_up_frames(self.model.generator().norm_layers()) as u64)
    }

    /// Shots seen so far by the temporal smoothing (None without it).
    pub fn shots(&self) -> Option<u64> {
        self.smoother.as_ref().map(temporal::StatisticsSmoother::shots)
    }

    /// Lets a whole-frame engine switch to exact tiles of [`AUTOMATIC_TILE`] px (the same
    /// output): on the CPU for frames with a side over it, where tiles are faster and smaller;
    /// on other devices for frames that would not fit in the available memory whole.
    pub fn with_automatic_tiles(mut self) -> Self {
        self.automatic_tiles = true;
        self
    }

    /// An engine that cuts frames larger than `settings.max_tile` into tiles.
    pub fn with_tiles(model: StyleModel, settings: tiled::TileSettings) -> Self {
        Self { tiled: Some(tiled::TiledRunner::new(settings)), ..Self::new(model) }
    }

    /// The model.
    pub fn model(&self) -> &StyleModel {
        &self.model
    }

    /// Switches an engine without tiles to exact tiles (the same output) for frames with a
    /// side over [`AUTOMATIC_TILE`] on the CPU, or that would take most of the device's
    /// available memory.
    fn tile_if_too_large(&mut self, width: i64, height: i64, batch: i64) {
        if !self.automatic_tiles
            || self.tiled.is_some()
            || width.max(height) <= i64::from(AUTOMATIC_TILE)
            || self.checked == Some((width, height, batch))
        {
            return;
        }
        self.checked = Some((width, height, batch));
        let needed = whole_frame_bytes(self.model.info().config.base_channels, width, height, batch, self.model.kind());
        let crowded = available_memory(self.model.device()).filter(|&available| crowds_memory(needed, available));
        let cpu_prefers_tiles = self.model.device() == Device::Cpu;
        if crowded.is_some() || cpu_prefers_tiles {
            match crowded {
                Some(available) => tracing::info!(
                    "whole {width}x{height} frames would need about {:.1} GB of the {:.1} GB available: \
                     running exact tiles of {AUTOMATIC_TILE} px instead (same output, less memory)",
                    needed / 1e9,
                    available / 1e9
                ),
                None => tracing::info!(
                    "exact tiles of {AUTOMATIC_TILE} px for {width}x{height} frames on the CPU (same output, \
                     faster and less memory than whole frames; --tile 0 runs whole frames)"
                ),
            }
            let settings = tiled::TileSettings {
                max_tile: AUTOMATIC_TILE,
                halo: tiled::EXACT_HALO as u32,
                feather: 0,
                batch: 1,
                norm: tiled::NormStrategy::Exact,
            };
            self.tiled = Some(tiled::TiledRunner::new(settings));
        }
    }

    /// Stylizes frames of one size, writing each result into the matching output buffer
    /// (resized to the frame's byte length). Call inside `tch::no_grad`.
    pub fn stylize(&mut self, frames: &[&Frame], outputs: &mut [Vec<u8>]) -> Result<(), EngineError> {
        let batch = self.submit(frames)?;
        self.collect(batch, outputs)
    }

    /// Frames per generator call when the user names none: one on the CPU (bigger batches are
    /// no faster there), and on a GPU as many whole `width`×`height` frames as fit in half of
    /// its free memory, up to [`MAX_AUTOMATIC_BATCH`] (tiled engines: one).
    pub fn automatic_batch(&self, width: u32, height: u32) -> usize {
        let Device::Cuda(index) = self.model.device() else { return 1 };
        if self.tiled.is_some() {
            return 1;
        }
        // The generator runs on frames at the work size.
        let (width, height) = self.work_dimensions(width, height);
        let (w, h) = (padded(i64::from(width)), padded(i64::from(height)));
        let per_frame = whole_frame_bytes(self.model.info().config.base_channels, w, h, 1, self.model.kind());
        match crate::device::cuda::memory(index) {
            Some((free, _)) => ((0.5 * free as f64 / per_frame) as usize).clamp(1, MAX_AUTOMATIC_BATCH),
            None => 1,
        }
    }

    /// How many batches a stream should keep submitted before collecting the oldest: two on
    /// a GPU, so one runs while the other's results come back and the next is prepared; one
    /// on the CPU, which computes a batch while submitting it.
    pub fn batches_in_flight(&self) -> usize {
        if self.model.device().is_cuda() {
            2
        } else {
            1
        }
    }

    /// Queues frames of one size on the device and returns at once where the device works
    /// asynchronously (CUDA); [`Engine::collect`] waits for the results. Batches are
    /// collected in any order; each upload buffer is reused only after its batch finished.
    /// Call inside `tch::no_grad`.
    pub fn submit(&mut self, frames: &[&Frame]) -> Result<Submitted, EngineError> {
        let Some(first) = frames.first() else {
            return Ok(Submitted { output: None, done: Done::Ready, width: 0, height: 0 });
        };
        let (w, h) = (first.width, first.height);
        if let Some(f) = frames.iter().find(|f| (f.width, f.height) != (w, h)) {
            return Err(EngineError::MixedSizes(w, h, f.width, f.height));
        }
        if let Some(f) = frames.iter().find(|f| f.data.len() != Frame::byte_len(w, h)) {
            return Err(EngineError::FrameBytes { width: w, height: h, found: f.data.len() });
        }
        let (device, kind) = (self.model.device(), self.model.kind());
        let (wi, hi, n) = (i64::from(w), i64::from(h), frames.len() as i64);
        let (frame_h, frame_w) = (hi, wi);
        let (ws, hs) = self.work_dimensions(w, h);
        let scaled = (ws, hs) != (w, h);
        let slot = self.uploads.next(device, [n, hi, wi, 3])?;
        slot.fill(frames);
        // u8 → [-1, 1] on the device: only bytes cross the bus, asynchronously from pinned
        // memory on CUDA. In place, so one float copy of the batch exists, not three. Frames
        // to scale go through f32: not every resampling kernel has a bf16 version.
        let mut x = slot
            .staging
            .f_to_device_(device, Kind::Uint8, device.is_cuda(), false)?
            .f_permute([0, 3, 1, 2])?
            .f_to_kind(if scaled { Kind::Float } else { kind })?;
        let _ = x.f_mul_scalar_(1.0 / 127.5)?;
        let _ = x.f_sub_scalar_(1.0)?;
        let (wi, hi) = (i64::from(ws), i64::from(hs));
        if scaled {
            if self.work_logged != Some((w, h)) {
                self.work_logged = Some((w, h));
                tracing::info!("{w}x{h} frames stylized at {ws}x{hs} and scaled back (work size 0: at full size)");
            }
            x = x.f_internal_upsample_bilinear2d_aa([hi, wi], false, None, None)?.f_to_kind(kind)?;
        }
        // The model's margin (mirrored picture around the frame) goes around the whole frame,
        // so tiles and statistics see it as the network sees it in training.
        let x = self.model.generator().add_margin(&pad_to_grid(&x, hi, wi)?)?;
        // The upload is H×W×3: permuted, it has channels-last strides, and libtorch then runs
        // every layer channels-last. On the CPU that is 1.4–1.6× slower than the weights'
        // NCHW (960×540 in bf16 on a 2-core AVX512-BF16 Xeon: 1,142 → 735 ms a frame through
        // the engine), so the CPU gets NCHW. On CUDA, where cuDNN's tensor cores may prefer
        // channels-last, the layout stays as it was until measured there.
        let x = if device.is_cuda() { x } else { x.f_contiguous()? };
        let (_, _, hp, wp) = x.size4()?;
        self.tile_if_too_large(wp, hp, n);
        let y = match &mut self.tiled {
            Some(runner) if hp.max(wp) > i64::from(runner.settings().max_tile) => {
                let frames = (0..n).map(|i| x.f_narrow(0, i, 1)).collect::<Result<Vec<_>, _>>()?;
                let mut results = runner.run_smoothed(self.model.generator(), &frames, self.smoother.as_mut())?;
                match results.len() {
                    1 => results.pop().expect("one result"),
                    _ => Tensor::f_cat(&results, 0)?,
                }
            }
            _ => match &mut self.smoother {
                Some(smoother) => {
                    self.model.generator().forward_with(&x, &mut temporal::SmoothedStatistics(smoother))?
                }
                None => self.model.generator().forward(&x)?,
            },
        };
        // [-1, 1] → u8, in place after the first step (as above).
        let y = self.model.generator().remove_margin(&y)?;
        let mut y = y.f_narrow(2, 0, hi)?.f_narrow(3, 0, wi)?;
        if scaled {
            y = y.f_to_kind(Kind::Float)?.f_upsample_bicubic2d([frame_h, frame_w], false, None, None)?;
        }
        let mut y = y.f_add_scalar(1.0)?;
        let _ = y.f_mul_scalar_(127.5)?;
        let _ = y.f_round_()?;
        let _ = y.f_clamp_(0.0, 255.0)?;
        let y = y.f_to_kind(Kind::Uint8)?.f_permute([0, 2, 3, 1])?.f_contiguous()?;
        // On CUDA a non-blocking copy lands in pinned memory while the device goes on; the
        // event marks when it (and the upload before it) is done. Where page-locked memory
        // cannot be had, the copy waits instead.
        let output = match y.f_to_device_(Device::Cpu, Kind::Uint8, device.is_cuda(), false) {
            Err(e) if device.is_cuda() => {
                tracing::debug!("asynchronous download failed ({e}); copying synchronously");
                y.f_to_device_(Device::Cpu, Kind::Uint8, false, false)?
            }
            result => result?,
        };
        let done = match device {
            Device::Cuda(index) => match crate::device::cuda::Event::record(index) {
                Some(event) => Done::Event(std::sync::Arc::new(event)),
                None => Done::Synchronize(index),
            },
            _ => Done::Ready,
        };
        let slot = self.uploads.current();
        slot.in_use_until = done.clone();
        Ok(Submitted { output: Some(output), done, width: w, height: h })
    }

    /// Waits for a submitted batch and writes each frame's result into the matching output
    /// buffer (resized to the frame's byte length).
    pub fn collect(&mut self, batch: Submitted, outputs: &mut [Vec<u8>]) -> Result<(), EngineError> {
        let Some(output) = batch.output else { return Ok(()) };
        batch.done.wait()?;
        let frame_len = Frame::byte_len(batch.width, batch.height);
        for (i, out) in outputs.iter_mut().enumerate().take(output.size()[0] as usize) {
            out.resize(frame_len, 0);
            output.f_get(i as i64)?.f_copy_data_u8(out, frame_len)?;
        }
        Ok(())
    }
}

/// A batch queued on the device by [`Engine::submit`], to be passed to [`Engine::collect`].
pub struct Submitted {
    /// N×H×W×3 u8 on the CPU (pinned on CUDA), complete once `done`.
    output: Option<Tensor>,
    done: Done,
    width: u32,
    height: u32,
}

/// When the device's work for a batch is complete.
#[derive(Clone)]
enum Done {
    /// Already (the CPU computes while submitting).
    Ready,
    /// When this CUDA event has passed.
    Event(std::sync::Arc<crate::device::cuda::Event>),
    /// When the whole CUDA device is idle (no event could be made).
    Synchronize(usize),
}

impl Done {
    fn wait(&self) -> Result<(), EngineError> {
        match self {
            Done::Ready => Ok(()),
            Done::Event(event) => {
                if event.wait() {
                    Ok(())
                } else {
                    Err(EngineError::Device("the CUDA device reported an error while stylizing".into()))
                }
            }
            Done::Synchronize(index) => {
                tch::Cuda::synchronize(*index as i64);
                Ok(())
            }
        }
    }
}

/// One upload buffer: frames are gathered here and copied to the device from here.
struct UploadSlot {
    /// N×H×W×3 u8 on the CPU; page-locked for a CUDA device, so uploads are asynchronous.
    staging: Tensor,
    /// The batch that last read `staging`: refilling waits for it.
    in_use_until: Done,
}

impl UploadSlot {
    /// Copies the frames into the staging tensor, one after another.
    fn fill(&mut self, frames: &[&Frame]) {
        let len = self.staging.numel();
        // SAFETY: `staging` is a contiguous u8 CPU tensor of `len` bytes that only this slot
        // holds, and no copy reads it any more (`UploadRing::next` waited for its batch).
        let bytes = unsafe { std::slice::from_raw_parts_mut(self.staging.data_ptr().cast::<u8>(), len) };
        for (chunk, frame) in bytes.chunks_exact_mut(len / frames.len()).zip(frames) {
            chunk.copy_from_slice(&frame.data);
        }
    }
}

/// Two upload buffers used in turn: one can be filled while the other is being uploaded.
#[derive(Default)]
struct UploadRing {
    slots: [Option<UploadSlot>; 2],
    turn: usize,
}

impl UploadRing {
    /// The next buffer, shaped `shape`, once its previous upload is complete.
    fn next(&mut self, device: Device, shape: [i64; 4]) -> Result<&mut UploadSlot, EngineError> {
        self.turn ^= 1;
        let slot = &mut self.slots[self.turn];
        if let Some(s) = slot {
            s.in_use_until.wait()?;
            s.in_use_until = Done::Ready;
        }
        if slot.as_ref().is_none_or(|s| s.staging.size() != shape) {
            *slot = None; // free the old buffer first
            *slot = Some(UploadSlot { staging: staging_tensor(device, shape)?, in_use_until: Done::Ready });
        }
        Ok(slot.as_mut().expect("just filled"))
    }

    /// The buffer `next` returned last.
    fn current(&mut self) -> &mut UploadSlot {
        self.slots[self.turn].as_mut().expect("next() filled it")
    }
}

/// A u8 CPU tensor to upload from: page-locked for a CUDA device. It is made as the
/// destination of a non-blocking copy from the device, which libtorch allocates in pinned
/// memory (`pin_memory` would too, but only with a device argument that libtorch deprecates
/// and warns about). Where page-locked memory cannot be had (some sandboxes limit it), an
/// ordinary buffer: uploads are then synchronous, results the same.
fn staging_tensor(device: Device, shape: [i64; 4]) -> Result<Tensor, TchError> {
    if let Device::Cuda(index) = device {
        let pinned = Tensor::f_empty(shape, (Kind::Uint8, device))
            .and_then(|t| t.f_to_device_(Device::Cpu, Kind::Uint8, true, false));
        tch::Cuda::synchronize(index as i64);
        match pinned {
            Ok(pinned) => return Ok(pinned),
            Err(e) => tracing::warn!("no page-locked memory for uploads ({e}); copying synchronously"),
        }
    }
    Tensor::f_empty(shape, (Kind::Uint8, Device::Cpu))
}

impl From<EngineError> for crate::frame::StageError {
    fn from(error: EngineError) -> Self {
        crate::frame::StageError::new(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_over_the_work_size_keep_their_shape_at_it() {
        let config = crate::model::GeneratorConfig { base_channels: 4, residual_blocks: 1, ..Default::default() };
        let model = StyleModel::init(config, 1, "test");
        let engine = Engine::new(model).with_work_size(960);
        assert_eq!(engine.work_dimensions(1920, 1080), (960, 540));
        assert_eq!(engine.work_dimensions(1080, 1920), (540, 960));
        assert_eq!(engine.work_dimensions(4000, 3000), (960, 720));
        assert_eq!(engine.work_dimensions(1000, 2), (960, 2));
        assert_eq!(engine.work_dimensions(5000, 2), (960, 1), "never a side of 0");
        assert_eq!(engine.work_dimensions(960, 540), (960, 540));
        assert_eq!(engine.with_work_size(0).work_dimensions(1920, 1080), (1920, 1080), "0: full size");
    }

    #[test]
    fn whole_frames_that_would_crowd_memory_are_tiled() {
        // 32 channels, f32: 1080p ≈ 2.0 GB, 4K ≈ 8.0 GB.
        let hd = whole_frame_bytes(32, 1920, 1080, 1, Kind::Float);
        let uhd = whole_frame_bytes(32, 3840, 2160, 1, Kind::Float);
        assert!((1.7e9..2.2e9).contains(&hd), "{hd}");
        assert!((uhd / hd - 4.0).abs() < 1e-9);
        assert_eq!(whole_frame_bytes(32, 1920, 1080, 1, Kind::BFloat16) * 2.0, hd);
        let gib = 1024f64.powi(3);
        assert!(!crowds_memory(hd, 24.0 * gib), "1080p on this machine: whole");
        assert!(crowds_memory(uhd, 8.0 * gib), "4K with 8 GiB free: tiles");
        assert!(crowds_memory(hd, 2.0 * gib));
        // Exact tiles of 4K keep about 3.2 GB between segments: on disk with 4 GiB free.
        let exact_uhd = exact_tiles_bytes(32, 3840, 2160, Kind::Float);
        assert!((3.0e9..3.4e9).contains(&exact_uhd), "{exact_uhd}");
        assert!(crowds_memory(exact_uhd, 4.0 * gib) && !crowds_memory(exact_uhd, 8.0 * gib));
    }

    #[test]
    fn the_cpu_runs_one_frame_at_a_time_unless_asked() {
        let model = StyleModel::init(
            crate::model::GeneratorConfig { base_channels: 4, residual_blocks: 1, ..Default::default() },
            0,
            "test",
        );
        let engine = Engine::new(model);
        assert_eq!((engine.automatic_batch(1920, 1080), engine.batches_in_flight()), (1, 1));
    }

    #[test]
    fn the_cpu_tiles_frames_over_512_px_by_itself_with_the_same_output() {
        let model = || {
            StyleModel::init(
                crate::model::GeneratorConfig {
                    base_channels: 4,
                    residual_blocks: 1,
                    upsampling: crate::model::Upsampling::Resize,
                    input_skip: true,
                    outlines: true,
                    ..Default::default()
                },
                0,
                "test",
            )
        };
        let run = |engine: &mut Engine, frame: &Frame| {
            let mut out = vec![Vec::new()];
            tch::no_grad(|| engine.stylize(&[frame], &mut out)).unwrap();
            out.remove(0)
        };
        let frame = |width: u32, height: u32| Frame {
            width,
            height,
            data: (0..width * height * 3).map(|i| ((i * 37 + i / 7) % 256) as u8).collect(),
            pts: None,
            index: 0,
        };
        // 700 × 300 is cut into two tiles; 512 × 300 fits in one and stays whole.
        let (big, small) = (frame(700, 300), frame(512, 300));
        let mut automatic = Engine::new(model()).with_automatic_tiles();
        let tiled = run(&mut automatic, &big);
        assert!(automatic.tiled.is_some(), "over 512 px the CPU runs tiles");
        let whole = run(&mut Engine::new(model()), &big);
        let worst = tiled.iter().zip(&whole).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        assert!(worst <= 1, "exact tiles give the whole frame's output (float rounding): {worst}");
        let mut automatic = Engine::new(model()).with_automatic_tiles();
        run(&mut automatic, &small);
        assert!(automatic.tiled.is_none(), "a frame of one tile stays whole");
    }

    #[test]
    fn padding_grid() {
        assert_eq!([1, 4, 5, 8, 9, 17, 1080].map(padded), [8, 8, 8, 8, 12, 20, 1080]);
        let x = Tensor::arange(3 * 5, (Kind::Float, Device::Cpu)).view([1, 1, 3, 5]);
        let p = pad_to_grid(&x, 3, 5).unwrap();
        assert_eq!(p.size(), vec![1, 1, 8, 8]); // pads of 5 and 3 exceed the sides: replicate
        let x = Tensor::arange(9 * 10, (Kind::Float, Device::Cpu)).view([1, 1, 9, 10]);
        let p = pad_to_grid(&x, 9, 10).unwrap();
        assert_eq!(p.size(), vec![1, 1, 12, 12]);
        // reflection: column 10 mirrors column 8
        assert_eq!(p.double_value(&[0, 0, 0, 10]), 8.0);
        assert_eq!(p.double_value(&[0, 0, 9, 0]), 70.0);
    }
}
