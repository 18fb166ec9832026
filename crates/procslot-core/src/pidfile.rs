//! PID files: one standard Unix PID file per target (`<dir>/<targetId>.pid`, the decimal PID and a
//! newline), written atomically, read strictly, and judged for trust before anyone acts on them.
//!
//! - Target IDs are checked before any path is built: 1 to 200 characters of `[A-Za-z0-9._-]`, not
//!   starting with `.` — so no `..`, no `/`, no NUL, no hidden files.
//! - Writes go to a temporary file in the same directory (mode 0644), are flushed to disk, then renamed
//!   over the PID file: a reader sees the old content or the new one, never half of it.
//! - Reads take at most a few bytes and never fail on bad content: anything that is not a plain decimal
//!   PID between 2 and the system's limit is reported as invalid, not acted on.
//! - A PID file not owned by us (or root), writable by others, a symbolic link, or not a regular file is
//!   untrusted: reported, never adopted, signalled or deleted by the manager. A world-writable directory
//!   without the sticky bit (anyone could swap PID files) is refused.
//! - Beside a PID file, `.<targetId>.mount` may hold the absolute path the target's daemon mounted (its
//!   bytes, nothing else), so that a manager that adopts the daemon later can unmount what it leaves. It
//!   is written, trusted and deleted as the PID file is; a file that fails the checks reads as unknown.
//! - [`TargetLock`] serializes work on one target across processes: a byte-range lock in
//!   `<dir>/.procslot.lock` at an offset derived from the target ID.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::process::{identity, Identity};
use crate::sys::{self, LockOutcome};

/// The longest target ID.
pub const MAX_TARGET_ID_LEN: usize = 200;

/// The most bytes a PID file may hold: ten digits and a newline, with room to spare.
const MAX_PID_FILE_BYTES: usize = 32;

/// The most bytes a mount-path file may hold (Linux's `PATH_MAX`).
const MAX_MOUNT_PATH_BYTES: usize = 4096;

/// The name of the lock file in a PID directory (hidden: never a target's PID file).
pub const LOCK_FILE_NAME: &str = ".procslot.lock";

/// Checks a target ID: 1 to 200 characters of `[A-Za-z0-9._-]`, not starting with `.`.
///
/// # Errors
/// [`Error::InvalidTargetId`] saying what is wrong.
pub fn validate_target_id(target_id: &str) -> Result<()> {
  let bad = |reason: &str| {
    Err(Error::InvalidTargetId {
      target: format!("{target_id:?}"),
      reason: reason.to_owned(),
    })
  };
  if target_id.is_empty() {
    return bad("it is empty");
  }
  if target_id.len() > MAX_TARGET_ID_LEN {
    return bad("it is longer than 200 characters");
  }
  if target_id.starts_with('.') {
    return bad("it starts with '.'");
  }
  if let Some(c) = target_id
    .chars()
    .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
  {
    return bad(&format!(
      "it contains {c:?}; only letters, digits, '.', '_' and '-' are allowed"
    ));
  }
  Ok(())
}

/// Parses PID-file content: a plain decimal PID, optionally followed by one newline, between 2 and
/// `pid_max`. `Err` carries why it is invalid.
pub fn parse_pid(content: &[u8], pid_max: u32) -> std::result::Result<u32, String> {
  let digits = content.strip_suffix(b"\n").unwrap_or(content);
  if digits.is_empty() {
    return Err("empty".to_owned());
  }
  if !digits.iter().all(u8::is_ascii_digit) {
    return Err(format!(
      "not a decimal PID: {:?}",
      String::from_utf8_lossy(&content[..content.len().min(16)])
    ));
  }
  if digits.len() > 1 && digits[0] == b'0' {
    return Err("a PID with leading zeros".to_owned());
  }
  if digits.len() > 10 {
    return Err("a number too large to be a PID".to_owned());
  }
  let pid: u64 = std::str::from_utf8(digits)
    .ok()
    .and_then(|s| s.parse().ok())
    .ok_or_else(|| "not a decimal PID".to_owned())?;
  if pid <= 1 {
    return Err(format!("PID {pid} is never a daemon's"));
  }
  if pid > pid_max as u64 {
    return Err(format!("PID {pid} is above the system's limit ({pid_max})"));
  }
  Ok(pid as u32)
}

