//! Splitting one video into parts that separate machines stylize (`stylize --part K/N`) and
//! `join` puts back together. Everything here is arithmetic on the video's frame table (each
//! frame's timestamp, which frames are key frames), so every worker computes the same plan
//! from the input alone, without talking to the others.
//!
//! Part K of N covers the frames ⌊K·F/N⌋ .. ⌊(K+1)·F/N⌋ in display order: the parts share
//! the work evenly and their union is every frame once. A part need not start at a key
//! frame: it decodes from the last key frame before it (and before its warm-up, the frames
//! a temporally smoothed run must see first) and drops what comes before its first frame.

use std::fmt;
use std::str::FromStr;

/// Why a part cannot be planned or named.
#[derive(Debug, thiserror::Error)]
pub enum PartError {
    /// `--part` text that is not `K/N` or `auto/N`.
    #[error("--part {0:?}: expected K/N (K from 0 to N-1) or auto/N")]
    Syntax(String),
    /// `auto/N` outside an array task.
    #[error(
        "--part auto/{0}: neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set (run it as a SLURM array task or \
         a Kubernetes Indexed Job, or give K/N)"
    )]
    NoTaskIndex(u32),
    /// K not below N.
    #[error("--part {index}/{count}: the part number must be below {count} (parts count from 0)")]
    OutOfRange {
        /// K.
        index: u32,
        /// N.
        count: u32,
    },
    /// More parts than frames.
    #[error("the video has {frames} frames: it cannot be cut into {parts} parts")]
    TooManyParts {
        /// Frames in the video.
        frames: u64,
        /// Parts asked for.
        parts: u32,
    },
    /// A frame table that cannot be planned on.
    #[error("{0}")]
    Table(String),
}

/// Which part of how many: `K/N`, K from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct PartSpec {
    /// K, from 0.
    pub index: u32,
    /// N.
    pub count: u32,
}

impl PartSpec {
    /// A part, checked.
    pub fn new(index: u32, count: u32) -> Result<Self, PartError> {
        if count == 0 || index >= count {
            return Err(PartError::OutOfRange { index, count });
        }
        Ok(Self { index, count })
    }

    /// `K/N`, or `auto/N` with K from `task_index` (the scheduler's array index: see
    /// [`task_index_from_env`]).
    pub fn parse(text: &str, task_index: Option<u32>) -> Result<Self, PartError> {
        let syntax = || PartError::Syntax(text.to_string());
        let (k, n) = text.split_once('/').ok_or_else(syntax)?;
        let count: u32 = n.trim().parse().map_err(|_| syntax())?;
        let index = if k.trim() == "auto" {
            task_index.ok_or(PartError::NoTaskIndex(count))?
        } else {
            k.trim().parse().map_err(|_| syntax())?
        };
        Self::new(index, count)
    }
}

impl fmt::Display for PartSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The array index of this task: `SLURM_ARRAY_TASK_ID` (a SLURM job array), else
/// `JOB_COMPLETION_INDEX` (a Kubernetes Indexed Job).
pub fn task_index_from_env() -> Option<u32> {
    ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"]
        .iter()
        .find_map(|name| std::env::var(name).ok().and_then(|v| v.trim().parse().ok()))
}

/// A video's frames as its packets describe them, read without decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameTable {
    /// Every frame's presentation timestamp, in display order (ascending), in the stream's
    /// time base.
    pub pts: Vec<i64>,
    /// Display indices of the key frames (where decoding can start), ascending.
    pub keyframes: Vec<usize>,
    /// The stream's time base, numerator and denominator.
    pub time_base: (i32, i32),
}

