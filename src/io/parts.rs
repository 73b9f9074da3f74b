//! The media side of splitting a video across machines (see [`crate::parts`]): the frame
//! table read from a file's packets, the source that decodes one part, and `join`, which
//! puts finished parts back together by copying their packets, with the source's audio and
//! subtitles muxed once, untouched.

use std::path::{Path, PathBuf};

use ffmpeg::{format, media, Packet, Rational, Rescale};
use ffmpeg_next as ffmpeg;

use super::video::{add_copied_stream, container_takes, display_matrix_of, set_display_matrix, VideoSource};
use crate::frame::{Frame, FramePool, FrameSink, FrameSource, Item, Passthrough, StageError};
use crate::parts::{FrameTable, PartLabel, PartPlan};

/// Why parts cannot be made or joined; each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum PartsError {
    /// An FFmpeg call failed.
    #[error("{path}: {step}: {source}")]
    Ffmpeg {
        /// The file.
        path: PathBuf,
        /// What japanim was doing.
        step: &'static str,
        /// FFmpeg's error.
        source: ffmpeg::Error,
    },
    /// A file that cannot be split, or a part that does not fit with the others.
    #[error("{path}: {reason}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A part is missing from the set given to `join`.
    #[error("part {part} is missing: {given}")]
    Missing {
        /// The part, K/N.
        part: String,
        /// The parts that were given.
        given: String,
    },
}

fn refused(path: &Path, reason: impl Into<String>) -> PartsError {
    PartsError::Refused { path: path.to_path_buf(), reason: reason.into() }
}

/// Video packets carry this flag when the demuxer wants their frame dropped (an edit list
/// cutting the start): such frames are not shown, so they are not in the table.
const DISCARD: i32 = ffmpeg::ffi::AV_PKT_FLAG_DISCARD;

/// The frame table of a file's best video stream, from its packets (no decoding).
pub fn scan_frames(path: &Path) -> Result<FrameTable, PartsError> {
    let (packets, time_base) = scan_packets(path)?;
    FrameTable::from_packets(packets.into_iter().map(|p| (p.pts, p.key)).collect(), time_base)
        .map_err(|e| refused(path, e.to_string()))
}

/// A video packet's presentation timestamp and key-frame flag.
#[derive(Debug, Clone, Copy)]
struct PacketTimes {
    pts: i64,
    key: bool,
}

/// The video packets of a file's best video stream in decode order, and its time base.
fn scan_packets(path: &Path) -> Result<(Vec<PacketTimes>, (i32, i32)), PartsError> {
    super::video::init();
    let err = |step, source| PartsError::Ffmpeg { path: path.to_path_buf(), step, source };
    let mut input = format::input(&path).map_err(|e| err("opening the file", e))?;
    let stream = input.streams().best(media::Type::Video).ok_or_else(|| refused(path, "no video stream"))?;
    let (index, time_base) = (stream.index(), stream.time_base());
    let mut packets = Vec::new();
    for (stream, packet) in input.packets() {
        if stream.index() != index || packet_flags(&packet) & DISCARD != 0 {
            continue;
        }
        let pts = packet.pts().ok_or_else(|| {
            refused(
                path,
                "its video packets carry no timestamps, so it cannot be cut into parts (remux it to .mkv or .mp4)",
            )
        })?;
        packets.push(PacketTimes { pts, key: packet.is_key() });
    }
    if packets.is_empty() {
        return Err(refused(path, "no video frames"));
    }
    Ok((packets, (time_base.numerator(), time_base.denominator())))
}

fn packet_flags(packet: &Packet) -> i32 {
    use ffmpeg::packet::Ref as _;
    // SAFETY: a packet read from a live context points to a valid AVPacket.
    unsafe { (*packet.as_ptr()).flags }
}

