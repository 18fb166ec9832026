//! Bindings for PID files, process handles and mount points (the FUSE process manager's native half).
//! Waits that can take seconds (a process's exit, a mount appearing, another process's lock) run on a
//! thread of their own and settle a promise, so that neither the JavaScript thread nor libuv's small
//! thread pool (which `fs` needs) is ever blocked by them. Judgements of PID files come from the core
//! and cross as a string union, unchanged; deaths of watched processes come from the core's one watcher
//! thread through a weak threadsafe function.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{Env, Float64Array, Object, Uint32Array};
use napi::Status;
use napi_derive::napi;
use procslot_core::{
  Fingerprint, Identity, MountFound, MountId, MountWait, PidFileEntry, PidFileStatus, PidFileStore,
  ProcessHandle, Signalled, SpawnRecord, TargetLock, Verdict,
};

use crate::error::{to_js, IntoJs, Result};
use crate::task::on_thread;

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

/// A spawn record: what a manager wrote beside a PID file when it started the daemon.
#[napi(object)]
pub struct NativeRecord {
  pub pid: u32,
  /// The daemon's exact start time (clock ticks since boot on Linux).
  pub start_ticks: f64,
  pub mount_path: Option<String>,
  /// The mount it made, once ready: mount ID and device (`major:minor`).
  pub mount_id: Option<f64>,
  pub mount_dev: Option<String>,
}

impl From<SpawnRecord> for NativeRecord {
  fn from(r: SpawnRecord) -> Self {
    NativeRecord {
      pid: r.pid,
      start_ticks: r.start_time as f64,
      mount_path: r
        .mount_path
        .and_then(|p| p.into_os_string().into_string().ok()),
      mount_id: r.mount.as_ref().map(|m| m.id as f64),
      mount_dev: r.mount.map(|m| m.dev),
    }
  }
}

impl From<NativeRecord> for SpawnRecord {
  fn from(r: NativeRecord) -> Self {
    SpawnRecord {
      pid: r.pid,
      start_time: r.start_ticks as u64,
      mount_path: r.mount_path.map(Into::into),
      mount: match (r.mount_id, r.mount_dev) {
        (Some(id), Some(dev)) => Some(MountId { id: id as u64, dev }),
        _ => None,
      },
    }
  }
}

/// A PID file, judged by the core (the one judgement: running, stale, reused, invalid, untrusted).
#[napi(object)]
pub struct NativeVerdict {
  pub target_id: String,
  pub path: String,
  #[napi(ts_type = "'running' | 'stale' | 'reused' | 'invalid' | 'untrusted'")]
  pub judgement: String,
  pub reason: Option<String>,
  /// The PID when the file is valid and trusted.
  pub pid: Option<u32>,
  pub mtime_ms: f64,
  pub uid: u32,
  pub mode: u32,
  /// The version of the file judged (opaque; for `NativeProcess.pinPidFile`).
  pub fingerprint: String,
  /// The process the PID names now: raw start time and wall-clock start.
  pub start_ticks: Option<f64>,
  pub start_time_ms: Option<f64>,
  /// The spawn record, when it is for this file's PID.
  pub record: Option<NativeRecord>,
}

fn fingerprint_text(f: &Fingerprint) -> String {
  format!(
    "{}:{}:{}:{}:{}",
    f.dev, f.ino, f.size, f.ctime_ns, f.mtime_ns
  )
}

fn parse_fingerprint(text: &str) -> Option<Fingerprint> {
  let mut it = text.split(':');
  let f = Fingerprint {
    dev: it.next()?.parse().ok()?,
    ino: it.next()?.parse().ok()?,
    size: it.next()?.parse().ok()?,
    ctime_ns: it.next()?.parse().ok()?,
    mtime_ns: it.next()?.parse().ok()?,
  };
  it.next().is_none().then_some(f)
}

impl From<Verdict> for NativeVerdict {
  fn from(v: Verdict) -> Self {
    let id: Option<Identity> = v.identity;
    NativeVerdict {
      target_id: v.entry.target_id.clone(),
      path: v.entry.path.to_string_lossy().into_owned(),
      judgement: v.judgement.as_str().to_owned(),
      reason: v.reason,
      pid: v.entry.pid(),
      mtime_ms: v.entry.mtime_ms,
      uid: v.entry.uid,
      mode: v.entry.mode,
      fingerprint: fingerprint_text(&v.entry.fingerprint),
      start_ticks: id.map(|i| i.start_time as f64),
      start_time_ms: id.map(|i| i.start_time_ms),
      record: v.record.map(Into::into),
    }
  }
}

