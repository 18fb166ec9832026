//! PID files: one standard Unix PID file per target (`<dir>/<targetId>.pid`, the decimal PID and a
//! newline), written atomically, read strictly, and judged for trust before anyone acts on them.
//!
//! - Target IDs are checked before any path is built: 1 to 200 characters of `[A-Za-z0-9._-]`, not
//!   starting with `.` — so no `..`, no `/`, no NUL, no hidden files.
//! - Writes go to a temporary file in the same directory (mode 0644), then are renamed over the PID file:
//!   a reader sees the old content or the new one, never half of it. They are not forced to disk
//!   (`fsync`): a PID file names a process, and no process survives a power loss; a crash of the writer
//!   leaves the file complete in the page cache all the same.
//! - Reads take at most a few bytes and never fail on bad content: anything that is not a plain decimal
//!   PID between 2 and the system's limit is reported as invalid, not acted on.
//! - A PID file not owned by us (or root), writable by others, a symbolic link, or not a regular file is
//!   untrusted: reported, never adopted, signalled or deleted by the manager. A world-writable directory
//!   without the sticky bit (anyone could swap PID files) is refused.
//! - Beside a PID file, `.<targetId>.record` holds the [`SpawnRecord`] of the daemon a manager started:
//!   its PID and exact start time (written before the daemon may run a single instruction of its own),
//!   the path it mounts and, once it is ready, the mount it made. The exact start time recognises a reused
//!   PID however soon it is reused; the mount identifies the stale mount a dead daemon leaves. A record
//!   without a PID file is a spawn that never finished. It is written, trusted and deleted as the PID
//!   file is (the PID file is deleted first); a record that fails the checks reads as none.
//! - [`TargetLock`] serializes work on one target across processes: a byte-range lock in
//!   `<dir>/.procslot.lock` at an offset derived from the target ID.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::entry::{Fingerprint, PidFileEntry, PidFileStatus, SpawnRecord};
use crate::error::{Error, Result};
use crate::judge::{judge, Judgement, Verdict};
use crate::process::{identity, possible_pid, Identity};
use crate::sys::{self, LockOutcome};

/// The longest target ID.
pub const MAX_TARGET_ID_LEN: usize = 200;

/// The most bytes a PID file may hold: ten digits and a newline, with room to spare.
const MAX_PID_FILE_BYTES: usize = 32;

/// The most bytes a mount path may have (Linux's `PATH_MAX`).
const MAX_MOUNT_PATH_BYTES: usize = 4096;

/// The most bytes a spawn record may hold.
const MAX_RECORD_BYTES: usize = MAX_MOUNT_PATH_BYTES + 256;

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

/// Parses PID-file content: a plain decimal PID, optionally followed by one newline, at least 2 and
/// below `pid_max` (one more than the largest PID the system hands out). `Err` carries why it is
/// invalid.
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
  if pid >= pid_max as u64 {
    return Err(format!(
      "PID {pid} is not below the system's limit ({pid_max})"
    ));
  }
  Ok(pid as u32)
}

/// What [`PidFileStore::load`] found besides the PID files.
#[derive(Debug, Default)]
pub struct Leftovers {
  /// Spawn records without a PID file: spawns that never finished (or were undone half-way), with the
  /// record and the identity of the process it names.
  pub records: Vec<(String, SpawnRecord, Option<Identity>)>,
  /// Temporary files of writes that never finished (their writer is gone).
  pub temp_files: Vec<PathBuf>,
}