/// Decodes the frames of one part: from its key frame on, the pictures before its warm-up
/// are dropped undecoded-to-RGB, each frame is numbered by its place in the whole video, and
/// decoding stops after the part's last frame.
pub struct PartSource<'a> {
    video: VideoSource,
    table: &'a FrameTable,
    plan: PartPlan,
    /// Frames from `warm_first` on passed so far.
    passed: u64,
}

impl<'a> PartSource<'a> {
    /// The part `plan` of `video` (opened without forwarding: parts carry no audio).
    pub fn new(
        mut video: VideoSource,
        table: &'a FrameTable,
        plan: PartPlan,
    ) -> Result<Self, super::video::VideoError> {
        if let Some((_, pts)) = plan.decode_from {
            video.seek_to_keyframe(pts)?;
        }
        Ok(Self { video, table, plan, passed: 0 })
    }
}

impl FrameSource for PartSource<'_> {
    fn next_item(&mut self, pool: &mut FramePool) -> Result<Option<Item>, StageError> {
        let wanted = self.plan.end - self.plan.warm_first;
        while self.passed < wanted {
            let Some(event) = self.video.next_event()? else { break };
            let Ok(decoded) = event else { continue };
            // Pictures the table does not know (dropped by an edit list) are not frames.
            let Some(index) = decoded.pts.and_then(|pts| self.table.index_of(pts)) else { continue };
            if index < self.plan.warm_first || index >= self.plan.end {
                continue;
            }
            self.passed += 1;
            let frame = self.video.convert(&decoded, pool)?;
            return Ok(Some(Item::Frame(Frame { index, ..frame })));
        }
        if self.passed < wanted {
            return Err(StageError::msg(format!(
                "part {}: decoded {} of its {} frames (from frame {}): the video ends early or is damaged",
                self.plan.part, self.passed, wanted, self.plan.warm_first
            )));
        }
        Ok(None)
    }
}

/// A sink that writes only frames from `first` on: the frames before are a part's warm-up.
pub struct FromFrame<'a> {
    /// Where the part's own frames go.
    pub sink: Box<dyn FrameSink + 'a>,
    /// Display index of the first frame to write.
    pub first: u64,
}

impl FrameSink for FromFrame<'_> {
    fn write_frame(&mut self, frame: &Frame) -> Result<(), StageError> {
        if frame.index >= self.first {
            self.sink.write_frame(frame)?;
        }
        Ok(())
    }

    fn write_passthrough(&mut self, item: Passthrough) -> Result<(), StageError> {
        self.sink.write_passthrough(item)
    }

    fn finish(&mut self) -> Result<(), StageError> {
        self.sink.finish()
    }
}

/// A finished part as `join` reads it.
#[derive(Debug, Clone)]
pub struct PartFile {
    /// The file.
    pub path: PathBuf,
    /// What it says it is.
    pub label: PartLabel,
    /// Presentation timestamps of its video packets in decode order, in its own time base
    /// (which may be coarser than the source's: Matroska keeps milliseconds).
    pts: Vec<i64>,
}

/// Every part of one video, checked, in order, with the source's frame table.
#[derive(Debug, Clone)]
pub struct CheckedParts {
    /// The parts, part 0 first.
    pub parts: Vec<PartFile>,
    /// The source's frame table.
    pub table: FrameTable,
}

/// The label of a finished part file; `None` when the file has none (not a part).
pub fn read_label(path: &Path) -> Result<Option<PartLabel>, PartsError> {
    super::video::init();
    let input = format::input(&path).map_err(|source| PartsError::Ffmpeg {
        path: path.to_path_buf(),
        step: "opening the part",
        source,
    })?;
    let comment = input.metadata().get("comment").map(str::to_string);
    Ok(comment.and_then(|c| c.parse().ok()))
}

