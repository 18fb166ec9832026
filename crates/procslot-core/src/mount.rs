//! Mount points: whether a path is mounted, waiting for a mount to appear (on the mount table's own change
//! notification, racing the daemon's exit), and lazily unmounting what a dead FUSE daemon left behind.
//!
//! The mount table is read from `/proc/self/mountinfo`, never by `stat`-ing the mount point: a dead FUSE
//! daemon's mount point answers `stat` with `ENOTCONN` ("Transport endpoint is not connected"), a hung
//! one never answers, and for a while after a daemon's death the attribute cache still answers as if it
//! were alive. Whether a mount is a dead daemon's is decided by identity instead: the mount that daemon
//! made ([`MountId`], recorded when it became ready) is still there, and the daemon is dead.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::process::ProcessHandle;
use crate::sys;

/// One mount, as the mount table names it: its mount ID and its filesystem's device. A FUSE mount gets a
/// new anonymous device each time, so the pair names one mount even if IDs are handed out again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountId {
  /// The mount ID (field 1 of `/proc/self/mountinfo`).
  pub id: u64,
  /// The device, `major:minor` (field 3).
  pub dev: String,
}

/// A mount found at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountFound {
  /// Which mount it is.
  pub mount: MountId,
  /// Its filesystem type (`fuse.bindfs`, ...).
  pub fstype: String,
}

/// How a wait for a mount ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountWait {
  /// The path is a mount point: the topmost mount there.
  Mounted(MountFound),
  /// The process exited first.
  Exited,
  /// Neither happened in time.
  TimedOut,
}

impl MountWait {
  /// How the wait ended, as the binding spells it: `mounted`, `exited` or `timeout`.
  pub fn as_str(&self) -> &'static str {
    match self {
      MountWait::Mounted(_) => "mounted",
      MountWait::Exited => "exited",
      MountWait::TimedOut => "timeout",
    }
  }
}

/// The absolute, normalized form of `path` as the mount table spells it: the parent resolved through
/// symbolic links (it is an ordinary directory), the last component kept as is (it may be a dead mount
/// that cannot be resolved).
fn mount_table_path(path: &Path) -> PathBuf {
  let abs = if path.is_absolute() {
    path.to_owned()
  } else {
    std::env::current_dir().unwrap_or_default().join(path)
  };
  let mut clean = PathBuf::new();
  for c in abs.components() {
    match c {
      Component::ParentDir => {
        clean.pop();
      }
      Component::CurDir => {}
      other => clean.push(other),
    }
  }
  match (clean.parent(), clean.file_name()) {
    (Some(parent), Some(name)) => match std::fs::canonicalize(parent) {
      Ok(real) => real.join(name),
      Err(_) => clean,
    },
    _ => clean,
  }
}

/// The topmost mount at `target` (already in the mount table's spelling) in a mount table text.
fn topmost(table: &str, target: &Path) -> Option<MountFound> {
  use std::os::unix::ffi::OsStrExt;
  let want = target.as_os_str().as_bytes();
  sys::mount_entries(table)
    .filter(|e| e.point == want)
    .last()
    .map(|e| MountFound {
      mount: MountId {
        id: e.id,
        dev: e.dev,
      },
      fstype: e.fstype,
    })
}

fn read_table(path: &Path) -> Result<String> {
  sys::open_mount_table()
    .and_then(|f| sys::read_mount_table(&f))
    .map_err(|e| Error::pid_io(path, "read the mount table", &e))
}

/// The topmost mount at `path` (from the mount table, no `stat`), `Ok(None)` when it is not a mount
/// point.
///
/// # Errors
/// The mount table could not be read.
pub fn mount_at(path: &Path) -> Result<Option<MountFound>> {
  let target = mount_table_path(path);
  Ok(topmost(&read_table(path)?, &target))
}

/// Lazily unmounts `path` only if the topmost mount there is `mount` (the one a dead daemon made):
/// `Ok(false)` when another mount, or none, is there.
///
/// # Errors
/// The mount table could not be read or the unmount was refused.
pub fn unmount_if(path: &Path, mount: &MountId) -> Result<bool> {
  let target = mount_table_path(path);
  match topmost(&read_table(path)?, &target) {
    Some(found) if &found.mount == mount => {
      sys::unmount_lazy(&target).map_err(|e| Error::pid_io(path, "unmount", &e))
    }
    _ => Ok(false),
  }
}

