//! Deaths of watched processes: the binding of `procslot_core::watch`, the core's one watcher thread (an
//! epoll set over pidfds), reported through a weak threadsafe function or by settling `exited` promises.

use std::sync::Arc;

use napi::bindgen_prelude::{Env, Object};
use napi::Status;
use napi_derive::napi;

use crate::error::{IntoJs, Result};
use crate::process::{settle, ExitSlot, NativeProcess, Settle};

#[napi]
impl NativeProcess {
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
