//! Media files through FFmpeg: demux and decode the best video stream to RGB frames, and
//! encode RGB frames to a new file with every audio and subtitle stream copied untouched.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use ffmpeg::{codec, color, decoder, encoder, format, frame, media, Packet, Rational};
use ffmpeg_next as ffmpeg;

use super::convert::Converter;
use super::deinterlace::{self, Deinterlacer};
use super::hdr::{self, ToneMapper};
use super::EncoderSettings;
use crate::frame::{check_frame_size, Frame, FramePool, FrameSink, FrameSource, Item, Passthrough, StageError};

/// Errors from FFmpeg, with the file and the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
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
    /// The file has no video stream.
    #[error("{0}: no video stream")]
    NoVideo(PathBuf),
    /// A frame or packet the decoder reported damaged, with decode errors made fatal.
    #[error("{path}: {what} (decode errors are fatal with --strict-decode)")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Which frame or packet.
        what: String,
    },
    /// Something about the stream japanim cannot handle.
    #[error("{path}: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Colour description of a video stream, carried from input to output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColourDescription {
    /// Y'CbCr matrix.
    pub space: color::Space,
    /// Quantisation range.
    pub range: color::Range,
    /// Primaries.
    pub primaries: color::Primaries,
    /// Transfer characteristic.
    pub transfer: color::TransferCharacteristic,
}

impl ColourDescription {
    /// SDR HD video: BT.709 matrix, primaries and transfer, limited range.
    pub const BT709: Self = Self {
        space: color::Space::BT709,
        range: color::Range::MPEG,
        primaries: color::Primaries::BT709,
        transfer: color::TransferCharacteristic::BT709,
    };

    /// What a stream that says nothing most likely is: BT.709 for HD, BT.601 (SMPTE 170M)
    /// otherwise; limited range.
    pub fn default_for(height: u32) -> Self {
        if height > 576 {
            Self::BT709
        } else {
            Self {
                space: color::Space::SMPTE170M,
                range: color::Range::MPEG,
                primaries: color::Primaries::SMPTE170M,
                transfer: color::TransferCharacteristic::SMPTE170M,
            }
        }
    }

    /// Fills what a stream leaves unspecified from [`Self::default_for`].
    fn or_default(self, height: u32) -> Self {
        let d = Self::default_for(height);
        Self {
            space: if self.space == color::Space::Unspecified { d.space } else { self.space },
            range: if self.range == color::Range::Unspecified { d.range } else { self.range },
            primaries: if self.primaries == color::Primaries::Unspecified { d.primaries } else { self.primaries },
            transfer: if self.transfer == color::TransferCharacteristic::Unspecified {
                d.transfer
            } else {
                self.transfer
            },
        }
    }

    fn sws_coefficients(self) -> i32 {
        use ffmpeg::ffi::{SWS_CS_BT2020, SWS_CS_ITU601, SWS_CS_ITU709};
        match self.space {
            color::Space::BT709 => SWS_CS_ITU709,
            color::Space::BT2020NCL | color::Space::BT2020CL => SWS_CS_BT2020,
            _ => SWS_CS_ITU601,
        }
    }
}

/// A stream copied from the input to the output unchanged.
#[derive(Clone)]
pub struct CopiedStream {
    /// Index in the input.
    pub input_index: usize,
    /// Codec parameters.
    pub parameters: codec::Parameters,
    /// Input time base.
    pub time_base: Rational,
    /// Audio, subtitle, …
    pub medium: media::Type,
}

/// What a sink needs to know about the video it will write.
#[derive(Clone)]
pub struct VideoFormat {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rate.
    pub frame_rate: Rational,
    /// Time base of the frames' timestamps.
    pub time_base: Rational,
    /// Colour description.
    pub colour: ColourDescription,
    /// Streams to copy.
    pub copied: Vec<CopiedStream>,
    /// Container metadata (title, …) to carry over.
    pub metadata: Vec<(String, String)>,
    /// Number of frames, when the container says or it can be estimated.
    pub frames: Option<u64>,
    /// The stream's display matrix (the 3×3 i32 matrix FFmpeg keeps as side data), which
    /// phones write to show a portrait video upright: frames are decoded as stored, and the
    /// output stream carries the same matrix, so players turn it as they turn the input.
    pub display_matrix: Option<[i32; 9]>,
}

impl VideoFormat {
    /// The rotation the display matrix asks for, in degrees counter-clockwise (FFmpeg's
    /// convention), if there is a matrix.
    pub fn rotation(&self) -> Option<f64> {
        // SAFETY: the matrix is the 9 i32s av_display_rotation_get reads.
        self.display_matrix.map(|m| unsafe { ffmpeg::ffi::av_display_rotation_get(m.as_ptr()) })
    }
}

