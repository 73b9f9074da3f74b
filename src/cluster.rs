//! Work across machines on an existing scheduler: `join` puts the parts of a video back
//! together, and [`SlurmJob`] writes and submits the SLURM array that makes them (one task
//! per part, `stylize --part auto/N`) with a join job that runs only if every part succeeded.
//! A Kubernetes Indexed Job runs the same part command (see the README).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
#[cfg(feature = "video")]
use std::time::Instant;

#[cfg(feature = "video")]
use crate::output::PendingFile;
use crate::Error;

fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid(message.into())
}

/// What a join did.
#[derive(Debug, Clone)]
pub struct JoinSummary {
    /// The output.
    pub output: PathBuf,
    /// Parts joined.
    pub parts: usize,
    /// Video packets copied.
    pub video_packets: u64,
    /// Audio and subtitle packets copied from the source.
    pub other_packets: u64,
    /// Wall-clock time.
    pub elapsed: Duration,
}

/// Joins the finished `parts` of `source` into `output` by stream copy, with the source's
/// audio and subtitles; checks first that they are every part once, of this video, made with
/// one set of settings. The output appears only when complete.
#[cfg(feature = "video")]
pub fn join(parts: &[PathBuf], source: &Path, output: &Path, overwrite: bool) -> Result<JoinSummary, Error> {
    let start = Instant::now();
    if !crate::io::video::has_container_for(output) {
        return Err(invalid(format!(
            "{}: FFmpeg has no container for this file extension: use e.g. .mkv or .mp4",
            output.display()
        )));
    }
    let same = |a: &Path| a.canonicalize().ok().is_some_and(|a| output.canonicalize().ok() == Some(a));
    if same(source) || parts.iter().any(|p| same(p)) {
        return Err(invalid(format!("{}: the output must not be the source or one of the parts", output.display())));
    }
    let checked = crate::io::parts::check_parts(parts, source)?;
    let pending = PendingFile::new(output, overwrite)?;
    let report = crate::io::parts::join(&checked, source, pending.temp_path(), pending.destination())?;
    let checked = checked.parts;
    let output = pending.commit()?;
    Ok(JoinSummary {
        output,
        parts: checked.len(),
        video_packets: report.video_packets,
        other_packets: report.other_packets,
        elapsed: start.elapsed(),
    })
}

/// Without the `video` feature there is nothing to join.
#[cfg(not(feature = "video"))]
pub fn join(_parts: &[PathBuf], _source: &Path, _output: &Path, _overwrite: bool) -> Result<JoinSummary, Error> {
    Err(invalid("this japanim was built without the `video` feature: it cannot join video parts"))
}

/// A stylize run split over a SLURM job array, and the join that follows it.
#[derive(Debug, Clone)]
pub struct SlurmJob {
    /// The japanim binary the tasks run (a path every node sees).
    pub japanim: PathBuf,
    /// The video.
    pub input: PathBuf,
    /// The joined output.
    pub output: PathBuf,
    /// Parts, one array task each.
    pub parts: u32,
    /// Folder for the scripts, the parts and the logs (on storage every node sees).
    pub work_dir: PathBuf,
    /// `--partition`.
    pub partition: Option<String>,
    /// GPUs per part task (`--gpus-per-task`; 0: none asked for).
    pub gpus_per_part: u32,
    /// CPUs per part task.
    pub cpus_per_part: u32,
    /// `--time` limit of each task (SLURM's format, e.g. 2:00:00).
    pub time: Option<String>,
    /// Further `stylize` flags for every part (model, codec, …).
    pub stylize_args: Vec<String>,
    /// Whether the join may replace an existing output.
    pub overwrite: bool,
}

/// Quotes a word for a POSIX shell.
fn shell_quote(word: &str) -> String {
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b)) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

fn quote_path(path: &Path) -> String {
    shell_quote(&path.to_string_lossy())
}

impl SlurmJob {
    /// The file part `k` is written to.
    pub fn part_path(&self, k: u32) -> PathBuf {
        self.work_dir.join(format!("part-{k}.mkv"))
    }

    fn header(&self, name: &str, log: &str, gpus: u32, cpus: u32) -> String {
        let mut s = String::from("#!/bin/bash\n");
        s += &format!("#SBATCH --job-name={name}\n");
        // SLURM expands %-patterns in the log name (%a: the array index): a literal % is %%.
        let folder = self.work_dir.to_string_lossy().replace('%', "%%");
        s += &format!("#SBATCH --output={}\n", shell_quote(&format!("{folder}/{log}")));
        s += "#SBATCH --ntasks=1\n";
        s += &format!("#SBATCH --cpus-per-task={cpus}\n");
        if gpus > 0 {
            s += &format!("#SBATCH --gpus-per-task={gpus}\n");
        }
        if let Some(p) = &self.partition {
            s += &format!("#SBATCH --partition={}\n", shell_quote(p));
        }
        if let Some(t) = &self.time {
            s += &format!("#SBATCH --time={}\n", shell_quote(t));
        }
        s
    }

