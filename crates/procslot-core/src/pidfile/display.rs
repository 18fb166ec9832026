//! The judgement of a PID file for display (`procslot pids`), where root sees other users' files.

use super::records::read_record_at;
use super::store::{inspect_at, verdict};
use super::PidFileStore;
use crate::entry::PidFileStatus;
use crate::error::Result;
use crate::judge::{Judgement, Verdict};
use crate::sys;

impl PidFileStore {
  /// The target's PID file judged for display (`procslot pids`): as [`judge`](Self::judge), except that
  /// root reads a file owned by another user — a regular file, not writable by others — as that user
  /// would, instead of reporting it untrusted; the owner comes back beside the verdict (`Some(uid)`) so
  /// that it can be marked. Nothing acts on such a verdict.
  ///
  /// # Errors
  /// As [`judge`](Self::judge).
  pub fn judge_for_display(&self, target_id: &str) -> Result<Option<(Verdict, Option<u32>)>> {
    let Some(v) = self.judge(target_id)? else {
      return Ok(None);
    };
    let owner = v.entry.uid;
    if self.euid != 0 || v.judgement != Judgement::Untrusted || owner == 0 {
      return Ok(Some((v, None)));
    }
    // Read again as its owner would: the same rules of trust (`trust::file_distrust`), but the owner's. A file they
    // do not pass either (a link, not a regular file, writable by others) stays untrusted, unmarked.
    let path = self.path_for(target_id)?;
    let Some(entry) = inspect_at(
      nix::fcntl::AT_FDCWD,
      &path,
      &path,
      target_id,
      owner,
      sys::pid_max(),
    )?
    else {
      return Ok(None);
    };
    if matches!(entry.status, PidFileStatus::Untrusted(_)) {
      return Ok(Some((v, None)));
    }
    let record = match entry.pid() {
      Some(_) => {
        let rec = self.record_file(target_id)?;
        read_record_at(nix::fcntl::AT_FDCWD, &rec, &rec, owner)?
      }
      None => None,
    };
    Ok(Some((verdict(entry, record)?, Some(owner))))
  }
}
