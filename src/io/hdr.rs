//! HDR video (PQ or HLG transfer, as phones record by default) to SDR BT.709 RGB, with
//! libavfilter's `zscale` (zimg) and `tonemap`.
//!
//! The generator learned its look on SDR pictures. Fed PQ code values as they are, it sees a
//! dim, flat picture (diffuse white near 58 %), its outlines and flat areas come out faint,
//! and an 8-bit output tagged PQ bands. So HDR frames are tone-mapped once, on decoding, and
//! the output is SDR BT.709: a cartoon is an SDR picture.
//!
//! The curve: light is linearised with 100 nits as 1.0, the BT.2020 primaries converted to
//! BT.709, and highlights compressed with Reinhard's curve up to the frame's peak (its
//! content light level or mastering display metadata; 1,000 nits where it has none). Of
//! FFmpeg's curves it keeps an SDR picture carried in PQ or HLG (reference white at 203 nits,
//! BT.2408) closest to the original: mean error 13.3 levels of 255, against 14.6–15.4 for
//! Möbius, 30–56 for Hable and 26 for clipping at 100 nits, on such a round trip of the
//! picture issue's pan (10 frames, 10-bit HEVC). Clipping at 203 nits gives 9.5, the round
//! trip's own floor, but would burn out every real highlight.

use ffmpeg_next as ffmpeg;

use ffmpeg::{color, format, frame, Rational};

use super::filter::VideoFilter;
use super::video::ColourDescription;

/// Whether a transfer characteristic is an HDR one (PQ, HLG).
pub fn is_hdr(transfer: color::TransferCharacteristic) -> bool {
    matches!(transfer, color::TransferCharacteristic::SMPTE2084 | color::TransferCharacteristic::ARIB_STD_B67)
}

/// A short name of an HDR transfer for messages.
pub fn transfer_name(transfer: color::TransferCharacteristic) -> &'static str {
    match transfer {
        color::TransferCharacteristic::SMPTE2084 => "PQ",
        color::TransferCharacteristic::ARIB_STD_B67 => "HLG",
        _ => "SDR",
    }
}

/// The filter graph's text: zscale's input options from the stream's description (frames do
/// not always carry it), then linear light, BT.709 primaries, the curve, BT.709 transfer,
/// packed RGB.
fn graph_spec(colour: ColourDescription) -> String {
    let transfer = match colour.transfer {
        color::TransferCharacteristic::SMPTE2084 => "smpte2084",
        _ => "arib-std-b67",
    };
    let primaries = match colour.primaries {
        color::Primaries::BT709 => "709",
        color::Primaries::SMPTE432 => "smpte432",
        _ => "2020",
    };
    let matrix = match colour.space {
        color::Space::BT709 => "709",
        color::Space::BT2020CL => "2020_cl",
        _ => "2020_ncl",
    };
    let range = if colour.range == color::Range::JPEG { "full" } else { "limited" };
    format!(
        "zscale=tin={transfer}:pin={primaries}:min={matrix}:rin={range}:t=linear:p={primaries}:m={matrix}:npl=100,format=gbrpf32le,\
         zscale=p=709,tonemap=tonemap=reinhard:desat=0,zscale=t=709:m=709:r=full,format=gbrp,format=rgb24"
    )
}

/// Turns HDR pictures into SDR BT.709 packed RGB (RGB24), one picture in, one out.
pub struct ToneMapper {
    filter: VideoFilter,
    rgb: frame::Video,
}

impl ToneMapper {
    /// A graph for `width`×`height` pictures in `pixel` format described by `colour`.
    pub fn new(
        width: u32,
        height: u32,
        pixel: format::Pixel,
        colour: ColourDescription,
    ) -> Result<Self, ffmpeg::Error> {
        let filter = VideoFilter::new(width, height, pixel, Rational(1, 1), &graph_spec(colour))?;
        Ok(Self { filter, rgb: frame::Video::empty() })
    }

    /// The SDR RGB24 picture of `picture` (valid until the next call).
    pub fn run(&mut self, picture: &frame::Video) -> Result<&frame::Video, ffmpeg::Error> {
        self.filter.push(picture)?;
        // zscale and tonemap give a picture for each picture, at once.
        if !self.filter.pull(&mut self.rgb)? {
            return Err(ffmpeg::Error::Bug);
        }
        Ok(&self.rgb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hdr_transfers_are_recognised() {
        assert!(is_hdr(color::TransferCharacteristic::SMPTE2084));
        assert!(is_hdr(color::TransferCharacteristic::ARIB_STD_B67));
        assert!(!is_hdr(color::TransferCharacteristic::BT709));
        assert!(!is_hdr(color::TransferCharacteristic::Unspecified));
    }

    /// A flat HLG picture of mid grey comes out grey and in range; a graph builds for PQ.
    #[test]
    fn a_grey_hlg_picture_stays_grey() {
        super::super::video::init();
        let colour = ColourDescription {
            space: color::Space::BT2020NCL,
            range: color::Range::MPEG,
            primaries: color::Primaries::BT2020,
            transfer: color::TransferCharacteristic::ARIB_STD_B67,
        };
        let mut mapper = ToneMapper::new(64, 32, format::Pixel::YUV420P10LE, colour).unwrap();
        let mut picture = frame::Video::new(format::Pixel::YUV420P10LE, 64, 32);
        // 10-bit limited range: luma 500 (about 50 % HLG), neutral chroma 512.
        for (plane, value) in [(0, 500u16), (1, 512), (2, 512)] {
            for pair in picture.data_mut(plane).chunks_exact_mut(2) {
                pair.copy_from_slice(&value.to_le_bytes());
            }
        }
        picture.set_pts(Some(0));
        let rgb = mapper.run(&picture).unwrap();
        assert_eq!((rgb.format(), rgb.width(), rgb.height()), (format::Pixel::RGB24, 64, 32));
        let pixel = &rgb.data(0)[..3];
        assert!(pixel[0].abs_diff(pixel[1]) <= 1 && pixel[1].abs_diff(pixel[2]) <= 1, "{pixel:?}");
        assert!((60..200).contains(&pixel[0]), "{pixel:?}");
        let pq = ColourDescription { transfer: color::TransferCharacteristic::SMPTE2084, ..colour };
        ToneMapper::new(64, 32, format::Pixel::YUV420P10LE, pq).unwrap();
    }
}