/// Whether FFmpeg has a container for a file named like `path` (by its extension: `.mp4`,
/// `.mkv`, …), so a bad name is refused before any work rather than when the output opens.
pub fn has_container_for(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    init();
    let Ok(name) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: `name` is a valid C string that outlives the call; av_guess_format only reads
    // it and returns a pointer to a static muxer description, or null.
    let muxer = unsafe { ffmpeg::ffi::av_guess_format(std::ptr::null(), name.as_ptr(), std::ptr::null()) };
    !muxer.is_null()
}

/// Initialises FFmpeg once and quietens its logging.
pub fn init() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let _ = ffmpeg::init();
        // FFmpeg's own log lines would break japanim's one-line errors; its messages reach
        // the user through the returned errors. `RUST_LOG=debug` shows them.
        let level = if tracing::enabled!(tracing::Level::DEBUG) {
            ffmpeg::util::log::Level::Info
        } else {
            ffmpeg::util::log::Level::Quiet
        };
        ffmpeg::util::log::set_level(level);
    });
}

/// Decodes the best video stream of a file to RGB frames; other streams are forwarded as
/// [`VideoPacket`]s when asked.
pub struct VideoSource {
    path: PathBuf,
    input: format::context::Input,
    decoder: decoder::Video,
    video_index: usize,
    forward: Vec<bool>,
    format: VideoFormat,
    converter: RgbConverter,
    pending: VecDeque<Passthrough>,
    draining: bool,
    /// Pictures out of the decoder so far.
    next_index: u64,
    /// Pictures given out so far (as many as decoded, less those a deinterlacer still holds).
    next_output: u64,
    /// Whether the stream says it is interlaced: pictures then go through a deinterlacer.
    interlaced: bool,
    /// The deinterlacer, made on the first picture (and again after a seek).
    deinterlacer: Option<Deinterlacer>,
    bad_packets: u64,
    /// Frames the decoder output with errors concealed.
    concealed: u64,
    /// When the refused packets and the concealed frames were, in seconds (where known).
    damage_times: Vec<f64>,
    /// Whether a damaged frame or packet is an error rather than a warning.
    strict: bool,
}

/// A decoded picture of the video stream, not yet converted to RGB.
pub struct Decoded {
    /// The picture in the decoder's pixel format.
    pub picture: frame::Video,
    /// Its position in the stream, from 0.
    pub index: u64,
    /// Its timestamp in the stream's time base.
    pub pts: Option<i64>,
}

/// Converts decoded pictures to packed RGB with the stream's colour description.
pub struct RgbConverter {
    path: PathBuf,
    width: u32,
    height: u32,
    colour: ColourDescription,
    scaler: Option<Converter>,
    /// For HDR streams, made on the first picture: the tone-mapping graph to SDR RGB.
    tone_mapper: Option<ToneMapper>,
    rgb: frame::Video,
}

impl RgbConverter {
    /// Converts one picture (which must have the stream's size) into a frame from `pool`.
    pub fn convert(&mut self, decoded: &Decoded, pool: &mut FramePool) -> Result<Frame, VideoError> {
        let picture = &decoded.picture;
        let (w, h) = (picture.width(), picture.height());
        if (w, h) != (self.width, self.height) {
            return Err(VideoError::Unsupported {
                path: self.path.clone(),
                reason: format!("frame size changed mid-stream from {}x{} to {w}x{h}", self.width, self.height),
            });
        }
        let err = |source| VideoError::Ffmpeg { path: self.path.clone(), step: "converting a frame to RGB", source };
        if hdr::is_hdr(self.colour.transfer) {
            let err = |source| VideoError::Ffmpeg {
                path: self.path.clone(),
                step: "tone-mapping an HDR frame to SDR (FFmpeg's zscale and tonemap filters)",
                source,
            };
            if self.tone_mapper.is_none() {
                self.tone_mapper = Some(ToneMapper::new(w, h, picture.format(), self.colour).map_err(err)?);
            }
            let rgb = self.tone_mapper.as_mut().expect("created above").run(picture).map_err(err)?;
            return Ok(copy_rgb24(rgb, decoded, pool));
        }
        if self.scaler.is_none() {
            let full = self.colour.range == color::Range::JPEG;
            let coefficients = self.colour.sws_coefficients();
            self.scaler = Some(
                Converter::new(picture.format(), format::Pixel::RGB24, w, h, coefficients, full, true).map_err(err)?,
            );
        }
        let scaler = self.scaler.as_mut().expect("created above");
        scaler.run(picture, &mut self.rgb).map_err(err)?;
        Ok(copy_rgb24(&self.rgb, decoded, pool))
    }