impl FrameTable {
    /// A table from each packet's (pts, is key frame), in any order. Duplicate timestamps
    /// are refused: frames could not be told apart.
    pub fn from_packets(mut packets: Vec<(i64, bool)>, time_base: (i32, i32)) -> Result<Self, PartError> {
        packets.sort_unstable();
        if let Some(pair) = packets.windows(2).find(|p| p[0].0 == p[1].0) {
            return Err(PartError::Table(format!("two video frames have the same timestamp {}", pair[0].0)));
        }
        let keyframes = packets.iter().enumerate().filter(|(_, p)| p.1).map(|(i, _)| i).collect();
        Ok(Self { pts: packets.into_iter().map(|p| p.0).collect(), keyframes, time_base })
    }

    /// Number of frames.
    pub fn frames(&self) -> u64 {
        self.pts.len() as u64
    }

    /// The display index of the frame with timestamp `pts`, if it is one of the table's.
    pub fn index_of(&self, pts: i64) -> Option<u64> {
        self.pts.binary_search(&pts).ok().map(|i| i as u64)
    }

    /// A 64-bit fingerprint of the table (FNV-1a over time base, timestamps and key frames):
    /// parts made from the same video carry the same one, so `join` can refuse a part of
    /// another video.
    pub fn fingerprint(&self) -> u64 {
        let mut hash = Fnv::default();
        hash.write(&self.time_base.0.to_le_bytes());
        hash.write(&self.time_base.1.to_le_bytes());
        for pts in &self.pts {
            hash.write(&pts.to_le_bytes());
        }
        for key in &self.keyframes {
            hash.write(&(*key as u64).to_le_bytes());
        }
        hash.0
    }

    /// The plan for `part`, whose run must see `warm_up` frames before its first, and whose
    /// decoding must see `look_back` pictures before those (a deinterlacer's one).
    pub fn plan(&self, part: PartSpec, warm_up: u64, look_back: u64) -> Result<PartPlan, PartError> {
        let frames = self.frames();
        if frames < u64::from(part.count) {
            return Err(PartError::TooManyParts { frames, parts: part.count });
        }
        let bound = |k: u32| u64::from(k) * frames / u64::from(part.count);
        let (first, end) = (bound(part.index), bound(part.index + 1));
        let warm_first = first.saturating_sub(warm_up);
        // The last key frame at or before the first frame to decode; none: the file's start.
        let decode_first = warm_first.checked_sub(look_back);
        let decode_from = decode_first
            .and_then(|d| self.keyframes.iter().rev().find(|&&k| k as u64 <= d).map(|&k| (k as u64, self.pts[k])));
        Ok(PartPlan { part, first, end, warm_first, decode_from, total: frames })
    }
}

/// What one part does: the frames it writes and where it starts decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    /// Which part.
    pub part: PartSpec,
    /// Display index of its first frame.
    pub first: u64,
    /// One past its last frame.
    pub end: u64,
    /// The first frame it runs through the network: `warm_up` frames before `first` (those
    /// are not written).
    pub warm_first: u64,
    /// The key frame it decodes from (display index, timestamp); `None`: the start of the file.
    pub decode_from: Option<(u64, i64)>,
    /// Frames in the whole video.
    pub total: u64,
}

impl PartPlan {
    /// Frames it writes.
    pub fn frames(&self) -> u64 {
        self.end - self.first
    }
}

/// What a finished part file carries (in its container's `comment` tag), so that `join`
/// can check it belongs with the others: which part, which frames, which video, which settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartLabel {
    /// Which part.
    pub part: PartSpec,
    /// Its frames, first .. end.
    pub first: u64,
    /// One past its last frame.
    pub end: u64,
    /// Frames in the whole video.
    pub total: u64,
    /// [`FrameTable::fingerprint`] of the source.
    pub source: u64,
    /// Fingerprint of everything that shapes the pictures (model, encoder, options).
    pub settings: u64,
}

const LABEL_PREFIX: &str = "japanim-part/1";

impl fmt::Display for PartLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{LABEL_PREFIX} part={} frames={}..{} of={} source={:016x} settings={:016x}",
            self.part, self.first, self.end, self.total, self.source, self.settings
        )
    }
}

impl FromStr for PartLabel {
    type Err = PartError;

