//! Worker slots: a file of N 8-byte words shared by every process of a fleet through `mmap`.
//!
//! Slot `i` is the little-endian word at byte `8*i`: bytes 0..4 hold the holder's PID, bytes 4..8 its
//! start tag (the low 32 bits of its start time), and PID 0 means free. A holder keeps an exclusive
//! byte-range lock on its slot's 8 bytes for as long as it holds the slot; the kernel drops that lock when
//! the holder dies in any way, so **a slot is held exactly while its lock is held**, whatever the holder's
//! PID namespace and however its PID is later reused. The word says who holds it, for display; only where
//! the filesystem refuses locks does liveness fall back to the PID (see [`crate::liveness`]).
//!
//! Within a process, one [`SlotFile`] exists per file (keyed by device and inode), shared by every table
//! that opens it, so the process's locks agree and it never holds two slots of one file.
//!
//! **Lifetimes.** A slot is held until this process gives it back ([`SlotFile::release`]) or ends. While
//! it holds one, the [`SlotFile`] pins itself (a strong reference from its own state, dropped by
//! `release`), so dropping every handle to it — a garbage-collected JavaScript table, say — never frees
//! the slot, and the open file and its lock live on.
//!
//! **A file changed behind our back.** Slot files only grow, but another program may truncate or remove
//! one. Every touch of the mapping is preceded by an `fstat` of the open file, and a call that needs a
//! part the file lost fails with `ESHRUNK` instead of touching it (a touch past the end of a file is a
//! `SIGBUS`); `release` and `Drop` never touch a page past the end. A path that now names another file,
//! or nothing, is reported by [`SlotFile::replaced`].

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, Result};
use crate::liveness::{holder_is_dead, self_start_tag, SystemProbe};
use crate::sys::{self, LockOutcome, LockProbe};

pub mod wait;
pub use wait::Waited;

/// Bytes per slot.
pub const SLOT_BYTES: usize = 8;
/// The largest slot file accepted: anything bigger is refused as absurd.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// The most slots a file can hold.
pub const MAX_SLOTS: usize = MAX_FILE_BYTES as usize / SLOT_BYTES;
/// A byte far beyond the largest slot file, locked (without waiting long) while a file grows, so that two
/// processes growing one file never shrink it.
const GROW_LOCK_OFFSET: u64 = 1 << 40;

/// Who holds a slot, as its word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Holder {
  /// The holder's PID in its own PID namespace; 0 when the slot is free.
  pub pid: u32,
  /// The low 32 bits of the holder's start time; 0 when unknown.
  pub tag: u32,
}

impl Holder {
  /// Packs the holder into a slot word (PID in the low half, tag in the high half).
  pub fn to_word(self) -> u64 {
    u64::from(self.pid) | (u64::from(self.tag) << 32)
  }

  /// Unpacks a slot word.
  pub fn from_word(word: u64) -> Self {
    Holder {
      pid: word as u32,
      tag: (word >> 32) as u32,
    }
  }
}

/// One slot, as [`SlotFile::snapshot`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotInfo {
  /// The slot's index.
  pub slot: usize,
  /// The holder as the word names it (`pid` 0: free).
  pub holder: Holder,
  /// Whether the holder is alive: its lock is held (or, without locks, its PID is live).
  pub alive: bool,
  /// Whether this process holds the slot.
  pub is_self: bool,
}

/// How liveness is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locking {
  /// Byte-range locks, falling back to PIDs where the filesystem refuses them.
  #[default]
  Auto,
  /// PIDs only, as on a filesystem that refuses locks (for tests and diagnostics).
  Off,
}

/// Which slot a claim is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
  /// The slot to try first (the cluster worker's index, PM2's instance number).
  pub preferred: Option<usize>,
  /// Only the preferred slot will do (PM2's instance N keeps slot N through a reload).
  pub exact: bool,
}

/// Above this many holders (non-zero words) a table is crowded: [`SlotFile::acquire`] tries the free
/// words first instead of probing holders' locks in ascending order.
pub const CROWDED: usize = 64;

