//! Bindings for PID files, process handles and mount points (the FUSE process manager's native half).
//! Waits that can take seconds (a process's exit, a mount appearing, another process's lock) run on a
//! thread of their own and settle a promise, so that neither the JavaScript thread nor libuv's small
//! thread pool (which `fs` needs) is ever blocked by them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{Env, Object};
use napi::Status;
use napi_derive::napi;
use procslot_core::{
  MountWait, PidFileEntry, PidFileStatus, PidFileStore, ProcessHandle, Signalled, TargetLock,
};

use crate::{to_js, Result};

/// One PID file as found on disk.
#[napi(object)]
pub struct NativePidFileEntry {
  pub target_id: String,
  pub path: String,
  /// The PID when the file is valid and trusted.
  pub pid: Option<u32>,
  /// `'valid'`, `'invalid'` or `'untrusted'`.
  pub status: String,
  /// Why it is invalid or untrusted.
  pub reason: Option<String>,
  pub mtime_ms: f64,
  pub uid: u32,
  pub mode: u32,
}

impl From<PidFileEntry> for NativePidFileEntry {
  fn from(e: PidFileEntry) -> Self {
    let (status, pid, reason) = match e.status {
      PidFileStatus::Valid(pid) => ("valid", Some(pid), None),
      PidFileStatus::Invalid(why) => ("invalid", None, Some(why)),
      PidFileStatus::Untrusted(why) => ("untrusted", None, Some(why)),
    };
    NativePidFileEntry {
      target_id: e.target_id,
      path: e.path.to_string_lossy().into_owned(),
      pid,
      status: status.to_owned(),
      reason,
      mtime_ms: e.mtime_ms,
      uid: e.uid,
      mode: e.mode,
    }
  }
}

/// A PID file and the process it names, as found at load.
#[napi(object)]
pub struct NativeLoadedEntry {
  pub entry: NativePidFileEntry,
  /// The named process's raw start time; absent when there is no such process (or the file is invalid).
  pub start_ticks: Option<f64>,
  pub start_time_ms: Option<f64>,
  pub zombie: bool,
}

/// A PID directory as loaded: running processes as columns (index `i` of each is one file), the rest
/// whole. Both parts are sorted by target ID.
#[napi(object)]
pub struct NativeLoad {
  pub running_ids: Vec<String>,
  pub running_pids: Vec<u32>,
  pub running_start_ticks: Vec<f64>,
  pub running_start_time_ms: Vec<f64>,
  /// Files that are invalid or untrusted, or name no process, a zombie or a reused PID.
  pub others: Vec<NativeLoadedEntry>,
}

/// A directory of PID files.
#[napi]
pub struct NativePidFileStore {
  store: Arc<PidFileStore>,
}

#[napi]
impl NativePidFileStore {
  /// Opens (creating) the PID directory.
  #[napi(factory)]
  pub fn open(env: &Env, dir: String) -> Result<Self> {
    let store = PidFileStore::open(Path::new(&dir)).map_err(|e| to_js(env, e))?;
    Ok(NativePidFileStore {
      store: Arc::new(store),
    })
  }

  #[napi(getter)]
  pub fn dir(&self) -> String {
    self.store.dir().to_string_lossy().into_owned()
  }

  #[napi]
  pub fn path_for(&self, env: &Env, target_id: String) -> Result<String> {
    let p = self.store.path_for(&target_id).map_err(|e| to_js(env, e))?;
    Ok(p.to_string_lossy().into_owned())
  }

  #[napi]
  pub fn write(&self, env: &Env, target_id: String, pid: u32) -> Result<()> {
    self.store.write(&target_id, pid).map_err(|e| to_js(env, e))
  }

  #[napi]
  pub fn read(&self, env: &Env, target_id: String) -> Result<Option<u32>> {
    self.store.read(&target_id).map_err(|e| to_js(env, e))
  }

  #[napi]
  pub fn inspect(&self, env: &Env, target_id: String) -> Result<Option<NativePidFileEntry>> {
    Ok(
      self
        .store
        .inspect(&target_id)
        .map_err(|e| to_js(env, e))?
        .map(Into::into),
    )
  }

  /// Deletes the target's PID file and its mount-path file; whether there was a PID file.
  #[napi]
  pub fn delete(&self, env: &Env, target_id: String) -> Result<bool> {
    self.store.delete(&target_id).map_err(|e| to_js(env, e))
  }

  /// Records the absolute path the target's daemon mounted (`.<targetId>.mount`).
  #[napi]
  pub fn write_mount_path(&self, env: &Env, target_id: String, mount_path: String) -> Result<()> {
    self
      .store
      .write_mount_path(&target_id, Path::new(&mount_path))
      .map_err(|e| to_js(env, e))
  }

