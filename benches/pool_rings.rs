//! The frame-buffer recycling of a stream, timed: the `ringbuf` rings that `stream::run` uses
//! (one single-producer single-consumer ring of idle buffers per pair of stages) against one
//! crossbeam channel shared by every stage (the pool before them). Two threads play a stage
//! and the next: the first takes a 1080p RGB buffer from the pool and sends it on (a bounded
//! crossbeam channel, as between the stages of a stream); the second gives it back.
//!
//! `cargo bench --bench pool_rings` prints, for each, the time spent in the pool's take and
//! give calls alone (the channel between the stages and its thread wake-ups are the same for
//! both and far larger, so they are left out), as nanoseconds per frame, median of nine runs.

use std::time::{Duration, Instant};

use japanim::frame::FramePool;

const FRAMES: usize = 200_000;
const FRAME_BYTES: usize = 1920 * 1080 * 3;
/// Idle buffers the pool keeps; the channel between the two stages holds `QUEUE`.
const CAPACITY: usize = 8;
const QUEUE: usize = 4;

/// Nanoseconds per frame in take and give, and buffers allocated (taken from an empty pool).
fn rings() -> (f64, usize) {
    let (mut pool, mut back) = FramePool::new(CAPACITY);
    let (to_next, from_first) = crossbeam_channel::bounded::<Vec<u8>>(QUEUE);
    let (busy, fresh) = std::thread::scope(|scope| {
        let first = scope.spawn(move || {
            let (mut busy, mut fresh) = (Duration::ZERO, 0);
            for _ in 0..FRAMES {
                fresh += usize::from(pool.idle() == 0);
                let started = Instant::now();
                let buffer = pool.take(FRAME_BYTES);
                busy += started.elapsed();
                to_next.send(buffer).expect("the next stage runs to the end");
            }
            (busy, fresh)
        });
        let next = scope.spawn(move || {
            let mut busy = Duration::ZERO;
            for buffer in from_first {
                let started = Instant::now();
                back.give(buffer);
                busy += started.elapsed();
            }
            busy
        });
        let (taking, fresh) = first.join().expect("no panic");
        (taking + next.join().expect("no panic"), fresh)
    });
    (busy.as_secs_f64() * 1e9 / FRAMES as f64, fresh)
}

/// The same with the previous pool: one bounded channel of idle buffers that any stage
/// takes from and gives to.
fn shared_channel() -> (f64, usize) {
    let (free_tx, free_rx) = crossbeam_channel::bounded::<Vec<u8>>(CAPACITY);
    let (to_next, from_first) = crossbeam_channel::bounded::<Vec<u8>>(QUEUE);
    let (busy, fresh) = std::thread::scope(|scope| {
        let first = scope.spawn(move || {
            let (mut busy, mut fresh) = (Duration::ZERO, 0);
            for _ in 0..FRAMES {
                let started = Instant::now();
                let mut buffer = free_rx.try_recv().unwrap_or_else(|_| {
                    fresh += 1;
                    Vec::new()
                });
                buffer.resize(FRAME_BYTES, 0);
                busy += started.elapsed();
                to_next.send(buffer).expect("the next stage runs to the end");
            }
            (busy, fresh)
        });
        let next = scope.spawn(move || {
            let mut busy = Duration::ZERO;
            for buffer in from_first {
                let started = Instant::now();
                let _ = free_tx.try_send(buffer);
                busy += started.elapsed();
            }
            busy
        });
        let (taking, fresh) = first.join().expect("no panic");
        (taking + next.join().expect("no panic"), fresh)
    });
    (busy.as_secs_f64() * 1e9 / FRAMES as f64, fresh)
}

fn main() {
    let median = |run: fn() -> (f64, usize)| {
        let mut runs: Vec<(f64, usize)> = (0..9).map(|_| run()).collect();
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        runs[4]
    };
    let (ring_ns, ring_fresh) = median(rings);
    let (channel_ns, channel_fresh) = median(shared_channel);
    println!("{FRAMES} frames of {FRAME_BYTES} bytes through two threads; time in take + give, median of 9:");
    println!("  ringbuf SPSC rings (stream::run):   {ring_ns:7.0} ns/frame, {ring_fresh} buffers allocated");
    println!("  one shared crossbeam channel:       {channel_ns:7.0} ns/frame, {channel_fresh} buffers allocated");
}
