//! Platform code, in one place. Every platform exposes the same internal API:
//!
//! - `proc_stat(pid)`: state and start time of a process, `Ok(None)` when there is no such process;
//! - `pid_max()`: the largest PID the system hands out;
//! - `try_lock`, `lock_wait`, `unlock`, `probe_lock`: exclusive byte-range locks owned by the open file
//!   (Linux: open-file-description locks; macOS: `fcntl` record locks).

#[cfg(unix)]
mod locks;
#[cfg(unix)]
pub use locks::{lock_wait, probe_lock, try_lock, unlock, LockOutcome, LockProbe};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::{pid_max, proc_stat};

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
pub use macos::{pid_max, proc_stat};

#[cfg(all(unix, not(any(target_os = "linux", target_os = "macos"))))]
mod other;
#[cfg(all(unix, not(any(target_os = "linux", target_os = "macos"))))]
pub use other::{pid_max, proc_stat};

#[cfg(not(unix))]
compile_error!("procslot-core supports Unix platforms only (Linux and macOS)");
