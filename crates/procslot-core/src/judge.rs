//! One judgement of a target's PID file: is the process it names ours and alive? Made here, once, for
//! the manager, the command line and the loaders alike.

use crate::entry::{PidFileEntry, PidFileStatus, SpawnRecord};
use crate::process::{started_after, Identity};

/// What a PID file is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
  /// It names a live process, and that process is the one the file was written for.
  Running,
  /// It names a process that is gone (or a zombie).
  Stale,
  /// Its PID now belongs to another process: one with another start time than the spawn record's, or
  /// (with no record: a file written by another tool) one that started after the file was written.
  Reused,
  /// Its content is not a PID between 2 and the system's limit.
  Invalid,
  /// It must not be acted on: another owner, writable by others, a link, not a regular file.
  Untrusted,
}

impl Judgement {
  /// The judgement's name, as the binding and the command line spell it.
  pub fn as_str(self) -> &'static str {
    match self {
      Judgement::Running => "running",
      Judgement::Stale => "stale",
      Judgement::Reused => "reused",
      Judgement::Invalid => "invalid",
      Judgement::Untrusted => "untrusted",
    }
  }
}

/// A PID file, judged, with what the judgement was made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
  /// What it is worth.
  pub judgement: Judgement,
  /// Why, when it is not `Running`.
  pub reason: Option<String>,
  /// The file.
  pub entry: PidFileEntry,
  /// The process its PID names now (`None`: none, or the file is invalid or untrusted).
  pub identity: Option<Identity>,
  /// The spawn record beside it, when that record is for this file's PID.
  pub record: Option<SpawnRecord>,
}

/// Judges a PID file from what it says, the spawn record beside it (used only when it is for the same
/// PID) and the identity of the process its PID names now.
pub fn judge(
  entry: &PidFileEntry,
  record: Option<&SpawnRecord>,
  identity: Option<&Identity>,
) -> (Judgement, Option<String>) {
  let pid = match &entry.status {
    PidFileStatus::Untrusted(why) => return (Judgement::Untrusted, Some(why.clone())),
    PidFileStatus::Invalid(why) => return (Judgement::Invalid, Some(why.clone())),
    PidFileStatus::Valid(pid) => *pid,
  };
  let Some(id) = identity.filter(|id| id.pid == pid && !id.zombie) else {
    return (Judgement::Stale, Some(format!("PID {pid} is not running")));
  };
  match record.filter(|r| r.pid == pid) {
    Some(r) if r.start_time != id.start_time => (
      Judgement::Reused,
      Some(format!(
        "PID {pid} was reused: its process is not the one recorded at spawn (another start time)"
      )),
    ),
    Some(_) => (Judgement::Running, None),
    None if started_after(id.start_time_ms, entry.mtime_ms) => (
      Judgement::Reused,
      Some(format!(
        "PID {pid} was reused: its process started after the PID file was written"
      )),
    ),
    None => (Judgement::Running, None),
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::entry::Fingerprint;
  use std::path::PathBuf;

  fn entry(status: PidFileStatus, mtime_ms: f64) -> PidFileEntry {
    PidFileEntry {
      target_id: "t".into(),
      path: PathBuf::from("/x/t.pid"),
      status,
      mtime_ms,
      uid: 0,
      mode: 0o644,
      fingerprint: Fingerprint::default(),
    }
  }

  fn id(pid: u32, start_time: u64, start_time_ms: f64) -> Identity {
    Identity {
      pid,
      start_time,
      start_time_ms,
      zombie: false,
    }
  }

  #[test]
  fn each_case_has_one_judgement() {
    let now = 1_700_000_000_000.0;
    let valid = entry(PidFileStatus::Valid(42), now);
    let rec = |start| SpawnRecord {
      pid: 42,
      start_time: start,
      mount_path: None,
      mount: None,
    };
    let j = |e: &PidFileEntry, r: Option<&SpawnRecord>, i: Option<&Identity>| judge(e, r, i).0;
    assert_eq!(
      j(
        &entry(PidFileStatus::Untrusted("x".into()), now),
        None,
        None
      ),
      Judgement::Untrusted
    );
    assert_eq!(
      j(&entry(PidFileStatus::Invalid("x".into()), now), None, None),
      Judgement::Invalid
    );
    assert_eq!(j(&valid, None, None), Judgement::Stale);
    let zombie = Identity {
      zombie: true,
      ..id(42, 7, now)
    };
    assert_eq!(j(&valid, None, Some(&zombie)), Judgement::Stale);
    assert_eq!(
      j(&valid, None, Some(&id(42, 7, now - 10.0))),
      Judgement::Running
    );
    // With no record, the mtime rule: started well after the write means reused.
    assert_eq!(
      j(&valid, None, Some(&id(42, 7, now + 5_000.0))),
      Judgement::Reused
    );
    // With a record, the exact start time decides, however close the times are.
    assert_eq!(
      j(&valid, Some(&rec(7)), Some(&id(42, 7, now + 5_000.0))),
      Judgement::Running
    );
    assert_eq!(
      j(&valid, Some(&rec(7)), Some(&id(42, 8, now))),
      Judgement::Reused
    );
    // A record for another PID says nothing about this file.
    let other = SpawnRecord { pid: 43, ..rec(8) };
    assert_eq!(
      j(&valid, Some(&other), Some(&id(42, 7, now))),
      Judgement::Running
    );
  }
}