/// A PID file judged for display; `foreign_owner` is set when root read another user's file.
#[napi(object)]
pub struct NativeDisplayVerdict {
  pub verdict: NativeVerdict,
  pub foreign_owner: Option<u32>,
}

/// A target as found on disk: its PID file judged, its spawn record, and the record's process (that
/// very process, alive) — a record without a PID file is a spawn that never finished.
#[napi(object)]
pub struct NativeTargetState {
  pub verdict: Option<NativeVerdict>,
  pub record: Option<NativeRecord>,
  pub record_process: Option<NativeIdentity>,
}

/// A spawn record without a PID file, found at load.
#[napi(object)]
pub struct NativeLeftoverRecord {
  pub target_id: String,
  pub record: NativeRecord,
  /// Whether the process it names (that very one) is alive.
  pub alive: bool,
}

/// A PID directory as loaded: files judged running as columns (index `i` of each is one file), the
/// rest whole, both sorted by target ID; spawn records without a PID file; abandoned temporary files.
#[napi(object)]
pub struct NativeLoad {
  pub running_ids: Vec<String>,
  pub running_pids: Uint32Array,
  pub running_start_ticks: Float64Array,
  pub running_start_time_ms: Float64Array,
  /// Files judged stale, reused, invalid or untrusted.
  pub others: Vec<NativeVerdict>,
  pub records: Vec<NativeLeftoverRecord>,
  pub temp_files: Vec<String>,
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
    let store = PidFileStore::open(Path::new(&dir)).js(env)?;
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
    let p = self.store.path_for(&target_id).js(env)?;
    Ok(p.to_string_lossy().into_owned())
  }

  #[napi]
  pub fn write(&self, env: &Env, target_id: String, pid: u32) -> Result<()> {
    self.store.write(&target_id, pid).js(env)
  }

  #[napi]
  pub fn read(&self, env: &Env, target_id: String) -> Result<Option<u32>> {
    self.store.read(&target_id).js(env)
  }

  #[napi]
  pub fn inspect(&self, env: &Env, target_id: String) -> Result<Option<NativePidFileEntry>> {
    Ok(self.store.inspect(&target_id).js(env)?.map(Into::into))
  }

  /// Deletes the target's PID file, then its spawn record; whether there was a PID file.
  #[napi]
  pub fn delete(&self, env: &Env, target_id: String) -> Result<bool> {
    self.store.delete(&target_id).js(env)
  }

  /// Writes the target's spawn record (`.<targetId>.record`) atomically.
  #[napi]
  pub fn write_record(&self, env: &Env, target_id: String, record: NativeRecord) -> Result<()> {
    self.store.write_record(&target_id, &record.into()).js(env)
  }

  /// The target's spawn record; `null` when there is none or it cannot be trusted or parsed.
  #[napi]
  pub fn read_record(&self, env: &Env, target_id: String) -> Result<Option<NativeRecord>> {
    let r = self.store.read_record(&target_id).js(env)?;
    Ok(r.map(Into::into))
  }

  /// Forgets a daemon that is gone (`pid`, started at `startTicks`) from the target's files if they
  /// still name it; whether its PID file did (and was deleted).
  #[napi]
  pub fn forget(&self, env: &Env, target_id: String, pid: u32, start_ticks: f64) -> Result<bool> {
    self
      .store
      .forget(&target_id, pid, start_ticks as u64)
      .js(env)
  }

  /// Deletes the target's spawn record alone; whether there was one.
  #[napi]
  pub fn delete_record(&self, env: &Env, target_id: String) -> Result<bool> {
    self.store.delete_record(&target_id).js(env)
  }

  /// The target's PID file, judged; `null` when there is none.
  #[napi]
  pub fn judge(&self, env: &Env, target_id: String) -> Result<Option<NativeVerdict>> {
    let v = self.store.judge(&target_id).js(env)?;
    Ok(v.map(Into::into))
  }

  /// The target's PID file judged for display: as root, a file of another user is read as that user
  /// would (`owner` says whose it is) instead of being reported untrusted. Nothing may act on it.
  #[napi]
  pub fn judge_for_display(
    &self,
    env: &Env,
    target_id: String,
  ) -> Result<Option<NativeDisplayVerdict>> {
    let v = self.store.judge_for_display(&target_id).js(env)?;
    Ok(v.map(|(v, owner)| NativeDisplayVerdict {
      verdict: v.into(),
      foreign_owner: owner,
    }))
  }

  /// The target's PID file judged, its spawn record and the record's process.
  #[napi]
  pub fn state(&self, env: &Env, target_id: String) -> Result<NativeTargetState> {
    let st = self.store.state(&target_id).js(env)?;
    Ok(NativeTargetState {
      verdict: st.verdict.map(Into::into),
      record: st.record.map(Into::into),
      record_process: st.record_process.map(Into::into),
    })
  }

  /// Deletes temporary files of writes that never finished; how many.
  #[napi]
  pub fn sweep_temp_files(&self, env: &Env) -> Result<u32> {
    Ok(self.store.sweep_temp_files().js(env)? as u32)
  }

  #[napi]
  pub fn list(&self, env: &Env) -> Result<Vec<NativePidFileEntry>> {
    let entries = self.store.list().js(env)?;
    Ok(entries.into_iter().map(Into::into).collect())
  }

  /// Every PID file, judged in parallel, split for a cheap crossing into JavaScript: files judged
  /// running (the common case, thousands of them) come as columns, every other file whole; then the
  /// spawn records without a PID file and the abandoned temporary files.
  #[napi]
  pub fn load(&self, env: &Env) -> Result<NativeLoad> {
    let (verdicts, leftovers) = self.store.load().js(env)?;
    // Columns of plain numbers cross as typed arrays: one buffer each, not an element set per number.
    let mut ids = Vec::new();
    let mut pids = Vec::new();
    let mut ticks = Vec::new();
    let mut times = Vec::new();
    let mut others = Vec::new();
    for v in verdicts {
      match (v.judgement, v.identity) {
        (procslot_core::Judgement::Running, Some(id)) => {
          ids.push(v.entry.target_id);
          pids.push(id.pid);
          ticks.push(id.start_time as f64);
          times.push(id.start_time_ms);
        }
        _ => others.push(v.into()),
      }
    }
    let mut out = NativeLoad {
      running_ids: ids,
      running_pids: Uint32Array::new(pids),
      running_start_ticks: Float64Array::new(ticks),
      running_start_time_ms: Float64Array::new(times),
      others,
      records: Vec::new(),
      temp_files: Vec::new(),
    };
    for (target_id, record, id) in leftovers.records {
      out.records.push(NativeLeftoverRecord {
        target_id,
        record: record.into(),
        alive: id.is_some(),
      });
    }
    out.temp_files = leftovers
      .temp_files
      .into_iter()
      .map(|p| p.to_string_lossy().into_owned())
      .collect();
    Ok(out)
  }

  /// The target's cross-process lock if it is free now, else `null`.
  #[napi]
  pub fn try_lock(&self, env: &Env, target_id: String) -> Result<Option<NativeTargetLock>> {
    let lock = self.store.try_lock(&target_id).js(env)?;
    Ok(lock.map(|l| NativeTargetLock { lock: Some(l) }))
  }

  /// Waits (on a thread of its own) for the target's cross-process lock.
  #[napi(ts_return_type = "Promise<NativeTargetLock>")]
  pub fn lock<'env>(&self, env: &'env Env, target_id: String) -> Result<Object<'env>> {
    procslot_core::validate_target_id(&target_id).js(env)?;
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

