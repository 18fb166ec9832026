//! Linux's mount table (`/proc/self/mountinfo`): reading it, waiting for it to change, and lazy unmounts.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::MountEntry;

/// The mount table of this process's mount namespace, opened so that a change to it can be waited for.
pub fn open_mount_table() -> io::Result<File> {
  File::open("/proc/self/mountinfo")
}

/// Reads the whole mount table from the start of `file`.
pub fn read_mount_table(file: &File) -> io::Result<String> {
  use std::os::unix::fs::FileExt;
  let mut out = Vec::with_capacity(16 * 1024);
  let mut buf = vec![0u8; 64 * 1024];
  let mut offset = 0u64;
  loop {
    let n = file.read_at(&mut buf, offset)?;
    if n == 0 {
      break;
    }
    out.extend_from_slice(&buf[..n]);
    offset += n as u64;
  }
  Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The mounts of a `/proc/self/mountinfo` text, in mount order (a later entry at one mount point lies on
/// top of an earlier one): mount ID (field 1), device (field 3, `major:minor`), mount point (field 5,
/// octal escapes undone) and filesystem type (the first field after the ` - ` separator).
pub fn mount_entries(table: &str) -> impl Iterator<Item = MountEntry> + '_ {
  table.lines().filter_map(|line| {
    let mut fields = line.split(' ');
    let id = fields.next()?.parse().ok()?;
    let dev = fields.nth(1)?.to_owned();
    let point = unescape_octal(fields.nth(1)?);
    let fstype = line
      .split_once(" - ")
      .and_then(|(_, rest)| rest.split(' ').next())
      .unwrap_or("")
      .to_owned();
    Some(MountEntry {
      id,
      dev,
      point,
      fstype,
    })
  })
}

fn unescape_octal(field: &str) -> Vec<u8> {
  let bytes = field.as_bytes();
  let mut out = Vec::with_capacity(bytes.len());
  let mut i = 0;
  while i < bytes.len() {
    if bytes[i] == b'\\' && i + 3 < bytes.len() {
      let oct = &bytes[i + 1..i + 4];
      if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
        out.push((oct[0] - b'0') * 64 + (oct[1] - b'0') * 8 + (oct[2] - b'0'));
        i += 4;
        continue;
      }
    }
    out.push(bytes[i]);
    i += 1;
  }
  out
}

/// Waits until the mount table changes (`POLLPRI` on `/proc/self/mountinfo`), until `pidfd` becomes
/// readable (the process exited), or until `timeout_ms` passes. Returns which of the two descriptors
/// fired: `(mounts_changed, process_exited)`.
///
/// # Errors
/// `poll` failing for a reason other than an interrupted call.
pub fn poll_mounts_or_exit(
  mounts: &File,
  pidfd: Option<&OwnedFd>,
  timeout_ms: i32,
) -> io::Result<(bool, bool)> {
  let mut fds = [
    libc::pollfd {
      fd: mounts.as_raw_fd(),
      events: libc::POLLPRI,
      revents: 0,
    },
    libc::pollfd {
      fd: pidfd.map_or(-1, |fd| fd.as_raw_fd()),
      events: libc::POLLIN,
      revents: 0,
    },
  ];
  // SAFETY: `fds` is a valid array of two pollfd structs for the duration of the call; a negative fd is
  // ignored by poll.
  let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
  if rc < 0 {
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::Interrupted {
      return Ok((false, false));
    }
    return Err(err);
  }
  Ok((
    fds[0].revents & (libc::POLLPRI | libc::POLLERR) != 0,
    fds[1].revents != 0,
  ))
}

/// Detaches the mount at `path` now and cleans it up once nothing uses it (`umount2(MNT_DETACH)`); where
/// that is not permitted (an unprivileged FUSE mount), asks `fusermount3 -u -z` (then `fusermount`).
/// `Ok(false)` when `path` is not a mount point.
///
/// # Errors
/// The unmount failing for another reason.
pub fn unmount_lazy(path: &Path) -> io::Result<bool> {
  let c = CString::new(path.as_os_str().as_bytes())
    .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
  // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
  let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
  if rc == 0 {
    return Ok(true);
  }
  let err = io::Error::last_os_error();
  match err.raw_os_error() {
    Some(libc::EINVAL) | Some(libc::ENOENT) => Ok(false),
    Some(libc::EPERM) => {
      for tool in ["fusermount3", "fusermount"] {
        let status = std::process::Command::new(tool)
          .args(["-u", "-z", "--"])
          .arg(path)
          .stdin(std::process::Stdio::null())
          .stdout(std::process::Stdio::null())
          .stderr(std::process::Stdio::null())
          .status();
        if let Ok(status) = status {
          return if status.success() { Ok(true) } else { Err(err) };
        }
      }
      Err(err)
    }
    _ => Err(err),
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn mountinfo_fields_are_unescaped() {
    let table =
      "36 35 98:0 /mnt1 /mnt/with\\040space rw - ext3 /dev/root rw\n22 1 0:5 / / rw - ext4 x rw\n";
    let entries: Vec<MountEntry> = mount_entries(table).collect();
    assert_eq!(entries[0].point, b"/mnt/with space".to_vec());
    assert_eq!(entries[1].point, b"/".to_vec());
    assert_eq!(entries[0].id, 36);
    assert_eq!(entries[0].dev, "98:0");
    assert_eq!(entries[0].fstype, "ext3");
    assert_eq!(entries[1].fstype, "ext4");
  }
}