/// A directory of PID files.
#[derive(Debug)]
pub struct PidFileStore {
  dir: PathBuf,
  /// The directory, open: cheap `fstatat`s of its files (no path walk).
  dir_fd: File,
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
    let not_a_dir = || Error::PidFile {
      code: "ENOTDIR".to_owned(),
      path: dir.to_owned(),
      reason: "not a directory".to_owned(),
    };
    // A path that is there but no directory is named for what it is, not for the step that tripped on it.
    if std::fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
      return Err(not_a_dir());
    }
    DirBuilder::new()
      .recursive(true)
      .mode(0o755)
      .create(dir)
      .map_err(|e| Error::pid_io(dir, "create the PID directory", &e))?;
    let meta =
      std::fs::metadata(dir).map_err(|e| Error::pid_io(dir, "read the PID directory", &e))?;
    if !meta.is_dir() {
      return Err(not_a_dir());
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
    let dir_fd = File::open(dir).map_err(|e| Error::pid_io(dir, "open the PID directory", &e))?;
    Ok(PidFileStore {
      dir: dir.to_owned(),
      dir_fd,
      euid: nix::unistd::geteuid().as_raw(),
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
    Ok(self.dir.join(format!("{target_id}.pid")))
  }

  /// Writes `pid` to the target's PID file atomically (temporary file, rename), mode 0644.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; `EINVAL` for a PID that is never a daemon's; the operating system's
  /// error.
  pub fn write(&self, target_id: &str, pid: u32) -> Result<()> {
    let path = self.path_for(target_id)?;
    if pid <= 1 || !possible_pid(pid) {
      return Err(Error::InvalidArgument(format!(
        "PID {pid} cannot be written to a PID file (it must be between 2 and {})",
        sys::pid_max() - 1
      )));
    }
    write_atomic(
      &self.dir,
      &path,
      format!("{pid}\n").as_bytes(),
      "write the PID file",
    )
  }

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
    if distrust(&meta, self.euid).is_some() || meta.nlink() != 1 || meta.len() >= bytes.len() as u64
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

  /// Deletes the target's spawn record alone; whether there was one.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; the operating system's error.
  pub fn delete_record(&self, target_id: &str) -> Result<bool> {
    let path = self.record_file(target_id)?;
    remove(&path, "delete the spawn record")
  }

  /// `<dir>/.<targetId>.record`.
  fn record_file(&self, target_id: &str) -> Result<PathBuf> {
    validate_target_id(target_id)?;
    Ok(self.dir.join(format!(".{target_id}.record")))
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
    let record = self.read_record(target_id)?;
    if file.is_none() && record.is_some_and(|r| r.pid == pid && r.start_time == start_time) {
      self.delete_record(target_id)?;
    }
    Ok(false)
  }

  /// Every PID file in the directory (files named `<valid target ID>.pid`), sorted by target ID.
  ///
  /// # Errors
  /// The directory could not be read.
  pub fn list(&self) -> Result<Vec<PidFileEntry>> {
    let pid_max = sys::pid_max();
    let scan = self.scan()?;
    let mut out = Vec::new();
    for target_id in &scan.pid_files {
      if let Some(found) = self.inspect_in(&scan.dir, target_id, pid_max)? {
        out.push(found);
      }
    }
    out.sort_by(|a, b| a.target_id.cmp(&b.target_id));
    Ok(out)
  }

  /// Every PID file (as [`list`](Self::list)) judged ([`judge`]), and what else the directory holds
  /// that a manager must deal with ([`Leftovers`]). The files are read and the processes looked up on
  /// several threads: with thousands of PID files, the system calls are the cost, and they run in
  /// parallel.
  ///
  /// # Errors
  /// The directory could not be read.
  pub fn load(&self) -> Result<(Vec<Verdict>, Leftovers)> {
    // A PID file whose record the scan did not list has none, unless both were written while the
    // directory was being listed (a spawn writes the record, then the PID file; a listing may miss the
    // one and see the other): its PID file is then newer than the listing's start. Its record is read
    // anyway; for the others, the failed open is saved (a third of the opens of a large directory).
    // The margin covers coarse file timestamps.
    let listed_from_ms = now_ms() - RECENT_MARGIN_MS;
    let scan = self.scan()?;
    let dir = &scan.dir;
    let names = &scan.pid_files;
    let records = scan.records.as_slice();
    let threads = sys::available_parallelism()
      .clamp(1, 4)
      .min(names.len().div_ceil(256).max(1));
    let pid_max = sys::pid_max();
    let chunk = names.len().div_ceil(threads).max(1);
    let results: Vec<Result<Vec<Verdict>>> = std::thread::scope(|scope| {
      let workers: Vec<_> = names
        .chunks(chunk)
        .map(|part| {
          scope.spawn(move || {
            let mut out = Vec::with_capacity(part.len());
            for target_id in part {
              if let Some(v) = self.judge_in(dir, target_id, pid_max, records, listed_from_ms)? {
                out.push(v);
              }
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
    out.sort_by(|a, b| a.entry.target_id.cmp(&b.entry.target_id));
    let mut leftovers = Leftovers::default();
    for target_id in &scan.records {
      if names.binary_search(target_id).is_ok() {
        continue;
      }
      let name = format!(".{target_id}.record");
      let path = self.dir.join(&name);
      let Some(record) = read_record_at(dir.as_fd(), Path::new(&name), &path, self.euid)? else {
        continue;
      };
      let id = exact_identity(&record)?;
      leftovers.records.push((target_id.clone(), record, id));
    }
    leftovers.temp_files = scan.temp_files;
    Ok((out, leftovers))
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

  /// The target's PID file judged for display (`procslot pids`): as [`judge`](Self::judge), except that
  /// root reads a file owned by another user — a regular file, not writable by others — as that user
  /// would, instead of reporting it untrusted; the owner comes back beside the verdict (`Some(uid)`) so
  /// that it can be marked. Nothing acts on such a verdict.
  ///
  /// # Errors
  /// As [`judge`](Self::judge).
  pub fn judge_for_display(&self, target_id: &str) -> Result<Option<(Verdict, Option<u32>)>> {
    let Some(v) = self.judge(target_id)? else {
      return Ok(None);
    };
    let owner = v.entry.uid;
    if self.euid != 0 || v.judgement != Judgement::Untrusted || owner == 0 {
      return Ok(Some((v, None)));
    }
    // Read again as its owner would: the same rules of trust (`distrust`), but the owner's. A file they
    // do not pass either (a link, not a regular file, writable by others) stays untrusted, unmarked.
    let path = self.path_for(target_id)?;
    let Some(entry) = inspect_at(
      nix::fcntl::AT_FDCWD,
      &path,
      &path,
      target_id,
      owner,
      sys::pid_max(),
    )?
    else {
      return Ok(None);
    };
    if matches!(entry.status, PidFileStatus::Untrusted(_)) {
      return Ok(Some((v, None)));
    }
    let record = match entry.pid() {
      Some(_) => {
        let rec = self.record_file(target_id)?;
        read_record_at(nix::fcntl::AT_FDCWD, &rec, &rec, owner)?
      }
      None => None,
    };
    Ok(Some((verdict(entry, record)?, Some(owner))))
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

  /// Deletes the temporary files of writes that never finished: `.<name>.<pid>.<n>.tmp` files of this
  /// directory whose writer is gone, or that are older than ten minutes. Returns how many.
  ///
  /// # Errors
  /// The directory could not be read.
  pub fn sweep_temp_files(&self) -> Result<usize> {
    let scan = self.scan()?;
    let mut n = 0;
    for path in scan.temp_files {
      if std::fs::remove_file(&path).is_ok() {
        n += 1;
      }
    }
    Ok(n)
  }

  /// The directory, open (files are opened relative to it: no path walk per file), with the target IDs
  /// of its PID files (`<valid target ID>.pid`, sorted), of its spawn records, and its abandoned
  /// temporary files.
  fn scan(&self) -> Result<Scan> {
    let dir =
      File::open(&self.dir).map_err(|e| Error::pid_io(&self.dir, "open the PID directory", &e))?;
    let rd = std::fs::read_dir(&self.dir)
      .map_err(|e| Error::pid_io(&self.dir, "list the PID directory", &e))?;
    let mut scan = Scan {
      dir,
      pid_files: Vec::new(),
      records: Vec::new(),
      temp_files: Vec::new(),
    };
    for entry in rd {
      let entry = entry.map_err(|e| Error::pid_io(&self.dir, "list the PID directory", &e))?;
      let name = entry.file_name();
      let Some(name) = name.to_str() else { continue };
      if let Some(target_id) = name.strip_suffix(".pid") {
        if validate_target_id(target_id).is_ok() {
          scan.pid_files.push(target_id.to_owned());
        }
      } else if let Some(target_id) = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(".record"))
      {
        if validate_target_id(target_id).is_ok() {
          scan.records.push(target_id.to_owned());
        }
      } else if abandoned_temp_file(name, &entry, self.euid) {
        scan.temp_files.push(self.dir.join(name));
      }
    }
    scan.pid_files.sort();
    scan.records.sort();
    Ok(scan)
  }

  /// Judges the PID file of `target_id` (a name from [`scan`](Self::scan)), opened relative to `dir`.
  /// Its record is looked for only when the scan listed it (`records`, sorted) or the PID file is newer
  /// than `listed_from_ms`, a time before the scan began (see [`load`](Self::load)).
  fn judge_in(
    &self,
    dir: &File,
    target_id: &str,
    pid_max: u32,
    records: &[String],
    listed_from_ms: f64,
  ) -> Result<Option<Verdict>> {
    let Some(entry) = self.inspect_in(dir, target_id, pid_max)? else {
      return Ok(None);
    };
    let may_have_record = entry.mtime_ms >= listed_from_ms
      || records
        .binary_search_by(|r| r.as_str().cmp(target_id))
        .is_ok();
    let record = match entry.pid() {
      Some(_) if may_have_record => {
        let name = format!(".{target_id}.record");
        let path = self.dir.join(&name);
        read_record_at(dir.as_fd(), Path::new(&name), &path, self.euid)?
      }
      _ => None,
    };
    Ok(Some(verdict(entry, record)?))
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

  /// Takes the target's lock without waiting: `Ok(None)` when another process, or another lock of this
  /// process, holds it.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; the lock file could not be opened, or cannot be trusted (`EUNSAFE`).
  pub fn try_lock(&self, target_id: &str) -> Result<Option<TargetLock>> {
    let (file, key) = lock_file(self, target_id)?;
    {
      let mut reg = registry();
      if !reg.held.insert(key) {
        return Ok(None);
      }
    }
    match sys::try_lock(&file, key.2, 1) {
      Ok(LockOutcome::Acquired) | Ok(LockOutcome::Unsupported) => {
        Ok(Some(TargetLock { file, key }))
      }
      Ok(LockOutcome::Busy) => {
        release_key(key);
        Ok(None)
      }
      Err(e) => {
        release_key(key);
        Err(Error::pid_io(&self.dir.join(LOCK_FILE_NAME), "lock", &e))
      }
    }
  }

  /// Takes the target's lock, blocking until it is free (in this process, then across processes). Run it
  /// off the JavaScript thread.
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`]; the lock file could not be opened, trusted or locked.
  pub fn lock(&self, target_id: &str) -> Result<TargetLock> {
    let (file, key) = lock_file(self, target_id)?;
    {
      let mut reg = registry();
      while !reg.held.insert(key) {
        reg = FREED.wait(reg).unwrap_or_else(|p| p.into_inner());
      }
    }
    match sys::lock_wait(&file, key.2, 1) {
      Ok(_) => Ok(TargetLock { file, key }),
      Err(e) => {
        release_key(key);
        Err(Error::pid_io(&self.dir.join(LOCK_FILE_NAME), "lock", &e))
      }
    }
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

/// Judges `entry` with `record` and the identity of the process its PID names now.
fn verdict(entry: PidFileEntry, record: Option<SpawnRecord>) -> Result<Verdict> {
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
fn exact_identity(record: &SpawnRecord) -> Result<Option<Identity>> {
  Ok(identity(record.pid)?.filter(|id| !id.zombie && id.start_time == record.start_time))
}

/// Reads and parses a spawn record (`name` relative to `dir`); `Ok(None)` when there is none or it
/// cannot be trusted or parsed.
fn read_record_at(
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
  if distrust(&meta, euid).is_some() || meta.len() > MAX_RECORD_BYTES as u64 {
    return Ok(None);
  }
  let mut bytes = Vec::with_capacity(meta.len() as usize);
  (&mut file)
    .take(MAX_RECORD_BYTES as u64 + 1)
    .read_to_end(&mut bytes)
    .map_err(|e| Error::pid_io(path, "read the spawn record", &e))?;
  Ok(SpawnRecord::parse(&bytes))
}

/// Whether `name` is a temporary file of [`write_atomic`] that its writer abandoned: ours, named
/// `.<name>.<pid>.<n>.tmp`, and its writer is not running or it is older than ten minutes.
fn abandoned_temp_file(name: &str, entry: &std::fs::DirEntry, euid: u32) -> bool {
  let Some(stem) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
    return false;
  };
  let mut parts = stem.rsplitn(3, '.');
  let (Some(n), Some(pid), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
    return false;
  };
  let (Ok(_), Ok(pid)) = (n.parse::<u64>(), pid.parse::<u32>()) else {
    return false;
  };
  let Ok(meta) = entry.metadata() else {
    return false;
  };
  if !meta.is_file() || (meta.uid() != euid && euid != 0) {
    return false;
  }
  let old = meta
    .modified()
    .ok()
    .and_then(|m| m.elapsed().ok())
    .is_some_and(|age| age.as_secs() > 600);
  old || !matches!(identity(pid), Ok(Some(id)) if !id.zombie)
}

/// Removes `path`; whether it was there.
fn remove(path: &Path, what: &str) -> Result<bool> {
  match std::fs::remove_file(path) {
    Ok(()) => Ok(true),
    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
    Err(e) => Err(Error::pid_io(path, what, &e)),
  }
}

/// Refuses a directory that other users could write to (sticky or not) or that belongs to another
/// user (not us, not root): a manager writes logs and takes locks there, and anyone who can plant a
/// file in it can redirect them.
///
/// # Errors
/// `EUNSAFE` saying why; `ENOTDIR`; the operating system's error when it cannot be read.
pub fn check_private_dir(dir: &Path) -> Result<()> {
  let meta = std::fs::metadata(dir).map_err(|e| Error::pid_io(dir, "read the directory", &e))?;
  let euid = nix::unistd::geteuid().as_raw();
  let why = if !meta.is_dir() {
    return Err(Error::PidFile {
      code: "ENOTDIR".to_owned(),
      path: dir.to_owned(),
      reason: "not a directory".to_owned(),
    });
  } else if meta.mode() & 0o002 != 0 {
    let sticky = if meta.mode() & 0o1000 != 0 {
      ", sticky"
    } else {
      ""
    };
    format!(
      "writable by other users (mode {:o}{sticky})",
      meta.mode() & 0o7777
    )
  } else if meta.uid() != euid && meta.uid() != 0 {
    format!(
      "owned by uid {}, not by us (uid {euid}) or root",
      meta.uid()
    )
  } else {
    return Ok(());
  };
  Err(Error::PidFile {
    code: "EUNSAFE".to_owned(),
    path: dir.to_owned(),
    reason: format!(
      "{why}: another user could plant files there (logs, locks); use a directory only this user \
       can write to"
    ),
  })
}

/// Opens a file for reading as PID files are: a symbolic link is refused with `ELOOP`, not followed
/// (`O_NOFOLLOW`), and a FIFO never blocks the open (`O_NONBLOCK`).
/// Out of descriptors, the one kept in reserve is used (see `sys::with_reserve`).
fn open_no_follow(dir: BorrowedFd<'_>, name: &Path) -> nix::Result<File> {
  let flags =
    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
  sys::with_reserve(|| {
    nix::fcntl::openat(dir, name, flags, Mode::empty())
      .map(File::from)
      .map_err(io::Error::from)
  })
  .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
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
/// renamed over `path` (not forced to disk: see the module's documentation).
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
    std::fs::rename(&tmp, path)
  })();
  if let Err(e) = result {
    let _ = std::fs::remove_file(&tmp);
    return Err(Error::pid_io(path, what, &e));
  }
  Ok(())
}

/// How much earlier than a directory listing's start a PID file may be stamped and still count as
/// written during it (file timestamps come from a coarse clock, a tick behind the real one).
const RECENT_MARGIN_MS: f64 = 1000.0;

/// A time in milliseconds since the epoch (`0` before it), the scale of [`PidFileEntry::mtime_ms`].
fn epoch_ms(t: std::time::SystemTime) -> f64 {
  t.duration_since(UNIX_EPOCH)
    .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn now_ms() -> f64 {
  epoch_ms(std::time::SystemTime::now())
}

fn mtime_ms(meta: &std::fs::Metadata) -> f64 {
  meta.modified().map_or(0.0, epoch_ms)
}

/// A listing of a PID directory.
struct Scan {
  dir: File,
  pid_files: Vec<String>,
  records: Vec<String>,
  temp_files: Vec<PathBuf>,
}

/// A target as found on disk: see [`PidFileStore::state`].
#[derive(Debug, Clone, PartialEq)]
pub struct TargetState {
  /// Its PID file, judged; `None` when there is none.
  pub verdict: Option<Verdict>,
  /// Its spawn record, whichever PID it names.
  pub record: Option<SpawnRecord>,
  /// The process the record names, when that very process is alive.
  pub record_process: Option<Identity>,
}

/// The lock files this process has open — one descriptor per file, kept open for the life of the
/// process: with `fcntl` record locks (macOS), closing any descriptor of a file drops every lock the
/// process holds on it — and the target locks held through them, by (device, inode, offset). Locks of one
/// process exclude each other here; the kernel excludes other processes.
struct LockRegistry {
  files: std::collections::HashMap<(u64, u64), std::sync::Arc<File>>,
  held: std::collections::HashSet<LockKey>,
}

/// (device, inode, offset) of a target's lock.
type LockKey = (u64, u64, u64);

static REGISTRY: std::sync::LazyLock<std::sync::Mutex<LockRegistry>> =
  std::sync::LazyLock::new(|| {
    std::sync::Mutex::new(LockRegistry {
      files: Default::default(),
      held: Default::default(),
    })
  });
static FREED: std::sync::Condvar = std::sync::Condvar::new();

/// The registry, locked (a panic elsewhere never poisons it for good: its data stays consistent).
fn registry() -> std::sync::MutexGuard<'static, LockRegistry> {
  REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks a target's lock free in this process and wakes whoever waits for it.
fn release_key(key: LockKey) {
  registry().held.remove(&key);
  FREED.notify_all();
}

/// The store's lock file (opened once per process, created if missing, never through a link, refused
/// unless it is ours or root's and not writable by others) and the key of the target's lock in it.
fn lock_file(store: &PidFileStore, target_id: &str) -> Result<(std::sync::Arc<File>, LockKey)> {
  validate_target_id(target_id)?;
  let path = store.dir.join(LOCK_FILE_NAME);
  let offset = lock_offset(target_id);
  let mut reg = registry();
  let cached = std::fs::symlink_metadata(&path)
    .ok()
    .and_then(|m| reg.files.get(&(m.dev(), m.ino())).cloned());
  let file = match cached {
    Some(f) => f,
    None => {
      let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::pid_io(&path, "open the lock file", &e))?;
      let meta = f
        .metadata()
        .map_err(|e| Error::pid_io(&path, "read the lock file", &e))?;
      reg
        .files
        .entry((meta.dev(), meta.ino()))
        .or_insert_with(|| std::sync::Arc::new(f))
        .clone()
    }
  };
  drop(reg);
  let meta = file
    .metadata()
    .map_err(|e| Error::pid_io(&path, "read the lock file", &e))?;
  if let Some(why) = distrust(&meta, store.euid) {
    return Err(Error::PidFile {
      code: "EUNSAFE".to_owned(),
      path,
      reason: format!("the lock file cannot be trusted: {why}"),
    });
  }
  Ok((file, (meta.dev(), meta.ino(), offset)))
}

/// A held per-target lock; dropping it releases it (the lock file stays open).
#[derive(Debug)]
pub struct TargetLock {
  file: std::sync::Arc<File>,
  key: LockKey,
}

impl Drop for TargetLock {
  fn drop(&mut self) {
    let _ = sys::unlock(&self.file, self.key.2, 1);
    release_key(self.key);
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
      b"4194304\n",
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
