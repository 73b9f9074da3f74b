//! The CSV manifests the dataset commands write beside their output: one row per key-frame
//! candidate or per source image, with why it was dropped or skipped. Written with the `csv`
//! crate, so a comma, quote or line break in a file name or a reason is quoted instead of
//! breaking the row.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::DatasetError;

/// One key-frame candidate of `dataset keyframes` (or a video that could not be read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyframeRow {
    /// The video.
    pub source: String,
    /// Frame index in the video (empty for a skipped video).
    pub frame: String,
    /// Timestamp in seconds, where the stream has one.
    pub seconds: String,
    /// Frame-difference score.
    pub score: String,
    /// The smoothed score as a z-score over the video.
    pub zscore: String,
    /// `kept`, `dropped: …` or `skipped: …`.
    pub status: String,
    /// The written frame, if kept.
    pub file: String,
}

/// Header of the key-frame manifest.
pub const KEYFRAME_HEADER: [&str; 7] = ["source", "frame", "seconds", "score", "zscore", "status", "file"];

/// One source image of `dataset build`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct BuildRow {
    /// `photo` or `anime`.
    pub kind: String,
    /// The source the image came from (a folder or a video).
    pub source: String,
    /// The image.
    pub image: String,
    /// `train` or `val`.
    pub split: String,
    /// Crops written.
    pub crops: usize,
    /// Why scales were skipped, if any.
    pub note: String,
}

/// Header of the build manifest.
pub const BUILD_HEADER: [&str; 6] = ["kind", "source", "image", "split", "crops", "note"];

/// Writes `header` and `rows` to `path` as CSV.
pub fn write<R: Serialize>(path: &Path, header: &[&str], rows: &[R]) -> Result<(), DatasetError> {
    let io = |source: std::io::Error| DatasetError::Io { path: path.into(), source };
    let csv_error = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(source) => io(source),
        other => DatasetError::Invalid(format!("{}: writing a manifest row: {other:?}", path.display())),
    };
    let mut writer = csv::WriterBuilder::new().has_headers(false).from_path(path).map_err(csv_error)?;
    writer.write_record(header).map_err(csv_error)?;
    for row in rows {
        writer.serialize(row).map_err(csv_error)?;
    }
    writer.flush().map_err(io)
}

/// Reads a key-frame manifest written by [`write`].
pub fn read_keyframes(path: &Path) -> Result<Vec<KeyframeRow>, DatasetError> {
    let bad = |e: csv::Error| DatasetError::Invalid(format!("{}: reading the manifest: {e}", path.display()));
    let mut reader = csv::Reader::from_path(path).map_err(bad)?;
    reader.deserialize().collect::<Result<_, _>>().map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_or_quote_in_a_name_stays_in_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.csv");
        let row = BuildRow {
            kind: "photo".into(),
            source: "trips, 2024".into(),
            image: "trips, 2024/beach \"north\".png".into(),
            split: "train".into(),
            crops: 3,
            note: String::new(),
        };
        write(&path, &BUILD_HEADER, std::slice::from_ref(&row)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "kind,source,image,split,crops,note\nphoto,\"trips, 2024\",\"trips, 2024/beach \"\"north\"\".png\",train,3,\n"
        );
        let mut reader = csv::Reader::from_path(&path).unwrap();
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].len(), 6);
        assert_eq!(&records[0][1], "trips, 2024");
        assert_eq!(&records[0][2], "trips, 2024/beach \"north\".png");
        assert_eq!(&records[0][4], "3");
    }

    #[test]
    fn a_keyframe_manifest_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.csv");
        let rows = vec![
            KeyframeRow {
                source: "a, b.mkv".into(),
                frame: "12".into(),
                status: "kept".into(),
                file: "x/a_12.png".into(),
                ..Default::default()
            },
            KeyframeRow {
                source: "a, b.mkv".into(),
                frame: "30".into(),
                status: "dropped: blank".into(),
                ..Default::default()
            },
        ];
        write(&path, &KEYFRAME_HEADER, &rows).unwrap();
        assert_eq!(read_keyframes(&path).unwrap(), rows);
    }

    #[test]
    fn the_header_is_written_without_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.csv");
        write::<KeyframeRow>(&path, &KEYFRAME_HEADER, &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "source,frame,seconds,score,zscore,status,file\n");
    }
}