    /// The picture's luma as full-range grey (0–255), when its format has a luma plane of
    /// 8 to 16 bits a sample: what OpenCV's grey of the RGB conversion is, up to the matrix's
    /// rounding. Deeper samples (10-bit HEVC from phones and anime encodes) are rounded to
    /// 8 bits.
    pub fn luma(&self, decoded: &Decoded) -> Option<image::GrayImage> {
        let picture = &decoded.picture;
        let descriptor = picture.format().descriptor()?;
        // Planar or semi-planar Y'CbCr: luma is plane 0.
        let yuv = !matches!(picture.format(), format::Pixel::GRAY8)
            && descriptor.nb_components() >= 3
            && picture.planes() >= 2
            && descriptor.log2_chroma_w() + descriptor.log2_chroma_h() > 0
            || matches!(picture.format(), format::Pixel::YUV444P | format::Pixel::YUVJ444P);
        if !yuv {
            return None;
        }
        let samples = LumaSamples::of(descriptor)?;
        let (w, h) = (picture.width() as usize, picture.height() as usize);
        let full = self.colour.range == color::Range::JPEG
            || matches!(picture.format(), format::Pixel::YUVJ420P | format::Pixel::YUVJ422P | format::Pixel::YUVJ444P);
        let stride = picture.stride(0);
        let plane = picture.data(0);
        let mut grey = vec![0u8; w * h];
        let mut row8 = vec![0u8; w];
        for (y, target) in grey.chunks_exact_mut(w).enumerate() {
            let row = &plane[y * stride..y * stride + w * samples.bytes];
            let row = samples.to_8_bit(row, &mut row8);
            if full {
                target.copy_from_slice(row);
            } else {
                crate::io::colour::expand_limited_luma(row, target);
            }
        }
        image::GrayImage::from_raw(w as u32, h as u32, grey)
    }
}

/// A packed RGB24 picture copied into a frame from `pool`, with `decoded`'s position.
fn copy_rgb24(rgb: &frame::Video, decoded: &Decoded, pool: &mut FramePool) -> Frame {
    let (w, h) = (rgb.width(), rgb.height());
    let row = w as usize * 3;
    let stride = rgb.stride(0);
    let mut data = pool.take(Frame::byte_len(w, h));
    let plane = rgb.data(0);
    for (y, out) in data.chunks_exact_mut(row).enumerate() {
        out.copy_from_slice(&plane[y * stride..y * stride + row]);
    }
    Frame { width: w, height: h, data, pts: decoded.pts, index: decoded.index }
}

/// How a pixel format stores its luma samples in plane 0: one byte of 8 bits, or two
/// little-endian bytes of `depth` bits above `shift` (10-bit planar, P010's high bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LumaSamples {
    bytes: usize,
    depth: u32,
    shift: u32,
}

impl LumaSamples {
    /// None for layouts read more simply through the RGB conversion (big-endian, packed).
    fn of(descriptor: format::pixel::Descriptor) -> Option<Self> {
        // SAFETY: a pixel format's descriptor is a static table entry of libavutil.
        let raw = unsafe { &*descriptor.as_ptr() };
        let luma = raw.comp[0];
        let big_endian = raw.flags & ffmpeg::ffi::AV_PIX_FMT_FLAG_BE as u64 != 0;
        let (depth, shift) = (u32::try_from(luma.depth).ok()?, u32::try_from(luma.shift).ok()?);
        let samples = match (luma.plane, luma.offset, luma.step) {
            (0, 0, 1) if depth == 8 && shift == 0 => Self { bytes: 1, depth, shift },
            (0, 0, 2) if (9..=16).contains(&depth) && depth + shift <= 16 && !big_endian => {
                Self { bytes: 2, depth, shift }
            }
            _ => return None,
        };
        Some(samples)
    }

    /// One row of samples as 8-bit values (rounded), borrowing `row` itself when it is 8-bit.
    fn to_8_bit<'a>(self, row: &'a [u8], scratch: &'a mut [u8]) -> &'a [u8] {
        if self.bytes == 1 {
            return row;
        }
        let drop = self.depth - 8;
        let half = 1u32 << (drop - 1);
        for (out, pair) in scratch.iter_mut().zip(row.chunks_exact(2)) {
            let sample = u32::from(u16::from_le_bytes([pair[0], pair[1]])) >> self.shift;
            *out = ((sample + half) >> drop).min(255) as u8;
        }
        scratch
    }
}

/// A packet of a copied stream, forwarded untouched from source to sink.
pub struct VideoPacket {
    /// The packet, timestamps in its input stream's time base.
    pub packet: Packet,
    /// Index of its input stream.
    pub input_index: usize,
}