/// Prepares `path` for a daemon to mount on: `Ok(Some(mount))` when it is a mount point already
/// (nothing done: the caller decides by identity), else creates it (and its parents) and `Ok(None)`.
/// The mount table is read first, so a mount point is never `stat`-ed (a hung one would never answer).
///
/// # Errors
/// The mount table could not be read, or the directory could not be created.
pub fn prepare_mount_point(path: &Path) -> Result<Option<MountFound>> {
  if let Some(found) = mount_at(path)? {
    return Ok(Some(found));
  }
  std::fs::create_dir_all(path).map_err(|e| Error::pid_io(path, "create the mount point", &e))?;
  Ok(None)
}

/// Whether `path` is a mount point in this process's mount namespace (also when its daemon is dead and
/// the mount is broken).
///
/// # Errors
/// The mount table could not be read.
pub fn is_mount_point(path: &Path) -> Result<bool> {
  Ok(mount_at(path)?.is_some())
}

/// Waits until `path` is a mount point, `process` exits, or `timeout` passes — on the events themselves:
/// the mount table's change notification (`POLLPRI` on `/proc/self/mountinfo`) and the process's pidfd.
/// Without a pidfd the process is looked at again every 50 ms.
///
/// # Errors
/// The mount table could not be read or waited on.
pub fn wait_for_mount(
  path: &Path,
  process: &ProcessHandle,
  timeout: Duration,
) -> Result<MountWait> {
  let target = mount_table_path(path);
  let io_err = |e: io::Error| Error::pid_io(path, "wait for the mount table", &e);
  let deadline = Instant::now() + timeout;
  // Open first, then read: a mount made after the read changes the table after the open, so poll sees it.
  let table = sys::open_mount_table().map_err(io_err)?;
  loop {
    if let Some(found) = topmost(&sys::read_mount_table(&table).map_err(io_err)?, &target) {
      settle_sigterm(process, deadline);
      return Ok(MountWait::Mounted(found));
    }
    if !process.is_alive() {
      return Ok(MountWait::Exited);
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
      return Ok(MountWait::TimedOut);
    }
    let slice = if process.pidfd().is_some() {
      left
    } else {
      left.min(Duration::from_millis(50))
    };
    sys::poll_mounts_or_exit(&table, process.pidfd(), sys::clamp_ms(slice)).map_err(io_err)?;
  }
}

/// How long a daemon that mounted may take to handle SIGTERM before it counts as ready all the same.
const SIGTERM_GRACE: Duration = Duration::from_millis(50);

/// libfuse mounts first and installs its signal handlers a moment later: a SIGTERM in between would kill
/// the daemon outright and leave a dead mount behind, where a handled one makes it unmount and exit. So
/// a daemon that mounted is ready once it catches (or ignores) SIGTERM, looked at every millisecond — no
/// event says so — for at most [`SIGTERM_GRACE`]: one that never handles it is ready then.
fn settle_sigterm(process: &ProcessHandle, deadline: Instant) {
  let until = (Instant::now() + SIGTERM_GRACE).min(deadline);
  while sys::handles_signal(process.pid(), libc::SIGTERM) == Some(false)
    && process.is_alive()
    && Instant::now() < until
  {
    std::thread::sleep(Duration::from_millis(1));
  }
}

/// Lazily unmounts `path` (detached now, cleaned up when unused): what a dead FUSE daemon leaves behind.
/// `Ok(false)` when it is not a mount point.
///
/// # Errors
/// The unmount was refused.
pub fn unmount_lazy(path: &Path) -> Result<bool> {
  if !is_mount_point(path)? {
    return Ok(false);
  }
  sys::unmount_lazy(&mount_table_path(path)).map_err(|e| Error::pid_io(path, "unmount", &e))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
  use super::*;

  #[test]
  fn the_root_and_proc_are_mount_points_and_a_plain_directory_is_not() {
    assert!(is_mount_point(Path::new("/")).unwrap());
    assert!(is_mount_point(Path::new("/proc")).unwrap());
    assert!(is_mount_point(Path::new("/proc/../proc/./")).unwrap());
    let dir = std::env::temp_dir();
    assert!(!is_mount_point(&dir.join("procslot-surely-not-a-mount")).unwrap());
    assert!(!unmount_lazy(&dir.join("procslot-surely-not-a-mount")).unwrap());
  }

  #[test]
  fn a_wait_ends_when_the_process_exits() {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let Some(h) = ProcessHandle::open(child.id(), None).unwrap() else {
      child.wait().unwrap(); // already gone: nothing to wait for
      return;
    };
    let dir = std::env::temp_dir().join("procslot-never-mounted");
    let t = Instant::now();
    let got = wait_for_mount(&dir, &h, Duration::from_secs(20)).unwrap();
    child.wait().unwrap();
    assert_eq!(got, MountWait::Exited);
    assert!(t.elapsed() < Duration::from_secs(10));
  }
}