    fn from_str(text: &str) -> Result<Self, PartError> {
        let bad = || PartError::Table(format!("not a japanim part label: {text:?}"));
        let mut words = text.split_whitespace();
        if words.next() != Some(LABEL_PREFIX) {
            return Err(bad());
        }
        let mut field = |name: &str| {
            words.next().and_then(|w| w.strip_prefix(name)).and_then(|w| w.strip_prefix('=')).ok_or_else(bad)
        };
        let part = PartSpec::parse(field("part")?, None).map_err(|_| bad())?;
        let (first, end) = field("frames")?.split_once("..").ok_or_else(bad)?;
        let number = |t: &str| t.parse::<u64>().map_err(|_| bad());
        let (first, end) = (number(first)?, number(end)?);
        let total = number(field("of")?)?;
        let hex = |t: &str| u64::from_str_radix(t, 16).map_err(|_| bad());
        let source = hex(field("source")?)?;
        let settings = hex(field("settings")?)?;
        Ok(Self { part, first, end, total, source, settings })
    }
}

/// Decode timestamps for packets whose container kept only presentation timestamps (Matroska
/// does, with B-frames), from their presentation timestamps in decode order: each packet
/// gets the presentation time of the frame `d` places earlier in display order, where `d` is
/// the smallest delay that keeps every decode timestamp at or before its presentation; the
/// first `d` go back in steps of the shortest frame interval. The result rises strictly, as
/// a muxer requires, and for parts of one video cut as [`FrameTable::plan`] cuts it, part
/// after part: the next part's first decode timestamp lies `d` frames before its first frame.
pub fn decode_timestamps(decode_order_pts: &[i64]) -> Vec<i64> {
    let mut sorted = decode_order_pts.to_vec();
    sorted.sort_unstable();
    let rank = |pts: i64| sorted.partition_point(|&p| p < pts);
    let delay = decode_order_pts.iter().enumerate().map(|(i, &pts)| i.saturating_sub(rank(pts))).max().unwrap_or(0);
    let step = sorted.windows(2).map(|w| w[1] - w[0]).filter(|&d| d > 0).min().unwrap_or(1);
    (0..decode_order_pts.len())
        .map(|i| if i >= delay { sorted[i - delay] } else { sorted[0] - (delay - i) as i64 * step })
        .collect()
}

