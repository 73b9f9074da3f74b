//! The join's speed on a long video: `cargo bench --bench join -- SOURCE.mp4 N` cuts SOURCE
//! into N parts at key frames by stream copy (standing in for N stylized parts: the join only
//! copies packets, so their pictures do not matter), labels them as `stylize --part` does,
//! then times `japanim::cluster::join` on them: checking every part and the source (each read
//! once for its frame table) and writing the output with the source's audio. Prints the time
//! of the source's frame table alone (what each part task spends planning) and of the join.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ffmpeg_next as ffmpeg;
use japanim::parts::{PartLabel, PartSpec};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [source, parts] = args.as_slice() else {
        eprintln!("usage: cargo bench --bench join -- SOURCE.mp4 PARTS");
        std::process::exit(2);
    };
    let source = PathBuf::from(source);
    let count: u32 = parts.parse().expect("PARTS is a number");
    let dir = tempfile::tempdir_in(source.parent().unwrap_or(Path::new("."))).unwrap();

    let started = Instant::now();
    let table = japanim::io::parts::scan_frames(&source).unwrap();
    let scan = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&source).unwrap().len();
    println!(
        "frame table of {} ({} frames, {} key frames, {:.0} MB): {scan:.2} s",
        source.display(),
        table.frames(),
        table.keyframes.len(),
        bytes as f64 / 1e6
    );

    // Part boundaries at the key frames nearest to K·F/N, so each part is a closed run of
    // whole GOPs in decode order.
    let frames = table.frames();
    let bounds: Vec<u64> = (0..=count)
        .map(|k| {
            let target = u64::from(k) * frames / u64::from(count);
            if k == count {
                return frames;
            }
            table.keyframes.iter().map(|&i| i as u64).min_by_key(|&i| i.abs_diff(target)).unwrap()
        })
        .collect();
    let started = Instant::now();
    let mut paths = Vec::new();
    for k in 0..count as usize {
        let label = PartLabel {
            part: PartSpec::new(k as u32, count).unwrap(),
            first: bounds[k],
            end: bounds[k + 1],
            total: frames,
            source: table.fingerprint(),
            settings: 1,
        };
        let path = dir.path().join(format!("part-{k}.mkv"));
        cut(&source, &table, &label, &path);
        paths.push(path);
    }
    println!("cut {count} parts by stream copy: {:.2} s", started.elapsed().as_secs_f64());

    let output = dir.path().join("joined.mp4");
    let started = Instant::now();
    let summary = japanim::cluster::join(&paths, &source, &output, false).unwrap();
    let join = started.elapsed().as_secs_f64();
    println!(
        "join of {count} parts ({} video + {} audio packets, {:.0} MB): {join:.2} s ({:.0} MB/s)",
        summary.video_packets,
        summary.other_packets,
        std::fs::metadata(&output).unwrap().len() as f64 / 1e6,
        bytes as f64 / 1e6 / join
    );
}

/// Copies the video packets of the frames `label` names into `path`, labelled.
fn cut(source: &Path, table: &japanim::parts::FrameTable, label: &PartLabel, path: &Path) {
    let mut input = ffmpeg::format::input(&source).unwrap();
    let stream = input.streams().best(ffmpeg::media::Type::Video).unwrap();
    let (index, time_base, parameters) = (stream.index(), stream.time_base(), stream.parameters());
    let mut output = ffmpeg::format::output(&path).unwrap();
    {
        let mut out = output.add_stream(ffmpeg::encoder::find(ffmpeg::codec::Id::None)).unwrap();
        out.set_parameters(parameters);
        // SAFETY: the parameters were just allocated by FFmpeg; mp4's tag means nothing in mkv.
        unsafe { (*out.parameters().as_mut_ptr()).codec_tag = 0 };
        out.set_time_base(time_base);
    }
    let mut metadata = ffmpeg::Dictionary::new();
    metadata.set("comment", &label.to_string());
    output.set_metadata(metadata);
    output.write_header().unwrap();
    let out_tb = output.stream(0).unwrap().time_base();
    for (s, mut packet) in input.packets() {
        if s.index() != index {
            continue;
        }
        let Some(i) = packet.pts().and_then(|pts| table.index_of(pts)) else { continue };
        if i < label.first || i >= label.end {
            continue;
        }
        packet.rescale_ts(time_base, out_tb);
        packet.set_position(-1);
        packet.set_stream(0);
        packet.write_interleaved(&mut output).unwrap();
    }
    output.write_trailer().unwrap();
}
