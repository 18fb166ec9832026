//! This process's open of a slot file ([`SlotFile`]): opening (or joining an open of) it, its size and
//! the growth of it, and whether its path still names it.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::lease::Lease;
use super::map::SlotMap;
use super::options::{Locking, OpenOptions, MAX_FILE_BYTES, MAX_SLOTS};
use super::word::{me, offset, Holder, SLOT_BYTES};
use crate::error::{Error, Result};
use crate::handoff;
use crate::sync::lock;
use crate::sys::{self, LockOutcome};
use crate::trust::{check_slot_file, ensure_private_dir, open_or_create_no_follow};

/// A byte far beyond the largest slot file, locked (without waiting long) while a file grows, so that two
/// processes growing one file never shrink it.
const GROW_LOCK_OFFSET: u64 = 1 << 40;

/// How old an open must be before a claim checks again that the path still names the file.
pub(super) const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// What the file's mutex guards: the mapping and this process's lease on a slot of it.
pub(super) struct Inner {
  pub(super) map: SlotMap,
  /// The slot this process holds, and who gives it back (see [`Lease`]).
  pub(super) lease: Option<Lease<SlotFile>>,
}

/// An open slot file, shared by everything in this process that opened the same file.
pub struct SlotFile {
  pub(super) path: PathBuf,
  pub(super) file: File,
  pub(super) key: (u64, u64),
  pub(super) locks: AtomicBool,
  /// Set once the path was seen naming another file or nothing.
  replaced: AtomicBool,
  pub(super) me: Holder,
  timeout: Duration,
  pub(super) opened: Instant,
  pub(super) inner: Mutex<Inner>,
}

impl std::fmt::Debug for SlotFile {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("SlotFile")
      .field("path", &self.path)
      .field("locks", &self.uses_locks())
      .finish_non_exhaustive()
  }
}

impl SlotFile {
  /// Opens (creating if needed) the slot file at `path`, or joins this process's open of the same file.
  ///
  /// The file is opened without following symlinks and refused, without a byte changed, when it is not a
  /// regular file, is owned by another user (unless allowed), or has a size that is not a multiple of 8
  /// or is over [`MAX_FILE_BYTES`]. A new or empty file gets `default_slots` slots; `slots` grows it.
  ///
  /// # Errors
  /// [`Error::SlotFile`] with code `ESYMLINK`, `ENOTREG`, `EFOREIGN`, `EBADSIZE`, `ETOOLARGE`, or the
  /// errno name of a failed system call; [`Error::InvalidArgument`] for a slot count out of range.
  pub fn open(path: &Path, options: &OpenOptions) -> Result<Arc<SlotFile>> {
    let wanted = options.slots.unwrap_or(0);
    if options.mode > 0o777 {
      return Err(Error::InvalidArgument(format!(
        "mode must be permission bits between 0 and 0o777 (no set-user-ID, set-group-ID or sticky bit), got {:#o}",
        options.mode
      )));
    }
    for (what, n) in [
      ("slots", wanted),
      ("default slots", options.default_slots.unwrap_or(0)),
    ] {
      if n > MAX_SLOTS {
        return Err(Error::InvalidArgument(format!(
          "{what} must be at most {MAX_SLOTS} (a {MAX_FILE_BYTES}-byte file), got {n}"
        )));
      }
    }
    let path = std::path::absolute(path).map_err(|e| Error::slot_io(path, "resolve path", &e))?;
    if options.private_dir {
      if let Some(dir) = path.parent() {
        ensure_private_dir(dir)?;
      }
    }

    // Join an open of the same file first: on macOS, opening and closing a second descriptor would drop
    // this process's record locks on it. (Linux's OFD locks belong to the open, so there the look-up
    // after opening below is enough and saves a system call.)
    #[cfg(not(target_os = "linux"))]
    if let Ok(meta) = std::fs::symlink_metadata(&path) {
      if let Some(existing) = lookup((meta.dev(), meta.ino())) {
        existing.ensure_slots_within(wanted, options.timeout)?;
        return Ok(existing);
      }
    }

    if let Some((file, slot)) = handoff::inherited(&path, held_through) {
      return Self::from_inherited(path, file, slot, options);
    }

    let (file, created) = open_or_create_no_follow(&path, options.mode)?;
    let meta = file
      .metadata()
      .map_err(|e| Error::slot_io(&path, "fstat", &e))?;
    check_file(&path, &meta, options.allow_foreign_owner)?;
    if created {
      // Exactly the requested mode, whatever the umask (a fleet of several users may ask for 0o666).
      file
        .set_permissions(std::fs::Permissions::from_mode(options.mode))
        .map_err(|e| Error::slot_io(&path, "chmod", &e))?;
    }
    let key = (meta.dev(), meta.ino());
    let mut reg = files();
    if let Some(existing) = reg.get(&key).and_then(Weak::upgrade) {
      drop(reg);
      existing.ensure_slots_within(wanted, options.timeout)?;
      return Ok(existing);
    }

    let locks = options.locking == Locking::Auto;
    // Exactly the count asked for on a new file ({ slots: 1 } is a singleton); the default only when
    // none was given.
    let initial = if meta.len() == 0 {
      options
        .slots
        .or(options.default_slots)
        .unwrap_or_else(|| sys::available_parallelism().min(MAX_SLOTS))
        .max(1)
    } else {
      wanted
    };
    let deadline = Instant::now() + options.timeout;
    let size = grow(&path, &file, meta.len(), initial, locks, deadline)?;
    let map = SlotMap::new(&file, (size / SLOT_BYTES as u64) as usize)
      .map_err(|e| Error::slot_io(&path, "mmap", &e))?;
    Ok(register(
      &mut reg,
      SlotFile::new(path, file, key, map, locks, options),
    ))
  }

