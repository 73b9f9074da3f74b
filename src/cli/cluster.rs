//! `japanim join` and `japanim cluster`: a video's parts put back together, and the SLURM
//! array that makes them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use japanim::cluster::{self, SlurmJob};

use super::say;

/// `japanim join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The parts, in any order (each made by `stylize --part K/N`).
    #[arg(required = true)]
    pub parts: Vec<PathBuf>,
    /// The joined video.
    #[arg(short, long)]
    pub output: PathBuf,
    /// The video the parts were made from: its timestamps check the parts, and its audio and
    /// subtitle streams are copied into the output once, untouched.
    #[arg(long)]
    pub source: PathBuf,
    /// Replace the output if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

/// `join`: check the parts, copy their packets and the source's other streams.
pub fn join(args: JoinArgs) -> Result<()> {
    let summary = cluster::join(&args.parts, &args.source, &args.output, args.overwrite)?;
    tracing::info!(
        "wrote {} ({} parts: {} video packets, {} audio/subtitle packets from {}, in {:.2} s; nothing re-encoded)",
        summary.output.display(),
        summary.parts,
        summary.video_packets,
        summary.other_packets,
        args.source.display(),
        summary.elapsed.as_secs_f64()
    );
    Ok(())
}

/// `japanim cluster`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Stylize one video as a SLURM job array (one task per part) and join the parts in a
    /// job that runs once every part succeeded.
    Slurm(SlurmArgs),
}

/// `japanim cluster slurm`.
#[derive(Debug, Args)]
pub struct SlurmArgs {
    /// The video (on storage every node sees).
    pub input: PathBuf,
    /// The joined output.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Parts, one array task each.
    #[arg(long)]
    pub parts: u32,
    /// SLURM partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// GPUs per part task (0: none).
    #[arg(long, default_value_t = 1)]
    pub gpus_per_part: u32,
    /// CPUs per part task.
    #[arg(long, default_value_t = 4)]
    pub cpus_per_part: u32,
    /// Time limit per task, as SLURM writes it (e.g. 2:00:00).
    #[arg(long)]
    pub time: Option<String>,
    /// Folder for the scripts, parts and logs [default: OUTPUT.parts beside the output].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Write the scripts and print how to submit them, without submitting.
    #[arg(long)]
    pub dry_run: bool,
    /// Start over: remove the parts an earlier run left in the work folder, and let the join
    /// replace an existing output. Without it, a re-submission keeps finished parts that match.
    #[arg(long)]
    pub overwrite: bool,
    /// Further `stylize` flags for every part, after `--` (e.g. -- --model m.safetensors --crf 20).
    #[arg(last = true)]
    pub stylize_args: Vec<String>,
}

/// `cluster`.
pub fn run(command: ClusterCommand) -> Result<()> {
    let ClusterCommand::Slurm(args) = command;
    if args.parts == 0 {
        anyhow::bail!("--parts must be at least 1");
    }
    if args.output.exists() && !args.overwrite {
        anyhow::bail!("{} already exists: pass --overwrite to replace it", args.output.display());
    }
    let absolute = |p: &PathBuf| std::path::absolute(p).with_context(|| format!("{}", p.display()));
    let input = absolute(&args.input)?;
    if !input.is_file() {
        anyhow::bail!("input {} is not a file", input.display());
    }
    let output = absolute(&args.output)?;
    let work_dir = match &args.work_dir {
        Some(dir) => absolute(dir)?,
        None => {
            let mut name = output.file_name().unwrap_or_default().to_os_string();
            name.push(".parts");
            output.with_file_name(name)
        }
    };
    let japanim = std::env::current_exe().context("finding the japanim binary for the tasks")?;
    let job = SlurmJob {
        japanim,
        input,
        output,
        parts: args.parts,
        work_dir,
        partition: args.partition,
        gpus_per_part: args.gpus_per_part,
        cpus_per_part: args.cpus_per_part,
        time: args.time,
        stylize_args: args.stylize_args,
        overwrite: args.overwrite,
    };
    if args.overwrite {
        // Parts of an earlier run (perhaps with other settings) would make the tasks refuse to
        // replace them; starting over means removing them.
        for entry in std::fs::read_dir(&job.work_dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_part = name
                .strip_prefix("part-")
                .and_then(|n| n.strip_suffix(".mkv"))
                .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
            if is_part {
                std::fs::remove_file(entry.path())
                    .with_context(|| format!("removing the earlier part {}", entry.path().display()))?;
            }
        }
    }
    if args.dry_run {
        let (parts, join) = job.write_scripts()?;
        say!("wrote {} and {}; submit them with:", parts.display(), join.display())?;
        say!("  array=$(sbatch --parsable {})", parts.display())?;
        say!("  sbatch --dependency=afterok:$array --kill-on-invalid-dep=yes {}", join.display())?;
        return Ok(());
    }
    let (array, join) = job.submit()?;
    say!("submitted: parts as array job {array} ({} tasks), join as job {join} (after all parts succeed)", job.parts)?;
    say!("watch: squeue -j {array},{join}    logs: {}/part-*.log, join.log", job.work_dir.display())?;
    say!("states: scontrol show job {join} (or, with accounting, sacct -j {array},{join} --format=JobID,State,Elapsed,ExitCode)")?;
    say!("array {array}")?;
    say!("join {join}")?;
    Ok(())
}
