//! Binary formats (PDF, Word, PowerPoint, Excel) are parsed by large libraries that a crafted
//! file can send into long loops or huge allocations. In the server and `ayushctl` they are
//! parsed in a child process of the same executable, limited to [`MEMORY_BYTES`] of address
//! space and [`CPU_SECONDS`] of CPU time, and killed after [`WALL`]: a hostile file fails alone,
//! with a reason, and the process serving everyone else never feels it. Where the binary did
//! not opt in (library tests), extraction runs in-process, still behind every bound the
//! extractors hold themselves.

use super::{ExtractError, Extracted};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The first argument that makes a binary an extraction worker.
pub const WORKER_ARG: &str = "__ayush-extract-worker";
pub const MEMORY_BYTES: u64 = 2 * 1024 * 1024 * 1024;
pub const CPU_SECONDS: u64 = 60;
pub const WALL: Duration = Duration::from_secs(120);

static WORKER: OnceLock<PathBuf> = OnceLock::new();

#[derive(Serialize, Deserialize)]
enum Answer {
    Done(Extracted),
    Failed(ExtractError),
}

/// Runs the worker and exits, when this process was started as one. Binaries call this first
/// thing in `main`, before any runtime or thread exists.
pub fn serve_if_worker() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some(WORKER_ARG) {
        return;
    }
    let source = args.next().unwrap_or_default();
    std::process::exit(worker(&source));
}

/// From now on, binary formats are parsed in child processes of this executable.
pub fn enable() {
    if let Ok(exe) = std::env::current_exe() {
        let _ = WORKER.set(exe);
    }
}

fn worker(source: &str) -> i32 {
    // Best effort: where a limit cannot be set, the parent's wall-clock bound still holds.
    let _ = rlimit::setrlimit(rlimit::Resource::AS, MEMORY_BYTES, MEMORY_BYTES);
    let _ = rlimit::setrlimit(rlimit::Resource::CPU, CPU_SECONDS, CPU_SECONDS);
    let mut bytes = Vec::new();
    if std::io::stdin().read_to_end(&mut bytes).is_err() {
        return 2;
    }
    let answer = match super::extract_here(&bytes, source) {
        Ok(e) => Answer::Done(e),
        Err(e) => Answer::Failed(e),
    };
    let mut out = std::io::stdout().lock();
    match serde_json::to_writer(&mut out, &answer) {
        Ok(()) if out.flush().is_ok() => 0,
        _ => 2,
    }
}

/// Whether these bytes are in a format parsed by a large third-party library.
fn risky(bytes: &[u8]) -> bool {
    super::pdf_offset(bytes).is_some() || bytes.starts_with(b"PK\x03\x04")
}

/// Extracts `bytes`, isolated when the format calls for it and the binary allows it.
pub fn extract(bytes: &[u8], source: &str) -> Result<Extracted, ExtractError> {
    match WORKER.get() {
        Some(exe) if risky(bytes) => in_child(exe, bytes, source),
        _ => super::extract_here(bytes, source),
    }
}

fn in_child(exe: &PathBuf, bytes: &[u8], source: &str) -> Result<Extracted, ExtractError> {
    let failed = |why: String| ExtractError::Corrupt(why);
    let mut child = Command::new(exe)
        .arg(WORKER_ARG)
        .arg(source)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| failed(format!("cannot start the extraction process: {e}")))?;
    let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        return Err(failed("the extraction process has no pipes".into()));
    };
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input); // a worker that dies early closes the pipe: its status says why
    });
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + WALL;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(failed(format!("lost the extraction process: {e}"))),
        }
    };
    let _ = writer.join();
    let output = reader.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(ExtractError::TooLarge(format!("reading it took longer than {} s", WALL.as_secs())));
    };
    if !status.success() {
        return Err(ExtractError::TooLarge(format!(
            "reading it needed more than {} GiB of memory or {CPU_SECONDS} s of CPU, or crashed the reader ({status})",
            MEMORY_BYTES >> 30
        )));
    }
    match serde_json::from_slice::<Answer>(&output) {
        Ok(Answer::Done(e)) => Ok(e),
        Ok(Answer::Failed(e)) => Err(e),
        Err(e) => Err(failed(format!("the extraction process answered nonsense: {e}"))),
    }
}
