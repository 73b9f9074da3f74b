//! TensorBoard scalars: each loss term of each step, and the validation losses of each epoch,
//! in `RUN/tensorboard/`, so `tensorboard --logdir runs/` shows and compares runs.
//!
//! An event file is a sequence of TFRecords (length, masked CRC-32C of the length, data,
//! masked CRC-32C of the data), each holding an `Event` protobuf. Only the few fields needed
//! are declared. Each start of a run, a resumed one too, writes a new file that begins with a
//! session-start event at its first step: TensorBoard reads the files in name order and, at
//! that event, drops what earlier files recorded from that step on (steps a resume redoes
//! after the last checkpoint).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use prost::Message;

use super::TrainError;

/// `tensorflow.Event`: wall time, step, and one of a file version or a summary.
#[derive(Clone, PartialEq, Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(string, optional, tag = "3")]
    file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
    #[prost(message, optional, tag = "7")]
    session_log: Option<SessionLog>,
}

/// `tensorflow.SessionLog` with its status only.
#[derive(Clone, PartialEq, Message)]
struct SessionLog {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// `SessionLog.START`: a (re)start at the event's step.
const SESSION_START: i32 = 1;

/// `tensorflow.Summary`: tagged values.
#[derive(Clone, PartialEq, Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value` holding a scalar.
#[derive(Clone, PartialEq, Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
}