/// FNV-1a, 64 bit: a fingerprint that is the same on every machine and every build (std's
/// hasher promises neither).
#[derive(Debug, Clone, Copy)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Folds `bytes` in.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(frames: usize, every: usize) -> FrameTable {
        // Packets in decode order with B-frame reordering: timestamps not ascending.
        let mut packets: Vec<(i64, bool)> = (0..frames).map(|i| (i as i64 * 512 + 1024, i % every == 0)).collect();
        packets.swap(1, 2);
        FrameTable::from_packets(packets, (1, 12800)).unwrap()
    }

    #[test]
    fn parts_cover_every_frame_once_and_decode_from_a_key_frame_before_their_warm_up() {
        let t = table(101, 25);
        for n in [1, 3, 7, 101] {
            let mut next = 0;
            for k in 0..n {
                let plan = t.plan(PartSpec::new(k, n).unwrap(), 10, 0).unwrap();
                assert_eq!(plan.first, next, "part {k}/{n} starts where the last ended");
                assert!(plan.end > plan.first, "no part is empty");
                next = plan.end;
                assert_eq!(plan.warm_first, plan.first.saturating_sub(10));
                let (key, pts) = plan.decode_from.expect("frame 0 is a key frame");
                assert!(key <= plan.warm_first && key % 25 == 0 && pts == t.pts[key as usize]);
                assert!(t.keyframes.iter().all(|&k| k as u64 <= key || k as u64 > plan.warm_first));
            }
            assert_eq!(next, 101);
        }
        // Part 1 of 7 (frames 14..28) holds no key frame and decodes from frame 0.
        let plan = t.plan(PartSpec::new(1, 7).unwrap(), 0, 0).unwrap();
        assert_eq!((plan.first, plan.end, plan.decode_from), (14, 28, Some((0, 1024))));
        assert!(matches!(t.plan(PartSpec::new(0, 102).unwrap(), 0, 0), Err(PartError::TooManyParts { .. })));
    }

    #[test]
    fn a_look_back_starts_decoding_at_the_key_frame_before() {
        let t = table(100, 25);
        // Part 1 of 4 is frames 25..50 and frame 25 is a key frame.
        let part = PartSpec::new(1, 4).unwrap();
        assert_eq!(t.plan(part, 0, 0).unwrap().decode_from, Some((25, t.pts[25])));
        let plan = t.plan(part, 0, 1).unwrap();
        assert_eq!((plan.warm_first, plan.decode_from), (25, Some((0, t.pts[0]))));
        // Nothing before frame 0 to look back to: from the file's start.
        assert_eq!(t.plan(PartSpec::new(0, 4).unwrap(), 0, 1).unwrap().decode_from, None);
    }

    #[test]
    fn the_table_is_in_display_order_and_refuses_twin_timestamps() {
        let t = table(10, 4);
        assert!(t.pts.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(t.keyframes, [0, 4, 8]);
        assert_eq!(t.index_of(1024 + 512 * 3), Some(3));
        assert_eq!(t.index_of(1000), None);
        assert!(FrameTable::from_packets(vec![(0, true), (0, false)], (1, 25)).is_err());
        // The fingerprint sees the key frames and the timestamps.
        let mut other = t.clone();
        other.keyframes.pop();
        assert_ne!(t.fingerprint(), other.fingerprint());
        assert_eq!(t.fingerprint(), table(10, 4).fingerprint());
    }

    #[test]
    fn decode_timestamps_rise_and_never_pass_their_frames() {
        // I P B B P B B (display 0 3 1 2 6 4 5), frames 10 apart.
        let pts = [0, 30, 10, 20, 60, 40, 50];
        let dts = decode_timestamps(&pts);
        assert_eq!(dts, [-10, 0, 10, 20, 30, 40, 50]);
        assert!(dts.iter().zip(&pts).all(|(d, p)| d <= p));
        // A second part, continuing the first: still rising across the cut.
        let next = decode_timestamps(&[70, 100, 80, 90]);
        assert_eq!(next, [60, 70, 80, 90]);
        assert!(next[0] > *dts.last().unwrap());
        // No reordering: the timestamps as they are.
        assert_eq!(decode_timestamps(&[5, 6, 7]), [5, 6, 7]);
        assert!(decode_timestamps(&[]).is_empty());
    }

    #[test]
    fn part_text_is_parsed_and_checked() {
        assert_eq!(PartSpec::parse("2/7", None).unwrap(), PartSpec { index: 2, count: 7 });
        assert_eq!(PartSpec::parse("auto/7", Some(6)).unwrap(), PartSpec { index: 6, count: 7 });
        assert!(matches!(PartSpec::parse("auto/7", None), Err(PartError::NoTaskIndex(7))));
        assert!(matches!(PartSpec::parse("7/7", None), Err(PartError::OutOfRange { .. })));
        assert!(matches!(PartSpec::parse("1-3", None), Err(PartError::Syntax(_))));
        assert!(PartSpec::parse("0/0", None).is_err());
    }

    #[test]
    fn a_label_round_trips_through_its_text() {
        let label = PartLabel {
            part: PartSpec::new(3, 7).unwrap(),
            first: 42,
            end: 56,
            total: 99,
            source: 0xdead_beef_0123_4567,
            settings: 7,
        };
        let text = label.to_string();
        assert_eq!(
            text,
            "japanim-part/1 part=3/7 frames=42..56 of=99 source=deadbeef01234567 settings=0000000000000007"
        );
        assert_eq!(text.parse::<PartLabel>().unwrap(), label);
        assert!("japanim-part/1 part=3/7".parse::<PartLabel>().is_err());
        assert!("Lavf59.27.100".parse::<PartLabel>().is_err());
    }
}
