//! PID files: the binding of `procslot_core::pidfile` (a directory of PID files, their spawn records,
//! judgements and per-target locks). Judgements come from the core and cross as a string union,
//! unchanged; a whole directory crosses in columns.

use std::path::Path;
use std::sync::Arc;

use napi::bindgen_prelude::{Env, Float64Array, Object, Uint32Array};
use napi_derive::napi;
use procslot_core::{Identity, PidFileStore, SpawnRecord, TargetLock};

use crate::entry::{NativeIdentity, NativePidFileEntry, NativeRecord, NativeVerdict};
use crate::error::{IntoJs, Result};
use crate::task::on_thread;

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

impl From<(String, SpawnRecord, Option<Identity>)> for NativeLeftoverRecord {
  fn from((target_id, record, id): (String, SpawnRecord, Option<Identity>)) -> Self {
    NativeLeftoverRecord {
      target_id,
      record: record.into(),
      alive: id.is_some(),
    }
  }
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
  pub(crate) store: Arc<PidFileStore>,
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

  /// The target's spawn record if it is that of the daemon `pid` started at `startTicks` (the record is
  /// its own), else `null`: the core's one rule for it.
  #[napi]
  pub fn record_of(
    &self,
    env: &Env,
    target_id: String,
    pid: u32,
    start_ticks: f64,
  ) -> Result<Option<NativeRecord>> {
    let r = self
      .store
      .record_of(&target_id, pid, start_ticks as u64)
      .js(env)?;
    Ok(r.map(Into::into))
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
    let records = leftovers.records.into_iter();
    let temp_files = leftovers.temp_files.into_iter();
    Ok(NativeLoad {
      running_ids: ids,
      running_pids: Uint32Array::new(pids),
      running_start_ticks: Float64Array::new(ticks),
      running_start_time_ms: Float64Array::new(times),
      others,
      records: records.map(NativeLeftoverRecord::from).collect(),
      temp_files: temp_files
        .map(|p| p.to_string_lossy().into_owned())
        .collect(),
    })
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

/// Checks a target ID by the core's rule (1 to 200 characters of `[A-Za-z0-9._-]`, not starting with
/// `.`): the one place the rule lives. Throws an `invalid-target-id` error.
#[napi]
pub fn validate_target_id(env: &Env, target_id: String) -> Result<()> {
  procslot_core::validate_target_id(&target_id).js(env)
}