/// What a PID file says and whether it can be trusted.
#[derive(Debug, Clone, PartialEq)]
pub enum PidFileStatus {
  /// A valid PID in a trusted file.
  Valid(u32),
  /// The content is not a usable PID (why).
  Invalid(String),
  /// The file must not be acted on (why): another owner, writable by others, a link, not a file.
  Untrusted(String),
}

/// One PID file as found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct PidFileEntry {
  /// The target ID (the file name without `.pid`).
  pub target_id: String,
  /// The file's path.
  pub path: PathBuf,
  /// What it says.
  pub status: PidFileStatus,
  /// When it was last written, in milliseconds since the epoch.
  pub mtime_ms: f64,
  /// Its owner.
  pub uid: u32,
  /// Its permission bits.
  pub mode: u32,
}

impl PidFileEntry {
  /// The PID, when the file is valid and trusted.
  pub fn pid(&self) -> Option<u32> {
    match self.status {
      PidFileStatus::Valid(pid) => Some(pid),
      _ => None,
    }
  }
}

/// A PID file and the identity of the process it names (`None`: no such process, or not a valid file).
pub type Loaded = (PidFileEntry, Option<Identity>);

/// A directory of PID files.
#[derive(Debug)]
pub struct PidFileStore {
  dir: PathBuf,
  euid: u32,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl PidFileStore {
  /// Opens the PID directory `dir`, creating it (and its parents) with mode 0755 if needed.
  ///
  /// # Errors
  /// `ENOTDIR` when it is not a directory; `EUNSAFE` when it is world-writable without the sticky bit;
  /// the operating system's error when it cannot be created or read.
  pub fn open(dir: &Path) -> Result<Self> {
    DirBuilder::new()
      .recursive(true)
      .mode(0o755)
      .create(dir)
      .map_err(|e| Error::pid_io(dir, "create the PID directory", &e))?;
    let meta =
      std::fs::metadata(dir).map_err(|e| Error::pid_io(dir, "read the PID directory", &e))?;
    if !meta.is_dir() {
      return Err(Error::PidFile {
        code: "ENOTDIR".to_owned(),
        path: dir.to_owned(),
        reason: "not a directory".to_owned(),
      });
    }
    if meta.mode() & 0o002 != 0 && meta.mode() & 0o1000 == 0 {
      return Err(Error::PidFile {
        code: "EUNSAFE".to_owned(),
        path: dir.to_owned(),
        reason: format!(
          "the PID directory is world-writable without the sticky bit (mode {:o}): anyone could \
           replace its PID files",
          meta.mode() & 0o7777
        ),
      });
    }
    Ok(PidFileStore {
      dir: dir.to_owned(),
      euid: nix::unistd::geteuid().as_raw(),
    })
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
    Ok(self.dir.join(format!("{target_id}.pid")))
  }

  /// Writes `pid` to the target's PID file atomically (temporary file, fsync, rename), mode 0644.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; `EINVAL` for a PID that is never a daemon's; the operating system's
  /// error.
  pub fn write(&self, target_id: &str, pid: u32) -> Result<()> {
    let path = self.path_for(target_id)?;
    if pid <= 1 || pid > sys::pid_max() {
      return Err(Error::InvalidArgument(format!(
        "PID {pid} cannot be written to a PID file (it must be between 2 and {})",
        sys::pid_max()
      )));
    }
    write_atomic(
      &self.dir,
      &path,
      format!("{pid}\n").as_bytes(),
      "write the PID file",
    )
  }

  /// Records the absolute path the target's daemon mounted, beside its PID file (`.<targetId>.mount`),
  /// atomically as [`write`](Self::write). Write it before the PID file: a PID file then always has it.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; `EINVAL` for a path that is not absolute, holds a NUL byte or is longer
  /// than 4096 bytes; the operating system's error.
  pub fn write_mount_path(&self, target_id: &str, mount_path: &Path) -> Result<()> {
    let path = self.mount_path_file(target_id)?;
    let bytes = mount_path.as_os_str().as_bytes();
    if !mount_path.is_absolute() || bytes.contains(&0) || bytes.len() > MAX_MOUNT_PATH_BYTES {
      return Err(Error::InvalidArgument(format!(
        "mount path {mount_path:?} must be absolute, without NUL bytes, at most {MAX_MOUNT_PATH_BYTES} bytes"
      )));
    }
    write_atomic(&self.dir, &path, bytes, "write the mount-path file")
  }

  /// The mount path recorded for the target, `Ok(None)` when there is none or it cannot be trusted (the
  /// PID file's rules: owned by us or root, not writable by others, a regular file, not a link) or is
  /// not a plain absolute path.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; the operating system's error (other than "no such file").
  pub fn read_mount_path(&self, target_id: &str) -> Result<Option<PathBuf>> {
    let path = self.mount_path_file(target_id)?;
    let mut file = match open_no_follow(nix::fcntl::AT_FDCWD, &path) {
      Ok(f) => f,
      Err(Errno::ENOENT | Errno::ELOOP) => return Ok(None),
      Err(e) => {
        let e = io::Error::from_raw_os_error(e as i32);
        return Err(Error::pid_io(&path, "open the mount-path file", &e));
      }
    };
    let meta = file
      .metadata()
      .map_err(|e| Error::pid_io(&path, "read the mount-path file", &e))?;
    if distrust(&meta, self.euid).is_some() || meta.len() > MAX_MOUNT_PATH_BYTES as u64 {
      return Ok(None);
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&mut file)
      .take(MAX_MOUNT_PATH_BYTES as u64 + 1)
      .read_to_end(&mut bytes)
      .map_err(|e| Error::pid_io(&path, "read the mount-path file", &e))?;
    let mount_path = PathBuf::from(std::ffi::OsString::from_vec(bytes));
    let plain = mount_path.is_absolute()
      && mount_path.as_os_str().len() <= MAX_MOUNT_PATH_BYTES
      && !mount_path.as_os_str().as_bytes().contains(&0);
    Ok(plain.then_some(mount_path))
  }

  /// `<dir>/.<targetId>.mount`.
  fn mount_path_file(&self, target_id: &str) -> Result<PathBuf> {
    validate_target_id(target_id)?;
    Ok(self.dir.join(format!(".{target_id}.mount")))
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

  /// Deletes the target's PID file and its mount-path file; whether there was a PID file.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; the operating system's error.
  pub fn delete(&self, target_id: &str) -> Result<bool> {
    let path = self.path_for(target_id)?;
    let mount = self.mount_path_file(target_id)?;
    match std::fs::remove_file(&mount) {
      Ok(()) => {}
      Err(e) if e.kind() == io::ErrorKind::NotFound => {}
      Err(e) => return Err(Error::pid_io(&mount, "delete the mount-path file", &e)),
    }
    match std::fs::remove_file(&path) {
      Ok(()) => Ok(true),
      Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
      Err(e) => Err(Error::pid_io(&path, "delete the PID file", &e)),
    }
  }

  /// Every PID file in the directory (files named `<valid target ID>.pid`), sorted by target ID.
  ///
  /// # Errors
  /// The directory could not be read.
  pub fn list(&self) -> Result<Vec<PidFileEntry>> {
    let pid_max = sys::pid_max();
    let (dir, names) = self.scan()?;
    let mut out = Vec::new();
    for target_id in names {
      if let Some(found) = self.inspect_in(&dir, &target_id, pid_max)? {
        out.push(found);
      }
    }
    out.sort_by(|a, b| a.target_id.cmp(&b.target_id));
    Ok(out)
  }

  /// Every PID file (as [`list`](Self::list)) with the identity of the process each valid one names
  /// (`None`: no such process). The files are read and the processes looked up on several threads: with
  /// thousands of PID files, the system calls are the cost, and they run in parallel.
  ///
  /// # Errors
  /// The directory could not be read.
  pub fn load(&self) -> Result<Vec<Loaded>> {
    let (dir, names) = self.scan()?;
    let dir = &dir;
    let threads = std::thread::available_parallelism()
      .map_or(1, |n| n.get())
      .clamp(1, 4)
      .min(names.len().div_ceil(256).max(1));
    let pid_max = sys::pid_max();
    let chunk = names.len().div_ceil(threads).max(1);
    let results: Vec<Result<Vec<Loaded>>> = std::thread::scope(|scope| {
      let workers: Vec<_> = names
        .chunks(chunk)
        .map(|part| {
          scope.spawn(move || {
            let mut out = Vec::with_capacity(part.len());
            for target_id in part {
              let Some(entry) = self.inspect_in(dir, target_id, pid_max)? else {
                continue;
              };
              let id = match entry.pid() {
                Some(pid) => identity(pid)?,
                None => None,
              };
              out.push((entry, id));
            }
            Ok(out)
          })
        })
        .collect();
      workers
        .into_iter()
        .map(|w| w.join().expect("a PID-file loading thread panicked"))
        .collect()
    });
    let mut out = Vec::with_capacity(names.len());
    for part in results {
      out.extend(part?);
    }
    out.sort_by(|a, b| a.0.target_id.cmp(&b.0.target_id));
    Ok(out)
  }

  /// The directory, open (files are opened relative to it: no path walk per file), and the target IDs
  /// of its PID files (`<valid target ID>.pid`), unsorted.
  fn scan(&self) -> Result<(File, Vec<String>)> {
    let dir =
      File::open(&self.dir).map_err(|e| Error::pid_io(&self.dir, "open the PID directory", &e))?;
    let rd = std::fs::read_dir(&self.dir)
      .map_err(|e| Error::pid_io(&self.dir, "list the PID directory", &e))?;
    let mut names = Vec::new();
    for entry in rd {
      let entry = entry.map_err(|e| Error::pid_io(&self.dir, "list the PID directory", &e))?;
      let name = entry.file_name();
      if let Some(target_id) = name.to_str().and_then(|n| n.strip_suffix(".pid")) {
        if validate_target_id(target_id).is_ok() {
          names.push(target_id.to_owned());
        }
      }
    }
    Ok((dir, names))
  }

  /// The PID file of `target_id` (a name from [`scan`](Self::scan)), opened relative to `dir`.
  fn inspect_in(&self, dir: &File, target_id: &str, pid_max: u32) -> Result<Option<PidFileEntry>> {
    let name = format!("{target_id}.pid");
    inspect_at(
      dir.as_fd(),
      Path::new(&name),
      &self.dir.join(&name),
      target_id,
      self.euid,
      pid_max,
    )
  }

  /// Takes the target's cross-process lock without waiting: `Ok(None)` when another open holds it.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; the lock file could not be opened.
  pub fn try_lock(&self, target_id: &str) -> Result<Option<TargetLock>> {
    let lock = TargetLock::open(self, target_id)?;
    match sys::try_lock(&lock.file, lock.offset, 1) {
      Ok(LockOutcome::Acquired) | Ok(LockOutcome::Unsupported) => Ok(Some(lock)),
      Ok(LockOutcome::Busy) => Ok(None),
      Err(e) => Err(Error::pid_io(&self.dir.join(LOCK_FILE_NAME), "lock", &e)),
    }
  }

  /// Takes the target's cross-process lock, blocking until it is free. Run it off the JavaScript thread.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; the lock file could not be opened or locked.
  pub fn lock(&self, target_id: &str) -> Result<TargetLock> {
    let lock = TargetLock::open(self, target_id)?;
    sys::lock_wait(&lock.file, lock.offset, 1)
      .map_err(|e| Error::pid_io(&self.dir.join(LOCK_FILE_NAME), "lock", &e))?;
    Ok(lock)
  }
}

/// Reads and judges one PID file, `Ok(None)` when it does not exist: `name` is opened relative to `dir`
/// (or is `path` itself, with `AT_FDCWD`); `path` is what gets reported.
fn inspect_at(
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
  if let Some(why) = distrust(&meta, euid) {
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

/// Opens a file for reading as PID files are: a symbolic link is refused with `ELOOP`, not followed
/// (`O_NOFOLLOW`), and a FIFO never blocks the open (`O_NONBLOCK`).
fn open_no_follow(dir: BorrowedFd<'_>, name: &Path) -> nix::Result<File> {
  let flags =
    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
  nix::fcntl::openat(dir, name, flags, Mode::empty()).map(File::from)
}

/// Why a file with this metadata cannot be trusted, if it cannot: not a regular file, owned by someone
/// other than us or root, or writable by others.
fn distrust(meta: &std::fs::Metadata, euid: u32) -> Option<String> {
  if !meta.is_file() {
    Some("not a regular file".to_owned())
  } else if meta.uid() != euid && meta.uid() != 0 {
    Some(format!(
      "owned by uid {}, not by us (uid {euid}) or root",
      meta.uid()
    ))
  } else if meta.mode() & 0o002 != 0 {
    Some(format!(
      "writable by others (mode {:o})",
      meta.mode() & 0o7777
    ))
  } else {
    None
  }
}

/// Writes `bytes` to `path` (in `dir`) atomically: a temporary file in the same directory, mode 0644,
/// flushed to disk, renamed over `path`.
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8], what: &str) -> Result<()> {
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
    f.sync_all()?;
    std::fs::rename(&tmp, path)
  })();
  if let Err(e) = result {
    let _ = std::fs::remove_file(&tmp);
    return Err(Error::pid_io(path, what, &e));
  }
  Ok(())
}