    /// The array script: task K stylizes part K/N into [`Self::part_path`]. A retried task
    /// keeps a finished part and rewrites an unfinished one (parts appear only when complete).
    pub fn part_script(&self) -> String {
        let mut s = self.header("japanim-part", "part-%a.log", self.gpus_per_part, self.cpus_per_part.max(1));
        s += &format!("#SBATCH --array=0-{}\n", self.parts.saturating_sub(1));
        s += "set -euo pipefail\n";
        let extra: Vec<String> = self.stylize_args.iter().map(|a| shell_quote(a)).collect();
        s += &format!(
            "exec {} --quiet stylize {} -o {}/part-\"$SLURM_ARRAY_TASK_ID\".mkv --part auto/{}{}{}\n",
            quote_path(&self.japanim),
            quote_path(&self.input),
            quote_path(&self.work_dir),
            self.parts,
            if extra.is_empty() { "" } else { " " },
            extra.join(" ")
        );
        s
    }

    /// The join script: every part into the output, with the source's audio and subtitles.
    pub fn join_script(&self) -> String {
        let mut s = self.header("japanim-join", "join.log", 0, 1);
        s += "set -euo pipefail\n";
        let parts: Vec<String> = (0..self.parts).map(|k| quote_path(&self.part_path(k))).collect();
        s += &format!(
            "exec {} join {} -o {} --source {}{}\n",
            quote_path(&self.japanim),
            parts.join(" "),
            quote_path(&self.output),
            quote_path(&self.input),
            if self.overwrite { " --overwrite" } else { "" }
        );
        s
    }

    /// Writes both scripts into the work folder; returns their paths (parts, join).
    pub fn write_scripts(&self) -> Result<(PathBuf, PathBuf), Error> {
        std::fs::create_dir_all(&self.work_dir)
            .map_err(|e| invalid(format!("work folder {}: {e}", self.work_dir.display())))?;
        let parts = self.work_dir.join("parts.sbatch");
        let join = self.work_dir.join("join.sbatch");
        for (path, text) in [(&parts, self.part_script()), (&join, self.join_script())] {
            std::fs::write(path, text).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        }
        Ok((parts, join))
    }

    /// Writes the scripts and submits them: the array, then the join with `afterok` on it and
    /// `--kill-on-invalid-dep=yes` (a failed part cancels the join instead of leaving it
    /// pending for ever). Returns the job ids (array, join).
    pub fn submit(&self) -> Result<(String, String), Error> {
        let (parts, join) = self.write_scripts()?;
        let array = sbatch(&[], &parts)?;
        let dependency = format!("--dependency=afterok:{array}");
        let join = sbatch(&[&dependency, "--kill-on-invalid-dep=yes"], &join)?;
        Ok((array, join))
    }
}

/// Runs `sbatch --parsable FLAGS SCRIPT`; returns the job id.
fn sbatch(flags: &[&str], script: &Path) -> Result<String, Error> {
    let output = Command::new("sbatch")
        .arg("--parsable")
        .args(flags)
        .arg(script)
        .output()
        .map_err(|e| invalid(format!("running sbatch for {}: {e} (is SLURM installed here?)", script.display())))?;
    if !output.status.success() {
        return Err(invalid(format!(
            "sbatch {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    // `--parsable` prints "id" or "id;cluster".
    let text = String::from_utf8_lossy(&output.stdout);
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!("sbatch {} printed no job id: {text:?}", script.display())));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> SlurmJob {
        SlurmJob {
            japanim: "/opt/japanim".into(),
            input: "/data/my film.mp4".into(),
            output: "/data/out.mp4".into(),
            parts: 3,
            work_dir: "/scratch/w".into(),
            partition: Some("gpu".into()),
            gpus_per_part: 1,
            cpus_per_part: 4,
            time: None,
            stylize_args: vec!["--codec".into(), "ffv1".into(), "--model".into(), "/m/it's.safetensors".into()],
            overwrite: true,
        }
    }

    #[test]
    fn the_array_script_runs_one_part_per_task_and_quotes_paths() {
        let s = job().part_script();
        assert!(s.starts_with("#!/bin/bash\n"));
        assert!(s.contains("#SBATCH --array=0-2\n"));
        assert!(s.contains("#SBATCH --gpus-per-task=1\n#SBATCH --partition=gpu\n"));
        assert!(s.contains("#SBATCH --output=/scratch/w/part-%a.log\n"));
        assert!(s.contains(
            "exec /opt/japanim --quiet stylize '/data/my film.mp4' -o /scratch/w/part-\"$SLURM_ARRAY_TASK_ID\".mkv \
             --part auto/3 --codec ffv1 --model '/m/it'\\''s.safetensors'\n"
        ));
    }

    #[test]
    fn a_percent_sign_in_the_work_folder_is_kept_literal_in_the_log_name() {
        let job = SlurmJob { work_dir: "/scratch/100%".into(), ..job() };
        assert!(job.part_script().contains("#SBATCH --output=/scratch/100%%/part-%a.log\n"));
    }

    #[test]
    fn the_join_script_names_every_part_in_order() {
        let s = job().join_script();
        assert!(!s.contains("--gpus"), "the join copies packets: no GPU");
        assert!(s.contains(
            "exec /opt/japanim join /scratch/w/part-0.mkv /scratch/w/part-1.mkv /scratch/w/part-2.mkv -o /data/out.mp4 \
             --source '/data/my film.mp4' --overwrite\n"
        ));
    }
}