/// A handle on the live process `pid` (with `expectedStart`, only that very process); `null` when it is
/// gone, a zombie, or another process now has the PID.
#[napi]
pub fn open_process(
  env: &Env,
  pid: u32,
  expected_start: Option<f64>,
) -> Result<Option<NativeProcess>> {
  let h = ProcessHandle::open(pid, expected_start.map(|s| s as u64)).js(env)?;
  Ok(h.map(|handle| NativeProcess {
    pid: handle.pid(),
    start_time: handle.start_time(),
    start_time_ms: handle.start_time_ms(),
    handle: Some(Arc::new(handle)),
    pinned: None,
    exits: Vec::new(),
  }))
}

/// One particular process, pinned by its start time and a pidfd, and optionally by the version of the
/// PID file that names it.
#[napi]
pub struct NativeProcess {
  pid: u32,
  start_time: u64,
  start_time_ms: f64,
  /// `None` once closed: the pidfd is released (when no wait still uses it).
  handle: Option<Arc<ProcessHandle>>,
  pinned: Option<(Arc<PidFileStore>, std::ffi::CString, Fingerprint)>,
  /// Waits for the exit in progress (`exited`), each ended by the exit or by `cancel_exited`.
  exits: Vec<(procslot_core::watch::WatchId, Arc<ExitSlot>)>,
}

