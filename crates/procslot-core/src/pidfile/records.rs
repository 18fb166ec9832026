//! Spawn records (`.<targetId>.record`): written before the daemon runs, completed in place once it is
//! ready, read with the PID file's rules of trust.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::store::{remove, write_atomic};
use super::{record_file_name, validate_target_id, PidFileStore};
use crate::entry::SpawnRecord;
use crate::error::{Error, Result};
use crate::trust::{file_distrust, open_no_follow};

/// The most bytes a mount path may have (Linux's `PATH_MAX`).
const MAX_MOUNT_PATH_BYTES: usize = 4096;

/// The most bytes a spawn record may hold.
const MAX_RECORD_BYTES: usize = MAX_MOUNT_PATH_BYTES + 256;

impl PidFileStore {
  /// Writes the target's spawn record (`.<targetId>.record`) atomically, as [`write`](Self::write).
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; `EINVAL` for a mount path that is not absolute, holds a NUL byte or a
  /// newline, or is longer than 4096 bytes; the operating system's error.
  pub fn write_record(&self, target_id: &str, record: &SpawnRecord) -> Result<()> {
    let path = self.record_file(target_id)?;
    if let Some(mount_path) = &record.mount_path {
      let bytes = mount_path.as_os_str().as_bytes();
      if !mount_path.is_absolute()
        || bytes.contains(&0)
        || bytes.contains(&b'\n')
        || bytes.len() > MAX_MOUNT_PATH_BYTES
      {
        return Err(Error::InvalidArgument(format!(
          "mount path {mount_path:?} must be absolute, without NUL bytes or newlines, at most \
           {MAX_MOUNT_PATH_BYTES} bytes"
        )));
      }
    }
    let bytes = record.to_bytes();
    if self
      .extend_record(&path, &bytes)
      .map_err(|e| Error::pid_io(&path, "write the spawn record", &e))?
    {
      return Ok(());
    }
    write_atomic(&self.dir, &path, &bytes, "write the spawn record")
  }

  /// Completes the record at `path` in place when its content is a beginning of `bytes` (a spawn's
  /// record gaining the mount its daemon made: the same lines, then more), by appending the rest; whether
  /// it did. A reader sees the record before or after, whole: the file's size grows only once the new
  /// bytes are in it. Replacing it by a rename instead would make ext4 write the new file out at once
  /// (`auto_da_alloc`), and delay its deletion until that write is done. Only our own, plain, single-link
  /// file is extended; anything else is replaced atomically.
  fn extend_record(&self, path: &Path, bytes: &[u8]) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let file = match OpenOptions::new()
      .read(true)
      .write(true)
      .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
      .open(path)
    {
      Ok(f) => f,
      Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ELOOP)) => {
        return Ok(false)
      }
      Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if file_distrust(&meta, self.euid).is_some()
      || meta.nlink() != 1
      || meta.len() >= bytes.len() as u64
    {
      return Ok(false);
    }
    let mut old = vec![0u8; meta.len() as usize];
    file.read_exact_at(&mut old, 0)?;
    if old.is_empty() || !bytes.starts_with(&old) {
      return Ok(false);
    }
    file.write_all_at(&bytes[old.len()..], old.len() as u64)?;
    Ok(true)
  }

  /// The target's spawn record, `Ok(None)` when there is none, it cannot be trusted (the PID file's
  /// rules: owned by us or root, not writable by others, a regular file, not a link) or does not parse.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; the operating system's error (other than "no such file").
  pub fn read_record(&self, target_id: &str) -> Result<Option<SpawnRecord>> {
    let path = self.record_file(target_id)?;
    read_record_at(nix::fcntl::AT_FDCWD, &path, &path, self.euid)
  }

  /// The target's spawn record if it is that of the process `pid` that started at `start_time` — the
  /// record is that daemon's own — else `Ok(None)`. The one place that rule is told
  /// ([`forget`](Self::forget) asks it too).
  ///
  /// # Errors
  /// As [`read_record`](Self::read_record).
  pub fn record_of(
    &self,
    target_id: &str,
    pid: u32,
    start_time: u64,
  ) -> Result<Option<SpawnRecord>> {
    Ok(
      self
        .read_record(target_id)?
        .filter(|r| r.pid == pid && r.start_time == start_time),
    )
  }

  /// Deletes the target's spawn record alone; whether there was one.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; the operating system's error.
  pub fn delete_record(&self, target_id: &str) -> Result<bool> {
    let path = self.record_file(target_id)?;
    remove(&path, "delete the spawn record")
  }

  /// `<dir>/.<targetId>.record`.
  pub(super) fn record_file(&self, target_id: &str) -> Result<PathBuf> {
    validate_target_id(target_id)?;
    Ok(self.dir.join(record_file_name(target_id)))
  }
}

/// Reads and parses a spawn record (`name` relative to `dir`); `Ok(None)` when there is none or it
/// cannot be trusted or parsed.
pub(super) fn read_record_at(
  dir: BorrowedFd<'_>,
  name: &Path,
  path: &Path,
  euid: u32,
) -> Result<Option<SpawnRecord>> {
  let mut file = match open_no_follow(dir, name) {
    Ok(f) => f,
    Err(Errno::ENOENT | Errno::ELOOP) => return Ok(None),
    Err(e) => {
      let e = io::Error::from_raw_os_error(e as i32);
      return Err(Error::pid_io(path, "open the spawn record", &e));
    }
  };
  let meta = file
    .metadata()
    .map_err(|e| Error::pid_io(path, "read the spawn record", &e))?;
  if file_distrust(&meta, euid).is_some() || meta.len() > MAX_RECORD_BYTES as u64 {
    return Ok(None);
  }
  let mut bytes = Vec::with_capacity(meta.len() as usize);
  (&mut file)
    .take(MAX_RECORD_BYTES as u64 + 1)
    .read_to_end(&mut bytes)
    .map_err(|e| Error::pid_io(path, "read the spawn record", &e))?;
  Ok(SpawnRecord::parse(&bytes))
}