/// Reads and checks a part: its label, and that it holds the frames the label names.
fn open_part(path: &Path) -> Result<PartFile, PartsError> {
    let label = read_label(path)?.ok_or_else(|| {
        refused(path, "not a finished japanim part (no part label: a part still being written, or another file)")
    })?;
    let unfinished = |held: String| {
        refused(
            path,
            format!("part {} is unfinished: it holds {held} of its {} frames", label.part, label.end - label.first),
        )
    };
    let packets = match scan_packets(path) {
        Ok((packets, _)) => packets,
        Err(PartsError::Refused { .. }) => Vec::new(),
        Err(e) => return Err(unfinished(format!("no readable frames ({e})"))),
    };
    if packets.len() as u64 != label.end - label.first {
        return Err(unfinished(packets.len().to_string()));
    }
    Ok(PartFile { path: path.to_path_buf(), label, pts: packets.iter().map(|p| p.pts).collect() })
}

/// Checks that `parts` are every part of one run over `source` once; returns them in order.
pub fn check_parts(parts: &[PathBuf], source: &Path) -> Result<CheckedParts, PartsError> {
    let table = scan_frames(source)?;
    let mut files: Vec<PartFile> = parts.iter().map(|p| open_part(p)).collect::<Result<_, _>>()?;
    let Some(first) = files.first().cloned() else {
        return Err(refused(source, "no parts given"));
    };
    for file in &files {
        let (label, path) = (&file.label, &file.path);
        if label.source != table.fingerprint() || label.total != table.frames() {
            return Err(refused(
                path,
                format!("part {} was made from another video than {}", label.part, source.display()),
            ));
        }
        if label.part.count != first.label.part.count {
            return Err(refused(
                path,
                format!(
                    "part {} belongs to a split into {} parts, {} to one into {}",
                    label.part,
                    label.part.count,
                    first.path.display(),
                    first.label.part.count
                ),
            ));
        }
        let planned = table.plan(label.part, 0, 0).map_err(|e| refused(path, e.to_string()))?;
        if (label.first, label.end) != (planned.first, planned.end) {
            return Err(refused(
                path,
                format!(
                    "part {} says it holds frames {}..{}, but part {} of this video is frames {}..{}",
                    label.part, label.first, label.end, label.part, planned.first, planned.end
                ),
            ));
        }
        if label.settings != first.label.settings {
            return Err(refused(
                path,
                format!(
                    "part {} was made with other settings (model, encoder or options) than {}",
                    label.part,
                    first.path.display()
                ),
            ));
        }
    }
    files.sort_by_key(|f| f.label.part.index);
    for pair in files.windows(2) {
        if pair[0].label.part == pair[1].label.part {
            return Err(refused(
                &pair[1].path,
                format!("part {} is given twice (also {})", pair[1].label.part, pair[0].path.display()),
            ));
        }
    }
    let count = first.label.part.count;
    if let Some(k) = (0..count).find(|k| files.iter().all(|f| f.label.part.index != *k)) {
        let given = files.iter().map(|f| format!("{} is {}", f.path.display(), f.label.part)).collect::<Vec<_>>();
        return Err(PartsError::Missing { part: format!("{k}/{count}"), given: format!("given {}", given.join(", ")) });
    }
    Ok(CheckedParts { parts: files, table })
}

/// The source timestamps of every part's packets in decode order, all parts in a row: a
/// part's k-th frame in display order is frame `first + k` of the source.
fn source_timestamps(checked: &CheckedParts) -> Vec<i64> {
    let mut all = Vec::with_capacity(checked.table.pts.len());
    for part in &checked.parts {
        let mut sorted = part.pts.clone();
        sorted.sort_unstable();
        let first = part.label.first as usize;
        all.extend(part.pts.iter().map(|p| checked.table.pts[first + sorted.partition_point(|s| s < p)]));
    }
    all
}

/// What a join did.
#[derive(Debug, Clone, Copy)]
pub struct JoinReport {
    /// Video packets copied from the parts.
    pub video_packets: u64,
    /// Packets of the source's other streams copied.
    pub other_packets: u64,
}

