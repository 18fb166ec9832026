//! The hand-off of a slot across `execve`, both ends: the environment that names it, and the receiving
//! process's adoption of the descriptor it inherited (which [`crate::slots`] calls when it opens a file).

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys;

/// The environment variables through which `procslot exec` hands a slot to the program it becomes.
pub mod env {
  /// The slot.
  pub const ID: &str = "PROCSLOT_ID";
  /// The table's size.
  pub const COUNT: &str = "PROCSLOT_COUNT";
  /// The slot file's absolute path.
  pub const FILE: &str = "PROCSLOT_FILE";
  /// The descriptor, left open across `execve`, whose open file description holds the slot's lock.
  pub const FD: &str = "PROCSLOT_FD";
}

/// The lease this process inherited across `execve` from `procslot exec`, if `path` names its file:
/// the inherited descriptor (now close-on-exec, so that children of this process do not keep the lock
/// alive after it) and the slot. Tried once per process.
///
/// The lease is this process's only if `PROCSLOT_FD` is an open descriptor of the very file `path` names
/// (device and inode), and `ours(file, slot)` says the slot `PROCSLOT_ID` names is held through it (its
/// word names this process, its lock is this open's). A child of the process that exec'd (a shell's
/// child, which may inherit the descriptor) fails that check: its PID is not the one in the word, and
/// the descriptor is left alone.
pub(crate) fn inherited(
  path: &Path,
  ours: impl FnOnce(&File, usize) -> bool,
) -> Option<(File, usize)> {
  static TRIED: AtomicBool = AtomicBool::new(false);
  // Every open asks: the environment is read only until the lease has been tried.
  if TRIED.load(Ordering::SeqCst) {
    return None;
  }
  let fd: i32 = std::env::var(env::FD).ok()?.parse().ok()?;
  let slot: usize = std::env::var(env::ID).ok()?.parse().ok()?;
  if fd < 0 {
    return None;
  }
  let want = std::fs::symlink_metadata(path).ok()?;
  if sys::fd_identity(fd) != Some((want.dev(), want.ino())) {
    return None;
  }
  if TRIED.swap(true, Ordering::SeqCst) {
    return None;
  }
  // SAFETY: the descriptor is open (fstat succeeded) and names the slot file; from here on this
  // process owns it — it was handed to us for exactly this. If the check below fails, it is given back
  // untouched with `into_raw_fd`.
  let file = unsafe { File::from_raw_fd(fd) };
  if !ours(&file, slot) {
    let _ = file.into_raw_fd();
    return None;
  }
  sys::set_close_on_exec(file.as_raw_fd(), true);
  Some((file, slot))
}