  /// A new open of a file, holding nothing.
  fn new(
    path: PathBuf,
    file: File,
    key: (u64, u64),
    map: SlotMap,
    locks: bool,
    options: &OpenOptions,
  ) -> Arc<SlotFile> {
    Arc::new(SlotFile {
      path,
      file,
      key,
      locks: AtomicBool::new(locks),
      replaced: AtomicBool::new(false),
      me: me(),
      timeout: options.timeout,
      opened: Instant::now(),
      inner: Mutex::new(Inner { map, lease: None }),
    })
  }

  /// The slot file of a lease this process inherited across `execve` (see [`handoff::inherited`]): the
  /// inherited descriptor becomes this process's open of the file, and its slot this process's lease.
  fn from_inherited(
    path: PathBuf,
    file: File,
    slot: usize,
    options: &OpenOptions,
  ) -> Result<Arc<SlotFile>> {
    let meta = file
      .metadata()
      .map_err(|e| Error::slot_io(&path, "fstat", &e))?;
    check_file(&path, &meta, options.allow_foreign_owner)?;
    let key = (meta.dev(), meta.ino());
    let slots = (meta.len() / SLOT_BYTES as u64) as usize;
    let map = SlotMap::new(&file, slots).map_err(|e| Error::slot_io(&path, "mmap", &e))?;
    let slot_file = SlotFile::new(path, file, key, map, true, options);
    lock(&slot_file.inner).lease = Some(Lease::adopted(slot, &slot_file));
    let slot_file = register(&mut files(), slot_file);
    slot_file.ensure_slots(options.slots.unwrap_or(0))?;
    Ok(slot_file)
  }

  /// The file's absolute path.
  pub fn path(&self) -> &Path {
    &self.path
  }

  /// The descriptor of this process's open of the file.
  pub(crate) fn raw_fd(&self) -> i32 {
    self.file.as_raw_fd()
  }

  /// The open file (for watching it).
  pub(crate) fn file(&self) -> &File {
    &self.file
  }

  /// Whether liveness is decided by locks (`false`: the filesystem refused them, or [`Locking::Off`]).
  pub fn uses_locks(&self) -> bool {
    self.locks.load(Ordering::Relaxed)
  }

  /// Whether the file is on a FUSE filesystem, whose locks the kernel keeps per mount: only processes
  /// that reach the file through this same mount are kept apart (another mount of the same files — a
  /// bind mount under FUSE, the files themselves, another host of a network filesystem mounted through
  /// FUSE — sees none of their locks). One `fstatfs`.
  pub fn on_fuse(&self) -> bool {
    sys::filesystem_kind(&self.file) == sys::FsKind::Fuse
  }

