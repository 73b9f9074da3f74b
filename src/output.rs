//! Output files that appear only when complete: everything is written under a temporary
//! name beside the destination and renamed over it at the end.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files being written, so an interrupted run can remove them (see
/// [`remove_unfinished`]).
static UNFINISHED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn forget(temp: &Path) {
    if let Ok(mut list) = UNFINISHED.lock() {
        list.retain(|p| p != temp);
    }
}

/// Deletes every output still being written and ends the process at once with `code`; for an
/// interrupt handler. It holds the registry's lock to the end, so no output can be committed
/// after its temporary file was removed, and it leaves through `_exit`: `exit` would run
/// libtorch's and FFmpeg's static destructors while other threads still use them, which
/// crashes (SIGSEGV) often enough to lose the exit status.
pub fn remove_unfinished_and_exit(code: i32) -> ! {
    let list = UNFINISHED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for path in list.iter() {
        let _ = std::fs::remove_file(path);
    }
    // SAFETY: _exit only ends the process; nothing after it runs.
    unsafe { libc::_exit(code) }
}

/// Why an output could not be started or finished.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The destination exists and `--overwrite` was not given.
    #[error("{0} already exists: pass --overwrite to replace it")]
    Exists(PathBuf),
    /// The destination's folder does not exist.
    #[error("output folder {0} does not exist")]
    NoFolder(PathBuf),
    /// The finished temporary file could not be flushed to disk.
    #[error("could not write {path} to disk: {source}")]
    Flush {
        /// Destination path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Renaming the finished temporary file failed.
    #[error("could not move the finished output to {path}: {source}")]
    Rename {
        /// Destination path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A destination file being written under a temporary name. Dropping it without
/// [`PendingFile::commit`] deletes the temporary file, so a failed run leaves nothing behind.
#[derive(Debug)]
pub struct PendingFile {
    destination: PathBuf,
    temp: PathBuf,
    committed: bool,
}

impl PendingFile {
    /// Reserves `destination`, refusing an existing file unless `overwrite`. The temporary
    /// name keeps the extension, since FFmpeg and image encoders choose the format from it.
    pub fn new(destination: &Path, overwrite: bool) -> Result<Self, OutputError> {
        if destination.exists() && !overwrite {
            return Err(OutputError::Exists(destination.to_path_buf()));
        }
        let folder = match destination.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !folder.is_dir() {
            return Err(OutputError::NoFolder(folder));
        }
        let stem = destination.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let ext = destination.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
        // Process id and a counter: unique even when threads write outputs of the same name.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = folder.join(format!(".{stem}.partial-{}-{n}{ext}", std::process::id()));
        if let Ok(mut list) = UNFINISHED.lock() {
            list.push(temp.clone());
        }
        Ok(Self { destination: destination.to_path_buf(), temp, committed: false })
    }

    /// Where to write the data.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// The final path.
    pub fn destination(&self) -> &Path {
        &self.destination
    }

    /// Flushes the finished file to disk and moves it to its destination. Flushed first, so a
    /// crash or power cut soon after cannot leave an empty or partial file under the final
    /// name (file systems may order the rename before the data).
    pub fn commit(mut self) -> Result<PathBuf, OutputError> {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&self.temp)
            .and_then(|file| file.sync_all())
            .map_err(|source| OutputError::Flush { path: self.destination.clone(), source })?;
        // Under the registry's lock, so an interrupt either sees the temporary file and
        // removes it, or comes after the finished file took its name.
        let mut list = UNFINISHED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        std::fs::rename(&self.temp, &self.destination)
            .map_err(|source| OutputError::Rename { path: self.destination.clone(), source })?;
        self.committed = true;
        list.retain(|p| p != &self.temp);
        Ok(self.destination.clone())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
            forget(&self.temp);
        }
    }
}

impl From<OutputError> for crate::frame::StageError {
    fn from(error: OutputError) -> Self {
        crate::frame::StageError::new(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_renames_and_drop_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.png");
        let pending = PendingFile::new(&dest, false).unwrap();
        std::fs::write(pending.temp_path(), b"x").unwrap();
        assert!(pending.temp_path().extension().unwrap() == "png");
        pending.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"x");

        assert!(matches!(PendingFile::new(&dest, false), Err(OutputError::Exists(_))));
        let pending = PendingFile::new(&dest, true).unwrap();
        std::fs::write(pending.temp_path(), b"half").unwrap();
        let temp = pending.temp_path().to_path_buf();
        drop(pending);
        assert!(!temp.exists(), "an unfinished file is removed");
        assert_eq!(std::fs::read(&dest).unwrap(), b"x", "the old output is untouched");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
