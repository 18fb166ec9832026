//! Platform code, in one place. Every platform exposes the same internal API:
//!
//! - `proc_stat(pid)`: state and start time of a process ([`ProcStat`]), `Ok(None)` when there is no such
//!   process; `start_tag`: the part of a start time a slot word keeps;
//! - `pid_max()`: the largest PID the system hands out;
//! - `try_lock`, `lock_wait`, `lock_wait_until` (bounded), `unlock`, `probe_lock`: exclusive byte-range locks owned by the open file
//!   (Linux: open-file-description locks; macOS: `fcntl` record locks);
//! - `start_time_ms`, `start_time_granularity_ms`: a start time from `proc_stat` on the wall clock;
//! - `pidfd_open`, `pidfd_send_signal`: process file descriptors where the kernel has them (`ENOSYS`
//!   elsewhere);
//! - `with_reserve`, `soft_limit`, `headroom`: opens that survive running out of descriptors (one kept
//!   in reserve), and the room pidfds leave to the rest of the program;
//! - `process_groups`, `process_group`: every process by its process group (Linux `/proc`; unlisted
//!   elsewhere);
//! - `open_mount_table`, `read_mount_table`, `mount_entries`, `poll_mounts_or_exit`, `unmount_lazy`: the
//!   mount table and waiting for it to change (Linux `/proc/self/mountinfo`; unsupported elsewhere);
//! - `Notifier`: being told that an open file changed (Linux inotify), and waking a waiting thread;
//! - `filesystem_kind(file)`: local, FUSE or a network filesystem (whose changes on other hosts no
//!   notification reports);
//! - `clamp_ms`, `poll_any`, `poll_hangup`, `poll_readable`: waits on descriptors (pidfds);
//! - `available_parallelism()`: the CPUs this process may run on, asked once;
//! - `fd_identity`, `set_close_on_exec`, `prepare_for_exec`, `execve`: the exec hand-off of a slot.

#[cfg(unix)]
mod fds;
#[cfg(unix)]
pub use fds::{headroom, soft_limit, with_reserve};
#[cfg(unix)]
mod notify;
#[cfg(unix)]
pub use notify::{Fired, Notifier};
#[cfg(unix)]
mod handoff;
#[cfg(unix)]
pub use handoff::{execve, fd_identity, prepare_for_exec, set_close_on_exec};
#[cfg(unix)]
mod poll;
#[cfg(unix)]
pub use poll::{clamp_ms, poll_any, poll_hangup, poll_readable};
#[cfg(unix)]
mod locks;
#[cfg(unix)]
pub use locks::{lock_wait, lock_wait_until, probe_lock, try_lock, unlock, LockOutcome, LockProbe};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::{
  filesystem_kind, handles_signal, pid_max, pidfd_open, pidfd_send_signal, proc_stat,
  process_group, process_groups, start_time_granularity_ms, start_time_ms,
};
#[cfg(target_os = "linux")]
mod mountinfo;
#[cfg(target_os = "linux")]
pub use mountinfo::{
  mount_entries, open_mount_table, poll_mounts_or_exit, read_mount_table, unmount_lazy,
};

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
pub use macos::{pid_max, proc_stat, start_time_granularity_ms, start_time_ms};

#[cfg(all(unix, not(any(target_os = "linux", target_os = "macos"))))]
mod other;
#[cfg(all(unix, not(any(target_os = "linux", target_os = "macos"))))]
pub use other::{pid_max, proc_stat, start_time_granularity_ms, start_time_ms};

#[cfg(all(unix, not(target_os = "linux")))]
mod fallback;
#[cfg(all(unix, not(target_os = "linux")))]
pub use fallback::{
  filesystem_kind, handles_signal, mount_entries, open_mount_table, pidfd_open, pidfd_send_signal,
  poll_mounts_or_exit, process_group, process_groups, read_mount_table, unmount_lazy,
};

/// What the process table says of one PID (each platform's `proc_stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
  /// The process has exited and waits to be reaped.
  pub zombie: bool,
  /// When it started, in the platform's unit (Linux: clock ticks since boot, field 22 of
  /// `/proc/<pid>/stat`; macOS: microseconds since the epoch).
  pub start_time: u64,
}

impl ProcStat {
  /// The start tag stored in a slot word: the low 32 bits of the start time (`sys::start_tag`).
  pub fn start_tag(&self) -> u32 {
    start_tag(self.start_time)
  }
}

/// The start tag of a process that started at `start_time` (the platform's raw unit): its low 32 bits,
/// what a slot word has room for. The one place the tag is cut.
pub fn start_tag(start_time: u64) -> u32 {
  start_time as u32
}

/// What kind of filesystem a file is on, as far as locks and change notifications are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
  /// A local filesystem (ext4, xfs, btrfs, tmpfs, overlayfs, ...): one kernel sees every lock and change.
  Local,
  /// FUSE: the kernel keeps locks per mount, and a FUSE filesystem may reach other hosts.
  Fuse,
  /// A network filesystem (NFS, SMB, Ceph, 9p, ...): other hosts' changes are not reported here.
  Network,
}

/// One line of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
  /// The mount's ID (unique among the mounts that exist at one time).
  pub id: u64,
  /// The device of its filesystem, `major:minor` (a new anonymous device for each FUSE mount).
  pub dev: String,
  /// Where it is mounted.
  pub point: Vec<u8>,
  /// The filesystem type (`fuse.bindfs`, `ext4`, ...).
  pub fstype: String,
}

#[cfg(not(unix))]
compile_error!("procslot-core supports Unix platforms only (Linux and macOS)");

/// How many CPUs this process may run on (`std::thread::available_parallelism`), asked once per process:
/// on Linux it reads several cgroup files.
pub fn available_parallelism() -> usize {
  static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
  *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
