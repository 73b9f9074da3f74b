//! The `japanim` command: parse flags, run the library, report errors in one line.
//!
//! Exit codes: 0 success (also when a downstream pipe closes early), 1 error, 2 usage error,
//! 130 interrupted (unfinished outputs removed).

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// jemalloc serves every allocation of the process, libtorch's included (its symbols replace
/// the C library's). Configured in `.cargo/config.toml` to keep freed pages, so the large
/// activations of each frame reuse memory instead of faulting in fresh pages from the kernel.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Ctrl-C, SIGTERM or SIGHUP: remove half-written outputs, then exit as interrupted (130).
    let _ = ctrlc::set_handler(|| japanim::output::remove_unfinished_and_exit(130));
    cli::init_logging(cli.quiet);
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if cli::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("japanim: error: {}", cli::one_line(&err));
            ExitCode::FAILURE
        }
    }
}