impl VideoSource {
    /// Opens a file. With `forward_streams`, audio and subtitle packets come out as passthrough items.
    pub fn open(path: &Path, forward_streams: bool) -> Result<Self, VideoError> {
        init();
        let err = |step, source| VideoError::Ffmpeg { path: path.to_path_buf(), step, source };
        let input = format::input(&path).map_err(|e| err("opening the file", e))?;
        let stream = input.streams().best(media::Type::Video).ok_or_else(|| VideoError::NoVideo(path.into()))?;
        let video_index = stream.index();
        let mut context = codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| err("reading the video stream's parameters", e))?;
        context.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Frame,
            count: 0,
            ..Default::default()
        });
        let decoder = context.decoder().video().map_err(|e| err("opening the video decoder", e))?;
        let (width, height) = (decoder.width(), decoder.height());
        check_frame_size(width, height).map_err(|reason| VideoError::Unsupported { path: path.into(), reason })?;
        let colour = ColourDescription {
            space: decoder.color_space(),
            range: decoder.color_range(),
            primaries: decoder.color_primaries(),
            transfer: decoder.color_transfer_characteristic(),
        }
        .or_default(height);
        let mut frame_rate = stream.avg_frame_rate();
        if frame_rate.numerator() <= 0 || frame_rate.denominator() <= 0 {
            frame_rate = stream.rate();
        }
        let time_base = stream.time_base();
        let frames = if stream.frames() > 0 {
            Some(stream.frames() as u64)
        } else if input.duration() > 0 && frame_rate.numerator() > 0 {
            let seconds = input.duration() as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE);
            Some((seconds * f64::from(frame_rate)).round() as u64)
        } else {
            None
        };
        let mut copied = Vec::new();
        let mut forward = vec![false; input.streams().count()];
        for s in input.streams() {
            let medium = s.parameters().medium();
            if forward_streams && matches!(medium, media::Type::Audio | media::Type::Subtitle) {
                forward[s.index()] = true;
                copied.push(CopiedStream {
                    input_index: s.index(),
                    parameters: s.parameters(),
                    time_base: s.time_base(),
                    medium,
                });
            }
        }
        let metadata = input.metadata().iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let display_matrix = display_matrix_of(&stream);
        // SAFETY: the parameters point to the stream's live AVCodecParameters.
        let field_order = unsafe { (*stream.parameters().as_ptr()).field_order };
        use ffmpeg::ffi::AVFieldOrder::{AV_FIELD_BB, AV_FIELD_BT, AV_FIELD_TB, AV_FIELD_TT};
        let interlaced = matches!(field_order, AV_FIELD_TT | AV_FIELD_BB | AV_FIELD_TB | AV_FIELD_BT);
        if interlaced {
            tracing::info!(
                "{}: interlaced video: frames are deinterlaced (bwdif, a frame for each frame)",
                path.display()
            );
        }
        // HDR frames are tone-mapped on conversion (`io::hdr`), so what is written is SDR.
        let written_colour = if hdr::is_hdr(colour.transfer) {
            tracing::info!(
                "{}: HDR video ({}): frames are tone-mapped to SDR BT.709, and an output is SDR BT.709",
                path.display(),
                hdr::transfer_name(colour.transfer)
            );
            ColourDescription::BT709
        } else {
            colour
        };
        let format = VideoFormat {
            width,
            height,
            frame_rate,
            time_base,
            colour: written_colour,
            copied,
            metadata,
            frames,
            display_matrix,
        };
        Ok(Self {
            path: path.to_path_buf(),
            input,
            decoder,
            video_index,
            forward,
            converter: RgbConverter {
                path: path.to_path_buf(),
                width,
                height,
                colour,
                scaler: None,
                tone_mapper: None,
                rgb: frame::Video::empty(),
            },
            format,
            pending: VecDeque::new(),
            draining: false,
            next_index: 0,
            next_output: 0,
            interlaced,
            deinterlacer: None,
            bad_packets: 0,
            concealed: 0,
            damage_times: Vec::new(),
            strict: false,
        })
    }

    /// Makes decode errors fatal: the first damaged packet or frame ends decoding with
    /// [`VideoError::Damaged`] instead of being concealed (FFmpeg's default) and counted.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    fn seconds(&self, pts: Option<i64>) -> Option<f64> {
        let tb = self.format.time_base;
        pts.filter(|_| tb.denominator() > 0).map(|p| p as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator()))
    }

    /// Logs what was damaged, once at the end of the stream: frames whose packet the decoder
    /// refused (lost; FFmpeg's tools skip them too) and frames decoded with errors concealed.
    fn report_damage(&self) {
        let total = self.bad_packets + self.concealed;
        if total == 0 {
            return;
        }
        let mut times = self.damage_times.clone();
        times.sort_by(f64::total_cmp);
        let mut at: Vec<String> = times.iter().take(5).map(|t| format!("{t:.2} s")).collect();
        if times.len() > 5 {
            at.push("…".into());
        }
        let at = if at.is_empty() { "unknown times".to_string() } else { at.join(", ") };
        tracing::warn!(
            "{}: decode errors in {total} frames (at {at}): {} video packets could not be decoded, {} frames \
             were concealed by FFmpeg; --strict-decode makes them fatal",
            self.path.display(),
            self.bad_packets,
            self.concealed
        );
    }

    /// Goes to the key frame with timestamp `pts` (in the video stream's time base):
    /// decoding continues from there, and packets of other streams read before are dropped.
    pub fn seek_to_keyframe(&mut self, pts: i64) -> Result<(), VideoError> {
        // SAFETY: the context is open; av_seek_frame takes a stream index and a timestamp in
        // that stream's time base. BACKWARD lands on the key frame at or before `pts`.
        let code = unsafe {
            ffmpeg::ffi::av_seek_frame(
                self.input.as_mut_ptr(),
                self.video_index as i32,
                pts,
                ffmpeg::ffi::AVSEEK_FLAG_BACKWARD,
            )
        };
        if code < 0 {
            return Err(VideoError::Ffmpeg {
                path: self.path.clone(),
                step: "seeking to a key frame",
                source: ffmpeg::Error::from(code),
            });
        }
        self.decoder.flush();
        self.pending.clear();
        self.draining = false;
        self.deinterlacer = None;
        Ok(())
    }

    /// Converts a decoded picture into a frame from `pool`.
    pub fn convert(&mut self, decoded: &Decoded, pool: &mut FramePool) -> Result<Frame, VideoError> {
        self.converter.convert(decoded, pool)
    }

    /// The video's format and the streams that will be forwarded.
    pub fn format(&self) -> &VideoFormat {
        &self.format
    }

    /// A converter to RGB for this stream's pictures (to use on another thread).
    pub fn rgb_converter(&self) -> RgbConverter {
        let c = &self.converter;
        RgbConverter {
            path: c.path.clone(),
            width: c.width,
            height: c.height,
            colour: c.colour,
            scaler: None,
            tone_mapper: None,
            rgb: frame::Video::empty(),
        }
    }

    /// The next decoded picture, or a forwarded packet of another stream; `None` at the end.
    /// Unconverted, so a part can skip the pictures before its frames without converting them.
    pub(crate) fn next_event(&mut self) -> Result<Option<Result<Decoded, Passthrough>>, VideoError> {
        loop {
            if let Some(packet) = self.pending.pop_front() {
                return Ok(Some(Err(packet)));
            }
            if let Some(deinterlacer) = self.deinterlacer.as_mut() {
                if let Some((picture, pts)) = deinterlacer.pull().map_err(|e| self.deinterlace_error(e))? {
                    return Ok(Some(Ok(self.give_out(picture, pts))));
                }
            }
            let mut picture = frame::Video::empty();
            match self.decoder.receive_frame(&mut picture) {
                Ok(()) => {
                    let index = self.next_index;
                    self.next_index += 1;
                    let pts = picture.timestamp().or(picture.pts());
                    // SAFETY: a decoded frame's AVFrame is valid while `picture` lives.
                    let error_flags = unsafe { (*picture.as_ptr()).decode_error_flags };
                    if error_flags != 0 || picture.is_corrupt() {
                        let seconds = self.seconds(pts);
                        if self.strict {
                            let when = seconds.map_or(String::new(), |t| format!(" at {t:.2} s"));
                            return Err(VideoError::Damaged {
                                path: self.path.clone(),
                                what: format!("frame {index}{when} has decode errors"),
                            });
                        }
                        self.concealed += 1;
                        self.damage_times.extend(seconds);
                    }
                    if self.interlaced {
                        self.deinterlace(&picture, pts)?;
                        continue;
                    }
                    return Ok(Some(Ok(self.give_out(picture, pts))));
                }
                Err(ffmpeg::Error::Eof) => {
                    // The deinterlacer holds the last picture until told the stream ended.
                    if let Some(deinterlacer) = self.deinterlacer.as_mut() {
                        if deinterlacer.flush().map_err(|e| self.deinterlace_error(e))? {
                            continue;
                        }
                    }
                    if self.next_index == 0 {
                        return Err(VideoError::Unsupported {
                            path: self.path.clone(),
                            reason: "no video frame could be decoded".into(),
                        });
                    }
                    self.report_damage();
                    return Ok(None);
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {}
                Err(source) => return Err(VideoError::Ffmpeg { path: self.path.clone(), step: "decoding", source }),
            }
            if self.draining {
                return Ok(None);
            }
            let mut packet = Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    let index = packet.stream();
                    if index == self.video_index {
                        // A damaged packet is skipped, as FFmpeg's own tools do.
                        if self.decoder.send_packet(&packet).is_err() {
                            if self.strict {
                                let when =
                                    self.seconds(packet.pts()).map_or(String::new(), |t| format!(" at {t:.2} s"));
                                return Err(VideoError::Damaged {
                                    path: self.path.clone(),
                                    what: format!("a video packet{when} cannot be decoded"),
                                });
                            }
                            self.bad_packets += 1;
                            self.damage_times.extend(self.seconds(packet.pts()));
                        }
                    } else if self.forward.get(index).copied().unwrap_or(false) {
                        self.pending.push_back(Box::new(VideoPacket { packet, input_index: index }));
                    }
                }
                Err(ffmpeg::Error::Eof) => {
                    self.draining = true;
                    let _ = self.decoder.send_eof();
                }
                Err(source) => return Err(VideoError::Ffmpeg { path: self.path.clone(), step: "reading", source }),
            }
        }
    }

    /// Frames before a frame that decoding must start at for that frame to come out as in a
    /// run over the whole video: 1 for interlaced video (the deinterlacer looks one back).
    pub fn look_back(&self) -> u64 {
        if self.interlaced {
            deinterlace::LOOK_BACK
        } else {
            0
        }
    }

    /// A picture given out as the next frame.
    fn give_out(&mut self, picture: frame::Video, pts: Option<i64>) -> Decoded {
        let index = self.next_output;
        self.next_output += 1;
        Decoded { picture, index, pts }
    }

    /// Feeds a decoded picture to the deinterlacer, made for the first one.
    fn deinterlace(&mut self, picture: &frame::Video, pts: Option<i64>) -> Result<(), VideoError> {
        if self.deinterlacer.is_none() {
            let (w, h, pixel) = (picture.width(), picture.height(), picture.format());
            let made =
                Deinterlacer::new(w, h, pixel, self.decoder.aspect_ratio()).map_err(|e| self.deinterlace_error(e))?;
            self.deinterlacer = Some(made);
        }
        let deinterlacer = self.deinterlacer.as_mut().expect("made above");
        deinterlacer.push(picture, pts).map_err(|e| self.deinterlace_error(e))
    }

    fn deinterlace_error(&self, source: ffmpeg::Error) -> VideoError {
        VideoError::Ffmpeg { path: self.path.clone(), step: "deinterlacing (FFmpeg's bwdif filter)", source }
    }

    /// The next decoded picture, unconverted; packets of other streams are dropped.
    pub fn next_decoded(&mut self) -> Result<Option<Decoded>, VideoError> {
        loop {
            match self.next_event()? {
                Some(Ok(decoded)) => return Ok(Some(decoded)),
                Some(Err(_packet)) => continue,
                None => return Ok(None),
            }
        }
    }
}

