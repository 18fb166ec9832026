//! PID files: one standard Unix PID file per target (`<dir>/<targetId>.pid`, the decimal PID and a
//! newline), written atomically, read strictly, and judged for trust before anyone acts on them.
//!
//! - Target IDs are checked before any path is built: 1 to 200 characters of `[A-Za-z0-9._-]`, not
//!   starting with `.` — so no `..`, no `/`, no NUL, no hidden files.
//! - Writes go to a temporary file in the same directory (mode 0644), then are renamed over the PID file:
//!   a reader sees the old content or the new one, never half of it. They are not forced to disk
//!   (`fsync`): a PID file names a process, and no process survives a power loss; a crash of the writer
//!   leaves the file complete in the page cache all the same.
//! - Reads take at most a few bytes and never fail on bad content: anything that is not a plain decimal
//!   PID between 2 and the system's limit is reported as invalid, not acted on.
//! - A PID file not owned by us (or root), writable by others, a symbolic link, or not a regular file is
//!   untrusted: reported, never adopted, signalled or deleted by the manager. A world-writable directory
//!   without the sticky bit (anyone could swap PID files) is refused.
//! - Beside a PID file, `.<targetId>.record` holds the [`SpawnRecord`] of the daemon a manager started:
//!   its PID and exact start time (written before the daemon may run a single instruction of its own),
//!   the path it mounts and, once it is ready, the mount it made. The exact start time recognises a reused
//!   PID however soon it is reused; the mount identifies the stale mount a dead daemon leaves. A record
//!   without a PID file is a spawn that never finished. It is written, trusted and deleted as the PID
//!   file is (the PID file is deleted first); a record that fails the checks reads as none.
//! - [`TargetLock`] serializes work on one target across processes: a byte-range lock in
//!   `<dir>/.procslot.lock` at an offset derived from the target ID.
//!
//! One file per rule: the store and its PID files ([`store`]), spawn records (`records`), the parallel load
//! of a whole directory (`load`), the display judgement (`display`), a PID file pinned beside its
//! process (`pin`), the per-target lock registry ([`locks`]). The names of a target's files are built
//! here, once (`pid_file_name`, `record_file_name`); what a file must be to be trusted is
//! [`trust`](crate::trust)'s.

mod display;
mod load;
pub mod locks;
mod pin;
mod records;
pub mod store;

use crate::entry::SpawnRecord;
use crate::error::{Error, Result};
use crate::judge::Verdict;
use crate::process::{daemon_pids, Identity};

pub use crate::trust::check_private_dir;
pub use load::Leftovers;
pub use locks::{TargetLock, LOCK_FILE_NAME};
pub use pin::{PinCheck, PinnedPidFile};
pub use store::PidFileStore;

/// The longest target ID.
pub const MAX_TARGET_ID_LEN: usize = 200;

/// The most bytes a PID file may hold: ten digits and a newline, with room to spare.
const MAX_PID_FILE_BYTES: usize = 32;

/// Checks a target ID: 1 to 200 characters of `[A-Za-z0-9._-]`, not starting with `.`.
///
/// # Errors
/// [`Error::InvalidTargetId`] saying what is wrong.
pub fn validate_target_id(target_id: &str) -> Result<()> {
  let bad = |reason: &str| {
    Err(Error::InvalidTargetId {
      target: format!("{target_id:?}"),
      reason: reason.to_owned(),
    })
  };
  if target_id.is_empty() {
    return bad("it is empty");
  }
  if target_id.len() > MAX_TARGET_ID_LEN {
    return bad("it is longer than 200 characters");
  }
  if target_id.starts_with('.') {
    return bad("it starts with '.'");
  }
  if let Some(c) = target_id
    .chars()
    .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
  {
    return bad(&format!(
      "it contains {c:?}; only letters, digits, '.', '_' and '-' are allowed"
    ));
  }
  Ok(())
}