type Settle = Box<dyn FnOnce(Env) -> napi::Result<bool>>;
/// The promise of one `exited` call, settled once: by the exit, or by a cancel.
type ExitSlot = std::sync::Mutex<Option<napi::JsDeferred<bool, Settle>>>;

fn settle(slot: &ExitSlot, exited: bool) {
  if let Some(d) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
    d.resolve(Box::new(move |_| Ok(exited)));
  }
}

impl NativeProcess {
  fn handle(&self, env: &Env) -> Result<&Arc<ProcessHandle>> {
    self.handle.as_ref().ok_or_else(|| {
      let err = procslot_core::Error::Process {
        code: "ECLOSED".to_owned(),
        pid: self.pid,
        reason: "this handle is closed".to_owned(),
      };
      to_js(env, err)
    })
  }
}

#[napi]
impl NativeProcess {
  #[napi(getter)]
  pub fn pid(&self) -> u32 {
    self.pid
  }

  /// The raw start time (clock ticks since boot on Linux): equal means the same process.
  #[napi(getter)]
  pub fn start_ticks(&self) -> f64 {
    self.start_time as f64
  }

  /// The start time, milliseconds since the epoch.
  #[napi(getter)]
  pub fn start_time_ms(&self) -> f64 {
    self.start_time_ms
  }

  #[napi(getter)]
  pub fn has_pidfd(&self) -> bool {
    self.handle.as_ref().is_some_and(|h| h.has_pidfd())
  }

  /// Why it has no pidfd, as an errno name (`ENOSYS`: none on this kernel; `EMFILE`: descriptors ran
  /// out or would have); `null` when it has one.
  #[napi(getter)]
  pub fn no_pidfd(&self) -> Option<String> {
    let errno = self.handle.as_ref()?.why_no_pidfd()?;
    Some(format!("{:?}", nix_errno(errno)))
  }

  /// Whether the process still runs (`false` once the handle is closed).
  #[napi]
  pub fn is_alive(&self) -> bool {
    self.handle.as_ref().is_some_and(|h| h.is_alive())
  }

  /// Releases the pidfd (once no wait uses it any more); `exited` waits in progress resolve `false`.
  /// Idempotent.
  #[napi]
  pub fn close(&mut self) {
    self.cancel_exited();
    self.handle = None;
  }

  /// Signals the process alone; whether it was still there.
  #[napi]
  pub fn signal(&self, env: &Env, signal: i32) -> Result<bool> {
    self.handle(env)?.signal(to_signal(env, signal)?).js(env)
  }

  /// Signals the process group it leads (else the process alone): `'group'`, `'process'` or `'gone'`.
  #[napi(ts_return_type = "'group' | 'process' | 'gone'")]
  pub fn signal_group(&self, env: &Env, signal: i32) -> Result<String> {
    let s = self
      .handle(env)?
      .signal_group(to_signal(env, signal)?)
      .js(env)?;
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
    let handle = self.handle(env)?.clone();
    on_thread(env, move || {
      Ok(handle.wait_exit(Duration::from_millis(timeout_ms as u64)))
    })
  }

