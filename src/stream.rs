//! The staged stylize stream: source → engine → sink, each on its own thread, joined by
//! bounded channels, so decoding and encoding overlap inference and memory stays fixed by
//! the channel bounds whatever the video's length.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::{Engine, Submitted};
use crate::frame::{Frame, FramePool, FrameSink, FrameSource, Item, Passthrough, PoolReturn, StageError};

/// How a stream runs.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Frames per generator call.
    pub batch: usize,
    /// Batches kept on the device before the oldest is collected; `None`: the engine's
    /// choice ([`Engine::batches_in_flight`]), 1 turns the overlap off.
    pub in_flight: Option<usize>,
    /// Capacity of each channel between stages, in items.
    pub queue: usize,
    /// Frames expected, for the progress bar's ETA.
    pub expected_frames: Option<u64>,
    /// Draw a progress bar (on a terminal) or log progress.
    pub progress: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self { batch: 1, in_flight: None, queue: 4, expected_frames: None, progress: false }
    }
}

/// Figures from a finished stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamStats {
    /// Frames written.
    pub frames: u64,
    /// Wall-clock time of the whole stream.
    pub elapsed: Duration,
    /// Time the source spent producing items (decoding, reading).
    pub source_busy: Duration,
    /// Time the engine spent submitting and collecting batches, waiting for the device
    /// included (not waiting for frames or for room downstream).
    pub engine_busy: Duration,
    /// Time the sink spent writing (encoding).
    pub sink_busy: Duration,
}

impl StreamStats {
    /// Each stage's busy time as a share of the whole run (source, engine, sink): the
    /// stage near 100 % limits the stream.
    pub fn busy_shares(&self) -> [f64; 3] {
        let total = self.elapsed.as_secs_f64().max(1e-9);
        [self.source_busy, self.engine_busy, self.sink_busy].map(|d| d.as_secs_f64() / total)
    }
}

enum ToSink {
    Frame(Frame),
    Passthrough(Passthrough),
    End,
}

/// Runs `source` through `engine` into `sink`. The engine runs on the calling thread (libtorch
/// tensors and `no_grad` are per thread); source and sink get a thread each. The first error
/// of any stage stops all three, and the sink is finished only after a complete run.
pub fn run(
    mut source: Box<dyn FrameSource + '_>,
    engine: &mut Engine,
    mut sink: Box<dyn FrameSink + '_>,
    options: &StreamOptions,
) -> Result<StreamStats, StageError> {
    let start = Instant::now();
    let batch = options.batch.max(1);
    let queue = options.queue.max(1);
    let in_flight = options.in_flight.unwrap_or_else(|| engine.batches_in_flight()).max(1);
    // Two rings of idle buffers, each with one giver and one taker: the engine hands the
    // source's frames back to the source, the sink hands the engine's results back to the
    // engine. Each holds what its stages can have in use at once: input frames in the queue,
    // on the device, being batched and being decoded; results in the queue, being collected
    // and being written.
    let (mut source_pool, inputs_back) = FramePool::new(queue + (in_flight + 1) * batch + 1);
    let (engine_pool, mut results_back) = FramePool::new(queue + batch + 1);
    let (to_engine, from_source) = bounded::<Result<Item, StageError>>(queue);
    let (to_sink, from_engine) = bounded::<ToSink>(queue);
    let bar = progress_bar(options);

    std::thread::scope(|scope| {
        let source_thread = scope.spawn(move || {
            let mut busy = Duration::ZERO;
            loop {
                let started = Instant::now();
                let item = match source.next_item(&mut source_pool) {
                    Ok(Some(item)) => Ok(item),
                    Ok(None) => break,
                    Err(e) => Err(e),
                };
                busy += started.elapsed();
                let failed = item.is_err();
                if to_engine.send(item).is_err() || failed {
                    break;
                }
            }
            busy
        });
        let sink_bar = bar.clone();
        let log = options.progress && !std::io::stderr().is_terminal();
        let sink_thread =
            scope.spawn(move || sink_stage(sink.as_mut(), from_engine, &mut results_back, &sink_bar, log));

        let mut stage = EngineStage {
            engine,
            to_sink: &to_sink,
            pool: engine_pool,
            inputs_back,
            submitted: VecDeque::with_capacity(in_flight + 1),
            outputs: Vec::with_capacity(batch),
            busy: Duration::ZERO,
        };
        let engine_result = tch::no_grad(|| stage.run(from_source, batch, in_flight - 1));
        let engine_busy = stage.busy;
        if engine_result.is_ok() {
            let _ = to_sink.send(ToSink::End);
        }
        drop(to_sink);
        let sink_result =
            sink_thread.join().unwrap_or_else(|_| Err(StageError::msg("internal error: the output stage panicked")));
        // The source stops on its own once the engine's receiver is gone.
        let source_busy = source_thread.join().unwrap_or_default();
        bar.finish_and_clear();
        // A sink error (e.g. a closed pipe) is the cause when both failed.
        let (frames, sink_busy) = sink_result?;
        engine_result?;
        Ok(StreamStats { frames, elapsed: start.elapsed(), source_busy, engine_busy, sink_busy })
    })
}