const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// TFRecord's masked CRC-32C (so a CRC of data holding CRCs is not trivially related).
fn masked_crc(data: &[u8]) -> u32 {
    let crc = CRC32C.checksum(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord around `data`.
fn record(data: &[u8]) -> Vec<u8> {
    let length = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc(&length).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// Writes scalars to a new event file of a run.
pub struct EventWriter {
    path: PathBuf,
    file: BufWriter<std::fs::File>,
}

fn step_number(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl EventWriter {
    /// A new event file in `dir` (created if needed), named as TensorBoard expects, for a
    /// run (re)starting at `first_step`.
    pub fn create(dir: &Path, first_step: u64) -> Result<Self, TrainError> {
        let io = |path: &Path, source| TrainError::Io { path: path.into(), source };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let wall_time = now();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host = host.trim();
        let name = format!(
            "events.out.tfevents.{:010}.{}.{}",
            wall_time as u64,
            if host.is_empty() { "japanim" } else { host },
            std::process::id()
        );
        // A run restarted within the same second gets `.1`, `.2`…, which sort after it.
        let (path, file) = (0..)
            .map(|n| if n == 0 { dir.join(&name) } else { dir.join(format!("{name}.{n}")) })
            .find_map(|path| match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                result => Some(result.map(|file| (path.clone(), file)).map_err(|e| io(&path, e))),
            })
            .expect("some numbered name is free")?;
        let mut writer = Self { path, file: BufWriter::new(file) };
        let version = Event { wall_time, file_version: Some("brain.Event:2".into()), ..Default::default() };
        writer.write(&version)?;
        let start = Event {
            wall_time,
            step: step_number(first_step),
            session_log: Some(SessionLog { status: SESSION_START }),
            ..Default::default()
        };
        writer.write(&start)?;
        Ok(writer)
    }

    /// The event file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records `values` (tag, value) at `step`, and flushes so TensorBoard sees them now.
    pub fn scalars(&mut self, step: u64, values: &[(&str, f64)]) -> Result<(), TrainError> {
        let value = values
            .iter()
            .map(|&(tag, v)| SummaryValue { tag: tag.to_string(), simple_value: Some(v as f32) })
            .collect();
        let event =
            Event { wall_time: now(), step: step_number(step), summary: Some(Summary { value }), ..Default::default() };
        self.write(&event)
    }

    fn write(&mut self, event: &Event) -> Result<(), TrainError> {
        let io = |source| TrainError::Io { path: self.path.clone(), source };
        self.file.write_all(&record(&event.encode_to_vec())).map_err(io)?;
        self.file.flush().map_err(io)
    }
}

/// Reads every scalar of an event file back: (step, tag, value), in order.
pub fn read_scalars(path: &Path) -> Result<Vec<(i64, String, f32)>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rest = bytes.as_slice();
    let mut scalars = Vec::new();
    while !rest.is_empty() {
        let bad = || format!("{}: a damaged record", path.display());
        let (length_bytes, after) = rest.split_at_checked(8).ok_or_else(bad)?;
        let (length_crc, after) = after.split_at_checked(4).ok_or_else(bad)?;
        if masked_crc(length_bytes).to_le_bytes() != length_crc {
            return Err(bad());
        }
        let length = u64::from_le_bytes(length_bytes.try_into().expect("8 bytes")) as usize;
        let (data, after) = after.split_at_checked(length).ok_or_else(bad)?;
        let (data_crc, after) = after.split_at_checked(4).ok_or_else(bad)?;
        if masked_crc(data).to_le_bytes() != data_crc {
            return Err(bad());
        }
        let event = Event::decode(data).map_err(|e| format!("{}: {e}", path.display()))?;
        for v in event.summary.map(|s| s.value).unwrap_or_default() {
            scalars.push((event.step, v.tag, v.simple_value.unwrap_or(f32::NAN)));
        }
        rest = after;
    }
    Ok(scalars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_its_mask_match_tensorboard() {
        // CRC-32C's check value (RFC 3720), and the masked CRCs TensorBoard's own
        // `masked_crc32c` gives for it and for a length header of 15.
        assert_eq!(CRC32C.checksum(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
        assert_eq!(masked_crc(&15u64.to_le_bytes()), 0x092b_536d);
        let event = Event { file_version: Some("brain.Event:2".into()), ..Default::default() };
        let data = event.encode_to_vec();
        assert_eq!(data, b"\x1a\x0dbrain.Event:2", "field 3, 13 bytes; zero fields are not written");
        assert_eq!(record(&data)[..12], [&15u64.to_le_bytes()[..], &0x092b_536du32.to_le_bytes()].concat());
    }

    #[test]
    fn events_encode_as_tensorboards_own_protobufs_do() {
        // The bytes TensorBoard's `event_pb2` gives for the same events (wall time 0).
        let start = Event { step: 4, session_log: Some(SessionLog { status: SESSION_START }), ..Default::default() };
        assert_eq!(start.encode_to_vec(), b"\x10\x04:\x02\x08\x01");
        let value = SummaryValue { tag: "train/content".into(), simple_value: Some(1.5) };
        let scalar = Event { step: 2, summary: Some(Summary { value: vec![value] }), ..Default::default() };
        assert_eq!(scalar.encode_to_vec(), b"\x10\x02*\x16\n\x14\n\rtrain/content\x15\x00\x00\xc0?");
    }

    #[test]
    fn scalars_round_trip_through_an_event_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = EventWriter::create(dir.path(), 1).unwrap();
        writer.scalars(1, &[("train/content", 2.5), ("train/style", 0.125)]).unwrap();
        writer.scalars(2, &[("train/content", 1.5)]).unwrap();
        let path = writer.path().to_path_buf();
        let again = EventWriter::create(dir.path(), 1).unwrap();
        assert!(again.path() != path, "a second file in the same second gets its own name");
        assert!(again.path() > path.as_path(), "and sorts after the first");
        drop((writer, again));
        assert!(path.file_name().unwrap().to_string_lossy().starts_with("events.out.tfevents."));
        let scalars = read_scalars(&path).unwrap();
        assert_eq!(
            scalars,
            vec![
                (1, "train/content".to_string(), 2.5),
                (1, "train/style".to_string(), 0.125),
                (2, "train/content".to_string(), 1.5)
            ]
        );
        // A flipped bit is caught by the CRC.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 6;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(read_scalars(&path).unwrap_err().contains("damaged"));
    }
}