/// Joins `checked` parts into `write_to` (named `shown` in errors), with the audio and
/// subtitle streams of `source` copied once, untouched. No frame is re-encoded. Each frame
/// takes back its source's exact timestamp (a part's container may have rounded it), and
/// decode timestamps are made afresh over the whole video ([`crate::parts::decode_timestamps`]),
/// so they rise across the cuts whatever each part's encoder or container wrote.
pub fn join(checked: &CheckedParts, source: &Path, write_to: &Path, shown: &Path) -> Result<JoinReport, PartsError> {
    let parts = &checked.parts;
    let source_tb = Rational(checked.table.time_base.0, checked.table.time_base.1);
    let pts_all = source_timestamps(checked);
    let dts_all = crate::parts::decode_timestamps(&pts_all);
    let mut times = pts_all.iter().zip(&dts_all);
    super::video::init();
    let err = |path: &Path, step, source| PartsError::Ffmpeg { path: path.to_path_buf(), step, source };
    let mut src = format::input(&source).map_err(|e| err(source, "opening the source", e))?;
    let first = &parts.first().ok_or_else(|| refused(source, "no parts given"))?.path;
    let part0 = format::input(first).map_err(|e| err(first, "opening the part", e))?;
    let video = part0.streams().best(media::Type::Video).ok_or_else(|| refused(first, "no video stream"))?;
    let video_parameters = video.parameters();
    let source_video = src.streams().best(media::Type::Video).ok_or_else(|| refused(source, "no video stream"))?;
    let (frame_rate, display_matrix) = (source_video.avg_frame_rate(), display_matrix_of(&source_video));

    let mut output = format::output(&write_to).map_err(|e| err(shown, "choosing a container from the file name", e))?;
    add_copied_stream(&mut output, video_parameters.clone(), source_tb)
        .map_err(|e| err(shown, "adding the video stream", e))?;
    {
        let mut stream = output.stream_mut(0).expect("just added");
        stream.set_avg_frame_rate(frame_rate);
        if let Some(matrix) = &display_matrix {
            set_display_matrix(&mut stream, matrix)
                .map_err(|()| err(shown, "keeping the display matrix", ffmpeg::Error::Other { errno: libc::ENOMEM }))?;
        }
    }
    // Source stream index → (output index, input time base).
    let mut copied: Vec<Option<(usize, Rational)>> = vec![None; src.streams().count()];
    for s in src.streams() {
        let medium = s.parameters().medium();
        if !matches!(medium, media::Type::Audio | media::Type::Subtitle) {
            continue;
        }
        if !container_takes(&output, s.parameters().id()) {
            tracing::warn!(
                "{}: the container cannot hold {medium:?} stream {}; it is left out",
                shown.display(),
                s.index()
            );
            continue;
        }
        let index = add_copied_stream(&mut output, s.parameters(), s.time_base())
            .map_err(|e| err(shown, "adding a copied stream", e))?;
        copied[s.index()] = Some((index, s.time_base()));
    }
    let mut metadata = ffmpeg::Dictionary::new();
    for (k, v) in src.metadata().iter() {
        metadata.set(k, v);
    }
    output.set_metadata(metadata);
    output.write_header().map_err(|e| err(shown, "writing the container header", e))?;
    let out_time_bases: Vec<Rational> = output.streams().map(|s| s.time_base()).collect();

    // The source's packets of copied streams, read as the video advances, so the file is
    // written in time order and the muxer holds only a few packets.
    let mut others = src.packets().filter_map(|(s, p)| copied[s.index()].map(|c| (c, p))).peekable();
    let mut report = JoinReport { video_packets: 0, other_packets: 0 };
    for part in parts {
        let mut input = format::input(&part.path).map_err(|e| err(&part.path, "opening the part", e))?;
        let stream = input.streams().best(media::Type::Video).ok_or_else(|| refused(&part.path, "no video stream"))?;
        let (index, part_tb) = (stream.index(), stream.time_base());
        if !same_video(&stream.parameters(), &video_parameters) {
            return Err(refused(
                &part.path,
                format!(
                    "part {} was encoded differently from {} (codec, size or format)",
                    part.label.part,
                    first.display()
                ),
            ));
        }
        for (s, mut packet) in input.packets() {
            if s.index() != index || packet_flags(&packet) & DISCARD != 0 {
                continue;
            }
            let (&pts, &dts) = times.next().ok_or_else(|| refused(&part.path, "changed while it was joined"))?;
            // The frame lasts until the next one of the source (the last as long as the one
            // before it): the part's own duration may be rounded to its container's clock.
            let table = &checked.table.pts;
            let duration = table.binary_search(&pts).ok().and_then(|i| match (table.get(i + 1), i.checked_sub(1)) {
                (Some(next), _) => Some(next - pts),
                (None, Some(before)) => Some(pts - table[before]),
                (None, None) => None,
            });
            packet.set_duration(duration.unwrap_or_else(|| packet.duration().rescale(part_tb, source_tb)));
            packet.set_pts(Some(pts));
            packet.set_dts(Some(dts));
            packet.rescale_ts(source_tb, out_time_bases[0]);
            let dts = packet.dts().unwrap_or(dts);
            while let Some(((out, in_tb), other)) = others.peek() {
                let t = other.dts().or(other.pts()).unwrap_or(i64::MIN);
                if compare_ts(t, *in_tb, dts, out_time_bases[0]) == std::cmp::Ordering::Greater {
                    break;
                }
                let (out, in_tb) = (*out, *in_tb);
                let (_, mut other) = others.next().expect("peeked");
                write_copied(&mut other, out, in_tb, out_time_bases[out], &mut output)
                    .map_err(|e| err(shown, "copying a stream", e))?;
                report.other_packets += 1;
            }
            packet.set_position(-1);
            packet.set_stream(0);
            packet.write_interleaved(&mut output).map_err(|e| err(shown, "writing video", e))?;
            report.video_packets += 1;
        }
    }
    for ((out, in_tb), mut other) in others {
        write_copied(&mut other, out, in_tb, out_time_bases[out], &mut output)
            .map_err(|e| err(shown, "copying a stream", e))?;
        report.other_packets += 1;
    }
    output.write_trailer().map_err(|e| err(shown, "finishing the file", e))?;
    Ok(report)
}

