//! The napi-rs binding: converts arguments, maps errors, and nothing else. All the work is in
//! `procslot-core`; the typed API is the TypeScript facade (`index.ts`), which loads this as `./binding`.
#![deny(clippy::all)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub mod supervise;

use napi::bindgen_prelude::Uint32Array;
use napi_derive::napi;
use procslot_core::{OpenOptions, SlotFile};

/// A result whose error carries one of the core's stable codes as its JavaScript `code`.
pub(crate) type Result<T> = napi::Result<T, String>;

/// The one place where core errors become JavaScript errors: the stable code becomes `error.code`, the
/// message names the path and the reason.
pub(crate) fn map_error(err: procslot_core::Error) -> napi::Error<String> {
  napi::Error::new(err.code().to_owned(), err.to_string())
}

fn closed(path: &str) -> napi::Error<String> {
  napi::Error::new(
    "ECLOSED".to_owned(),
    format!("slot file {path}: this table is closed"),
  )
}

/// Does nothing: the baseline of the benchmarks' "empty napi call".
#[napi]
pub fn noop() {}

fn open_options(
  slots: Option<u32>,
  default_slots: u32,
  timeout_ms: Option<u32>,
  private_dir: bool,
) -> OpenOptions {
  OpenOptions {
    slots: slots.map(|n| n as usize),
    default_slots: default_slots as usize,
    timeout: timeout_ms.map_or(procslot_core::DEFAULT_TIMEOUT, |ms| {
      Duration::from_millis(ms.into())
    }),
    private_dir,
    ..OpenOptions::default()
  }
}

/// This process's slot in `path` (claiming one if needed), or -1 when the table is full or on any error.
#[napi]
pub fn get_process_id(
  path: String,
  default_slots: u32,
  slots: Option<u32>,
  timeout_ms: Option<u32>,
  private_dir: bool,
) -> i32 {
  let options = open_options(slots, default_slots, timeout_ms, private_dir);
  match procslot_core::get_process_id(Path::new(&path), &options) {
    Ok(Some(slot)) => slot as i32,
    _ => -1,
  }
}

/// Frees this process's slot in `path`; whether one was freed.
#[napi]
pub fn release_process_id(path: String) -> bool {
  procslot_core::release_process_id(Path::new(&path))
}

/// An open slot file. Dropping it (its JavaScript object collected) frees nothing: a held slot is pinned
/// by the core until it is released, this table is closed after taking it, or the process ends.
#[napi]
pub struct NativeSlotTable {
  path: String,
  file: Option<Arc<SlotFile>>,
  /// The slot this table took (not one the process held before), which `close` gives back.
  took: Option<usize>,
}

impl NativeSlotTable {
  fn file(&self) -> Result<&SlotFile> {
    self.file.as_deref().ok_or_else(|| closed(&self.path))
  }

  fn file_arc(&self) -> Result<&Arc<SlotFile>> {
    self.file.as_ref().ok_or_else(|| closed(&self.path))
  }
}

#[napi]
impl NativeSlotTable {
  /// Opens (or joins this process's open of) the slot file at `path`.
  #[napi(factory)]
  pub fn open(
    path: String,
    slots: Option<u32>,
    default_slots: u32,
    mode: u32,
    allow_foreign_owner: bool,
    timeout_ms: Option<u32>,
    private_dir: bool,
  ) -> Result<Self> {
    let options = OpenOptions {
      mode,
      allow_foreign_owner,
      ..open_options(slots, default_slots, timeout_ms, private_dir)
    };
    let file = SlotFile::open(Path::new(&path), &options).map_err(map_error)?;
    Ok(NativeSlotTable {
      path: file.path().to_string_lossy().into_owned(),
      file: Some(file),
      took: None,
    })
  }

  /// Whether the path now names another file or nothing (one `lstat`).
  #[napi(getter)]
  pub fn replaced(&self) -> Result<bool> {
    Ok(self.file_arc()?.replaced())
  }

  /// Whether the file was already seen replaced (no system call).
  #[napi(getter)]
  pub fn replaced_seen(&self) -> Result<bool> {
    Ok(self.file_arc()?.replaced_seen())
  }

  /// The absolute path.
  #[napi(getter)]
  pub fn path(&self) -> String {
    self.path.clone()
  }

  /// The slot count, re-read from the file.
  #[napi(getter)]
  pub fn size(&self) -> Result<u32> {
    Ok(self.file()?.size().map_err(map_error)? as u32)
  }

  /// Whether liveness is decided by locks.
  #[napi(getter)]
  pub fn uses_locks(&self) -> Result<bool> {
    Ok(self.file()?.uses_locks())
  }

  /// This process's slot, or -1.
  #[napi]
  pub fn held(&self) -> Result<i32> {
    Ok(self.file()?.held().map_or(-1, |s| s as i32))
  }

  /// Claims a slot; -1 when full.
  #[napi]
  pub fn acquire(&mut self, preferred: Option<u32>) -> Result<i32> {
    let claim = self
      .file_arc()?
      .claim(preferred.map(|p| p as usize))
      .map_err(map_error)?;
    Ok(match claim {
      Some((slot, took)) => {
        if took {
          self.took = Some(slot);
        }
        slot as i32
      }
      None => -1,
    })
  }

  /// Frees this process's slot (only `slot`, if given).
  #[napi]
  pub fn release(&mut self, slot: Option<u32>) -> Result<bool> {
    let freed = self.file()?.release(slot.map(|s| s as usize));
    if freed {
      self.took = None;
    }
    Ok(freed)
  }

  /// Frees every dead holder's slot; how many.
  #[napi]
  pub fn reclaim(&self) -> Result<u32> {
    Ok(self.file()?.reclaim().map_err(map_error)? as u32)
  }

  /// Every slot and its holder, flat: three numbers per slot — PID, start tag, flags (1: alive, 2: this
  /// process). One typed array instead of an object per slot: creating objects through napi costs far
  /// more than building them in JavaScript.
  #[napi]
  pub fn snapshot(&self) -> Result<Uint32Array> {
    let slots = self.file()?.snapshot().map_err(map_error)?;
    let mut flat = Vec::with_capacity(slots.len() * 3);
    for s in slots {
      flat.push(s.holder.pid);
      flat.push(s.holder.tag);
      flat.push(u32::from(s.alive) | (u32::from(s.is_self) << 1));
    }
    Ok(Uint32Array::new(flat))
  }

  /// Closes this table without giving back the slot it took: the slot stays held (pinned by the core)
  /// until it is released by another handle or the process ends. Idempotent.
  #[napi]
  pub fn detach(&mut self) {
    self.took = None;
    self.file = None;
  }

  /// Closes this table: gives back the slot it took (if this process still holds that one), then drops
  /// its reference. Idempotent.
  #[napi]
  pub fn close(&mut self) {
    if let (Some(file), Some(slot)) = (self.file.take(), self.took.take()) {
      file.release(Some(slot));
    }
  }
}
