//! The per-process registry: one [`SlotFile`] per file (keyed by device and inode), shared by every
//! table that opens it, so the process's locks agree and it never holds two slots of one file; and the
//! opens of [`get_process_id`] by path, so that its repeated calls cost a look-up.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use super::file::SlotFile;
use super::options::OpenOptions;
use crate::error::{Error, Result};

/// The files open in this process, by device and inode.
pub(super) type Files = HashMap<(u64, u64), Weak<SlotFile>>;

/// A mutex's guard, whether or not a panic poisoned it (the state it guards is valid at every unlock).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
  m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

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

/// The opens of [`get_process_id`], by absolute path as given: kept open until [`release_process_id`].
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
  lookup((meta.dev(), meta.ino()))
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
    lookup((meta.dev(), meta.ino()))
  });
  file.is_some_and(|f| f.release(None))
}