  /// Waits up to `timeoutMs` until `path` is a mount point or the process exits.
  #[napi(ts_return_type = "Promise<NativeMountWait>")]
  pub fn wait_mount<'env>(
    &self,
    env: &'env Env,
    path: String,
    timeout_ms: u32,
  ) -> Result<Object<'env>> {
    let handle = self.handle(env)?.clone();
    on_thread(env, move || {
      let r = procslot_core::wait_for_mount(
        Path::new(&path),
        &handle,
        Duration::from_millis(timeout_ms as u64),
      )?;
      Ok(match r {
        MountWait::Mounted(found) => NativeMountWait {
          outcome: "mounted".to_owned(),
          mount: Some(found.into()),
        },
        MountWait::Exited => NativeMountWait {
          outcome: "exited".to_owned(),
          mount: None,
        },
        MountWait::TimedOut => NativeMountWait {
          outcome: "timeout".to_owned(),
          mount: None,
        },
      })
    })
  }

  /// SIGTERM and SIGCONT to the process group it leads (or SIGKILL at once with `force`): the first step
  /// of a stop whose end is waited for with [`exited`](Self::exited) and [`stopped`](Self::stopped).
  #[napi]
  pub fn begin_stop(&self, env: &Env, force: bool) -> Result<NativeStopBegun> {
    let begun = self.handle(env)?.begin_stop(force).js(env)?;
    Ok(NativeStopBegun {
      signal: begun.signal.map(|s| s.as_str().to_owned()),
      leads: begun.leads,
    })
  }

  /// After `beginStop`: whether the process has exited and its group (when it led one) is empty. `false`
  /// with the process gone means members are left (or its leader is not reaped yet): `stopGroup` then
  /// finishes the work.
  #[napi]
  pub fn stopped(&self, env: &Env, leads: bool) -> Result<bool> {
    let begun = procslot_core::StopBegun {
      signal: None,
      leads,
    };
    Ok(self.handle(env)?.stopped(begun))
  }

  /// Resolves `true` once the process has exited — told by the core's one watcher thread (the pidfd in
  /// its epoll set, or its fallback), no thread of its own — or `false` when `cancelExited` is called
  /// first. Keeps the event loop alive while it waits.
  #[napi(ts_return_type = "Promise<boolean>")]
  pub fn exited<'env>(&mut self, env: &'env Env) -> Result<Object<'env>> {
    let handle = self.handle(env)?.clone();
    let (deferred, promise) = env.create_deferred::<bool, Settle>()?;
    let slot: Arc<ExitSlot> = Arc::new(std::sync::Mutex::new(Some(deferred)));
    let on_exit = {
      let slot = slot.clone();
      Box::new(move || settle(&slot, true))
    };
    let w = procslot_core::watch::watch(&handle, on_exit).js(env)?;
    self
      .exits
      .retain(|(_, s)| s.lock().is_ok_and(|d| d.is_some()));
    self.exits.push((w.id, slot));
    Ok(promise)
  }

  /// Ends every `exited` wait in progress: each resolves `false`.
  #[napi]
  pub fn cancel_exited(&mut self) {
    for (id, slot) in self.exits.drain(..) {
      procslot_core::watch::unwatch(id);
      settle(&slot, false);
    }
  }

  /// Stops the process and its whole process group (on a thread of its own): SIGTERM and SIGCONT (or
  /// SIGKILL at once with `force`), SIGKILL to whoever is left after `graceMs`, then up to `afterKillMs`
  /// more; resolves once every member is gone or that time has passed.
  #[napi(ts_return_type = "Promise<NativeStopped>")]
  pub fn stop_group<'env>(
    &self,
    env: &'env Env,
    force: bool,
    grace_ms: u32,
    after_kill_ms: u32,
  ) -> Result<Object<'env>> {
    let handle = self.handle(env)?.clone();
    on_thread(env, move || {
      let out = handle.stop_group(force, ms(grace_ms), ms(after_kill_ms))?;
      Ok(NativeStopped::from(out))
    })
  }

  /// Finishes (on a thread of its own) a stop `beginStop` began — its `signal` sent, its `leads` — when
  /// the group outlived its leader: waits up to `graceMs` for every member, SIGKILLs whoever is left,
  /// waits up to `afterKillMs` more.
  #[napi(ts_return_type = "Promise<NativeStopped>")]
  pub fn finish_stop<'env>(
    &self,
    env: &'env Env,
    begun: NativeStopBegun,
    grace_ms: u32,
    after_kill_ms: u32,
  ) -> Result<Object<'env>> {
    let handle = self.handle(env)?.clone();
    let begun = procslot_core::StopBegun {
      signal: match begun.signal.as_deref() {
        Some("SIGKILL") => Some(procslot_core::Signal::SIGKILL),
        Some(_) => Some(procslot_core::Signal::SIGTERM),
        None => None,
      },
      leads: begun.leads,
    };
    on_thread(env, move || {
      let out = handle.finish_stop(begun, ms(grace_ms), ms(after_kill_ms))?;
      Ok(NativeStopped::from(out))
    })
  }

  /// Pins the target's PID file in `store` that names this process at the version a judgement read
  /// (`fingerprint` from a `NativeVerdict`), so that [`check`](Self::check) can tell cheaply whether it
  /// changed since.
  #[napi]
  pub fn pin_pid_file(
    &mut self,
    env: &Env,
    store: &NativePidFileStore,
    target_id: String,
    fingerprint: String,
  ) -> Result<()> {
    let invalid = |what: &str| {
      to_js(
        env,
        procslot_core::Error::InvalidArgument(format!("pinPidFile: {what}")),
      )
    };
    procslot_core::validate_target_id(&target_id).js(env)?;
    let name = std::ffi::CString::new(format!("{target_id}.pid"))
      .map_err(|_| invalid("a target ID with a NUL byte"))?;
    let f = parse_fingerprint(&fingerprint).ok_or_else(|| invalid("not a fingerprint"))?;
    self.pinned = Some((store.store.clone(), name, f));
    Ok(())
  }

  /// One look at the process and its pinned PID file (one `fstatat` and one `poll`): 0 the file is the
  /// version pinned and the process alive; 1 the file is that version and the process is gone; 2 the
  /// file changed (or none was pinned): judge it again.
  #[napi]
  pub fn check(&self) -> u32 {
    match &self.pinned {
      Some((store, name, f)) if store.fingerprint_of(name).as_ref() == Some(f) => {
        if self.is_alive() {
          0
        } else {
          1
        }
      }
      _ => 2,
    }
  }
}

