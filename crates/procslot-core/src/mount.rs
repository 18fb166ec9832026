//! Mount points: whether a path is mounted, waiting for a mount to appear (on the mount table's own change
//! notification, racing the daemon's exit), and lazily unmounting what a dead FUSE daemon left behind.
//!
//! The mount table is read from `/proc/self/mountinfo`, never by `stat`-ing the mount point: a dead FUSE
//! daemon's mount point answers `stat` with `ENOTCONN` ("Transport endpoint is not connected").

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::process::{clamp_ms, ProcessHandle};
use crate::sys;

/// How a wait for a mount ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountWait {
  /// The path is a mount point.
  Mounted,
  /// The process exited first.
  Exited,
  /// Neither happened in time.
  TimedOut,
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

fn listed(table: &str, target: &Path) -> bool {
  use std::os::unix::ffi::OsStrExt;
  let want = target.as_os_str().as_bytes();
  sys::mount_points(table).any(|p| p == want)
}

/// Whether `path` is a mount point in this process's mount namespace (also when its daemon is dead and
/// the mount is broken).
///
/// # Errors
/// The mount table could not be read.
pub fn is_mount_point(path: &Path) -> Result<bool> {
  let target = mount_table_path(path);
  let table = sys::open_mount_table()
    .and_then(|f| sys::read_mount_table(&f))
    .map_err(|e| Error::pid_io(path, "read the mount table", &e))?;
  Ok(listed(&table, &target))
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
    if listed(&sys::read_mount_table(&table).map_err(io_err)?, &target) {
      return Ok(MountWait::Mounted);
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
    sys::poll_mounts_or_exit(&table, process.pidfd(), clamp_ms(slice)).map_err(io_err)?;
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
