//! The port of the Go helpers' process ID calls: [`get_process_id`] and [`release_process_id`], this
//! process's opens of a file by path (so that repeated calls cost a look-up), and [`opened`].

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::file::{lookup, SlotFile};
use super::options::OpenOptions;
use crate::error::{Error, Result};
use crate::sync::lock;

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
