//! Interlaced video (DVD films, 1080i camcorders and broadcasts) made progressive with
//! libavfilter's `bwdif`, one frame out for each frame in.
//!
//! Stylized as stored, each interlaced frame holds two moments a field apart: every moving
//! edge is a comb of alternating lines, which the generator draws as outlines, and key frames
//! and dataset crops keep the combs. `bwdif` (Bob Weaver: yadif's motion check with a
//! w3fdif-style interpolation) rebuilds the missing field of each frame from its neighbours;
//! frames the decoder marks progressive pass through unchanged. It looks one frame ahead and
//! one back, so a picture comes out one picture late, and a part of a video must start
//! decoding at least one frame before its first ([`LOOK_BACK`]).

use std::collections::VecDeque;

use ffmpeg_next as ffmpeg;

use ffmpeg::{format, frame, Rational};

use super::filter::VideoFilter;

/// Frames before a frame that the deinterlacer must have seen for that frame to come out as
/// in a run over the whole video.
pub const LOOK_BACK: u64 = 1;

/// A `bwdif` graph fed decoded pictures in order; pictures come out in the same order with
/// the timestamps they went in with.
pub struct Deinterlacer {
    filter: VideoFilter,
    /// Timestamps of the pictures in the graph, oldest first: `bwdif` doubles the time base,
    /// and its best-effort timestamp is not the pts it writes, so they are kept here.
    pending: VecDeque<Option<i64>>,
}

impl Deinterlacer {
    /// A graph for `width`×`height` pictures in `pixel` format whose pixels have the aspect
    /// `aspect`.
    pub fn new(width: u32, height: u32, pixel: format::Pixel, aspect: Rational) -> Result<Self, ffmpeg::Error> {
        // One frame per frame (not per field), field order from each frame, and only frames
        // the decoder marks interlaced are touched.
        let spec = "bwdif=mode=send_frame:parity=auto:deint=interlaced";
        Ok(Self { filter: VideoFilter::new(width, height, pixel, aspect, spec)?, pending: VecDeque::new() })
    }

    /// Feeds one decoded picture.
    pub fn push(&mut self, picture: &frame::Video, pts: Option<i64>) -> Result<(), ffmpeg::Error> {
        self.filter.push(picture)?;
        self.pending.push_back(pts);
        Ok(())
    }

    /// Tells the graph no more pictures come, so it lets the last one out; false when it
    /// was told before.
    pub fn flush(&mut self) -> Result<bool, ffmpeg::Error> {
        self.filter.flush()
    }

    /// The next progressive picture and its timestamp, if one is ready.
    pub fn pull(&mut self) -> Result<Option<(frame::Video, Option<i64>)>, ffmpeg::Error> {
        let mut picture = frame::Video::empty();
        if !self.filter.pull(&mut picture)? {
            return Ok(None);
        }
        Ok(Some((picture, self.pending.pop_front().flatten())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(value: u8, interlaced: bool) -> frame::Video {
        let mut picture = frame::Video::new(format::Pixel::YUV420P, 32, 16);
        for plane in 0..3 {
            picture.data_mut(plane).fill(if plane == 0 { value } else { 128 });
        }
        // Combs: odd lines of the luma plane belong to another moment.
        let stride = picture.stride(0);
        for y in (1..16).step_by(2) {
            picture.data_mut(0)[y * stride..y * stride + 32].fill(value.wrapping_add(100));
        }
        // SAFETY: the frame is ours; the flags are plain ints in FFmpeg 5.1.
        unsafe {
            (*picture.as_mut_ptr()).interlaced_frame = i32::from(interlaced);
            (*picture.as_mut_ptr()).top_field_first = 1;
        }
        picture
    }

    #[test]
    fn one_picture_out_for_each_in_with_its_timestamp_and_combs_removed() {
        crate::io::video::init();
        let mut deinterlacer = Deinterlacer::new(32, 16, format::Pixel::YUV420P, Rational(1, 1)).unwrap();
        let mut out = Vec::new();
        // Each picture's two fields differ by 100 and the pictures alternate: motion everywhere.
        let values = [20u8, 120, 20, 120];
        for (k, interlaced) in [true, true, false, true].into_iter().enumerate() {
            deinterlacer.push(&picture(values[k], interlaced), Some(k as i64 * 7)).unwrap();
            while let Some(o) = deinterlacer.pull().unwrap() {
                out.push(o);
            }
        }
        assert_eq!(out.len(), 3, "one picture late");
        deinterlacer.flush().unwrap();
        while let Some(o) = deinterlacer.pull().unwrap() {
            out.push(o);
        }
        let stamps: Vec<Option<i64>> = out.iter().map(|(_, pts)| *pts).collect();
        assert_eq!(stamps, [Some(0), Some(7), Some(14), Some(21)]);
        let rows = |p: &frame::Video| -> (u8, u8) { (p.data(0)[4 * p.stride(0)], p.data(0)[5 * p.stride(0)]) };
        // The progressive picture passes through; the interlaced ones keep their top field and
        // lose the comb.
        assert_eq!(rows(&out[2].0), (20, 120));
        for k in [0, 1, 3] {
            let (even, odd) = rows(&out[k].0);
            assert_eq!(even, values[k], "picture {k}");
            assert!(even.abs_diff(odd) < 30, "picture {k}: rows {even} and {odd}");
        }
    }
}
