//! A PID file and its spawn record as data, and a PID file as judged: the binding of
//! `procslot_core::entry` and `procslot_core::judge` (what `pidfile` reads and returns). A judgement
//! crosses as the core spells it.

use napi_derive::napi;
use procslot_core::{Identity, MountId, PidFileEntry, PidFileStatus, SpawnRecord, Verdict};

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
      fingerprint: v.entry.fingerprint.to_string(),
      start_ticks: id.map(|i| i.start_time as f64),
      start_time_ms: id.map(|i| i.start_time_ms),
      record: v.record.map(Into::into),
    }
  }
}

/// Identity of a PID: start time (raw and wall clock) and whether it is a zombie; `null` when there is no
/// such process.
#[napi(object)]
pub struct NativeIdentity {
  pub pid: u32,
  pub start_ticks: f64,
  /// The part of the start time a slot word keeps (the core's rule: its low 32 bits).
  pub start_tag: u32,
  pub start_time_ms: f64,
  pub zombie: bool,
}

impl From<Identity> for NativeIdentity {
  fn from(id: Identity) -> Self {
    NativeIdentity {
      pid: id.pid,
      start_ticks: id.start_time as f64,
      start_tag: id.start_tag(),
      start_time_ms: id.start_time_ms,
      zombie: id.zombie,
    }
  }
}