/// How a wait for a mount ended; `mount` is the mount found when `outcome` is `'mounted'`.
#[napi(object)]
pub struct NativeMountWait {
  #[napi(ts_type = "'mounted' | 'exited' | 'timeout'")]
  pub outcome: String,
  pub mount: Option<NativeMount>,
}

/// One mount: its ID, its filesystem's device (`major:minor`) and type.
#[napi(object)]
pub struct NativeMount {
  pub id: f64,
  pub dev: String,
  pub fstype: String,
}

impl From<MountFound> for NativeMount {
  fn from(m: MountFound) -> Self {
    NativeMount {
      id: m.mount.id as f64,
      dev: m.mount.dev,
      fstype: m.fstype,
    }
  }
}

/// What `beginStop` did.
#[napi(object)]
pub struct NativeStopBegun {
  /// The signal sent (`null`: the process was already gone).
  #[napi(ts_type = "'SIGTERM' | 'SIGKILL' | null")]
  pub signal: Option<String>,
  /// Whether the process led its process group (the group was signalled).
  pub leads: bool,
}

/// How a stop of a process group ended.
#[napi(object)]
pub struct NativeStopped {
  /// The strongest signal sent (`null`: the process was already gone).
  #[napi(ts_type = "'SIGTERM' | 'SIGKILL' | null")]
  pub signal: Option<String>,
  /// Whether the process and its whole group are gone.
  pub gone: bool,
}

impl From<procslot_core::process::Stopped> for NativeStopped {
  fn from(out: procslot_core::process::Stopped) -> Self {
    NativeStopped {
      signal: out.signal.map(|s| s.as_str().to_owned()),
      gone: out.gone,
    }
  }
}

fn ms(ms: u32) -> Duration {
  Duration::from_millis(ms as u64)
}

fn nix_errno(errno: i32) -> procslot_core::Errno {
  procslot_core::Errno::from_raw(errno)
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
  let id = procslot_core::identity(pid).js(env)?;
  Ok(id.map(|id| NativeIdentity {
    pid: id.pid,
    start_ticks: id.start_time as f64,
    start_time_ms: id.start_time_ms,
    zombie: id.zombie,
  }))
}

impl From<Identity> for NativeIdentity {
  fn from(id: Identity) -> Self {
    NativeIdentity {
      pid: id.pid,
      start_ticks: id.start_time as f64,
      start_time_ms: id.start_time_ms,
      zombie: id.zombie,
    }
  }
}

#[napi]
pub fn is_mount_point(env: &Env, path: String) -> Result<bool> {
  procslot_core::is_mount_point(Path::new(&path)).js(env)
}

