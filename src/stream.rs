//! The staged stylize stream: source → engine → sink, each on its own thread, joined by
//! bounded channels, so decoding and encoding overlap inference and memory stays fixed by
//! the channel bounds whatever the video's length.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::Engine;
use crate::frame::{Frame, FramePool, FrameSink, FrameSource, Item, Passthrough};

/// How a stream runs.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Frames per generator call.
    pub batch: usize,
    /// Capacity of each channel between stages, in items.
    pub queue: usize,
    /// Frames expected, for the progress bar's ETA.
    pub expected_frames: Option<u64>,
    /// Draw a progress bar (on a terminal) or log progress.
    pub progress: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self { batch: 1, queue: 4, expected_frames: None, progress: false }
    }
}

/// Figures from a finished stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamStats {
    /// Frames written.
    pub frames: u64,
    /// Wall-clock time of the whole stream.
    pub elapsed: Duration,
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
) -> Result<StreamStats, crate::Error> {
    let start = Instant::now();
    let batch = options.batch.max(1);
    let queue = options.queue.max(1);
    // Buffers in flight: two queues, a batch in and a batch out, one being decoded.
    let pool = FramePool::new(2 * queue + 2 * batch + 1);
    let (to_engine, from_source) = bounded::<Result<Item, crate::Error>>(queue);
    let (to_sink, from_engine) = bounded::<ToSink>(queue);
    let bar = progress_bar(options);

    std::thread::scope(|scope| {
        let source_pool = pool.clone();
        let source_thread = scope.spawn(move || loop {
            let item = match source.next_item(&source_pool) {
                Ok(Some(item)) => Ok(item),
                Ok(None) => break,
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if to_engine.send(item).is_err() || failed {
                break;
            }
        });
        let sink_pool = pool.clone();
        let sink_bar = bar.clone();
        let log = options.progress && !std::io::stderr().is_terminal();
        let sink_thread = scope.spawn(move || sink_stage(sink.as_mut(), from_engine, &sink_pool, &sink_bar, log));

        let engine_result = tch::no_grad(|| engine_stage(engine, from_source, &to_sink, &pool, batch));
        if engine_result.is_ok() {
            let _ = to_sink.send(ToSink::End);
        }
        drop(to_sink);
        let sink_result =
            sink_thread.join().unwrap_or_else(|_| Err(crate::Error::Internal("the output stage panicked".into())));
        // The source stops on its own once the engine's receiver is gone.
        let _ = source_thread.join();
        bar.finish_and_clear();
        // A sink error (e.g. a closed pipe) is the cause when both failed.
        let frames = sink_result?;
        engine_result?;
        Ok(StreamStats { frames, elapsed: start.elapsed() })
    })
}

fn engine_stage(
    engine: &mut Engine,
    from_source: Receiver<Result<Item, crate::Error>>,
    to_sink: &Sender<ToSink>,
    pool: &FramePool,
    batch: usize,
) -> Result<(), crate::Error> {
    let mut pending: Vec<Frame> = Vec::with_capacity(batch);
    let mut outputs: Vec<Vec<u8>> = Vec::with_capacity(batch);
    let mut flush = |pending: &mut Vec<Frame>| -> Result<bool, crate::Error> {
        if pending.is_empty() {
            return Ok(true);
        }
        outputs.clear();
        outputs.extend(pending.iter().map(|f| pool.take(f.data.len())));
        let inputs: Vec<&Frame> = pending.iter().collect();
        engine.stylize(&inputs, &mut outputs)?;
        for (mut frame, stylized) in pending.drain(..).zip(outputs.drain(..)) {
            pool.give(std::mem::replace(&mut frame.data, stylized));
            if to_sink.send(ToSink::Frame(frame)).is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    };
    for item in from_source {
        match item? {
            Item::Frame(frame) => {
                // Frames of another size start a new batch.
                if pending.first().is_some_and(|p| (p.width, p.height) != (frame.width, frame.height))
                    && !flush(&mut pending)?
                {
                    return Ok(());
                }
                pending.push(frame);
                if pending.len() == batch && !flush(&mut pending)? {
                    return Ok(());
                }
            }
            Item::Passthrough(p) => {
                // Forwarded at once: the muxer interleaves by timestamp.
                if to_sink.send(ToSink::Passthrough(p)).is_err() {
                    return Ok(());
                }
            }
        }
    }
    flush(&mut pending)?;
    Ok(())
}

fn sink_stage(
    sink: &mut dyn FrameSink,
    from_engine: Receiver<ToSink>,
    pool: &FramePool,
    bar: &ProgressBar,
    log: bool,
) -> Result<u64, crate::Error> {
    let mut frames = 0u64;
    let start = Instant::now();
    let mut last_log = start;
    for message in from_engine {
        match message {
            ToSink::Frame(frame) => {
                sink.write_frame(&frame)?;
                pool.give(frame.data);
                frames += 1;
                bar.inc(1);
                if log && last_log.elapsed() >= Duration::from_secs(10) {
                    last_log = Instant::now();
                    let fps = frames as f64 / start.elapsed().as_secs_f64();
                    tracing::info!("{frames} frames written, {fps:.2} frames/s");
                }
            }
            ToSink::Passthrough(p) => sink.write_passthrough(p)?,
            ToSink::End => {
                sink.finish()?;
                return Ok(frames);
            }
        }
    }
    // The engine stopped early: its error is reported by `run`.
    Ok(frames)
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