fn write_copied(
    packet: &mut Packet,
    out: usize,
    in_tb: Rational,
    out_tb: Rational,
    output: &mut format::context::Output,
) -> Result<(), ffmpeg::Error> {
    packet.rescale_ts(in_tb, out_tb);
    packet.set_position(-1);
    packet.set_stream(out);
    packet.write_interleaved(output)
}

fn compare_ts(a: i64, a_tb: Rational, b: i64, b_tb: Rational) -> std::cmp::Ordering {
    // SAFETY: a pure arithmetic function on values.
    unsafe { ffmpeg::ffi::av_compare_ts(a, a_tb.into(), b, b_tb.into()) }.cmp(&0)
}

/// Whether two video streams can be concatenated packet for packet: the same codec, size,
/// pixel format and codec set-up (extradata: x264's SPS and PPS live there, not in the packets).
fn same_video(a: &ffmpeg::codec::Parameters, b: &ffmpeg::codec::Parameters) -> bool {
    // SAFETY: both point to live AVCodecParameters whose extradata holds extradata_size bytes.
    unsafe {
        let (a, b) = (&*a.as_ptr(), &*b.as_ptr());
        let extradata = |p: &ffmpeg::ffi::AVCodecParameters| {
            if p.extradata.is_null() || p.extradata_size <= 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(p.extradata, p.extradata_size as usize)
            }
        };
        a.codec_id == b.codec_id
            && a.width == b.width
            && a.height == b.height
            && a.format == b.format
            && extradata(a) == extradata(b)
    }
}
