//! The per-target lock across processes: one byte of `<dir>/.procslot.lock` per target, and the registry of
//! the locks this process holds (so that two locks of one process exclude each other too).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use super::{validate_target_id, PidFileStore};
use crate::error::{Error, Result};
use crate::sys::{self, LockOutcome};
use crate::trust::file_distrust;

/// The name of the lock file in a PID directory (hidden: never a target's PID file).
pub const LOCK_FILE_NAME: &str = ".procslot.lock";

impl PidFileStore {
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
  if let Some(why) = file_distrust(&meta, store.euid) {
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
