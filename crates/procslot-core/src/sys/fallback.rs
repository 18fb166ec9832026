//! Where the kernel has no process file descriptors and no `/proc/self/mountinfo` (macOS, the BSDs): the
//! same internal API, answering "not available" so that callers fall back to PID checks, and unmounting
//! through `umount`.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

/// Told apart by the filesystem's type name (`f_fstypename` of `fstatfs`): macFUSE and FUSE-T mounts are
/// `Fuse`, NFS, SMB, AFP and WebDAV mounts `Network`, anything else (or a failed call) `Local`.
#[cfg(any(
  target_os = "macos",
  target_os = "freebsd",
  target_os = "openbsd",
  target_os = "dragonfly"
))]
pub fn filesystem_kind(file: &File) -> super::FsKind {
  use std::os::fd::AsRawFd;
  // SAFETY: `statfs` is plain data; all-zero is valid.
  let mut st: libc::statfs = unsafe { std::mem::zeroed() };
  // SAFETY: the descriptor is open for the duration of the call and `st` is writable.
  if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
    return super::FsKind::Local;
  }
  let name: Vec<u8> = st
    .f_fstypename
    .iter()
    .take_while(|&&c| c != 0)
    .map(|&c| c as u8)
    .collect();
  fs_kind_of_type_name(&name)
}

/// Not told apart here: `Local` (locks and notifications are not relied on anyway).
#[cfg(not(any(
  target_os = "macos",
  target_os = "freebsd",
  target_os = "openbsd",
  target_os = "dragonfly"
)))]
pub fn filesystem_kind(_file: &File) -> super::FsKind {
  super::FsKind::Local
}

/// The kind of a filesystem by its BSD type name (`macfuse`, `osxfuse`, `fusefs.*`, `nfs`, `smbfs`, ...).
#[cfg(any(
  target_os = "macos",
  target_os = "freebsd",
  target_os = "openbsd",
  target_os = "dragonfly"
))]
fn fs_kind_of_type_name(name: &[u8]) -> super::FsKind {
  const NETWORK: [&[u8]; 6] = [b"nfs", b"smbfs", b"afpfs", b"webdav", b"cifs", b"9p"];
  if name.starts_with(b"fuse") || name.ends_with(b"fuse") {
    super::FsKind::Fuse
  } else if NETWORK.contains(&name) {
    super::FsKind::Network
  } else {
    super::FsKind::Local
  }
}

/// Not known here: `None` (nothing waits on it).
pub fn handles_signal(_pid: u32, _sig: i32) -> Option<bool> {
  None
}

/// No pidfds here.
///
/// # Errors
/// Always `ENOSYS`.
pub fn pidfd_open(_pid: u32) -> io::Result<OwnedFd> {
  Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// Never called: [`pidfd_open`] hands out no descriptors.
///
/// # Errors
/// Always `ENOSYS`.
pub fn pidfd_send_signal(_fd: &OwnedFd, _sig: libc::c_int) -> io::Result<()> {
  Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

fn unsupported() -> io::Error {
  io::Error::new(
    io::ErrorKind::Unsupported,
    "the mount table is not available on this platform",
  )
}

/// Unsupported here.
///
/// # Errors
/// Always.
pub fn open_mount_table() -> io::Result<File> {
  Err(unsupported())
}

/// Unsupported here.
///
/// # Errors
/// Always.
pub fn read_mount_table(_file: &File) -> io::Result<String> {
  Err(unsupported())
}

/// No entries.
pub fn mount_entries(_table: &str) -> impl Iterator<Item = super::MountEntry> + '_ {
  std::iter::empty()
}

/// Not listable here: `Ok(None)` (callers fall back to `kill(-pgid, 0)`).
///
/// # Errors
/// Never.
pub fn process_groups() -> io::Result<Option<std::collections::HashMap<u32, Vec<u32>>>> {
  Ok(None)
}

/// The process group of `pid` (`getpgid`) — zombies are not told apart here — `Ok(None)` when there is
/// no such process.
///
/// # Errors
/// `getpgid` failing for another reason.
pub fn process_group(pid: u32) -> io::Result<Option<(u32, bool)>> {
  match nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid as i32))) {
    Ok(g) => Ok(Some((g.as_raw() as u32, false))),
    Err(nix::errno::Errno::ESRCH) => Ok(None),
    Err(e) => Err(e.into()),
  }
}

/// Unsupported here.
///
/// # Errors
/// Always.
pub fn poll_mounts_or_exit(
  _mounts: &File,
  _pidfd: Option<&OwnedFd>,
  _timeout_ms: i32,
) -> io::Result<(bool, bool)> {
  Err(unsupported())
}

/// Unmounts through `umount` (macFUSE and the BSDs have no lazy unmount; this is the closest).
///
/// # Errors
/// `umount` could not be run or failed.
pub fn unmount_lazy(path: &Path) -> io::Result<bool> {
  let status = std::process::Command::new("umount")
    .arg(path)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .status()?;
  Ok(status.success())
}

#[cfg(all(
  test,
  any(
    target_os = "macos",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "dragonfly"
  )
))]
mod tests {
  use super::super::FsKind;
  use super::fs_kind_of_type_name;

  #[test]
  fn type_names() {
    for fuse in ["macfuse", "osxfuse", "fusefs", "fusefs.sshfs"] {
      assert_eq!(
        fs_kind_of_type_name(fuse.as_bytes()),
        FsKind::Fuse,
        "{fuse}"
      );
    }
    for net in ["nfs", "smbfs", "afpfs", "webdav"] {
      assert_eq!(
        fs_kind_of_type_name(net.as_bytes()),
        FsKind::Network,
        "{net}"
      );
    }
    for local in ["apfs", "hfs", "ufs", "zfs", "tmpfs", ""] {
      assert_eq!(
        fs_kind_of_type_name(local.as_bytes()),
        FsKind::Local,
        "{local}"
      );
    }
  }
}
