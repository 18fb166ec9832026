//! A PID file pinned at the version a judgement read, beside the process it named: one cheap look
//! (one `fstatat`, one `poll`) tells whether both are still as judged, so that a supervisor judges the
//! file again only when it changed.

use std::ffi::CString;
use std::sync::Arc;

use super::{pid_file_name, validate_target_id, PidFileStore};
use crate::entry::Fingerprint;
use crate::error::Result;
use crate::process::ProcessHandle;

/// What one look at a pinned PID file and its process found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinCheck {
  /// The file is the version pinned and the process runs.
  Alive,
  /// The file is the version pinned and the process is gone.
  Exited,
  /// The file changed, or nothing was pinned: judge it again.
  Changed,
}

impl PinCheck {
  /// The outcome's name, as the binding spells it: `alive`, `exited` or `changed`.
  pub fn as_str(self) -> &'static str {
    match self {
      PinCheck::Alive => "alive",
      PinCheck::Exited => "exited",
      PinCheck::Changed => "changed",
    }
  }
}

/// A target's PID file in a store, pinned at one version ([`Fingerprint`]).
#[derive(Debug)]
pub struct PinnedPidFile {
  store: Arc<PidFileStore>,
  /// The file's name in the store's directory, ready for `fstatat`.
  name: CString,
  fingerprint: Fingerprint,
}

impl PinnedPidFile {
  /// Pins the target's PID file in `store` at the version `fingerprint` (from the judgement that found
  /// it naming a process).
  ///
  /// # Errors
  /// [`Error::InvalidTargetId`](crate::error::Error::InvalidTargetId).
  pub fn new(store: Arc<PidFileStore>, target_id: &str, fingerprint: Fingerprint) -> Result<Self> {
    validate_target_id(target_id)?;
    let name = CString::new(pid_file_name(target_id)).expect("a valid target ID has no NUL byte");
    Ok(PinnedPidFile {
      store,
      name,
      fingerprint,
    })
  }

  /// One look at the file and at `process`, the process it named (`None`: its handle is closed, which
  /// counts as gone).
  pub fn check(&self, process: Option<&ProcessHandle>) -> PinCheck {
    if self.store.fingerprint_of(&self.name) != Some(self.fingerprint) {
      PinCheck::Changed
    } else if process.is_some_and(ProcessHandle::is_alive) {
      PinCheck::Alive
    } else {
      PinCheck::Exited
    }
  }
}