/// The topmost mount at `path`, from the mount table (never a `stat`); `null` when it is not a mount
/// point.
#[napi]
pub fn mount_at(env: &Env, path: String) -> Result<Option<NativeMount>> {
  let m = procslot_core::mount_at(Path::new(&path)).js(env)?;
  Ok(m.map(Into::into))
}

/// Lazily unmounts `path` only if the topmost mount there is the one given (a dead daemon's).
#[napi]
pub fn unmount_if(env: &Env, path: String, mount_id: f64, mount_dev: String) -> Result<bool> {
  let id = MountId {
    id: mount_id as u64,
    dev: mount_dev,
  };
  procslot_core::unmount_if(Path::new(&path), &id).js(env)
}

/// Prepares a mount point on a thread of its own (a hung mount may never answer): the mount already
/// there, else `null` once the directory exists.
#[napi(ts_return_type = "Promise<NativeMount | null>")]
pub fn prepare_mount_point(env: &Env, path: String) -> Result<Object<'_>> {
  on_thread(env, move || {
    let m = procslot_core::prepare_mount_point(Path::new(&path))?;
    Ok(m.map(NativeMount::from))
  })
}

/// Refuses a directory other users can write to or that belongs to another user (`EUNSAFE`).
#[napi]
pub fn check_private_dir(env: &Env, path: String) -> Result<()> {
  procslot_core::check_private_dir(Path::new(&path)).js(env)
}

#[napi]
pub fn unmount_lazy(env: &Env, path: String) -> Result<bool> {
  procslot_core::unmount_lazy(Path::new(&path)).js(env)
}

/// Checks a target ID by the core's rule (1 to 200 characters of `[A-Za-z0-9._-]`, not starting with
/// `.`): the one place the rule lives. Throws an `invalid-target-id` error.
#[napi]
pub fn validate_target_id(env: &Env, target_id: String) -> Result<()> {
  procslot_core::validate_target_id(&target_id).js(env)
}

type ExitCallback =
  napi::threadsafe_function::ThreadsafeFunction<u32, (), u32, Status, false, true>;

/// Reports the death of watched processes to JavaScript: the core's one watcher thread (an epoll set over
/// pidfds) calls `callback(token)` once per watched process that exits. It does not keep the event loop
/// alive by itself.
#[napi]
pub struct NativeExitWatcher {
  callback: Arc<ExitCallback>,
  watches: std::collections::HashMap<u32, procslot_core::watch::WatchId>,
}

#[napi]
impl NativeExitWatcher {
  #[napi(constructor)]
  pub fn new(callback: napi::bindgen_prelude::Function<u32, ()>) -> Result<Self> {
    let tsfn = callback
      .build_threadsafe_function::<u32>()
      .callee_handled::<false>()
      .weak::<true>()
      .build()?;
    Ok(NativeExitWatcher {
      callback: Arc::new(tsfn),
      watches: std::collections::HashMap::new(),
    })
  }

  /// Watches `process` under `token` (replacing an earlier watch of that token): through its pidfd
  /// (`true`), or by the core's fallback, which looks at its PID and start time at least once a second
  /// (`false`: no pidfd). A closed handle is not watched (`null`).
  #[napi]
  pub fn watch(&mut self, env: &Env, process: &NativeProcess, token: u32) -> Result<Option<bool>> {
    self.unwatch(token);
    let Some(handle) = process.handle.as_ref() else {
      return Ok(None);
    };
    let callback = self.callback.clone();
    let on_exit = Box::new(move || {
      callback.call(
        token,
        napi::threadsafe_function::ThreadsafeFunctionCallMode::NonBlocking,
      );
    });
    let w = procslot_core::watch::watch(handle, on_exit).js(env)?;
    self.watches.insert(token, w.id);
    Ok(Some(w.by_pidfd))
  }

  /// Stops watching `token`; whether it was watched (its callback will not come).
  #[napi]
  pub fn unwatch(&mut self, token: u32) -> bool {
    self
      .watches
      .remove(&token)
      .is_some_and(procslot_core::watch::unwatch)
  }

  /// Stops every watch of this watcher (the watcher thread serves others on). Idempotent.
  #[napi]
  pub fn close(&mut self) {
    for (_, id) in self.watches.drain() {
      procslot_core::watch::unwatch(id);
    }
  }
}

/// How many processes the watcher thread watches now (all watchers of this process).
#[napi]
pub fn watched_count() -> u32 {
  procslot_core::watch::watched().0 as u32
}