  /// The slot this process holds in this file, if any.
  pub fn held(&self) -> Option<usize> {
    lock(&self.inner).lease.as_ref().map(|l| l.slot)
  }

  /// The number of slots, re-reading the file's size (another process may have grown it).
  ///
  /// # Errors
  /// `ESHRUNK` when the file is now smaller than when mapped; `fstat`/`mmap` failures.
  pub fn size(&self) -> Result<usize> {
    let mut inner = lock(&self.inner);
    self.refresh(&mut inner)?;
    Ok(inner.map.slots)
  }

  /// Whether the path no longer names this open file: it was removed, or another file was put in its
  /// place (`mv` over it, a temporary-file cleaner, a re-created file). Processes that open the path now
  /// get another table, so IDs handed out from this one may be handed out again there. Once seen, it
  /// stays `true`. Costs one `lstat`.
  pub fn replaced(&self) -> bool {
    if self.replaced.load(Ordering::Relaxed) {
      return true;
    }
    let same = std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.key);
    if !same {
      self.replaced.store(true, Ordering::Relaxed);
    }
    !same
  }

  /// Whether [`SlotFile::replaced`] has been seen `true`, without looking again.
  pub fn replaced_seen(&self) -> bool {
    self.replaced.load(Ordering::Relaxed)
  }

  /// The file's current length, by `fstat` of the open file.
  pub(super) fn file_len(&self) -> Result<u64> {
    self
      .file
      .metadata()
      .map(|m| m.len())
      .map_err(|e| Error::slot_io(&self.path, "fstat", &e))
  }

  /// Grows the file to at least `slots` slots (never shrinks it), waiting for another grower at most the
  /// timeout the file was opened with.
  ///
  /// # Errors
  /// As [`SlotFile::size`], plus `ftruncate` failures and `ETIMEDOUT`.
  pub fn ensure_slots(&self, slots: usize) -> Result<()> {
    self.ensure_slots_within(slots, self.timeout)
  }

  fn ensure_slots_within(&self, slots: usize, timeout: Duration) -> Result<()> {
    if slots > MAX_SLOTS {
      return Err(Error::InvalidArgument(format!(
        "slots must be at most {MAX_SLOTS}, got {slots}"
      )));
    }
    let mut inner = lock(&self.inner);
    if slots > inner.map.slots {
      let len = (inner.map.slots * SLOT_BYTES) as u64;
      let deadline = Instant::now() + timeout;
      grow(
        &self.path,
        &self.file,
        len,
        slots,
        self.uses_locks(),
        deadline,
      )?;
    }
    self.refresh(&mut inner)
  }

  /// Remaps when another process grew the file; `ESHRUNK` when someone shrank it, before any touch of
  /// the mapping. (A truncation between this `fstat` and the touches that follow it — microseconds — is
  /// the one race left: no system call can make "check the size, then touch memory" atomic against a
  /// truncation by another program, and catching `SIGBUS` is no defence worth having in a library.)
  pub(super) fn refresh(&self, inner: &mut Inner) -> Result<()> {
    let len = self.file_len()?;
    let slots = (len.min(MAX_FILE_BYTES) / SLOT_BYTES as u64) as usize;
    if slots < inner.map.slots {
      return Err(Error::slot_file(
        "ESHRUNK",
        &self.path,
        format!(
          "the file shrank from {} to {len} bytes behind our back; slot files only grow",
          inner.map.slots * SLOT_BYTES
        ),
      ));
    }
    if slots > inner.map.slots {
      inner.map =
        SlotMap::new(&self.file, slots).map_err(|e| Error::slot_io(&self.path, "mmap", &e))?;
    }
    Ok(())
  }
}

impl Drop for SlotFile {
  /// The last reference in this process gone. No slot is held (a held slot pins its file), so nothing
  /// in the mapping is touched; the descriptor's close drops any lock left.
  fn drop(&mut self) {
    forget_file(self.key);
  }
}