fn mtime_ms(meta: &std::fs::Metadata) -> f64 {
  meta
    .modified()
    .ok()
    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
    .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// A held per-target lock; dropping it releases it.
#[derive(Debug)]
pub struct TargetLock {
  file: File,
  offset: u64,
}

impl TargetLock {
  fn open(store: &PidFileStore, target_id: &str) -> Result<Self> {
    validate_target_id(target_id)?;
    let path = store.dir.join(LOCK_FILE_NAME);
    let file = OpenOptions::new()
      .read(true)
      .write(true)
      .create(true)
      .mode(0o644)
      .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
      .open(&path)
      .map_err(|e| Error::pid_io(&path, "open the lock file", &e))?;
    Ok(TargetLock {
      file,
      offset: lock_offset(target_id),
    })
  }
}

/// The byte of the lock file that stands for a target: FNV-1a of its ID, below 2^62 (an OFD lock needs no
/// file content there).
fn lock_offset(target_id: &str) -> u64 {
  let mut h: u64 = 0xcbf2_9ce4_8422_2325;
  for b in target_id.bytes() {
    h ^= b as u64;
    h = h.wrapping_mul(0x0000_0100_0000_01b3);
  }
  h & ((1 << 62) - 1)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn target_ids_are_checked_before_any_path_exists() {
    for ok in ["a", "target-123", "A.b_c-9", &"x".repeat(200)] {
      assert!(validate_target_id(ok).is_ok(), "{ok}");
    }
    for bad in [
      "",
      ".",
      "..",
      "../x",
      "a/b",
      ".hidden",
      "a\0b",
      "a b",
      "é",
      &"x".repeat(201),
    ] {
      let err = validate_target_id(bad).unwrap_err();
      assert_eq!(err.code(), "EINVALIDTARGET", "{bad:?}");
    }
  }

  #[test]
  fn pid_file_content_is_parsed_strictly() {
    let max = 4_194_304;
    assert_eq!(parse_pid(b"12345\n", max), Ok(12345));
    assert_eq!(parse_pid(b"12345", max), Ok(12345));
    for bad in [
      &b""[..],
      b"\n",
      b"0\n",
      b"1\n",
      b"-1\n",
      b"+5\n",
      b" 5\n",
      b"5 \n",
      b"5\n\n",
      b"007\n",
      b"4194305\n",
      b"99999999999999999999\n",
      b"12abc\n",
      b"\xff\xfe",
    ] {
      assert!(
        parse_pid(bad, max).is_err(),
        "{:?}",
        String::from_utf8_lossy(bad)
      );
    }
  }
}