  /// The mount path recorded for the target; `null` when none is, or it cannot be trusted (or is not
  /// UTF-8, which no JavaScript caller could have written).
  #[napi]
  pub fn read_mount_path(&self, env: &Env, target_id: String) -> Result<Option<String>> {
    let path = self
      .store
      .read_mount_path(&target_id)
      .map_err(|e| to_js(env, e))?;
    Ok(path.and_then(|p| p.into_os_string().into_string().ok()))
  }

  #[napi]
  pub fn list(&self, env: &Env) -> Result<Vec<NativePidFileEntry>> {
    let entries = self.store.list().map_err(|e| to_js(env, e))?;
    Ok(entries.into_iter().map(Into::into).collect())
  }

  /// Every PID file with the identity of the process each valid one names (looked up in parallel).
  /// Every PID file with the process it names, split for a cheap crossing into JavaScript: files naming
  /// a live process that started before the file was written (the common case, thousands of them) come
  /// as columns; every other file comes whole, with its identity.
  #[napi]
  pub fn load(&self, env: &Env) -> Result<NativeLoad> {
    let loaded = self.store.load().map_err(|e| to_js(env, e))?;
    let mut out = NativeLoad {
      running_ids: Vec::new(),
      running_pids: Vec::new(),
      running_start_ticks: Vec::new(),
      running_start_time_ms: Vec::new(),
      others: Vec::new(),
    };
    for (entry, id) in loaded {
      match (entry.pid(), id) {
        (Some(pid), Some(id))
          if !id.zombie && !procslot_core::started_after(id.start_time_ms, entry.mtime_ms) =>
        {
          out.running_ids.push(entry.target_id);
          out.running_pids.push(pid);
          out.running_start_ticks.push(id.start_time as f64);
          out.running_start_time_ms.push(id.start_time_ms);
        }
        (_, id) => out.others.push(NativeLoadedEntry {
          start_ticks: id.map(|i| i.start_time as f64),
          start_time_ms: id.map(|i| i.start_time_ms),
          zombie: id.is_some_and(|i| i.zombie),
          entry: entry.into(),
        }),
      }
    }
    Ok(out)
  }

  /// The target's cross-process lock if it is free now, else `null`.
  #[napi]
  pub fn try_lock(&self, env: &Env, target_id: String) -> Result<Option<NativeTargetLock>> {
    let lock = self.store.try_lock(&target_id).map_err(|e| to_js(env, e))?;
    Ok(lock.map(|l| NativeTargetLock { lock: Some(l) }))
  }

  /// Waits (on a thread of its own) for the target's cross-process lock.
  #[napi(ts_return_type = "Promise<NativeTargetLock>")]
  pub fn lock<'env>(&self, env: &'env Env, target_id: String) -> Result<Object<'env>> {
    procslot_core::validate_target_id(&target_id).map_err(|e| to_js(env, e))?;
    let store = self.store.clone();
    on_thread(env, move || {
      store
        .lock(&target_id)
        .map(|l| NativeTargetLock { lock: Some(l) })
    })
  }
}

/// A held per-target lock.
#[napi]
pub struct NativeTargetLock {
  lock: Option<TargetLock>,
}

#[napi]
impl NativeTargetLock {
  /// Releases the lock (idempotent).
  #[napi]
  pub fn release(&mut self) {
    self.lock = None;
  }
}

/// Runs `work` on a new thread and settles a promise with its result; a core error rejects it with the
/// same JavaScript error a synchronous call would throw (built on the JavaScript thread, where it settles).
fn on_thread<'env, T, F>(env: &'env Env, work: F) -> Result<Object<'env>>
where
  T: napi::bindgen_prelude::ToNapiValue + Send + 'static,
  F: FnOnce() -> procslot_core::Result<T> + Send + 'static,
{
  type Settle<T> = Box<dyn FnOnce(Env) -> napi::Result<T>>;
  let (deferred, promise) = env.create_deferred::<T, Settle<T>>()?;
  std::thread::Builder::new()
    .name("procslot-wait".into())
    .spawn(move || {
      let result = work();
      deferred.resolve(Box::new(move |env| result.map_err(|e| to_js(&env, e))))
    })
    .map_err(|e| napi::Error::new(Status::GenericFailure, e.to_string()))?;
  Ok(promise)
}

/// A handle on the live process `pid` (with `expectedStart`, only that very process); `null` when it is
/// gone, a zombie, or another process now has the PID.
#[napi]
pub fn open_process(
  env: &Env,
  pid: u32,
  expected_start: Option<f64>,
) -> Result<Option<NativeProcess>> {
  let h = ProcessHandle::open(pid, expected_start.map(|s| s as u64)).map_err(|e| to_js(env, e))?;
  Ok(h.map(|handle| NativeProcess {
    handle: Arc::new(handle),
  }))
}

/// One particular process, pinned by its start time and a pidfd.
#[napi]
pub struct NativeProcess {
  handle: Arc<ProcessHandle>,
}

#[napi]
impl NativeProcess {
  #[napi(getter)]
  pub fn pid(&self) -> u32 {
    self.handle.pid()
  }