/// Whether `slot` of the inherited open `file` is this process's lease: its word names this process
/// (PID and start tag: `execve` keeps both), and its lock can be taken through that open — whose open
/// file description already holds it, so no other one does.
fn held_through(file: &File, slot: usize) -> bool {
  let mut word = [0u8; SLOT_BYTES];
  file.read_exact_at(&mut word, offset(slot)).is_ok()
    && u64::from_le_bytes(word) == me().to_word()
    && sys::try_lock(file, offset(slot), SLOT_BYTES as u64).ok() == Some(LockOutcome::Acquired)
}

/// Grows the file (last seen at `len` bytes) to at least `slots` slots and returns its size. Under a lock
/// far past the end where locks work, so that concurrent growers never shrink it.
fn grow(
  path: &Path,
  file: &File,
  len: u64,
  slots: usize,
  locks: bool,
  deadline: Instant,
) -> Result<u64> {
  let fstat_len = || {
    file
      .metadata()
      .map(|m| m.len())
      .map_err(|e| Error::slot_io(path, "fstat", &e))
  };
  let wanted = (slots * SLOT_BYTES) as u64;
  if len >= wanted {
    return Ok(len);
  }
  let locked = if locks {
    match sys::lock_wait_until(file, GROW_LOCK_OFFSET, 1, deadline)
      .map_err(|e| Error::slot_io(path, "lock for growth", &e))?
    {
      LockOutcome::Acquired => true,
      LockOutcome::Busy => {
        return Err(Error::slot_file(
          "ETIMEDOUT",
          path,
          "another process held the file's growth lock past the timeout; is a holder stopped?",
        ))
      }
      LockOutcome::Unsupported => false,
    }
  } else {
    false
  };
  let result = (|| {
    let len = fstat_len()?;
    if len < wanted {
      file
        .set_len(wanted)
        .map_err(|e| Error::slot_io(path, "grow", &e))?;
    }
    fstat_len()
  })();
  if locked {
    let _ = sys::unlock(file, GROW_LOCK_OFFSET, 1);
  }
  result
}

/// Refuses a file the rules of trust refuse (`trust::check_slot_file`), or whose size cannot be a slot
/// file's: the format's own rule.
fn check_file(path: &Path, meta: &std::fs::Metadata, allow_foreign_owner: bool) -> Result<()> {
  check_slot_file(path, meta, allow_foreign_owner)?;
  let len = meta.len();
  if len > MAX_FILE_BYTES {
    return Err(Error::slot_file(
      "ETOOLARGE",
      path,
      format!("is {len} bytes, over the {MAX_FILE_BYTES}-byte limit; not a slot file"),
    ));
  }
  if !len.is_multiple_of(SLOT_BYTES as u64) {
    return Err(Error::slot_file(
      "EBADSIZE",
      path,
      format!("is {len} bytes, not a multiple of {SLOT_BYTES}; not a slot file"),
    ));
  }
  Ok(())
}

/// The files open in this process, by device and inode.
pub(super) type Files = HashMap<(u64, u64), Weak<SlotFile>>;

/// The files open in this process.
pub(super) fn files() -> MutexGuard<'static, Files> {
  static OPEN: OnceLock<Mutex<Files>> = OnceLock::new();
  lock(OPEN.get_or_init(Default::default))
}

/// Records this process's open of a file (dropping entries of files no longer open).
pub(super) fn register(reg: &mut Files, slot_file: Arc<SlotFile>) -> Arc<SlotFile> {
  reg.retain(|_, weak| weak.strong_count() > 0);
  reg.insert(slot_file.key, Arc::downgrade(&slot_file));
  slot_file
}

/// This process's open of the file with `key`, if it has one.
pub(super) fn lookup(key: (u64, u64)) -> Option<Arc<SlotFile>> {
  files().get(&key).and_then(Weak::upgrade)
}

/// Forgets the file with `key` once its last reference is gone.
pub(super) fn forget_file(key: (u64, u64)) {
  let mut reg = files();
  if reg.get(&key).is_some_and(|w| w.strong_count() == 0) {
    reg.remove(&key);
  }
}