/// Parses PID-file content: a plain decimal PID, optionally followed by one newline, at least 2 and
/// below `pid_max` (one more than the largest PID the system hands out). `Err` carries why it is
/// invalid.
pub fn parse_pid(content: &[u8], pid_max: u32) -> std::result::Result<u32, String> {
  let digits = content.strip_suffix(b"\n").unwrap_or(content);
  if digits.is_empty() {
    return Err("empty".to_owned());
  }
  if !digits.iter().all(u8::is_ascii_digit) {
    return Err(format!(
      "not a decimal PID: {:?}",
      String::from_utf8_lossy(&content[..content.len().min(16)])
    ));
  }
  if digits.len() > 1 && digits[0] == b'0' {
    return Err("a PID with leading zeros".to_owned());
  }
  if digits.len() > 10 {
    return Err("a number too large to be a PID".to_owned());
  }
  let pid: u64 = std::str::from_utf8(digits)
    .ok()
    .and_then(|s| s.parse().ok())
    .ok_or_else(|| "not a decimal PID".to_owned())?;
  let daemons = daemon_pids(pid_max);
  if pid < daemons.start {
    return Err(format!("PID {pid} is never a daemon's"));
  }
  if !daemons.contains(&pid) {
    return Err(format!(
      "PID {pid} is not below the system's limit ({pid_max})"
    ));
  }
  Ok(pid as u32)
}

/// The file name of a target's PID file, `<targetId>.pid`: the one place it is built (the ID is checked
/// by the caller).
pub(crate) fn pid_file_name(target_id: &str) -> String {
  format!("{target_id}.pid")
}

/// The file name of a target's spawn record, `.<targetId>.record`: the one place it is built.
pub(crate) fn record_file_name(target_id: &str) -> String {
  format!(".{target_id}.record")
}

/// The target whose PID file `name` is, if it is one (the reverse of [`pid_file_name`]).
fn target_of_pid_file(name: &str) -> Option<&str> {
  name
    .strip_suffix(".pid")
    .filter(|id| validate_target_id(id).is_ok())
}

/// The target whose spawn record `name` is, if it is one (the reverse of [`record_file_name`]).
fn target_of_record(name: &str) -> Option<&str> {
  name
    .strip_prefix('.')
    .and_then(|n| n.strip_suffix(".record"))
    .filter(|id| validate_target_id(id).is_ok())
}

/// A target as found on disk: see [`PidFileStore::state`].
#[derive(Debug, Clone, PartialEq)]
pub struct TargetState {
  /// Its PID file, judged; `None` when there is none.
  pub verdict: Option<Verdict>,
  /// Its spawn record, whichever PID it names.
  pub record: Option<SpawnRecord>,
  /// The process the record names, when that very process is alive.
  pub record_process: Option<Identity>,
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn target_ids_are_checked_before_any_path_exists() {
    for ok in ["a", "target-123", "A.b_c-9", &"x".repeat(200)] {
      assert!(validate_target_id(ok).is_ok(), "{ok}");
    }
    for bad in [
      "",
      ".",
      "..",
      "../x",
      "a/b",
      ".hidden",
      "a\0b",
      "a b",
      "é",
      &"x".repeat(201),
    ] {
      let err = validate_target_id(bad).unwrap_err();
      assert_eq!(err.code(), "EINVALIDTARGET", "{bad:?}");
    }
  }

  #[test]
  fn pid_file_content_is_parsed_strictly() {
    let max = 4_194_304;
    assert_eq!(parse_pid(b"12345\n", max), Ok(12345));
    assert_eq!(parse_pid(b"12345", max), Ok(12345));
    for bad in [
      &b""[..],
      b"\n",
      b"0\n",
      b"1\n",
      b"-1\n",
      b"+5\n",
      b" 5\n",
      b"5 \n",
      b"5\n\n",
      b"007\n",
      b"4194304\n",
      b"4194305\n",
      b"99999999999999999999\n",
      b"12abc\n",
      b"\xff\xfe",
    ] {
      assert!(
        parse_pid(bad, max).is_err(),
        "{:?}",
        String::from_utf8_lossy(bad)
      );
    }
  }
}
