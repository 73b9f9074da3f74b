//! `japanim train` and `japanim export`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::model::SavedPrecision;

/// `japanim train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset folder, as `japanim dataset build` writes it.
    #[arg(long)]
    pub data: PathBuf,
    /// Run folder (configuration, checkpoints, logs, plots, samples).
    #[arg(long)]
    pub out: PathBuf,
    /// Training configuration (TOML); unset keys take the original CartoonGAN values.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue the run in --out from its newest checkpoint, exactly.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this step, with a checkpoint (resume later with --resume).
    #[arg(long)]
    pub until_step: Option<u64>,
}

/// `japanim export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Training run folder.
    pub run: PathBuf,
    /// Weights file to write (.safetensors).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Number format of the file (f16 halves the size, with no visible change).
    #[arg(long, value_enum, default_value_t = SavedPrecision::F16)]
    pub precision: SavedPrecision,
    /// Replace the file if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

/// `train`: a new run, or `--resume` of one.
pub fn train(args: TrainArgs, progress: bool) -> Result<()> {
    let config = match &args.config {
        Some(path) => Some(japanim::train::TrainConfig::read(path)?),
        None if args.resume => None,
        None => Some(japanim::train::TrainConfig::default()),
    };
    let options = japanim::train::run::TrainOptions {
        data: args.data,
        run: args.out,
        config,
        resume: args.resume,
        until_step: args.until_step,
        progress,
    };
    let summary = japanim::train::train(&options)?;
    let state = if summary.step >= summary.total_steps { "finished" } else { "stopped (resume with --resume)" };
    tracing::info!(
        "{} {state} at step {}/{} ({} steps in {:.0} s, {:.2} s/step); checkpoint {}",
        options.run.display(),
        summary.step,
        summary.total_steps,
        summary.steps_this_call,
        summary.seconds,
        summary.seconds / summary.steps_this_call.max(1) as f64,
        summary.checkpoint.display()
    );
    Ok(())
}

/// `export`: the trained generator as a stylize-ready file.
pub fn export(args: ExportArgs) -> Result<()> {
    let path = japanim::train::export(&args.run, &args.output, args.precision.into(), args.overwrite)?;
    tracing::info!("wrote {}", path.display());
    Ok(())
}
