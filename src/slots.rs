//! Worker slots: the binding of `procslot_core::slots` (a slot file, this process's slot, waits for a free one).

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use napi::bindgen_prelude::{Object, Uint32Array};
use napi::Env;
use napi_derive::napi;
use procslot_core::slots::wait::{self, WaitId};
use procslot_core::{OpenOptions, SlotFile, Table, Waited, Want};

use crate::error::{IntoJs, Result};

/// Does nothing: the baseline of the benchmarks' "empty napi call".
#[napi]
pub fn noop() {}

/// The slot count of a new file when none is given: `os.availableParallelism()` — the figure a fleet
/// sized by Node.js's own count has — asked once per process, at most `MAX_SLOTS`. It is libuv's
/// `uv_available_parallelism`, which the node binary exports; it is looked up when first needed rather
/// than linked, so that a runtime without libuv's symbols still loads this addon. There, `None`: the
/// core's default, Rust's count of the same CPUs.
fn default_slots() -> Option<usize> {
  static N: OnceLock<Option<usize>> = OnceLock::new();
  *N.get_or_init(|| {
    // SAFETY: `dlsym` with the process's global scope and a NUL-terminated name.
    let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"uv_available_parallelism".as_ptr()) };
    if symbol.is_null() {
      return None;
    }
    // SAFETY: the symbol is libuv's `unsigned int uv_available_parallelism(void)`: no arguments, no
    // preconditions.
    let count: extern "C" fn() -> std::os::raw::c_uint = unsafe { std::mem::transmute(symbol) };
    Some((count() as usize).clamp(1, procslot_core::MAX_SLOTS))
  })
}