  /// The raw start time (clock ticks since boot on Linux): equal means the same process.
  #[napi(getter)]
  pub fn start_ticks(&self) -> f64 {
    self.handle.start_time() as f64
  }

  /// The start time, milliseconds since the epoch.
  #[napi(getter)]
  pub fn start_time_ms(&self) -> f64 {
    self.handle.start_time_ms()
  }

  #[napi(getter)]
  pub fn has_pidfd(&self) -> bool {
    self.handle.has_pidfd()
  }

  #[napi]
  pub fn is_alive(&self) -> bool {
    self.handle.is_alive()
  }

  /// Signals the process alone; whether it was still there.
  #[napi]
  pub fn signal(&self, env: &Env, signal: i32) -> Result<bool> {
    self
      .handle
      .signal(to_signal(env, signal)?)
      .map_err(|e| to_js(env, e))
  }

  /// Signals the process group it leads (else the process alone): `'group'`, `'process'` or `'gone'`.
  #[napi(ts_return_type = "'group' | 'process' | 'gone'")]
  pub fn signal_group(&self, env: &Env, signal: i32) -> Result<String> {
    let s = self
      .handle
      .signal_group(to_signal(env, signal)?)
      .map_err(|e| to_js(env, e))?;
    Ok(
      match s {
        Signalled::Group => "group",
        Signalled::Process => "process",
        Signalled::Gone => "gone",
      }
      .to_owned(),
    )
  }

  /// Waits up to `timeoutMs` for the process to exit (on its pidfd, on a thread of its own); whether it
  /// did.
  #[napi(ts_return_type = "Promise<boolean>")]
  pub fn wait_exit<'env>(&self, env: &'env Env, timeout_ms: u32) -> Result<Object<'env>> {
    let handle = self.handle.clone();
    on_thread(env, move || {
      Ok(handle.wait_exit(Duration::from_millis(timeout_ms as u64)))
    })
  }

  /// Waits up to `timeoutMs` until `path` is a mount point or the process exits: `'mounted'`, `'exited'`
  /// or `'timeout'`.
  #[napi(ts_return_type = "Promise<'mounted' | 'exited' | 'timeout'>")]
  pub fn wait_mount<'env>(
    &self,
    env: &'env Env,
    path: String,
    timeout_ms: u32,
  ) -> Result<Object<'env>> {
    let handle = self.handle.clone();
    on_thread(env, move || {
      let r = procslot_core::wait_for_mount(
        Path::new(&path),
        &handle,
        Duration::from_millis(timeout_ms as u64),
      )?;
      Ok(
        match r {
          MountWait::Mounted => "mounted",
          MountWait::Exited => "exited",
          MountWait::TimedOut => "timeout",
        }
        .to_owned(),
      )
    })
  }
}

fn to_signal(env: &Env, signal: i32) -> Result<procslot_core::Signal> {
  procslot_core::Signal::try_from(signal).map_err(|_| {
    to_js(
      env,
      procslot_core::Error::InvalidArgument(format!("no signal number {signal}")),
    )
  })
}

/// Identity of a PID: start time (raw and wall clock) and whether it is a zombie; `null` when there is no
/// such process.
#[napi(object)]
pub struct NativeIdentity {
  pub pid: u32,
  pub start_ticks: f64,
  pub start_time_ms: f64,
  pub zombie: bool,
}

#[napi]
pub fn process_identity(env: &Env, pid: u32) -> Result<Option<NativeIdentity>> {
  let id = procslot_core::identity(pid).map_err(|e| to_js(env, e))?;
  Ok(id.map(|id| NativeIdentity {
    pid: id.pid,
    start_ticks: id.start_time as f64,
    start_time_ms: id.start_time_ms,
    zombie: id.zombie,
  }))
}

/// Whether a process that started at `startTimeMs` started after a file written at `writtenMs` (beyond
/// the clock's granularity): the file's PID was reused.
#[napi]
pub fn started_after(start_time_ms: f64, written_ms: f64) -> bool {
  procslot_core::started_after(start_time_ms, written_ms)
}

#[napi]
pub fn is_mount_point(env: &Env, path: String) -> Result<bool> {
  procslot_core::is_mount_point(Path::new(&path)).map_err(|e| to_js(env, e))
}

#[napi]
pub fn unmount_lazy(env: &Env, path: String) -> Result<bool> {
  procslot_core::unmount_lazy(Path::new(&path)).map_err(|e| to_js(env, e))
}

/// Checks a target ID by the core's rule (1 to 200 characters of `[A-Za-z0-9._-]`, not starting with
/// `.`): the one place the rule lives. Throws an `invalid-target-id` error.
#[napi]
pub fn validate_target_id(env: &Env, target_id: String) -> Result<()> {
  procslot_core::validate_target_id(&target_id).map_err(|e| to_js(env, e))
}
