//! The operating-system work behind `procslot`, in pure Rust.
//!
//! - [`slots`]: worker slots. Each process of a fleet takes a small reusable ID from a memory-mapped slot
//!   file: one 8-byte word per slot, written with atomic compare-and-swap, and an exclusive byte-range lock
//!   per slot as the lease, so a dead holder's slot comes back the moment the kernel drops its lock. Who
//!   took this process's slot and which handles give it back is one record (the lease; [`slots::Table`] is such a handle).
//! - [`exec`]: `procslot exec` — take a slot, then become another program that inherits it.
//! - [`handoff`]: both ends of that hand-off across `execve` — the environment that names the slot, and
//!   the adoption of the inherited descriptor, which [`slots`] does when it opens a file (so it stands
//!   below both).
//! - [`liveness`]: the PID-based fallback that decides whether a holder is dead where a filesystem refuses
//!   locks.
//! - [`pidfile`]: standard PID files, written atomically, read strictly, judged for trust; a per-target
//!   lock across processes.
//! - [`entry`]: a PID file and its spawn record as data (what [`pidfile`] reads and [`judge`](mod@judge) judges).
//! - [`judge`](mod@judge): the one judgement of a PID file: running, stale, reused, invalid or untrusted.
//! - [`process`]: a handle on one particular process (start time, pidfd): alive, signal, wait for exit.
//! - [`watch`]: one thread that reports the death of every watched process (an epoll set over pidfds,
//!   and a fallback by PID and start time where there are none).
//! - [`mount`]: mount points, waiting for a mount to appear, lazy unmounts.
//! - [`trust`]: what a file or directory must be before anything acts on what it holds.
//!
//! Platform code lives in one private `sys` module chosen by `cfg`.
#![deny(clippy::all)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod entry;
pub mod error;
pub mod exec;
pub mod handoff;
pub mod judge;
pub mod liveness;
pub mod mount;
pub mod pidfile;
pub mod process;
pub mod slots;
mod sync;
mod sys;
pub mod trust;
pub mod watch;

pub use entry::{Fingerprint, PidFileEntry, PidFileStatus, SpawnRecord};
pub use error::{Error, Result};
pub use judge::{judge, Judgement, Verdict};
pub use liveness::{holder_is_dead, Probe, ProcStat, SystemProbe};
pub use mount::{
  is_mount_point, mount_at, prepare_mount_point, unmount_if, unmount_lazy, wait_for_mount,
  MountFound, MountId, MountWait,
};
/// Error numbers, as handles report them ([`ProcessHandle::why_no_pidfd`]).
pub use nix::errno::Errno;
/// Signals, as the process functions take them.
pub use nix::sys::signal::Signal;
pub use pidfile::{
  check_private_dir, parse_pid, validate_target_id, Leftovers, PidFileStore, PinCheck,
  PinnedPidFile, TargetLock, TargetState,
};
pub use process::{
  daemon_pids, identity, possible_pid, started_after, Identity, ProcessHandle, Signalled, StopBegun,
};
pub use slots::{
  default_file, ensure_private_dir, get_process_id, opened, release_process_id, Holder, Locking,
  OpenOptions, SlotFile, SlotInfo, Table, Waited, Want, CROWDED, DEFAULT_TIMEOUT, MAX_FILE_BYTES,
  MAX_SLOTS, SLOT_BYTES,
};
