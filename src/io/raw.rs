//! Raw frames over any `Read`/`Write`: packed `rgb24` and YUV4MPEG2 (`y4m`), so japanim sits
//! in an FFmpeg pipe. Frame sizes from flags or headers are checked before any allocation.

use std::io::{self, Read, Write};

use super::colour::{self, Chroma, Matrix, Range};
use crate::frame::{check_frame_size, Frame, FramePool, FrameSink, FrameSource, Item, StageError};

const Y4M_MAGIC: &[u8] = b"YUV4MPEG2";
/// Longest stream or frame header line accepted.
const MAX_HEADER: usize = 4096;

/// What can go wrong reading or writing raw frames.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    /// The underlying reader or writer failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// rgb24 input without a size.
    #[error("raw rgb24 input needs --size WxH (or send a YUV4MPEG2 stream, which carries its size)")]
    MissingSize,
    /// A size that is empty or too large.
    #[error("{0}")]
    BadSize(String),
    /// The stream ended part-way through a frame.
    #[error("input ended inside frame {index}: got {got} of its {expected} bytes")]
    ShortFrame {
        /// Index of the incomplete frame, from 0.
        index: u64,
        /// Bytes received for it.
        got: usize,
        /// Bytes a whole frame has.
        expected: usize,
    },
    /// A malformed YUV4MPEG2 stream or frame header.
    #[error("bad YUV4MPEG2 header: {0}")]
    BadHeader(String),
    /// A YUV4MPEG2 colour space japanim does not read.
    #[error("unsupported YUV4MPEG2 pixel format 'C{0}': japanim reads 8-bit 420jpeg, 420mpeg2, 420paldv, 420, 422, 444 and mono")]
    UnsupportedPixelFormat(String),
}

/// Which raw format a stream is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RawKind {
    /// Packed 8-bit RGB, no header.
    Rgb24,
    /// YUV4MPEG2.
    Y4m,
}

/// Size, rate and colour layout of a raw stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFormat {
    /// Format of the bytes.
    pub kind: RawKind,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rate as numerator/denominator, when known.
    pub fps: Option<(u32, u32)>,
    /// Chroma layout (y4m only; rgb24 ignores it).
    pub chroma: Chroma,
    /// Quantisation range (y4m only).
    pub range: Range,
}

impl RawFormat {
    /// Bytes one frame takes on the wire, excluding y4m's `FRAME` line.
    pub fn frame_bytes(&self) -> usize {
        match self.kind {
            RawKind::Rgb24 => Frame::byte_len(self.width, self.height),
            RawKind::Y4m => self.chroma.frame_bytes(self.width, self.height),
        }
    }

    /// The Y'CbCr matrix used for y4m: YUV4MPEG2 does not record one, so it follows the height.
    pub fn matrix(&self) -> Matrix {
        Matrix::for_height(self.height)
    }
}

/// Reads as many bytes as `buf` holds unless the stream ends first; returns how many it got.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reads one `\n`-terminated line of at most [`MAX_HEADER`] bytes; `None` at a clean end.
fn read_line(reader: &mut impl Read, what: &str) -> Result<Option<Vec<u8>>, RawError> {
    let mut line = Vec::new();
    let mut byte = [0u8];
    loop {
        if read_full(reader, &mut byte)? == 0 {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(RawError::BadHeader(format!("{what} ends without a newline")))
            };
        }
        if byte[0] == b'\n' {
            return Ok(Some(line));
        }
        line.push(byte[0]);
        if line.len() > MAX_HEADER {
            return Err(RawError::BadHeader(format!("{what} is longer than {MAX_HEADER} bytes")));
        }
    }
}

fn parse_ratio(text: &str) -> Option<(u32, u32)> {
    let (n, d) = text.split_once(':')?;
    let (n, d) = (n.parse().ok()?, d.parse().ok()?);
    (n > 0 && d > 0).then_some((n, d))
}

