//! The store: a PID directory opened once, and the PID files in it — written atomically, read strictly,
//! judged, forgotten.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use nix::errno::Errno;

use super::{parse_pid, pid_file_name, validate_target_id, TargetState, MAX_PID_FILE_BYTES};
use crate::entry::{Fingerprint, PidFileEntry, PidFileStatus, SpawnRecord};
use crate::error::{Error, Result};
use crate::judge::{judge, Verdict};
use crate::process::{daemon_pid, identity, Identity};
use crate::sys;
use crate::trust::{self, file_distrust, open_no_follow, DirRule};

/// A directory of PID files.
#[derive(Debug)]
pub struct PidFileStore {
  pub(super) dir: PathBuf,
  /// The directory, open: cheap `fstatat`s of its files (no path walk).
  pub(super) dir_fd: File,
  pub(super) euid: u32,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl PidFileStore {
  /// Opens the PID directory `dir`, creating it (and its parents) with mode 0755 if needed.
  ///
  /// # Errors
  /// `ENOTDIR` when it is not a directory; `EUNSAFE` when it is world-writable without the sticky bit;
  /// the operating system's error when it cannot be created or read.
  pub fn open(dir: &Path) -> Result<Self> {
    // A path that is there but no directory is named for what it is, not for the step that tripped on it.
    if std::fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
      return Err(trust::not_a_dir(dir));
    }
    DirBuilder::new()
      .recursive(true)
      .mode(0o755)
      .create(dir)
      .map_err(|e| Error::pid_io(dir, "create the PID directory", &e))?;
    let meta =
      std::fs::metadata(dir).map_err(|e| Error::pid_io(dir, "read the PID directory", &e))?;
    if !meta.is_dir() {
      return Err(trust::not_a_dir(dir));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if let Some(reason) = trust::dir_distrust(&meta, DirRule::Shared, euid) {
      return Err(Error::PidFile {
        code: "EUNSAFE".to_owned(),
        path: dir.to_owned(),
        reason,
      });
    }
    let dir_fd = File::open(dir).map_err(|e| Error::pid_io(dir, "open the PID directory", &e))?;
    Ok(PidFileStore {
      dir: dir.to_owned(),
      dir_fd,
      euid,
    })
  }

  /// The fingerprint of the file `name` of the directory (not following a link), `None` when there is
  /// none: one `fstatat` relative to the open directory. For [`Fingerprint`] comparisons on hot paths.
  pub fn fingerprint_of(&self, name: &std::ffi::CStr) -> Option<Fingerprint> {
    use std::os::fd::AsRawFd;
    // SAFETY: `stat` is plain data; all-zero is valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the directory descriptor is open for the life of `self`, `name` is NUL-terminated and
    // `st` writable for the duration of the call.
    let rc = unsafe {
      libc::fstatat(
        self.dir_fd.as_raw_fd(),
        name.as_ptr(),
        &mut st,
        libc::AT_SYMLINK_NOFOLLOW,
      )
    };
    (rc == 0).then(|| Fingerprint::from_stat(&st))
  }

  /// The directory.
  pub fn dir(&self) -> &Path {
    &self.dir
  }

  /// `<dir>/<targetId>.pid`.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`].
  pub fn path_for(&self, target_id: &str) -> Result<PathBuf> {
    validate_target_id(target_id)?;
    Ok(self.dir.join(pid_file_name(target_id)))
  }

  /// Writes `pid` to the target's PID file atomically (temporary file, rename), mode 0644.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; `EINVAL` for a PID that is never a daemon's; the operating system's
  /// error.
  pub fn write(&self, target_id: &str, pid: u32) -> Result<()> {
    let path = self.path_for(target_id)?;
    daemon_pid(pid, "be written to a PID file")?;
    write_atomic(
      &self.dir,
      &path,
      format!("{pid}\n").as_bytes(),
      "write the PID file",
    )
  }

  /// The PID in the target's file: `Ok(None)` when there is no file, or it is invalid or untrusted.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; the operating system's error for an unreadable directory.
  pub fn read(&self, target_id: &str) -> Result<Option<u32>> {
    Ok(self.inspect(target_id)?.and_then(|e| e.pid()))
  }

  /// The target's PID file with its status, `Ok(None)` when there is none.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; the operating system's error (other than "no such file").
  pub fn inspect(&self, target_id: &str) -> Result<Option<PidFileEntry>> {
    let path = self.path_for(target_id)?;
    inspect_at(
      nix::fcntl::AT_FDCWD,
      &path,
      &path,
      target_id,
      self.euid,
      sys::pid_max(),
    )
  }

  /// Deletes the target's PID file, then its spawn record (the reverse of the order they are written
  /// in, so a record never outlives a PID file it belongs to without being seen as unfinished); whether
  /// there was a PID file.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; the operating system's error.
  pub fn delete(&self, target_id: &str) -> Result<bool> {
    let path = self.path_for(target_id)?;
    let had = remove(&path, "delete the PID file")?;
    self.delete_record(target_id)?;
    Ok(had)
  }

  /// Forgets a daemon that is gone — the process `pid` that started at `start_time` — from the
  /// target's files, if they still name it: its PID file (and spawn record) when the PID file names its
  /// PID; its record alone when there is no PID file and the record names that very process (a spawn
  /// undone, a daemon another manager already dropped; or a PID file that names no valid PID). Files that
  /// name another process are left
  /// alone. With the target's lock held. Whether the PID file named it (it was deleted).
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; the operating system's error.
  pub fn forget(&self, target_id: &str, pid: u32, start_time: u64) -> Result<bool> {
    let file = self.read(target_id)?;
    if file == Some(pid) {
      self.delete(target_id)?;
      return Ok(true);
    }
    let ours = self.record_of(target_id, pid, start_time)?.is_some();
    if file.is_none() && ours {
      self.delete_record(target_id)?;
    }
    Ok(false)
  }

  /// The target's PID file, judged ([`judge`]); `Ok(None)` when there is none.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; the operating system's error (other than "no such file").
  pub fn judge(&self, target_id: &str) -> Result<Option<Verdict>> {
    let Some(entry) = self.inspect(target_id)? else {
      return Ok(None);
    };
    let record = match entry.pid() {
      Some(_) => self.read_record(target_id)?,
      None => None,
    };
    Ok(Some(verdict(entry, record)?))
  }

  /// Everything about a target at once: its PID file judged, and its spawn record with the process it
  /// names (only that very process, alive). A record without a PID file is a spawn that never finished.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; the operating system's error.
  pub fn state(&self, target_id: &str) -> Result<TargetState> {
    let entry = self.inspect(target_id)?;
    let record = self.read_record(target_id)?;
    let record_process = match &record {
      Some(r) => exact_identity(r)?,
      None => None,
    };
    let verdict = match entry {
      Some(e) => Some(verdict(e, record.clone())?),
      None => None,
    };
    Ok(TargetState {
      verdict,
      record,
      record_process,
    })
  }
}

/// Reads and judges one PID file, `Ok(None)` when it does not exist: `name` is opened relative to `dir`
/// (or is `path` itself, with `AT_FDCWD`); `path` is what gets reported.
pub(super) fn inspect_at(
  dir: BorrowedFd<'_>,
  name: &Path,
  path: &Path,
  target_id: &str,
  euid: u32,
  pid_max: u32,
) -> Result<Option<PidFileEntry>> {
  let entry = |status, meta: Option<&std::fs::Metadata>| PidFileEntry {
    target_id: target_id.to_owned(),
    path: path.to_owned(),
    status,
    mtime_ms: meta.map_or(0.0, mtime_ms),
    uid: meta.map_or(0, |m| m.uid()),
    mode: meta.map_or(0, |m| m.mode() & 0o7777),
    fingerprint: meta.map_or_else(Fingerprint::default, Fingerprint::of),
  };
  let mut file = match open_no_follow(dir, name) {
    Ok(f) => f,
    Err(Errno::ENOENT) => return Ok(None),
    Err(Errno::ELOOP) => {
      let meta = std::fs::symlink_metadata(path).ok();
      return Ok(Some(entry(
        PidFileStatus::Untrusted("a symbolic link".to_owned()),
        meta.as_ref(),
      )));
    }
    Err(e) => {
      let e = io::Error::from_raw_os_error(e as i32);
      return Err(Error::pid_io(path, "open the PID file", &e));
    }
  };
  let meta = file
    .metadata()
    .map_err(|e| Error::pid_io(path, "read the PID file", &e))?;
  if let Some(why) = file_distrust(&meta, euid) {
    return Ok(Some(entry(PidFileStatus::Untrusted(why), Some(&meta))));
  }
  let mut buf = [0u8; MAX_PID_FILE_BYTES + 1];
  let mut len = 0;
  while len < buf.len() {
    match file.read(&mut buf[len..]) {
      Ok(0) => break,
      // A read that reached the size just seen is the whole file: no second read to learn it ended.
      Ok(n) if (len + n) as u64 >= meta.len() => {
        len += n;
        break;
      }
      Ok(n) => len += n,
      Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
      Err(e) => return Err(Error::pid_io(path, "read the PID file", &e)),
    }
  }
  let status = if len > MAX_PID_FILE_BYTES {
    PidFileStatus::Invalid("longer than a PID file".to_owned())
  } else {
    match parse_pid(&buf[..len], pid_max) {
      Ok(pid) => PidFileStatus::Valid(pid),
      Err(why) => PidFileStatus::Invalid(why),
    }
  };
  Ok(Some(entry(status, Some(&meta))))
}

/// Judges `entry` with `record` and the identity of the process its PID names now.
pub(super) fn verdict(entry: PidFileEntry, record: Option<SpawnRecord>) -> Result<Verdict> {
  let identity = match entry.pid() {
    Some(pid) => identity(pid)?,
    None => None,
  };
  let record = record.filter(|r| Some(r.pid) == entry.pid());
  let (judgement, reason) = judge(&entry, record.as_ref(), identity.as_ref());
  Ok(Verdict {
    judgement,
    reason,
    entry,
    identity,
    record,
  })
}

/// The identity of the process a record names, only if it is that very process (same start time) and
/// alive.
pub(super) fn exact_identity(record: &SpawnRecord) -> Result<Option<Identity>> {
  Ok(identity(record.pid)?.filter(|id| !id.zombie && id.start_time == record.start_time))
}

/// Removes `path`; whether it was there.
pub(super) fn remove(path: &Path, what: &str) -> Result<bool> {
  match std::fs::remove_file(path) {
    Ok(()) => Ok(true),
    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
    Err(e) => Err(Error::pid_io(path, what, &e)),
  }
}

/// Writes `bytes` to `path` (in `dir`) atomically: a temporary file in the same directory, mode 0644,
/// renamed over `path` (not forced to disk: see the module's documentation).
pub(super) fn write_atomic(dir: &Path, path: &Path, bytes: &[u8], what: &str) -> Result<()> {
  let name = path
    .file_name()
    .map_or_else(Default::default, |n| n.to_string_lossy());
  let tmp = dir.join(format!(
    ".{}.{}.{}.tmp",
    name.trim_start_matches('.'),
    std::process::id(),
    TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
  ));
  let result = (|| {
    let mut f = OpenOptions::new()
      .write(true)
      .create_new(true)
      .mode(0o644)
      .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
      .open(&tmp)?;
    // The umask may have taken bits away; the file is readable by all.
    f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    f.write_all(bytes)?;
    std::fs::rename(&tmp, path)
  })();
  if let Err(e) = result {
    let _ = std::fs::remove_file(&tmp);
    return Err(Error::pid_io(path, what, &e));
  }
  Ok(())
}

/// A time in milliseconds since the epoch (`0` before it), the scale of [`PidFileEntry::mtime_ms`].
pub(super) fn epoch_ms(t: std::time::SystemTime) -> f64 {
  t.duration_since(UNIX_EPOCH)
    .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

pub(super) fn mtime_ms(meta: &std::fs::Metadata) -> f64 {
  meta.modified().map_or(0.0, epoch_ms)
}
