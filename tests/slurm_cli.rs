//! `japanim cluster slurm` against a real SLURM: a single-node controller and node started
//! for the test (scripts/slurm-local.sh), a 3-part array and its join submitted with
//! `sbatch`, each job's final state read with `scontrol show job`, then the output. Skipped,
//! with a message, where scripts/setup.sh has not installed SLURM or the test is not root.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ffmpeg, framemd5, japanim, run, stderr, tiny_model};

/// The daemons, stopped when dropped (also when the test fails).
struct Slurm {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl Slurm {
    fn start() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-local.sh");
        // A port of its own, away from a SLURM the machine may run.
        let out = Command::new(script).arg("start").arg(dir.path()).env("SLURM_TEST_PORT", "16817").output().unwrap();
        match out.status.code() {
            Some(0) => {}
            Some(3) => {
                eprintln!("SKIPPED: no SLURM here ({})", String::from_utf8_lossy(&out.stderr).trim());
                return None;
            }
            _ => panic!("starting SLURM failed: {}", String::from_utf8_lossy(&out.stderr)),
        }
        let conf = dir.path().join("slurm.conf");
        Some(Self { dir, conf })
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("SLURM_CONF", &self.conf);
        cmd
    }

    /// Waits until every record of job `id` (each task of an array) has ended; returns
    /// their final states. `sbatch --wait` is no help: it can return 0 for a join that a
    /// failed dependency cancelled.
    fn final_states(&self, id: &str) -> Vec<String> {
        let start = Instant::now();
        loop {
            let out = self.command("scontrol").args(["show", "job", id]).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let states: Vec<String> =
                text.split_whitespace().filter_map(|w| w.strip_prefix("JobState=")).map(str::to_string).collect();
            let running = ["PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"];
            if !states.is_empty() && states.iter().all(|s| !running.contains(&s.as_str())) {
                return states;
            }
            assert!(start.elapsed() < Duration::from_secs(300), "job {id} did not end: {text}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-local.sh");
        let _ = Command::new(script).arg("stop").arg(self.dir.path()).status();
    }
}

/// The job ids `cluster slurm` printed (`array ID`, `join ID` lines).
fn job_ids(stdout: &str) -> (String, String) {
    let id = |key: &str| {
        stdout.lines().find_map(|l| l.strip_prefix(key)).map(|s| s.trim().to_string()).expect("a job id line")
    };
    (id("array "), id("join "))
}

#[test]
fn a_three_part_array_and_its_join_run_through_sbatch() {
    let Some(slurm) = Slurm::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("clip.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=96x64:rate=15",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440",
        "-t",
        "2",
        "-c:v",
        "libx264",
        "-g",
        "8",
        "-c:a",
        "aac",
        "-shortest",
        input.to_str().unwrap(),
    ]);
    let output = dir.path().join("out.mkv");
    let submit = |output: &Path, model: &Path| {
        run(japanim()
            .env("SLURM_CONF", &slurm.conf)
            .args(["cluster", "slurm"])
            .arg(&input)
            .arg("-o")
            .arg(output)
            .args(["--parts", "3", "--gpus-per-part", "0", "--cpus-per-part", "1", "--", "--codec", "ffv1", "--model"])
            .arg(model))
    };
    let out = submit(&output, &model);
    assert!(out.status.success(), "{}", stderr(&out));
    let (array, join) = job_ids(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(slurm.final_states(&array), ["COMPLETED"; 3]);
    assert_eq!(slurm.final_states(&join), ["COMPLETED"]);
    // The joined video is the one-machine run, frame for frame.
    let whole = dir.path().join("whole.mkv");
    let out = run(japanim()
        .arg("stylize")
        .arg(&input)
        .arg("-o")
        .arg(&whole)
        .arg("--model")
        .arg(&model)
        .args(["--codec", "ffv1"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(framemd5(&output), framemd5(&whole));

    // Parts that fail cancel the join: no output, and the state says so.
    let failed = dir.path().join("failed.mkv");
    let out = submit(&failed, &dir.path().join("missing.safetensors"));
    assert!(out.status.success(), "{}", stderr(&out));
    let (array, join) = job_ids(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(slurm.final_states(&array), ["FAILED"; 3]);
    assert_eq!(slurm.final_states(&join), ["CANCELLED"]);
    assert!(!failed.exists());
    let log = std::fs::read_to_string(dir.path().join("failed.mkv.parts/part-0.log")).unwrap();
    assert!(log.contains("missing.safetensors"), "the task's log names the problem: {log}");
}