fn parse_y4m_header(params: &str) -> Result<RawFormat, RawError> {
    let (mut width, mut height, mut fps) = (None, None, None);
    let (mut chroma, mut range) = (Chroma::C420, Range::Limited);
    for token in params.split(' ').filter(|t| !t.is_empty()) {
        let (tag, value) = token.split_at(1);
        match tag {
            "W" => width = value.parse::<u32>().ok(),
            "H" => height = value.parse::<u32>().ok(),
            "F" => fps = parse_ratio(value),
            "C" => {
                chroma = match value {
                    "420jpeg" | "420mpeg2" | "420paldv" | "420" => Chroma::C420,
                    "422" => Chroma::C422,
                    "444" => Chroma::C444,
                    "mono" => Chroma::Mono,
                    other => return Err(RawError::UnsupportedPixelFormat(other.to_string())),
                }
            }
            "X" if value == "COLORRANGE=FULL" => range = Range::Full,
            _ => {} // interlacing, aspect and other extensions do not change the bytes
        }
    }
    let width = width.ok_or_else(|| RawError::BadHeader("no valid W (width) parameter".into()))?;
    let height = height.ok_or_else(|| RawError::BadHeader("no valid H (height) parameter".into()))?;
    check_frame_size(width, height).map_err(RawError::BadSize)?;
    Ok(RawFormat { kind: RawKind::Y4m, width, height, fps, chroma, range })
}

/// Reads frames from a raw stream, detecting YUV4MPEG2 by its header.
pub struct RawReader<R: Read> {
    reader: io::Chain<io::Cursor<Vec<u8>>, R>,
    format: RawFormat,
    wire: Vec<u8>,
    next_index: u64,
}

impl<R: Read> RawReader<R> {
    /// Opens a stream. A stream starting with `YUV4MPEG2` is read as y4m (its header's size
    /// must agree with `size` if both are given); anything else is rgb24 of `size`.
    pub fn new(mut reader: R, size: Option<(u32, u32)>, fps: Option<(u32, u32)>) -> Result<Self, RawError> {
        let mut magic = vec![0u8; Y4M_MAGIC.len() + 1];
        let got = read_full(&mut reader, &mut magic)?;
        magic.truncate(got);
        let mut prefix = Vec::new();
        let format = if magic.starts_with(Y4M_MAGIC)
            && (got == Y4M_MAGIC.len() || magic[got - 1] == b' ' || magic[got - 1] == b'\n')
        {
            let rest = if magic.last() == Some(&b'\n') {
                Vec::new()
            } else {
                read_line(&mut reader, "YUV4MPEG2 stream header")?
                    .ok_or_else(|| RawError::BadHeader("stream header ends without a newline".into()))?
            };
            let mut format = parse_y4m_header(&String::from_utf8_lossy(&rest))?;
            if let Some((w, h)) = size {
                if (w, h) != (format.width, format.height) {
                    return Err(RawError::BadSize(format!(
                        "--size {w}x{h} disagrees with the YUV4MPEG2 header's {}x{}",
                        format.width, format.height
                    )));
                }
            }
            format.fps = format.fps.or(fps);
            format
        } else {
            let (width, height) = size.ok_or(RawError::MissingSize)?;
            check_frame_size(width, height).map_err(RawError::BadSize)?;
            prefix = magic;
            RawFormat { kind: RawKind::Rgb24, width, height, fps, chroma: Chroma::C444, range: Range::Full }
        };
        Ok(Self { reader: io::Cursor::new(prefix).chain(reader), format, wire: Vec::new(), next_index: 0 })
    }

    /// The stream's format.
    pub fn format(&self) -> &RawFormat {
        &self.format
    }

    /// Reads the next frame into `rgb` (resized to fit). `Ok(false)` at a clean end of stream.
    pub fn read_frame(&mut self, rgb: &mut Vec<u8>) -> Result<bool, RawError> {
        let f = self.format;
        let index = self.next_index;
        rgb.resize(Frame::byte_len(f.width, f.height), 0);
        match f.kind {
            RawKind::Rgb24 => {
                let got = read_full(&mut self.reader, rgb)?;
                if got == 0 {
                    return Ok(false);
                }
                if got < rgb.len() {
                    return Err(RawError::ShortFrame { index, got, expected: rgb.len() });
                }
            }
            RawKind::Y4m => {
                let Some(line) = read_line(&mut self.reader, "FRAME header")? else {
                    return Ok(false);
                };
                if !line.starts_with(b"FRAME") {
                    return Err(RawError::BadHeader(format!("frame {index} does not start with FRAME")));
                }
                self.wire.resize(f.frame_bytes(), 0);
                let got = read_full(&mut self.reader, &mut self.wire)?;
                if got < self.wire.len() {
                    return Err(RawError::ShortFrame { index, got, expected: self.wire.len() });
                }
                let luma = f.width as usize * f.height as usize;
                let (cw, ch) = f.chroma.plane_size(f.width, f.height);
                let (y, chroma) = self.wire.split_at(luma);
                let (u, v) = chroma.split_at(cw * ch);
                colour::yuv_to_rgb(y, u, v, f.width, f.height, f.chroma, f.matrix(), f.range, rgb);
            }
        }
        self.next_index += 1;
        Ok(true)
    }
}

