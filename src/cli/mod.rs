//! The command line: one module per subcommand, each holding its flags (as clap parses
//! them) and the function that turns them into library calls.

mod bench;
mod cluster;
mod dataset;
mod eval;
mod model;
mod stylize;
mod train;

use std::io::IsTerminal;

use anyhow::Result;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use japanim::device;

/// Turn real-world video into anime-style video with a CartoonGAN generator.
#[derive(Debug, Parser)]
#[command(name = "japanim", version = version(), about, max_term_width = 100)]
pub struct Cli {
    /// Only print warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

fn version() -> &'static str {
    concat!(env!("CARGO_PKG_VERSION"), " (tch 0.24.0, libtorch 2.11.0", video_feature!(), ")")
}

#[cfg(feature = "video")]
macro_rules! video_feature {
    () => {
        ", FFmpeg video"
    };
}
#[cfg(not(feature = "video"))]
macro_rules! video_feature {
    () => {
        ", no video feature"
    };
}
use video_feature;

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stylize an image, a folder of images, a video file, or raw frames from stdin.
    Stylize(stylize::StylizeArgs),
    /// Make, inspect or convert generator weight files.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Build training sets: crops, edge-smoothed anime, train/val split.
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
    /// Train a generator (pre-training, then adversarial training) on a dataset.
    Train(train::TrainArgs),
    /// Write the generator of a training run as a weights file for `stylize`.
    Export(train::ExportArgs),
    /// Measure how much content models keep, how much style they add and their look (flat
    /// share, grid score) on a photo set; or, with --video, how much a stylized video flickers.
    Eval(eval::EvalArgs),
    /// Measure throughput: the generator alone, the whole engine stream, a video pipeline,
    /// or training steps.
    Bench(bench::BenchArgs),
    /// Put the parts of a video (from `stylize --part K/N`) back together, without
    /// re-encoding, with the source's audio and subtitles.
    Join(cluster::JoinArgs),
    /// Run work across a cluster on its scheduler (SLURM).
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Report which libtorch, device and default model japanim finds.
    Doctor,
}

/// `println!` that returns the write's error instead of panicking on it, so that a reader
/// that stops early (`japanim doctor | head -1`) ends the command quietly, as a closed pipe
/// does for frames (see [`is_broken_pipe`]).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
    }};
}
pub(crate) use say;

/// Logs go to stderr (stdout may carry frames); `RUST_LOG` overrides the level.
pub fn init_logging(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Whether an error is a closed pipe downstream (`japanim … - | head`), which ends quietly.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<japanim::Error>().is_some_and(japanim::Error::is_broken_pipe)
            || cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line, each cause once (library errors often quote
/// their cause already).
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Stylize(args) => stylize::run(args, !cli.quiet),
        Command::Model(command) => model::run(command),
        Command::Dataset(command) => dataset::run(command, !cli.quiet),
        Command::Train(args) => train::train(args, !cli.quiet),
        Command::Export(args) => train::export(args),
        Command::Eval(args) => eval::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Join(args) => cluster::join(args),
        Command::Cluster(command) => cluster::run(command),
        Command::Doctor => doctor(),
    }
}

/// `doctor`: what japanim finds on this machine.
fn doctor() -> Result<()> {
    say!("japanim {}", env!("CARGO_PKG_VERSION"))?;
    say!("{}", device::describe())?;
    say!(
        "video (FFmpeg) support: {}",
        if cfg!(feature = "video") { "yes" } else { "no (built without the video feature)" }
    )?;
    let default = japanim::model::ModelSource::default_model();
    match default.load(tch::Device::Cpu, tch::Kind::Float) {
        Ok(model) => {
            let config = model.info().config;
            say!("default model: {default} ({config})")?
        }
        Err(e) => say!("default model: {default} does not load: {e}")?,
    }
    Ok(())
}