/// The engine's side of a stream: batches frames, keeps up to a number of batches on the
/// device, and hands results on in order.
struct EngineStage<'a> {
    engine: &'a mut Engine,
    to_sink: &'a Sender<ToSink>,
    /// Buffers for results, given back by the sink.
    pool: FramePool,
    /// Where the source's frames go once their results are out.
    inputs_back: PoolReturn,
    /// Batches on the device, oldest first, with their frames (whose metadata the results take).
    submitted: VecDeque<(Vec<Frame>, Submitted)>,
    outputs: Vec<Vec<u8>>,
    busy: Duration,
}

impl EngineStage<'_> {
    /// Runs until the source ends; `keep` batches may stay on the device after a submit.
    fn run(
        &mut self,
        from_source: Receiver<Result<Item, StageError>>,
        batch: usize,
        keep: usize,
    ) -> Result<(), StageError> {
        let mut pending: Vec<Frame> = Vec::with_capacity(batch);
        for item in from_source {
            match item? {
                Item::Frame(frame) => {
                    // Frames of another size start a new batch.
                    if pending.first().is_some_and(|p| (p.width, p.height) != (frame.width, frame.height))
                        && !self.flush(&mut pending, keep)?
                    {
                        return Ok(());
                    }
                    pending.push(frame);
                    if pending.len() == batch && !self.flush(&mut pending, keep)? {
                        return Ok(());
                    }
                }
                Item::Passthrough(p) => {
                    // Forwarded at once: the muxer interleaves by timestamp.
                    if self.to_sink.send(ToSink::Passthrough(p)).is_err() {
                        return Ok(());
                    }
                }
            }
        }
        self.flush(&mut pending, 0)?;
        Ok(())
    }

    /// Submits the pending frames, then collects the oldest batches until at most `keep`
    /// remain, so the device runs one batch while the previous one's results are handed on.
    /// `false` once the sink is gone.
    fn flush(&mut self, pending: &mut Vec<Frame>, keep: usize) -> Result<bool, StageError> {
        if !pending.is_empty() {
            let started = Instant::now();
            let batch = self.engine.submit(&pending.iter().collect::<Vec<_>>())?;
            self.busy += started.elapsed();
            self.submitted.push_back((std::mem::take(pending), batch));
        }
        while self.submitted.len() > keep {
            if !self.collect_oldest()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Collects the oldest batch and sends its frames on; `false` once the sink is gone.
    fn collect_oldest(&mut self) -> Result<bool, StageError> {
        let Some((frames, batch)) = self.submitted.pop_front() else { return Ok(true) };
        self.outputs.clear();
        self.outputs.extend(frames.iter().map(|f| self.pool.take(f.data.len())));
        let started = Instant::now();
        self.engine.collect(batch, &mut self.outputs)?;
        self.busy += started.elapsed();
        for (mut frame, stylized) in frames.into_iter().zip(self.outputs.drain(..)) {
            self.inputs_back.give(std::mem::replace(&mut frame.data, stylized));
            if self.to_sink.send(ToSink::Frame(frame)).is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn sink_stage(
    sink: &mut dyn FrameSink,
    from_engine: Receiver<ToSink>,
    results_back: &mut PoolReturn,
    bar: &ProgressBar,
    log: bool,
) -> Result<(u64, Duration), StageError> {
    let mut frames = 0u64;
    let mut busy = Duration::ZERO;
    let start = Instant::now();
    let mut last_log = start;
    for message in from_engine {
        match message {
            ToSink::Frame(frame) => {
                let started = Instant::now();
                sink.write_frame(&frame)?;
                busy += started.elapsed();
                results_back.give(frame.data);
                frames += 1;
                bar.inc(1);
                if log && last_log.elapsed() >= Duration::from_secs(10) {
                    last_log = Instant::now();
                    let fps = frames as f64 / start.elapsed().as_secs_f64();
                    tracing::info!("{frames} frames written, {fps:.2} frames/s");
                }
            }
            ToSink::Passthrough(p) => {
                let started = Instant::now();
                sink.write_passthrough(p)?;
                busy += started.elapsed();
            }
            ToSink::End => {
                let started = Instant::now();
                sink.finish()?;
                return Ok((frames, busy + started.elapsed()));
            }
        }
    }
    // The engine stopped early: its error is reported by `run`.
    Ok((frames, busy))
}

fn progress_bar(options: &StreamOptions) -> ProgressBar {
    if !options.progress {
        return ProgressBar::hidden();
    }
    let bar = match options.expected_frames {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    let template = if options.expected_frames.is_some() {
        "{elapsed_precise} [{wide_bar}] {pos}/{len} frames, {per_sec}, ETA {eta}"
    } else {
        "{elapsed_precise} {pos} frames, {per_sec}"
    };
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::model::{GeneratorConfig, StyleModel};

    /// Frames of two sizes with a passthrough item between them.
    struct Frames(Vec<Item>);

    impl FrameSource for Frames {
        fn next_item(&mut self, _pool: &mut FramePool) -> Result<Option<Item>, StageError> {
            Ok((!self.0.is_empty()).then(|| self.0.remove(0)))
        }
    }

    #[derive(Default, Clone)]
    struct Collected(Arc<Mutex<(Vec<Frame>, usize, bool)>>);

    impl FrameSink for Collected {
        fn write_frame(&mut self, frame: &Frame) -> Result<(), StageError> {
            self.0.lock().unwrap().0.push(frame.clone());
            Ok(())
        }
        fn write_passthrough(&mut self, _item: Passthrough) -> Result<(), StageError> {
            self.0.lock().unwrap().1 += 1;
            Ok(())
        }
        fn finish(&mut self) -> Result<(), StageError> {
            self.0.lock().unwrap().2 = true;
            Ok(())
        }
    }

    fn frames() -> Frames {
        let frame = |index: u64, width: u32, height: u32| {
            let data = (0..Frame::byte_len(width, height)).map(|j| (j as u64 * 13 + index * 71) as u8).collect();
            Item::Frame(Frame { width, height, data, pts: Some(index as i64 * 10), index })
        };
        let mut items: Vec<Item> = (0..5).map(|i| frame(i, 12, 8)).collect();
        items.push(Item::Passthrough(Box::new(0u8)));
        items.extend((5..9).map(|i| frame(i, 8, 12)));
        Frames(items)
    }

    #[test]
    fn batches_in_flight_change_nothing_but_timing() {
        let model =
            StyleModel::init(GeneratorConfig { base_channels: 4, residual_blocks: 1, ..Default::default() }, 3, "test");
        let mut engine = Engine::new(model);
        let mut results = Vec::new();
        for in_flight in [1, 2, 3] {
            let sink = Collected::default();
            let options = StreamOptions { batch: 2, in_flight: Some(in_flight), queue: 1, ..Default::default() };
            let stats = run(Box::new(frames()), &mut engine, Box::new(sink.clone()), &options).unwrap();
            let (written, passthrough, finished) = sink.0.lock().unwrap().clone();
            assert_eq!((stats.frames, passthrough, finished), (9, 1, true), "in flight {in_flight}");
            let order: Vec<(u64, Option<i64>, u32)> = written.iter().map(|f| (f.index, f.pts, f.width)).collect();
            let expected: Vec<(u64, Option<i64>, u32)> =
                (0..9).map(|i| (i, Some(i as i64 * 10), if i < 5 { 12 } else { 8 })).collect();
            assert_eq!(order, expected, "frames keep their order and metadata");
            results.push(written);
        }
        assert_eq!(results[0], results[1]);
        assert_eq!(results[0], results[2]);
        // And they are the generator's output, not the input passed through.
        let Item::Frame(first) = frames().0.remove(0) else { unreachable!() };
        let mut direct = vec![Vec::new()];
        tch::no_grad(|| engine.stylize(&[&first], &mut direct)).unwrap();
        assert_eq!(results[0][0].data, direct[0]);
        assert_ne!(results[0][0].data, first.data);
    }

    #[test]
    fn frames_whose_bytes_do_not_match_their_size_are_refused() {
        let model =
            StyleModel::init(GeneratorConfig { base_channels: 4, residual_blocks: 1, ..Default::default() }, 3, "test");
        let mut engine = Engine::new(model);
        let frame = Frame { width: 8, height: 8, data: vec![0; 10], pts: None, index: 0 };
        let err = tch::no_grad(|| engine.submit(&[&frame])).err().expect("refused");
        assert!(err.to_string().contains("must hold 192 bytes of RGB, not 10"), "{err}");
    }
}