/// Writes frames as rgb24 or YUV4MPEG2.
pub struct RawWriter<W: Write> {
    writer: W,
    format: RawFormat,
    header_written: bool,
    wire: Vec<u8>,
}

impl<W: Write> RawWriter<W> {
    /// A writer of frames in `format` (y4m without a frame rate is written as 25 fps).
    pub fn new(writer: W, format: RawFormat) -> Self {
        Self { writer, format, header_written: false, wire: Vec::new() }
    }

    /// Writes one frame; its size must be the writer's.
    pub fn write_frame(&mut self, frame: &Frame) -> Result<(), RawError> {
        let f = self.format;
        if (frame.width, frame.height) != (f.width, f.height) {
            return Err(RawError::BadSize(format!(
                "frame {} is {}x{}, the output stream is {}x{}",
                frame.index, frame.width, frame.height, f.width, f.height
            )));
        }
        match f.kind {
            RawKind::Rgb24 => self.writer.write_all(&frame.data)?,
            RawKind::Y4m => {
                if !self.header_written {
                    let (n, d) = f.fps.unwrap_or((25, 1));
                    let chroma = match f.chroma {
                        Chroma::C420 => "420jpeg",
                        Chroma::C422 => "422",
                        Chroma::C444 => "444",
                        Chroma::Mono => "mono",
                    };
                    let range = if f.range == Range::Full { " XCOLORRANGE=FULL" } else { "" };
                    writeln!(self.writer, "YUV4MPEG2 W{} H{} F{n}:{d} Ip A1:1 C{chroma}{range}", f.width, f.height)?;
                    self.header_written = true;
                }
                let luma = f.width as usize * f.height as usize;
                let (cw, ch) = f.chroma.plane_size(f.width, f.height);
                self.wire.resize(f.frame_bytes(), 0);
                let (y, chroma) = self.wire.split_at_mut(luma);
                let (u, v) = chroma.split_at_mut(cw * ch);
                colour::rgb_to_yuv(&frame.data, f.width, f.height, f.chroma, f.matrix(), f.range, y, u, v);
                self.writer.write_all(b"FRAME\n")?;
                self.writer.write_all(&self.wire)?;
            }
        }
        Ok(())
    }

    /// Flushes the writer.
    pub fn finish(&mut self) -> Result<(), RawError> {
        self.writer.flush()?;
        Ok(())
    }
}

/// A raw stream as the first stage of a stylize stream.
pub struct RawSource<R: Read + Send>(pub RawReader<R>);

impl<R: Read + Send> FrameSource for RawSource<R> {
    fn next_item(&mut self, pool: &mut FramePool) -> Result<Option<Item>, StageError> {
        let (width, height) = (self.0.format.width, self.0.format.height);
        let index = self.0.next_index;
        let mut data = pool.take(Frame::byte_len(width, height));
        if self.0.read_frame(&mut data)? {
            Ok(Some(Item::Frame(Frame { width, height, data, pts: Some(index as i64), index })))
        } else {
            Ok(None)
        }
    }
}

/// A raw stream as the last stage of a stylize stream.
pub struct RawSink<W: Write + Send>(pub RawWriter<W>);

impl<W: Write + Send> FrameSink for RawSink<W> {
    fn write_frame(&mut self, frame: &Frame) -> Result<(), StageError> {
        Ok(self.0.write_frame(frame)?)
    }

    fn finish(&mut self) -> Result<(), StageError> {
        Ok(self.0.finish()?)
    }
}

/// Parses `WxH` as given to `--size`.
pub fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) =
        text.split_once(['x', 'X']).ok_or_else(|| format!("size '{text}' is not WIDTHxHEIGHT, e.g. 1920x1080"))?;
    let parse =
        |s: &str| s.trim().parse::<u32>().map_err(|_| format!("size '{text}' is not WIDTHxHEIGHT, e.g. 1920x1080"));
    let (w, h) = (parse(w)?, parse(h)?);
    check_frame_size(w, h)?;
    Ok((w, h))
}

/// Parses a frame rate given as `30`, `29.97` or `30000/1001`.
pub fn parse_fps(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("frame rate '{text}' is not a positive number such as 25, 29.97 or 30000/1001");
    let rate = if let Some((n, d)) = text.split_once('/') {
        (n.trim().parse().map_err(|_| bad())?, d.trim().parse().map_err(|_| bad())?)
    } else if let Ok(n) = text.trim().parse::<u32>() {
        (n, 1)
    } else {
        let x: f64 = text.trim().parse().map_err(|_| bad())?;
        if !(x.is_finite() && x > 0.0 && x < 10_000.0) {
            return Err(bad());
        }
        ((x * 1000.0).round() as u32, 1000)
    };
    if rate.0 == 0 || rate.1 == 0 {
        return Err(bad());
    }
    Ok(rate)
}