/// The environment variables through which `procslot exec` hands a slot to the program it becomes.
pub mod env {
  /// The slot.
  pub const ID: &str = "PROCSLOT_ID";
  /// The table's size.
  pub const COUNT: &str = "PROCSLOT_COUNT";
  /// The slot file's absolute path.
  pub const FILE: &str = "PROCSLOT_FILE";
  /// The descriptor, left open across `execve`, whose open file description holds the slot's lock.
  pub const FD: &str = "PROCSLOT_FD";
}

/// The lease this process inherited across `execve` from `procslot exec`, if `path` names its file:
/// the inherited descriptor (now close-on-exec, so that children of this process do not keep the lock
/// alive after it) and the slot. Tried once per process.
///
/// The lease is this process's only if all of these hold: `PROCSLOT_FD` is an open descriptor of the
/// very file `path` names (device and inode), `PROCSLOT_ID` is a slot of it whose word names this
/// process (PID and start tag: `execve` keeps both), and the slot's lock can be taken through that
/// descriptor — its open file description already holds it, so no other one does. A child of the
/// process that exec'd (a shell's child, which may inherit the descriptor) fails the word check: its
/// PID is not the one in the word, and the descriptor is left alone.
fn adopt_inherited(path: &Path) -> Option<(File, usize)> {
  static TRIED: AtomicBool = AtomicBool::new(false);
  // Every open asks: the environment is read only until the lease has been tried.
  if TRIED.load(Ordering::SeqCst) {
    return None;
  }
  let fd: i32 = std::env::var(env::FD).ok()?.parse().ok()?;
  let slot: usize = std::env::var(env::ID).ok()?.parse().ok()?;
  if fd < 0 {
    return None;
  }
  let want = std::fs::symlink_metadata(path).ok()?;
  // SAFETY: fstat on any integer is safe: a closed descriptor gives EBADF.
  let mut st: libc::stat = unsafe { std::mem::zeroed() };
  // SAFETY: `st` is a valid out-pointer.
  if unsafe { libc::fstat(fd, &mut st) } != 0
    || st.st_dev as u64 != want.dev()
    || st.st_ino as u64 != want.ino()
  {
    return None;
  }
  if TRIED.swap(true, Ordering::SeqCst) {
    return None;
  }
  // SAFETY: the descriptor is open (fstat succeeded) and names the slot file; from here on this
  // process owns it — it was handed to us for exactly this. If the checks below fail, it is given back
  // untouched with `into_raw_fd`.
  let file = unsafe { File::from_raw_fd(fd) };
  let mut word = [0u8; SLOT_BYTES];
  let ours = file.read_exact_at(&mut word, offset(slot)).is_ok()
    && u64::from_le_bytes(word) == me().to_word()
    && sys::try_lock(&file, offset(slot), SLOT_BYTES as u64).ok() == Some(LockOutcome::Acquired);
  if !ours {
    let _ = std::os::fd::IntoRawFd::into_raw_fd(file);
    return None;
  }
  // SAFETY: setting FD_CLOEXEC on a descriptor we own.
  unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
  Some((file, slot))
}

/// The slot file used when none is named: `worker-slots` in the per-user directory `procslot-<euid>` of
/// the temporary directory, found as Node.js's `os.tmpdir()` finds it (`TMPDIR`, `TMP`, `TEMP`, else
/// `/tmp`; one trailing `/` dropped), the path normalized as `path.join` does. Open it with
/// [`OpenOptions::private_dir`]: the directory is this user's alone.
pub fn default_file() -> PathBuf {
  let tmp = ["TMPDIR", "TMP", "TEMP"]
    .iter()
    .filter_map(std::env::var_os)
    .find(|v| !v.is_empty())
    .unwrap_or_else(|| "/tmp".into());
  let euid = nix::unistd::geteuid().as_raw();
  let mut out = PathBuf::new();
  // Lexically, as `path.join`: `.` dropped, `..` takes back a component, repeated `/` collapsed.
  for part in Path::new(&tmp)
    .join(format!("procslot-{euid}"))
    .join("worker-slots")
    .components()
  {
    match part {
      std::path::Component::CurDir => {}
      std::path::Component::ParentDir if out.file_name().is_some() => {
        out.pop();
      }
      other => out.push(other),
    }
  }
  out
}

