//! The napi-rs binding: converts arguments, maps errors, and nothing else. All the work is in
//! `procslot-core`; the typed API is the TypeScript facade (`index.ts`), which loads this as `./binding`.
#![deny(clippy::all)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::path::Path;
use std::sync::Arc;

mod error;
pub mod supervise;

use napi::bindgen_prelude::Uint32Array;
use napi::Env;
use napi_derive::napi;
use procslot_core::{OpenOptions, SlotFile};

pub(crate) use error::to_js;

/// A result whose error is a JavaScript error carrying the core's error as data (see [`error`]).
pub(crate) type Result<T> = napi::Result<T>;

fn closed(env: &Env, path: &str) -> napi::Error {
  let err = procslot_core::Error::slot_file("ECLOSED", Path::new(path), "this table is closed");
  to_js(env, err)
}

/// Does nothing: the baseline of the benchmarks' "empty napi call".
#[napi]
pub fn noop() {}

/// This process's slot in `path` (claiming one if needed), or -1 when the table is full or on any error.
#[napi]
pub fn get_process_id(path: String, default_slots: u32) -> i32 {
  match procslot_core::get_process_id(Path::new(&path), default_slots as usize) {
    Ok(Some(slot)) => slot as i32,
    _ => -1,
  }
}

/// Frees this process's slot in `path`; whether one was freed.
#[napi]
pub fn release_process_id(path: String) -> bool {
  procslot_core::release_process_id(Path::new(&path))
}

/// An open slot file.
#[napi]
pub struct NativeSlotTable {
  path: String,
  file: Option<Arc<SlotFile>>,
}

impl NativeSlotTable {
  fn file(&self, env: &Env) -> Result<&SlotFile> {
    self.file.as_deref().ok_or_else(|| closed(env, &self.path))
  }
}

#[napi]
impl NativeSlotTable {
  /// Opens (or joins this process's open of) the slot file at `path`.
  #[napi(factory)]
  pub fn open(
    env: &Env,
    path: String,
    slots: Option<u32>,
    default_slots: u32,
    mode: u32,
    allow_foreign_owner: bool,
  ) -> Result<Self> {
    let options = OpenOptions {
      slots: slots.map(|n| n as usize),
      default_slots: default_slots as usize,
      mode,
      allow_foreign_owner,
      ..OpenOptions::default()
    };
    let file = SlotFile::open(Path::new(&path), &options).map_err(|e| to_js(env, e))?;
    Ok(NativeSlotTable {
      path: file.path().to_string_lossy().into_owned(),
      file: Some(file),
    })
  }

  /// The absolute path.
  #[napi(getter)]
  pub fn path(&self) -> String {
    self.path.clone()
  }

  /// The slot count, re-read from the file.
  #[napi(getter)]
  pub fn size(&self, env: &Env) -> Result<u32> {
    Ok(self.file(env)?.size().map_err(|e| to_js(env, e))? as u32)
  }

  /// Whether liveness is decided by locks.
  #[napi(getter)]
  pub fn uses_locks(&self, env: &Env) -> Result<bool> {
    Ok(self.file(env)?.uses_locks())
  }

  /// This process's slot, or -1.
  #[napi]
  pub fn held(&self, env: &Env) -> Result<i32> {
    Ok(self.file(env)?.held().map_or(-1, |s| s as i32))
  }

  /// Claims a slot; -1 when full.
  #[napi]
  pub fn acquire(&self, env: &Env, preferred: Option<u32>) -> Result<i32> {
    let slot = self
      .file(env)?
      .acquire(preferred.map(|p| p as usize))
      .map_err(|e| to_js(env, e))?;
    Ok(slot.map_or(-1, |s| s as i32))
  }

  /// Frees this process's slot (only `slot`, if given).
  #[napi]
  pub fn release(&self, env: &Env, slot: Option<u32>) -> Result<bool> {
    Ok(self.file(env)?.release(slot.map(|s| s as usize)))
  }

  /// Frees every dead holder's slot; how many.
  #[napi]
  pub fn reclaim(&self, env: &Env) -> Result<u32> {
    Ok(self.file(env)?.reclaim().map_err(|e| to_js(env, e))? as u32)
  }

  /// Every slot and its holder, flat: three numbers per slot — PID, start tag, flags (1: alive, 2: this
  /// process). One typed array instead of an object per slot: creating objects through napi costs far
  /// more than building them in JavaScript.
  #[napi]
  pub fn snapshot(&self, env: &Env) -> Result<Uint32Array> {
    let slots = self.file(env)?.snapshot().map_err(|e| to_js(env, e))?;
    let mut flat = Vec::with_capacity(slots.len() * 3);
    for s in slots {
      flat.push(s.holder.pid);
      flat.push(s.holder.tag);
      flat.push(u32::from(s.alive) | (u32::from(s.is_self) << 1));
    }
    Ok(Uint32Array::new(flat))
  }

  /// Drops this table's reference; the last one in the process frees the slot. Idempotent.
  #[napi]
  pub fn close(&mut self) {
    self.file = None;
  }
}
