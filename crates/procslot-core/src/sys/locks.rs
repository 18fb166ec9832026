//! Exclusive byte-range locks that belong to an open file, not to a thread.
//!
//! Linux uses open-file-description locks (`F_OFD_SETLK`): they are owned by the open file description,
//! released when its last descriptor closes or the process dies, and do not conflict with other locks of
//! the same description. macOS has no OFD locks and uses classic `fcntl` record locks, owned by the
//! process; callers must then keep one open of a given file per process (closing any descriptor of the
//! file drops every lock the process holds on it).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

#[cfg(target_os = "linux")]
const SETLK: libc::c_int = libc::F_OFD_SETLK;
#[cfg(target_os = "linux")]
const SETLKW: libc::c_int = libc::F_OFD_SETLKW;
#[cfg(target_os = "linux")]
const GETLK: libc::c_int = libc::F_OFD_GETLK;

#[cfg(not(target_os = "linux"))]
const SETLK: libc::c_int = libc::F_SETLK;
#[cfg(not(target_os = "linux"))]
const SETLKW: libc::c_int = libc::F_SETLKW;
#[cfg(not(target_os = "linux"))]
const GETLK: libc::c_int = libc::F_GETLK;

/// What an attempt to take a lock came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOutcome {
  /// The lock is ours.
  Acquired,
  /// Another open file holds a conflicting lock.
  Busy,
  /// The filesystem refuses byte-range locks (`ENOLCK`, `EOPNOTSUPP`, `ENOSYS`).
  Unsupported,
}

fn flock(kind: libc::c_int, start: u64, len: u64) -> libc::flock {
  // SAFETY: `flock` is a plain C struct of integers; all-zero is a valid value for every field.
  let mut fl: libc::flock = unsafe { std::mem::zeroed() };
  fl.l_type = kind as _;
  fl.l_whence = libc::SEEK_SET as _;
  fl.l_start = start as _;
  fl.l_len = len as _;
  // OFD locks require l_pid == 0 (it already is).
  fl
}

fn fcntl_lock(file: &File, cmd: libc::c_int, fl: &mut libc::flock) -> io::Result<()> {
  loop {
    // SAFETY: the descriptor is open for the lifetime of `file`, and `fl` points to a valid, writable
    // `flock` that outlives the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, fl as *mut libc::flock) };
    if rc != -1 {
      return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.kind() != io::ErrorKind::Interrupted {
      return Err(err);
    }
  }
}

fn is_unsupported(err: &io::Error) -> bool {
  matches!(
    err.raw_os_error(),
    Some(libc::ENOLCK) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
  )
}

/// Takes an exclusive lock on `len` bytes at `start` without waiting.
///
/// # Errors
/// Any failure other than "held by someone else" or "not supported here".
pub fn try_lock(file: &File, start: u64, len: u64) -> io::Result<LockOutcome> {
  let mut fl = flock(libc::F_WRLCK as _, start, len);
  match fcntl_lock(file, SETLK, &mut fl) {
    Ok(()) => Ok(LockOutcome::Acquired),
    Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => {
      Ok(LockOutcome::Busy)
    }
    Err(e) if is_unsupported(&e) => Ok(LockOutcome::Unsupported),
    Err(e) => Err(e),
  }
}

/// Takes an exclusive lock on `len` bytes at `start`, waiting for it. Used only for short critical
/// sections (growing a file).
///
/// # Errors
/// Any failure other than "not supported here".
pub fn lock_wait(file: &File, start: u64, len: u64) -> io::Result<LockOutcome> {
  let mut fl = flock(libc::F_WRLCK as _, start, len);
  match fcntl_lock(file, SETLKW, &mut fl) {
    Ok(()) => Ok(LockOutcome::Acquired),
    Err(e) if is_unsupported(&e) => Ok(LockOutcome::Unsupported),
    Err(e) => Err(e),
  }
}

/// Drops our lock on `len` bytes at `start` (a no-op where we hold none).
///
/// # Errors
/// The `fcntl` failure, if any.
pub fn unlock(file: &File, start: u64, len: u64) -> io::Result<()> {
  let mut fl = flock(libc::F_UNLCK as _, start, len);
  match fcntl_lock(file, SETLK, &mut fl) {
    Err(e) if is_unsupported(&e) => Ok(()),
    other => other,
  }
}

/// What [`probe_lock`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockProbe {
  /// No other open file holds a lock in the range.
  Free,
  /// Another open file holds a lock on `len` bytes at `start` (`len` 0: to the end of any file) that
  /// overlaps the range; there may be more.
  Held {
    /// First byte of the lock found.
    start: u64,
    /// Its length; 0 means "to infinity".
    len: u64,
  },
  /// The filesystem refuses byte-range locks.
  Unsupported,
}

/// Looks for a lock of another open file (another process) in `len` bytes at `start` that conflicts
/// with an exclusive lock. Our own locks never conflict.
///
/// # Errors
/// Any `fcntl` failure other than "not supported here".
pub fn probe_lock(file: &File, start: u64, len: u64) -> io::Result<LockProbe> {
  let mut fl = flock(libc::F_WRLCK as _, start, len);
  match fcntl_lock(file, GETLK, &mut fl) {
    Ok(()) if fl.l_type as libc::c_int == libc::F_UNLCK as libc::c_int => Ok(LockProbe::Free),
    Ok(()) => Ok(LockProbe::Held {
      start: fl.l_start as u64,
      len: fl.l_len as u64,
    }),
    Err(e) if is_unsupported(&e) => Ok(LockProbe::Unsupported),
    Err(e) => Err(e),
  }
}