/// How old an open must be before `acquire` checks again that the path still names the file.
const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// How long opening and growing wait for another process's growth lock by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5000);

/// How to open a slot file.
#[derive(Debug, Clone)]
pub struct OpenOptions {
  /// Grow the file to at least this many slots (never shrinks it); a new or empty file gets exactly this
  /// many. `None`: keep its size, and give a new file `default_slots`.
  pub slots: Option<usize>,
  /// Slot count for a file that is new or empty when `slots` is `None`. `None`: the machine's available
  /// parallelism (`std::thread::available_parallelism`, which on Linux reads several cgroup files: it
  /// is asked once per process, and only when a file is created), at most [`MAX_SLOTS`].
  pub default_slots: Option<usize>,
  /// Permission bits of a file this call creates (exactly these: the umask does not apply); `0..=0o777`.
  pub mode: u32,
  /// The longest wait for another process's growth lock ([`DEFAULT_TIMEOUT`]); then `ETIMEDOUT`.
  pub timeout: Duration,
  /// The file's directory is a private per-user directory (the default file's): create it with mode
  /// 0700 if missing, and refuse it (`EUNSAFE`) unless it is a directory of this user that no one else
  /// can write to.
  pub private_dir: bool,
  /// Accept a file owned by another user.
  pub allow_foreign_owner: bool,
  /// Locks or PIDs.
  pub locking: Locking,
}

impl Default for OpenOptions {
  fn default() -> Self {
    OpenOptions {
      slots: None,
      default_slots: None,
      mode: 0o600,
      timeout: DEFAULT_TIMEOUT,
      private_dir: false,
      allow_foreign_owner: false,
      locking: Locking::Auto,
    }
  }
}

/// The shared mapping: the one place raw pointers live.
///
/// Invariant: `slots * 8` bytes are mapped for as long as this value lives, and slot files never shrink
/// (this crate only grows them, and refuses a file it finds shrunk), so every `&AtomicU64` handed out
/// points into mapped memory for as long as the borrow of `self` lasts.
struct SlotMap {
  map: MmapRaw,
  slots: usize,
}

impl SlotMap {
  fn new(file: &File, slots: usize) -> io::Result<Self> {
    let map = MmapOptions::new().len(slots * SLOT_BYTES).map_raw(file)?;
    Ok(SlotMap { map, slots })
  }

  fn word(&self, slot: usize) -> &AtomicU64 {
    assert!(slot < self.slots, "slot {slot} out of range");
    // SAFETY: the mapping is page-aligned and `slot * 8 + 8 <= len`, so the pointer is in bounds and
    // 8-byte aligned; the memory stays mapped while `self` is borrowed (see the type's invariant); and
    // every access to it, from any process, is atomic.
    unsafe { &*(self.map.as_mut_ptr().add(slot * SLOT_BYTES) as *const AtomicU64) }
  }

  /// The word of `slot`, in file order (little-endian on every platform).
  fn load(&self, slot: usize) -> u64 {
    u64::from_le(self.word(slot).load(Ordering::SeqCst))
  }

  /// Compare-and-swap on the word of `slot`.
  fn cas(&self, slot: usize, current: u64, new: u64) -> std::result::Result<u64, u64> {
    self
      .word(slot)
      .compare_exchange(
        current.to_le(),
        new.to_le(),
        Ordering::SeqCst,
        Ordering::SeqCst,
      )
      .map(u64::from_le)
      .map_err(u64::from_le)
  }
}

struct Inner {
  map: SlotMap,
  held: Option<usize>,
  /// While a slot is held: the file itself, so that it lives (and keeps its lock) whoever drops their
  /// handles. Taken out by `release`.
  pin: Option<Arc<SlotFile>>,
}

/// An open slot file, shared by everything in this process that opened the same file.
pub struct SlotFile {
  path: PathBuf,
  file: File,
  key: (u64, u64),
  locks: AtomicBool,
  /// Set once the path was seen naming another file or nothing.
  replaced: AtomicBool,
  me: Holder,
  timeout: Duration,
  opened: Instant,
  inner: Mutex<Inner>,
}