fn open_options(slots: Option<u32>, timeout_ms: Option<u32>, private_dir: bool) -> OpenOptions {
  OpenOptions {
    slots: slots.map(|n| n as usize),
    // Asked (once per process) only when no count is given: the core uses it for a new file only then.
    default_slots: if slots.is_none() {
      default_slots()
    } else {
      None
    },
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
  slots: Option<u32>,
  timeout_ms: Option<u32>,
  private_dir: bool,
) -> i32 {
  let options = open_options(slots, timeout_ms, private_dir);
  match procslot_core::get_process_id(Path::new(&path), &options) {
    Ok(Some(slot)) => slot as i32,
    _ => -1,
  }
}

/// Whether this process's open of the slot file at `path` (if it has one) is on FUSE, whose locks keep
/// apart only the processes that use the same mount.
#[napi]
pub fn slot_file_on_fuse(path: String) -> bool {
  procslot_core::opened(Path::new(&path)).is_some_and(|f| f.on_fuse())
}

/// Frees this process's slot in `path`; whether one was freed.
#[napi]
pub fn release_process_id(path: String) -> bool {
  procslot_core::release_process_id(Path::new(&path))
}

/// How to open a slot file (the facade has checked every field).
#[napi(object)]
pub struct NativeOpenOptions {
  /// The fleet size: grow to it, and a new file gets exactly this many (else `os.availableParallelism()`).
  pub slots: Option<u32>,
  /// Permission bits of a file this call creates.
  pub mode: u32,
  /// Accept another user's file.
  pub allow_foreign_owner: bool,
  /// The longest wait for the growth lock.
  pub timeout_ms: Option<u32>,
  /// The file's directory is the private per-user default directory.
  pub private_dir: bool,
}

impl From<&NativeOpenOptions> for OpenOptions {
  fn from(options: &NativeOpenOptions) -> Self {
    OpenOptions {
      mode: options.mode,
      allow_foreign_owner: options.allow_foreign_owner,
      ..open_options(options.slots, options.timeout_ms, options.private_dir)
    }
  }
}

/// An open slot file: the core's [`Table`], which records the slot it takes and gives it back on
/// `close`. Dropping it (its JavaScript object collected) frees nothing: a held slot is pinned by the core
/// until it is released, this table is closed after taking it, or the process ends.
#[napi]
pub struct NativeSlotTable {
  table: Table,
}

impl NativeSlotTable {
  fn file(&self, env: &Env) -> Result<&Arc<SlotFile>> {
    self.table.file().js(env)
  }
}

#[napi]
impl NativeSlotTable {
  /// Opens (or joins this process's open of) the slot file at `path`. With `shared`, the table is one of
  /// the tables that share this process's slot of the file (the clients): it is given back when the last
  /// of them that shares it closes.
  #[napi(factory)]
  pub fn open(
    env: &Env,
    path: String,
    options: NativeOpenOptions,
    shared: Option<bool>,
  ) -> Result<Self> {
    let options = OpenOptions::from(&options);
    let file = SlotFile::open(Path::new(&path), &options).js(env)?;
    Ok(NativeSlotTable {
      table: Table::new(file, shared.unwrap_or(false)),
    })
  }

  /// Whether the path now names another file or nothing (one `lstat`).
  #[napi(getter)]
  pub fn replaced(&self, env: &Env) -> Result<bool> {
    Ok(self.file(env)?.replaced())
  }

  /// Whether the file was already seen replaced (no system call).
  #[napi(getter)]
  pub fn replaced_seen(&self, env: &Env) -> Result<bool> {
    Ok(self.file(env)?.replaced_seen())
  }

  /// The absolute path.
  #[napi(getter)]
  pub fn path(&self) -> String {
    self.table.path().to_string_lossy().into_owned()
  }

  /// The slot count, re-read from the file.
  #[napi(getter)]
  pub fn size(&self, env: &Env) -> Result<u32> {
    Ok(self.file(env)?.size().js(env)? as u32)
  }

  /// Whether the file is on FUSE (see `slotFileOnFuse`).
  #[napi(getter)]
  pub fn on_fuse(&self, env: &Env) -> Result<bool> {
    Ok(self.file(env)?.on_fuse())
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

  /// Claims a slot (`preferred` first; with `exact`, only that one) for this table; -1 when none is
  /// free.
  #[napi]
  pub fn acquire(&self, env: &Env, preferred: Option<u32>, exact: Option<bool>) -> Result<i32> {
    let claim = self.table.claim(want(preferred, exact)).js(env)?;
    Ok(claim.map_or(-1, |(slot, _)| slot as i32))
  }

  /// Frees this process's slot (only `slot`, if given).
  #[napi]
  pub fn release(&self, env: &Env, slot: Option<u32>) -> Result<bool> {
    Ok(self.file(env)?.release(slot.map(|s| s as usize)))
  }

  /// Frees every dead holder's slot; how many.
  #[napi]
  pub fn reclaim(&self, env: &Env) -> Result<u32> {
    Ok(self.file(env)?.reclaim().js(env)? as u32)
  }

  /// Every slot and its holder, flat: three numbers per slot — PID, start tag, flags (1: alive, 2: this
  /// process). One typed array instead of an object per slot: creating objects through napi costs far
  /// more than building them in JavaScript.
  #[napi]
  pub fn snapshot(&self, env: &Env) -> Result<Uint32Array> {
    let slots = self.file(env)?.snapshot().js(env)?;
    let mut flat = Vec::with_capacity(slots.len() * 3);
    for s in slots {
      flat.push(s.holder.pid);
      flat.push(s.holder.tag);
      flat.push(u32::from(s.alive) | (u32::from(s.is_self) << 1));
    }
    Ok(Uint32Array::new(flat))
  }

  /// A waiter for a free slot of this file (see [`NativeWaiter`]).
  #[napi]
  pub fn waiter(&self, env: &Env) -> Result<NativeWaiter> {
    Ok(NativeWaiter {
      file: Arc::clone(self.file(env)?),
      id: None,
      cancelled: false,
    })
  }

  /// Makes this table the owner of `slot` (taken for it by a wait), so that `close` gives it back.
  #[napi]
  pub fn adopt(&self, slot: u32) {
    self.table.adopt(slot as usize);
  }

  /// Closes this table without giving back the slot it took: the slot stays held (pinned by the core)
  /// until it is released by another handle or the process ends. Idempotent.
  #[napi]
  pub fn detach(&mut self) {
    self.table.detach();
  }

  /// Closes this table: gives back the slot it took (if this process still holds it, and no other
  /// sharing table shares it), then drops its reference. Idempotent.
  #[napi]
  pub fn close(&mut self) {
    self.table.close();
  }
}

/// One wait for a free slot: its own reference to the file (so that a slot it takes can be given back
/// even if the table that started it was closed meanwhile), run by the core's waiting thread (one per
/// process, whatever the number of waits), which settles the promise.
#[napi]
pub struct NativeWaiter {
  file: Arc<SlotFile>,
  id: Option<WaitId>,
  cancelled: bool,
}

/// What a wait came to.
#[napi(object)]
pub struct NativeWaited {
  /// The slot; -1: the timeout passed; -2: cancelled.
  pub slot: i32,
  /// Whether this wait took the slot (`false`: the process held it already).
  pub took: bool,
}

impl From<Waited> for NativeWaited {
  fn from(w: Waited) -> Self {
    let (slot, took) = match w {
      Waited::Slot(slot, took) => (slot as i32, took),
      Waited::TimedOut => (-1, false),
      Waited::Cancelled => (-2, false),
    };
    NativeWaited { slot, took }
  }
}

fn want(preferred: Option<u32>, exact: Option<bool>) -> Want {
  Want {
    preferred: preferred.map(|p| p as usize),
    exact: exact.unwrap_or(false),
  }
}

#[napi]
impl NativeWaiter {
  /// Waits (on the core's waiting thread, on the file's events) until a slot is taken, `timeout_ms`
  /// passes or `cancel` is called.
  #[napi(ts_return_type = "Promise<NativeWaited>")]
  pub fn wait<'env>(
    &mut self,
    env: &'env Env,
    preferred: Option<u32>,
    exact: Option<bool>,
    timeout_ms: Option<f64>,
  ) -> Result<Object<'env>> {
    type Settle = Box<dyn FnOnce(Env) -> napi::Result<NativeWaited>>;
    let (deferred, promise) = env.create_deferred::<NativeWaited, Settle>()?;
    if self.cancelled {
      deferred.resolve(Box::new(|_| Ok(Waited::Cancelled.into())));
      return Ok(promise);
    }
    let deadline =
      timeout_ms.map(|ms| std::time::Instant::now() + Duration::from_secs_f64(ms.max(0.0) / 1e3));
    let done: wait::Done = Box::new(move |result| {
      deferred.resolve(Box::new(move |env| result.map(Into::into).js(&env)))
    });
    let id = wait::start(&self.file, want(preferred, exact), deadline, done).js(env)?;
    self.id = Some(id);
    Ok(promise)
  }

  /// Ends the wait (now, or as soon as it starts): it settles as cancelled.
  #[napi]
  pub fn cancel(&mut self) {
    self.cancelled = true;
    if let Some(id) = self.id.take() {
      wait::cancel(id);
    }
  }

  /// Gives back `slot` if this process holds it (a slot taken by a wait whose caller went away).
  #[napi]
  pub fn give_back(&self, slot: u32) -> bool {
    self.file.release(Some(slot as usize))
  }
}

/// `procslot exec ARGS` (the arguments after `exec`), as the native launcher runs it: takes a slot and
/// becomes COMMAND (`execve`, this very process), which inherits it. Returns only when it did not, with
/// the exit code, having said why on standard error.
#[napi]
pub fn exec_main(args: Vec<String>) -> i32 {
  let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
  procslot_core::exec::cli::main(&args)
}