impl FrameSource for VideoSource {
    fn next_item(&mut self, pool: &mut FramePool) -> Result<Option<Item>, StageError> {
        Ok(match self.next_event()? {
            Some(Ok(decoded)) => Some(Item::Frame(self.converter.convert(&decoded, pool)?)),
            Some(Err(packet)) => Some(Item::Passthrough(packet)),
            None => None,
        })
    }
}

/// Puts a display matrix (the 3×3 i32 side data FFmpeg keeps) on an output stream; `Err`
/// when FFmpeg cannot allocate it.
pub(crate) fn set_display_matrix(stream: &mut format::stream::StreamMut, matrix: &[i32; 9]) -> Result<(), ()> {
    let size = std::mem::size_of_val(matrix);
    // SAFETY: FFmpeg allocates `size` bytes of side data on the live stream (or returns
    // null), and we copy exactly that many into it.
    unsafe {
        let data = ffmpeg::ffi::av_stream_new_side_data(
            stream.as_mut_ptr(),
            ffmpeg::ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
            size as _,
        );
        if data.is_null() {
            return Err(());
        }
        std::ptr::copy_nonoverlapping(matrix.as_ptr().cast::<u8>(), data, size);
    }
    Ok(())
}

/// A stream's display matrix, if it has one.
pub(crate) fn display_matrix_of(stream: &format::stream::Stream) -> Option<[i32; 9]> {
    stream.side_data().find(|d| d.kind() == codec::packet::side_data::Type::DisplayMatrix).and_then(|d| {
        let bytes = d.data();
        (bytes.len() >= 36)
            .then(|| std::array::from_fn(|i| i32::from_ne_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes"))))
    })
}

/// Whether the output's container can hold a stream of codec `id`.
pub(crate) fn container_takes(output: &format::context::Output, id: codec::Id) -> bool {
    query_codec(output, id) == 1
}

/// Whether the container says it cannot hold `id` (muxers that cannot tell are not refused).
fn container_refuses(output: &format::context::Output, id: codec::Id) -> bool {
    query_codec(output, id) == 0
}

/// libavformat's answer whether the output's container can hold `id`: 1 yes, 0 no, negative
/// when the muxer cannot tell.
fn query_codec(output: &format::context::Output, id: codec::Id) -> i32 {
    // SAFETY: the output format and codec id come from live FFmpeg objects.
    unsafe { ffmpeg::ffi::avformat_query_codec(output.format().as_ptr(), id.into(), ffmpeg::ffi::FF_COMPLIANCE_NORMAL) }
}

/// Adds a stream that packets will be copied into unchanged; returns its index.
pub(crate) fn add_copied_stream(
    output: &mut format::context::Output,
    parameters: codec::Parameters,
    time_base: Rational,
) -> Result<usize, ffmpeg::Error> {
    let mut stream = output.add_stream(encoder::find(codec::Id::None))?;
    stream.set_parameters(parameters);
    // SAFETY: the stream's parameters were just allocated by FFmpeg. The input's codec tag
    // may mean nothing in another container: let the muxer choose.
    unsafe { (*stream.parameters().as_mut_ptr()).codec_tag = 0 };
    stream.set_time_base(time_base);
    Ok(stream.index())
}

/// Encodes RGB frames into a media file, copying forwarded streams.
pub struct VideoSink {
    path: PathBuf,
    output: format::context::Output,
    encoder: encoder::Video,
    scaler: Option<Converter>,
    rgb: frame::Video,
    yuv: frame::Video,
    pixel: format::Pixel,
    colour: ColourDescription,
    encoder_time_base: Rational,
    video_time_base: Rational,
    copied: Vec<(usize, usize, Rational, Rational)>,
    frames_written: u64,
}

impl VideoSink {
    /// Creates `path` (container from its extension) for video of `format`, encoded with
    /// `settings`. The file is written directly: pass a temporary path for atomicity.
    pub fn create(path: &Path, format: &VideoFormat, settings: &EncoderSettings) -> Result<Self, VideoError> {
        Self::create_as(path, path, format, settings)
    }

    /// [`Self::create`] writing `write_to` but naming `shown` in every error: the user's
    /// output, where `write_to` is its hidden temporary file.
    pub fn create_as(
        write_to: &Path,
        shown: &Path,
        format: &VideoFormat,
        settings: &EncoderSettings,
    ) -> Result<Self, VideoError> {
        init();
        let path = shown;
        let err = |step, source| VideoError::Ffmpeg { path: path.to_path_buf(), step, source };
        let mut output = format::output(&write_to).map_err(|e| err("choosing a container from the file name", e))?;
        let global_header = output.format().flags().contains(format::Flags::GLOBAL_HEADER);
        let codec = encoder::find_by_name(&settings.codec).ok_or_else(|| VideoError::Unsupported {
            path: path.into(),
            reason: format!("FFmpeg has no encoder named {:?}", settings.codec),
        })?;
        if container_refuses(&output, codec.id()) {
            return Err(VideoError::Unsupported {
                path: path.into(),
                reason: format!(
                    "this container ({}) cannot hold {} video: name the output .mkv, or choose another --codec",
                    output.format().name(),
                    settings.codec
                ),
            });
        }
        let mut context = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| err("creating the video encoder", e))?;
        // x264's 4:2:0 needs even sides; odd-sized video is kept whole as 4:4:4.
        let pixel = if format.width.is_multiple_of(2) && format.height.is_multiple_of(2) {
            format::Pixel::YUV420P
        } else {
            format::Pixel::YUV444P
        };
        let encoder_time_base = format.time_base;
        context.set_width(format.width);
        context.set_height(format.height);
        context.set_format(pixel);
        context.set_time_base(encoder_time_base);
        context.set_frame_rate(Some(format.frame_rate));
        context.set_colorspace(format.colour.space);
        context.set_color_range(format.colour.range);
        context.set_color_primaries(format.colour.primaries);
        context.set_color_transfer_characteristic(format.colour.transfer);
        if global_header {
            context.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let mut options = ffmpeg::Dictionary::new();
        if let Some(crf) = settings.crf {
            options.set("crf", &crf.to_string());
        }
        if let Some(preset) = &settings.preset {
            options.set("preset", preset);
        }
        let encoder = context
            .open_as_with(codec, options)
            .map_err(|e| err("opening the video encoder (check --codec, --crf and --preset)", e))?;
        let mut stream = output.add_stream(codec).map_err(|e| err("adding the video stream", e))?;
        stream.set_parameters(&encoder);
        stream.set_time_base(encoder_time_base);
        stream.set_avg_frame_rate(format.frame_rate);
        if let Some(matrix) = &format.display_matrix {
            set_display_matrix(&mut stream, matrix)
                .map_err(|()| err("keeping the display matrix", ffmpeg::Error::Other { errno: libc::ENOMEM }))?;
        }
        let mut copied = Vec::new();
        for c in &format.copied {
            if !container_takes(&output, c.parameters.id()) {
                tracing::warn!(
                    "{}: the container cannot hold {:?} stream {} ({:?}); it is left out",
                    path.display(),
                    c.medium,
                    c.input_index,
                    c.parameters.id()
                );
                continue;
            }
            let index = add_copied_stream(&mut output, c.parameters.clone(), c.time_base)
                .map_err(|e| err("adding a copied stream", e))?;
            copied.push((c.input_index, index, c.time_base, Rational(0, 1)));
        }
        let mut metadata = ffmpeg::Dictionary::new();
        for (k, v) in &format.metadata {
            metadata.set(k, v);
        }
        output.set_metadata(metadata);
        output.write_header().map_err(|e| err("writing the container header", e))?;
        // The muxer may change time bases in write_header: read them back now.
        let video_time_base = output.stream(0).expect("video stream added").time_base();
        for c in &mut copied {
            c.3 = output.stream(c.1).expect("stream added").time_base();
        }
        Ok(Self {
            path: path.to_path_buf(),
            output,
            encoder,
            scaler: None,
            rgb: frame::Video::new(format::Pixel::RGB24, format.width, format.height),
            yuv: frame::Video::new(pixel, format.width, format.height),
            pixel,
            colour: format.colour,
            encoder_time_base,
            video_time_base,
            copied,
            frames_written: 0,
        })
    }

    fn err(&self, step: &'static str, source: ffmpeg::Error) -> VideoError {
        VideoError::Ffmpeg { path: self.path.clone(), step, source }
    }

    fn write_encoded_packets(&mut self) -> Result<(), VideoError> {
        let mut packet = Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            packet.rescale_ts(self.encoder_time_base, self.video_time_base);
            packet.write_interleaved(&mut self.output).map_err(|e| self.err("writing video", e))?;
        }
        Ok(())
    }
}

impl FrameSink for VideoSink {
    fn write_frame(&mut self, frame: &Frame) -> Result<(), StageError> {
        let (w, h) = (frame.width, frame.height);
        if self.scaler.is_none() {
            let full = self.colour.range == color::Range::JPEG;
            let converter =
                Converter::new(format::Pixel::RGB24, self.pixel, w, h, self.colour.sws_coefficients(), true, full)
                    .map_err(|e| self.err("preparing RGB to YUV conversion", e))?;
            self.scaler = Some(converter);
        }
        let row = w as usize * 3;
        let stride = self.rgb.stride(0);
        let plane = self.rgb.data_mut(0);
        for (y, src) in frame.data.chunks_exact(row).enumerate() {
            plane[y * stride..y * stride + row].copy_from_slice(src);
        }
        let scaler = self.scaler.as_mut().expect("created above");
        scaler.run(&self.rgb, &mut self.yuv).map_err(|e| VideoError::Ffmpeg {
            path: self.path.clone(),
            step: "converting RGB to YUV",
            source: e,
        })?;
        self.yuv.set_pts(Some(frame.pts.unwrap_or(frame.index as i64)));
        self.encoder.send_frame(&self.yuv).map_err(|e| self.err("encoding", e))?;
        self.frames_written += 1;
        self.write_encoded_packets()?;
        Ok(())
    }

    fn write_passthrough(&mut self, item: Passthrough) -> Result<(), StageError> {
        let Ok(item) = item.downcast::<VideoPacket>() else { return Ok(()) };
        let VideoPacket { mut packet, input_index } = *item;
        if let Some(&(_, out_index, in_tb, out_tb)) = self.copied.iter().find(|c| c.0 == input_index) {
            packet.rescale_ts(in_tb, out_tb);
            packet.set_position(-1);
            packet.set_stream(out_index);
            packet.write_interleaved(&mut self.output).map_err(|e| self.err("copying a stream", e))?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), StageError> {
        self.encoder.send_eof().map_err(|e| self.err("flushing the encoder", e))?;
        self.write_encoded_packets()?;
        self.output.write_trailer().map_err(|e| self.err("finishing the file", e))?;
        Ok(())
    }
}

impl From<VideoError> for StageError {
    fn from(error: VideoError) -> Self {
        StageError::new(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples_of(pixel: format::Pixel) -> Option<LumaSamples> {
        LumaSamples::of(pixel.descriptor().unwrap())
    }

    #[test]
    fn luma_samples_are_read_at_their_depth() {
        assert_eq!(samples_of(format::Pixel::YUV420P), Some(LumaSamples { bytes: 1, depth: 8, shift: 0 }));
        assert_eq!(samples_of(format::Pixel::YUV420P10LE), Some(LumaSamples { bytes: 2, depth: 10, shift: 0 }));
        assert_eq!(samples_of(format::Pixel::P010LE), Some(LumaSamples { bytes: 2, depth: 10, shift: 6 }));
        assert_eq!(samples_of(format::Pixel::YUV420P10BE), None, "big-endian goes through the RGB conversion");
        let ten = samples_of(format::Pixel::YUV420P10LE).unwrap();
        // 10-bit limited range: black 64, white 940, and a value that rounds up (601 / 4 = 150.25,
        // 602 / 4 = 150.5).
        let row: Vec<u8> = [64u16, 940, 601, 602, 1023].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut scratch = [0u8; 5];
        assert_eq!(ten.to_8_bit(&row, &mut scratch), [16, 235, 150, 151, 255]);
        let p010 = samples_of(format::Pixel::P010LE).unwrap();
        let row: Vec<u8> = [64u16 << 6, 940 << 6].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(p010.to_8_bit(&row, &mut scratch[..2]), [16, 235]);
    }
}