impl std::fmt::Debug for SlotFile {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("SlotFile")
      .field("path", &self.path)
      .field("locks", &self.uses_locks())
      .finish_non_exhaustive()
  }
}

type Registry = Mutex<HashMap<(u64, u64), Weak<SlotFile>>>;

fn registry() -> MutexGuard<'static, HashMap<(u64, u64), Weak<SlotFile>>> {
  static OPEN: OnceLock<Registry> = OnceLock::new();
  lock(OPEN.get_or_init(Default::default))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
  m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn me() -> Holder {
  // Per process: a forked child (whose memory starts as a copy of ours) reads it afresh.
  static ME: Mutex<Holder> = Mutex::new(Holder { pid: 0, tag: 0 });
  let pid = std::process::id();
  let mut me = lock(&ME);
  if me.pid != pid {
    *me = Holder {
      pid,
      tag: self_start_tag(),
    };
  }
  *me
}

fn offset(slot: usize) -> u64 {
  (slot * SLOT_BYTES) as u64
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
      if let Some(existing) = Self::lookup((meta.dev(), meta.ino())) {
        existing.ensure_slots_within(wanted, options.timeout)?;
        return Ok(existing);
      }
    }

    if let Some((file, slot)) = adopt_inherited(&path) {
      return Self::from_inherited(path, file, slot, options);
    }

    let (file, created) = open_file(&path, options.mode)?;
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
    let mut reg = registry();
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
    Ok(Self::register(
      &mut reg,
      SlotFile::new(path, file, key, map, None, locks, options),
    ))
  }

  /// A new open of a file, holding `held` (a slot inherited across `execve`) or nothing.
  fn new(
    path: PathBuf,
    file: File,
    key: (u64, u64),
    map: SlotMap,
    held: Option<usize>,
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
      inner: Mutex::new(Inner {
        map,
        held,
        pin: None,
      }),
    })
  }

  /// Records this process's open of a file in the registry (dropping entries of files no longer open).
  fn register(
    reg: &mut HashMap<(u64, u64), Weak<SlotFile>>,
    slot_file: Arc<SlotFile>,
  ) -> Arc<SlotFile> {
    reg.retain(|_, weak| weak.strong_count() > 0);
    reg.insert(slot_file.key, Arc::downgrade(&slot_file));
    slot_file
  }

  /// The slot file of a lease this process inherited across `execve` (see [`adopt_inherited`]): the
  /// inherited descriptor becomes this process's open of the file, holding `slot`.
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
    let slot_file = SlotFile::new(path, file, key, map, Some(slot), true, options);
    lock(&slot_file.inner).pin = Some(Arc::clone(&slot_file));
    let slot_file = Self::register(&mut registry(), slot_file);
    slot_file.ensure_slots(options.slots.unwrap_or(0))?;
    Ok(slot_file)
  }

  fn lookup(key: (u64, u64)) -> Option<Arc<SlotFile>> {
    registry().get(&key).and_then(Weak::upgrade)
  }

  /// The file's absolute path.
  pub fn path(&self) -> &Path {
    &self.path
  }

  /// The descriptor of this process's open of the file.
  pub(crate) fn raw_fd(&self) -> i32 {
    self.file.as_raw_fd()
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
    lock(&self.inner).held
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
  fn file_len(&self) -> Result<u64> {
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
  fn refresh(&self, inner: &mut Inner) -> Result<()> {
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

  /// Takes the lock of `slot` without waiting. `None`: the filesystem refuses locks (and from now on
  /// liveness is decided by PIDs).
  fn try_lock(&self, slot: usize) -> Result<Option<bool>> {
    match sys::try_lock(&self.file, offset(slot), SLOT_BYTES as u64) {
      Ok(LockOutcome::Acquired) => Ok(Some(true)),
      Ok(LockOutcome::Busy) => Ok(Some(false)),
      Ok(LockOutcome::Unsupported) => {
        self.locks.store(false, Ordering::Relaxed);
        Ok(None)
      }
      Err(e) => Err(Error::slot_io(&self.path, "lock slot", &e)),
    }
  }

  fn unlock(&self, slot: usize) {
    if self.uses_locks() {
      // Failing to unlock cannot be acted on; the lock goes with the descriptor at the latest.
      let _ = sys::unlock(&self.file, offset(slot), SLOT_BYTES as u64);
    }
  }

  /// Claims a slot for this process: its own slot if it holds one already, else `preferred` if free, else
  /// the lowest slot with no live holder. `Ok(None)` when every slot is held by a live process.
  ///
  /// In a crowded table (more than [`CROWDED`] words name a holder, some lease held) the free words come
  /// first: the slots whose word is 0 (free, most probably) are tried before the holders' slots; a
  /// crowded table with no lease held at all (dead holders only) is taken in ascending order. Probing a holder's
  /// lock is a system call that walks the file's whole lock list, so in a table of a thousand live
  /// holders an ascending scan would cost a thousand such walks to find the one free slot; with few
  /// holders a probe is cheap, and the order is exactly "the lowest slot with no live holder".
  ///
  /// The slot is held until [`SlotFile::release`] or the end of the process: dropping every handle to
  /// this file does not free it.
  ///
  /// # Errors
  /// A lock or `fstat` failure other than "held" or "unsupported"; `ESHRUNK`.
  pub fn acquire(self: &Arc<Self>, preferred: Option<usize>) -> Result<Option<usize>> {
    let want = Want {
      preferred,
      exact: false,
    };
    Ok(self.claim(want)?.map(|(slot, _)| slot))
  }

  /// As [`SlotFile::acquire`], for the slot `want` names, also saying whether this call took the slot
  /// (`false`: this process held it already — with `exact`, only if it is that very slot).
  ///
  /// # Errors
  /// As [`SlotFile::acquire`].
  pub fn claim(self: &Arc<Self>, want: Want) -> Result<Option<(usize, bool)>> {
    let mut inner = lock(&self.inner);
    if let Some(slot) = inner.held {
      let other = want.exact && want.preferred != Some(slot);
      return Ok((!other).then_some((slot, false)));
    }
    self.refresh(&mut inner)?;
    let won = self.pick(&inner.map, want)?;
    if let Some(slot) = won {
      inner.held = Some(slot);
      inner.pin = Some(Arc::clone(self));
      drop(inner);
      // A file opened by its path a moment ago is the file the path names: look again only on a table
      // that has been open a while (one lstat).
      if self.opened.elapsed() >= RECHECK_AFTER {
        self.replaced();
      }
      return Ok(Some((slot, true)));
    }
    Ok(None)
  }

  /// The claiming order of [`SlotFile::acquire`]; the slot won, if any. With `exact`, only the
  /// preferred slot (none when there is no such slot).
  fn pick(&self, map: &SlotMap, want: Want) -> Result<Option<usize>> {
    let n = map.slots;
    let first = want.preferred.filter(|&p| p < n);
    if let Some(p) = first {
      if self.try_claim(map, p)? {
        return Ok(Some(p));
      }
    }
    if want.exact {
      return Ok(None);
    }
    let rest = move |i: &usize| Some(*i) != first;
    // Crowded, and some lease held in it: the free words first (see `acquire`). A crowded table in which
    // no lease is held at all (its holders are dead: one probe over the whole table says so) is taken
    // in ascending order: the lowest slot, a dead holder's, at the first try.
    let crowded = (0..n).filter(|&i| map.load(i) != 0).nth(CROWDED).is_some()
      && !(self.uses_locks()
        && matches!(
          sys::probe_lock(&self.file, 0, (n * SLOT_BYTES) as u64),
          Ok(LockProbe::Free)
        ));
    if crowded {
      let free = (0..n).filter(rest).filter(|&i| map.load(i) == 0);
      let taken = (0..n).filter(rest).filter(|&i| map.load(i) != 0);
      for slot in free.chain(taken) {
        if self.try_claim(map, slot)? {
          return Ok(Some(slot));
        }
      }
    } else {
      for slot in (0..n).filter(rest) {
        if self.try_claim(map, slot)? {
          return Ok(Some(slot));
        }
      }
    }
    Ok(None)
  }

  /// One claim attempt on `slot`: its lock without waiting, then the word (CAS).
  fn try_claim(&self, map: &SlotMap, slot: usize) -> Result<bool> {
    let mine = self.me.to_word();
    if self.uses_locks() {
      match self.try_lock(slot)? {
        Some(true) => {
          // The lease is ours, so whoever the word names is gone: only lock holders write.
          let mut seen = map.load(slot);
          while let Err(now) = map.cas(slot, seen, mine) {
            seen = now;
          }
          return Ok(true);
        }
        Some(false) => return Ok(false),
        None => {} // locks refused: decide this slot (and the rest) by PID
      }
    }
    let seen = map.load(slot);
    let holder = Holder::from_word(seen);
    Ok(holder_is_dead(&SystemProbe, holder.pid, holder.tag) && map.cas(slot, seen, mine).is_ok())
  }

  /// Frees this process's slot: the word goes back to 0 if it still names this process (and the file
  /// still has that word: a word lost to a truncation is not touched), then the lock is dropped and the
  /// slot forgotten. With `Some(slot)`, only if that is the slot this process holds. Returns whether a
  /// slot was given back.
  pub fn release(&self, slot: Option<usize>) -> bool {
    let mut inner = lock(&self.inner);
    let Some(held) = inner.held else {
      return false;
    };
    if slot.is_some_and(|s| s != held) {
      return false;
    }
    // Never touch a page past the end of the file (SIGBUS): the word is only cleared if it is still
    // inside the file (see `refresh` for the race that remains).
    let end = offset(held) + SLOT_BYTES as u64;
    if self.file_len().is_ok_and(|len| len >= end) && held < inner.map.slots {
      let _ = inner.map.cas(held, self.me.to_word(), 0);
    }
    self.unlock(held);
    inner.held = None;
    let pin = inner.pin.take();
    drop(inner);
    self.tell_waiters(held);
    // Possibly the last reference: dropped after the guard, so the file's own mutex is not held.
    drop(pin);
    true
  }

  /// Tells every process waiting for a slot of this file that one was given back: one byte of the
  /// file is read (after the lock was dropped), which a waiter's watch reports as an access (see
  /// [`wait`]). A holder that dies tells them by the last close of its open file.
  fn tell_waiters(&self, slot: usize) {
    let mut byte = [0u8; 1];
    let _ = self.file.read_at(&mut byte, offset(slot));
  }

  /// The open file (for watching it).
  pub(crate) fn file(&self) -> &File {
    &self.file
  }

  /// Frees every slot whose holder is dead; returns how many.
  ///
  /// # Errors
  /// A lock or `fstat` failure; `ESHRUNK`.
  pub fn reclaim(&self) -> Result<usize> {
    let mut inner = lock(&self.inner);
    self.refresh(&mut inner)?;
    let mut freed = 0;
    for slot in 0..inner.map.slots {
      let seen = inner.map.load(slot);
      if seen == 0 || inner.held == Some(slot) {
        continue;
      }
      if self.uses_locks() {
        match self.try_lock(slot)? {
          Some(true) => {
            // Nobody holds the lease: free the word (unless someone rewrote it meanwhile).
            freed += usize::from(inner.map.cas(slot, seen, 0).is_ok());
            self.unlock(slot);
            continue;
          }
          Some(false) => continue,
          None => {}
        }
      }
      let holder = Holder::from_word(seen);
      if holder_is_dead(&SystemProbe, holder.pid, holder.tag)
        && inner.map.cas(slot, seen, 0).is_ok()
      {
        freed += 1;
      }
    }
    Ok(freed)
  }

  /// Every slot: who its word names, whether that holder is alive, whether it is this process.
  ///
  /// # Errors
  /// A lock-probe or `fstat` failure; `ESHRUNK`.
  pub fn snapshot(&self) -> Result<Vec<SlotInfo>> {
    self.replaced();
    let mut inner = lock(&self.inner);
    self.refresh(&mut inner)?;
    let n = inner.map.slots;
    let leased = self.leased_slots(n)?;
    let mut out = Vec::with_capacity(n);
    for slot in 0..n {
      let holder = Holder::from_word(inner.map.load(slot));
      let is_self = inner.held == Some(slot);
      let alive = if holder.pid == 0 {
        false
      } else if is_self {
        true
      } else if let Some(leased) = &leased {
        leased[slot]
      } else {
        !holder_is_dead(&SystemProbe, holder.pid, holder.tag)
      };
      out.push(SlotInfo {
        slot,
        holder,
        alive,
        is_self,
      });
    }
    Ok(out)
  }

  /// Which of the first `n` slots another process holds the lock of; `None` without locks. Costs one
  /// probe per lock found plus one per gap between them, not one per slot: a probe over a range reports
  /// one conflicting lock, and the ranges on either side of it are probed in turn.
  fn leased_slots(&self, n: usize) -> Result<Option<Vec<bool>>> {
    if !self.uses_locks() {
      return Ok(None);
    }
    let mut leased = vec![false; n];
    let mut ranges = vec![(0, n)];
    while let Some((first, end)) = ranges.pop() {
      if first >= end {
        continue;
      }
      let len = ((end - first) * SLOT_BYTES) as u64;
      match sys::probe_lock(&self.file, offset(first), len) {
        Ok(LockProbe::Free) => {}
        Ok(LockProbe::Held { start, len }) => {
          let lo = ((start / SLOT_BYTES as u64) as usize).max(first);
          let hi = match len {
            0 => end,
            len => (start + len).div_ceil(SLOT_BYTES as u64).min(end as u64) as usize,
          };
          let hi = hi.max(lo + 1);
          leased[lo..hi].iter_mut().for_each(|l| *l = true);
          ranges.push((first, lo));
          ranges.push((hi, end));
        }
        Ok(LockProbe::Unsupported) => {
          self.locks.store(false, Ordering::Relaxed);
          return Ok(None);
        }
        Err(e) => return Err(Error::slot_io(&self.path, "probe slot locks", &e)),
      }
    }
    Ok(Some(leased))
  }
}

impl Drop for SlotFile {
  /// The last reference in this process gone. No slot is held (a held slot pins its file), so nothing
  /// in the mapping is touched; the descriptor's close drops any lock left.
  fn drop(&mut self) {
    let mut reg = registry();
    if reg.get(&self.key).is_some_and(|w| w.strong_count() == 0) {
      reg.remove(&self.key);
    }
  }
}

/// Makes sure `dir` is a private directory of this user: creates it with mode 0700 if it is missing, and
/// refuses (`EUNSAFE`) anything that is not a directory (a symbolic link included), is owned by another
/// user, or can be written by group or others — in a shared `/tmp`, anyone could have created it first.
///
/// # Errors
/// `EUNSAFE`, or the errno name of a failed `mkdir`/`lstat`.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
  use std::os::unix::fs::DirBuilderExt;
  match std::fs::DirBuilder::new().mode(0o700).create(dir) {
    Ok(()) => {}
    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
    Err(e) => return Err(Error::slot_io(dir, "create the private directory", &e)),
  }
  let meta =
    std::fs::symlink_metadata(dir).map_err(|e| Error::slot_io(dir, "lstat the directory", &e))?;
  let euid = nix::unistd::geteuid().as_raw();
  let why = if !meta.file_type().is_dir() {
    Some("is not a directory (a symbolic link is not followed)".to_owned())
  } else if meta.uid() != euid {
    Some(format!(
      "is owned by uid {}, not by this user (uid {euid}); refusing a directory someone else made",
      meta.uid()
    ))
  } else if meta.mode() & 0o022 != 0 {
    Some(format!(
      "has mode {:o}: writable by other users, who could replace the slot file",
      meta.mode() & 0o7777
    ))
  } else {
    None
  };
  match why {
    Some(reason) => Err(Error::slot_file("EUNSAFE", dir, reason)),
    None => Ok(()),
  }
}

/// Opens without following symlinks and without blocking (a FIFO must not hang us), creating the file
/// with `mode` if it does not exist. Returns the file and whether this call created it.
fn open_file(path: &Path, mode: u32) -> Result<(File, bool)> {
  let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
  let open = |create: bool| {
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).custom_flags(flags);
    if create {
      o.create_new(true).mode(mode & 0o7777);
    }
    o.open(path)
  };
  let explain = |e: io::Error| match e.raw_os_error() {
    Some(libc::ELOOP) => Error::slot_file(
      "ESYMLINK",
      path,
      "is a symbolic link; refusing to follow it",
    ),
    Some(libc::EISDIR) => Error::slot_file("ENOTREG", path, "is a directory, not a regular file"),
    Some(libc::ENXIO) => Error::slot_file("ENOTREG", path, "is not a regular file"),
    _ => Error::slot_io(path, "open", &e),
  };
  // The common case is a file that exists: open it first, create it only when it is missing, and open
  // it again if another process created it in between.
  match open(false) {
    Ok(file) => Ok((file, false)),
    Err(e) if e.kind() == io::ErrorKind::NotFound => match open(true) {
      Ok(file) => Ok((file, true)),
      Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
        open(false).map(|f| (f, false)).map_err(explain)
      }
      Err(e) => Err(explain(e)),
    },
    Err(e) => Err(explain(e)),
  }
}

