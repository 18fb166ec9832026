//! Process handles: the binding of `procslot_core::process` (one particular process, pinned by its start
//! time and a pidfd: alive, signal, stop, wait for exit) and of the PID file pinned beside it. Waits that
//! can take seconds run on a thread of their own ([`on_thread`]); the wait for a mount is `mount`'s, the
//! wait by the watcher thread `watch`'s.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{Env, Object};
use napi_derive::napi;
use procslot_core::{PinCheck, PinnedPidFile, ProcessHandle, StopBegun};

use crate::entry::NativeIdentity;
use crate::error::{to_js, IntoJs, Result};
use crate::pidfile::NativePidFileStore;
use crate::task::on_thread;

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

/// How an `exited` promise (`src/watch.rs`) is settled on the JavaScript thread.
pub(crate) type Settle = Box<dyn FnOnce(Env) -> napi::Result<bool>>;
/// The promise of one `exited` call, settled once: by the exit, or by a cancel.
pub(crate) type ExitSlot = std::sync::Mutex<Option<napi::JsDeferred<bool, Settle>>>;

/// Settles one `exited` promise (`true`: the process exited; `false`: cancelled), if not settled yet.
pub(crate) fn settle(slot: &ExitSlot, exited: bool) {
  if let Some(d) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
    d.resolve(Box::new(move |_| Ok(exited)));
  }
}

/// One particular process, pinned by its start time and a pidfd, and optionally by the version of the
/// PID file that names it.
#[napi]
pub struct NativeProcess {
  pid: u32,
  start_time: u64,
  start_time_ms: f64,
  /// `None` once closed: the pidfd is released (when no wait still uses it).
  pub(crate) handle: Option<Arc<ProcessHandle>>,
  pinned: Option<PinnedPidFile>,
  /// Waits for the exit in progress (`exited`), each ended by the exit or by `cancel_exited`.
  pub(crate) exits: Vec<(procslot_core::watch::WatchId, Arc<ExitSlot>)>,
}

impl NativeProcess {
  pub(crate) fn handle(&self, env: &Env) -> Result<&Arc<ProcessHandle>> {
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
    let handle = self.handle(env)?;
    let reached = handle.signal_group(to_signal(env, signal)?).js(env)?;
    Ok(reached.as_str().to_owned())
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
    let begun = StopBegun::told(None, leads);
    Ok(self.handle(env)?.stopped(begun))
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
    let begun = StopBegun::told(begun.signal.as_deref(), begun.leads);
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
    let fingerprint = fingerprint.parse().js(env)?;
    let pin = PinnedPidFile::new(store.store.clone(), &target_id, fingerprint).js(env)?;
    self.pinned = Some(pin);
    Ok(())
  }

  /// One look at the process and its pinned PID file (one `fstatat` and one `poll`): `'alive'` the file
  /// is the version pinned and the process runs; `'exited'` the file is that version and the process is
  /// gone; `'changed'` the file changed (or none was pinned): judge it again.
  #[napi(ts_return_type = "'alive' | 'exited' | 'changed'")]
  pub fn check(&self) -> String {
    let pinned = self.pinned.as_ref();
    let check = pinned.map_or(PinCheck::Changed, |p| p.check(self.handle.as_deref()));
    check.as_str().to_owned()
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

pub(crate) fn ms(ms: u32) -> Duration {
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

#[napi]
pub fn process_identity(env: &Env, pid: u32) -> Result<Option<NativeIdentity>> {
  let id = procslot_core::identity(pid).js(env)?;
  Ok(id.map(Into::into))
}
