//! Other Unix platforms: no process-table access; the PID fallback then relies on `kill(pid, 0)` alone.

use std::io;

use super::ProcStat;

/// Unsupported here: always an error of kind `Unsupported`.
///
/// # Errors
/// Always.
pub fn proc_stat(_pid: u32) -> io::Result<Option<ProcStat>> {
  Err(io::Error::new(
    io::ErrorKind::Unsupported,
    "process start times are not available on this platform",
  ))
}

/// A conservative PID limit.
pub fn pid_max() -> u32 {
  99_999
}

/// Unknown here: start times are never available, so this is never called with one.
pub fn start_time_ms(_start_time: u64) -> f64 {
  f64::NAN
}

/// Unknown here.
pub fn start_time_granularity_ms() -> f64 {
  1000.0
}