fn check_file(path: &Path, meta: &std::fs::Metadata, allow_foreign_owner: bool) -> Result<()> {
  if !meta.file_type().is_file() {
    return Err(Error::slot_file("ENOTREG", path, "is not a regular file"));
  }
  let euid = nix::unistd::geteuid().as_raw();
  if meta.uid() != euid && !allow_foreign_owner {
    return Err(Error::slot_file(
      "EFOREIGN",
      path,
      format!(
        "is owned by uid {} but this process runs as uid {euid}; refusing another user's slot file",
        meta.uid()
      ),
    ));
  }
  if meta.nlink() > 1 {
    return Err(Error::slot_file(
      "EHARDLINK",
      path,
      format!(
        "has {} hard links; refusing a file that can be reached by another name",
        meta.nlink()
      ),
    ));
  }
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

fn process_ids() -> MutexGuard<'static, HashMap<PathBuf, Arc<SlotFile>>> {
  static IDS: OnceLock<Mutex<HashMap<PathBuf, Arc<SlotFile>>>> = OnceLock::new();
  lock(IDS.get_or_init(Default::default))
}

/// This process's open of the file at `path`, if it has one (no new open).
pub fn opened(path: &Path) -> Option<Arc<SlotFile>> {
  let key = std::path::absolute(path).ok()?;
  if let Some(f) = process_ids().get(&key) {
    return Some(f.clone());
  }
  let meta = std::fs::symlink_metadata(&key).ok()?;
  SlotFile::lookup((meta.dev(), meta.ino()))
}