impl From<RawError> for StageError {
    fn from(error: RawError) -> Self {
        StageError::new(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `chunk` bytes per call, as pipes do.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn rgb24_fragmented_reads() {
        let data: Vec<u8> = (0..2 * 4 * 3 * 3).map(|i| i as u8).collect(); // 3 frames of 4×2
        let mut reader = RawReader::new(Trickle { data: &data, chunk: 5 }, Some((4, 2)), None).unwrap();
        let mut frame = Vec::new();
        for i in 0..3 {
            assert!(reader.read_frame(&mut frame).unwrap());
            assert_eq!(frame, data[i * 24..(i + 1) * 24]);
        }
        assert!(!reader.read_frame(&mut frame).unwrap());
    }

    #[test]
    fn short_final_frame_names_byte_count() {
        let data = vec![7u8; 24 + 10];
        let mut reader = RawReader::new(Trickle { data: &data, chunk: 3 }, Some((4, 2)), None).unwrap();
        let mut frame = Vec::new();
        assert!(reader.read_frame(&mut frame).unwrap());
        let err = reader.read_frame(&mut frame).unwrap_err();
        assert_eq!(err.to_string(), "input ended inside frame 1: got 10 of its 24 bytes");
    }

    #[test]
    fn y4m_round_trip_through_writer_and_fragmented_reader() {
        let format = RawFormat {
            kind: RawKind::Y4m,
            width: 6,
            height: 4,
            fps: Some((30000, 1001)),
            chroma: Chroma::C420,
            range: Range::Limited,
        };
        let frames: Vec<Frame> = (0..3u8)
            .map(|i| Frame {
                width: 6,
                height: 4,
                data: [40 + 60 * i, 90, 200 - 50 * i].repeat(24),
                pts: None,
                index: u64::from(i),
            })
            .collect();
        let mut bytes = Vec::new();
        let mut writer = RawWriter::new(&mut bytes, format);
        for f in &frames {
            writer.write_frame(f).unwrap();
        }
        writer.finish().unwrap();
        assert!(bytes.starts_with(b"YUV4MPEG2 W6 H4 F30000:1001 Ip A1:1 C420jpeg\nFRAME\n"));
        let mut reader = RawReader::new(Trickle { data: &bytes, chunk: 7 }, None, None).unwrap();
        assert_eq!(*reader.format(), format);
        let mut rgb = Vec::new();
        for f in &frames {
            assert!(reader.read_frame(&mut rgb).unwrap());
            let worst = rgb.iter().zip(&f.data).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
            assert!(worst <= 2, "frame {} off by {worst}", f.index);
        }
        assert!(!reader.read_frame(&mut rgb).unwrap());
    }

    #[test]
    fn y4m_errors() {
        let err = |bytes: &[u8], size| RawReader::new(bytes, size, None).err().unwrap().to_string();
        assert!(err(b"YUV4MPEG2 W4 H4 F25:1 Cyuyv\n", None).contains("unsupported YUV4MPEG2 pixel format 'Cyuyv'"));
        assert!(err(b"YUV4MPEG2 W0 H4\n", None).contains("empty"));
        assert!(err(b"YUV4MPEG2 W4 H4\n", Some((8, 8))).contains("disagrees"));
        assert!(err(b"YUV4MPEG2 H4\n", None).contains("width"));
        assert!(err(b"abc", None).contains("--size"));
        let mut r = RawReader::new(&b"YUV4MPEG2 W2 H2 C444\nFRAME\n\x10\x10"[..], None, None).unwrap();
        assert_eq!(
            r.read_frame(&mut Vec::new()).unwrap_err().to_string(),
            "input ended inside frame 0: got 2 of its 12 bytes"
        );
    }

    #[test]
    fn parses_sizes_and_rates() {
        assert_eq!(parse_size("1920x1080"), Ok((1920, 1080)));
        assert!(parse_size("0x0").unwrap_err().contains("empty"));
        assert!(parse_size("99999x99999").unwrap_err().contains("limit"));
        assert!(parse_size("big").is_err());
        assert_eq!(parse_fps("25"), Ok((25, 1)));
        assert_eq!(parse_fps("30000/1001"), Ok((30000, 1001)));
        assert_eq!(parse_fps("29.97"), Ok((29970, 1000)));
        assert!(parse_fps("0").is_err() && parse_fps("-3").is_err());
    }
}
