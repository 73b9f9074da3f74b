//! A one-input, one-output libavfilter graph for video pictures: the plumbing shared by the
//! HDR tone mapper ([`super::hdr`]) and the deinterlacer ([`super::deinterlace`]).

use ffmpeg_next as ffmpeg;

use ffmpeg::{filter, format, frame, Rational};

/// A filter chain in FFmpeg's graph syntax between a picture source and a sink.
pub struct VideoFilter {
    graph: filter::Graph,
    flushed: bool,
}

impl VideoFilter {
    /// `spec` for `width`×`height` pictures in `pixel` format whose pixels have the aspect
    /// `aspect` (unknown: square).
    pub fn new(
        width: u32,
        height: u32,
        pixel: format::Pixel,
        aspect: Rational,
        spec: &str,
    ) -> Result<Self, ffmpeg::Error> {
        let mut graph = filter::Graph::new();
        let pixel_id: ffmpeg::ffi::AVPixelFormat = pixel.into();
        let aspect = if aspect.numerator() > 0 && aspect.denominator() > 0 { aspect } else { Rational(1, 1) };
        // The time base is nominal: callers keep their pictures' timestamps themselves.
        let source_args = format!(
            "video_size={width}x{height}:pix_fmt={}:time_base=1/90000:pixel_aspect={}/{}",
            pixel_id as i32,
            aspect.numerator(),
            aspect.denominator()
        );
        let buffer = filter::find("buffer").ok_or(ffmpeg::Error::FilterNotFound)?;
        let sink = filter::find("buffersink").ok_or(ffmpeg::Error::FilterNotFound)?;
        graph.add(&buffer, "in", &source_args)?;
        graph.add(&sink, "out", "")?;
        graph.output("in", 0)?.input("out", 0)?.parse(spec)?;
        graph.validate()?;
        Ok(Self { graph, flushed: false })
    }

    /// Feeds one picture.
    pub fn push(&mut self, picture: &frame::Video) -> Result<(), ffmpeg::Error> {
        let mut source = self.graph.get("in").expect("added in new");
        // SAFETY: both pointers are valid for the call. av_buffersrc_write_frame takes a new
        // reference to the picture's buffers (ffmpeg-next's `add` would take the caller's
        // references away, emptying a picture the caller still owns).
        let code = unsafe { ffmpeg::ffi::av_buffersrc_write_frame(source.as_mut_ptr(), picture.as_ptr()) };
        if code < 0 {
            return Err(ffmpeg::Error::from(code));
        }
        Ok(())
    }

    /// Tells the graph no more pictures come, so filters that hold some let them out; false
    /// when it was told before.
    pub fn flush(&mut self) -> Result<bool, ffmpeg::Error> {
        if self.flushed {
            return Ok(false);
        }
        self.flushed = true;
        self.graph.get("in").expect("added in new").source().flush()?;
        Ok(true)
    }

    /// The next picture out, into `picture`; false when none is ready or the graph ended.
    pub fn pull(&mut self, picture: &mut frame::Video) -> Result<bool, ffmpeg::Error> {
        match self.graph.get("out").expect("added in new").sink().frame(picture) {
            Ok(()) => Ok(true),
            Err(ffmpeg::Error::Eof) => Ok(false),
            Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => Ok(false),
            Err(e) => Err(e),
        }
    }
}