/// This process's slot in the file at `path`, claiming one if it holds none (the port of the Go
/// helpers' `GetProcessId`). Repeated calls return the same slot; the file stays open until
/// [`release_process_id`] or the end of the process. `Ok(None)` when every slot is held.
///
/// # Errors
/// As [`SlotFile::open`] and [`SlotFile::acquire`].
pub fn get_process_id(path: &Path, options: &OpenOptions) -> Result<Option<usize>> {
  let key = std::path::absolute(path).map_err(|e| Error::slot_io(path, "resolve path", &e))?;
  if let Some(slot) = process_ids().get(&key).and_then(|f| f.held()) {
    return Ok(Some(slot));
  }
  let file = SlotFile::open(&key, options)?;
  let slot = file.acquire(None)?;
  if slot.is_some() {
    process_ids().insert(key, file);
  }
  Ok(slot)
}

/// Frees this process's slot in the file at `path` (however it was taken) and forgets it. Returns whether
/// a slot was freed; idempotent.
pub fn release_process_id(path: &Path) -> bool {
  let Ok(key) = std::path::absolute(path) else {
    return false;
  };
  let cached = process_ids().remove(&key);
  let file = cached.or_else(|| {
    let meta = std::fs::symlink_metadata(&key).ok()?;
    SlotFile::lookup((meta.dev(), meta.ino()))
  });
  file.is_some_and(|f| f.release(None))
}
