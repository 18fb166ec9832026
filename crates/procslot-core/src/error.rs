//! The core's error type. Each variant maps to one stable string code, which the binding crate turns into
//! the JavaScript `error.code`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A result with the core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the core can fail with.
#[derive(Debug)]
pub enum Error {
  /// A slot file was refused or could not be used. `code` is stable: `ESYMLINK`, `ENOTREG`, `EFOREIGN`,
  /// `EBADSIZE`, `ETOOLARGE`, `ESHRUNK`, or the errno name of an operating-system failure (`ENOENT`,
  /// `EACCES`, `EROFS`, ...).
  SlotFile {
    /// The stable code.
    code: String,
    /// The slot file's path.
    path: PathBuf,
    /// Why, in words.
    reason: String,
  },
  /// An argument was out of range (code `EINVAL`).
  InvalidArgument(String),
  /// A target ID that cannot name a PID file (code `EINVALIDTARGET`): checked before any path is built.
  InvalidTargetId {
    /// The target ID as given, for the message (control characters escaped).
    target: String,
    /// What is wrong with it.
    reason: String,
  },
  /// A PID-file directory or PID file could not be used. `code`: `EUNSAFE` (a world-writable directory
  /// without the sticky bit), `ENOTDIR`, or the errno name of an operating-system failure.
  PidFile {
    /// The stable code.
    code: String,
    /// The directory or file.
    path: PathBuf,
    /// Why, in words.
    reason: String,
  },
  /// Signalling or waiting for a process failed (the errno name as code, e.g. `EPERM`).
  Process {
    /// The stable code.
    code: String,
    /// The process.
    pid: u32,
    /// Why, in words.
    reason: String,
  },
}

impl Error {
  /// A slot-file error with one of the core's own codes (the binding's `ECLOSED` for a closed table too).
  pub fn slot_file(code: &str, path: &Path, reason: impl Into<String>) -> Self {
    Error::SlotFile {
      code: code.to_owned(),
      path: path.to_owned(),
      reason: reason.into(),
    }
  }

  /// A slot-file error from an operating-system failure, keeping the errno name as the code.
  pub(crate) fn slot_io(path: &Path, what: &str, err: &io::Error) -> Self {
    Error::SlotFile {
      code: errno_name(err),
      path: path.to_owned(),
      reason: format!("{what}: {}", describe(err)),
    }
  }

  /// A PID-file error from an operating-system failure, keeping the errno name as the code.
  pub(crate) fn pid_io(path: &Path, what: &str, err: &io::Error) -> Self {
    Error::PidFile {
      code: errno_name(err),
      path: path.to_owned(),
      reason: format!("{what}: {}", describe(err)),
    }
  }

  /// A process error from an operating-system failure.
  pub(crate) fn process_io(pid: u32, what: &str, err: &io::Error) -> Self {
    Error::Process {
      code: errno_name(err),
      pid,
      reason: format!("{what}: {}", describe(err)),
    }
  }

  /// What the error is about, as a stable word the binding passes on for the facade to pick its class:
  /// `slot-file`, `pid-file`, `process`, `invalid-argument` or `invalid-target-id`.
  pub fn kind(&self) -> &'static str {
    match self {
      Error::SlotFile { .. } => "slot-file",
      Error::PidFile { .. } => "pid-file",
      Error::Process { .. } => "process",
      Error::InvalidArgument(_) => "invalid-argument",
      Error::InvalidTargetId { .. } => "invalid-target-id",
    }
  }

  /// The operating system's error number behind this error, when its code is an errno name (`ENOENT` is
  /// 2); `None` for the core's own codes (`ESYMLINK`, `EUNSAFE`, ...).
  pub fn errno(&self) -> Option<i32> {
    errno_number(self.code())
  }

  /// Why, in words, without the path or target (the message is the path or target, then this).
  pub fn reason(&self) -> &str {
    match self {
      Error::SlotFile { reason, .. }
      | Error::PidFile { reason, .. }
      | Error::Process { reason, .. }
      | Error::InvalidTargetId { reason, .. }
      | Error::InvalidArgument(reason) => reason,
    }
  }

  /// The process this error is about, if any.
  pub fn pid(&self) -> Option<u32> {
    match self {
      Error::Process { pid, .. } => Some(*pid),
      _ => None,
    }
  }

  /// The stable code of this error.
  pub fn code(&self) -> &str {
    match self {
      Error::SlotFile { code, .. } | Error::PidFile { code, .. } | Error::Process { code, .. } => {
        code
      }
      Error::InvalidArgument(_) => "EINVAL",
      Error::InvalidTargetId { .. } => "EINVALIDTARGET",
    }
  }

  /// The path this error is about, if any.
  pub fn path(&self) -> Option<&Path> {
    match self {
      Error::SlotFile { path, .. } | Error::PidFile { path, .. } => Some(path),
      _ => None,
    }
  }
}

impl fmt::Display for Error {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      Error::SlotFile { path, reason, .. } => {
        write!(f, "slot file {}: {reason}", path.display())
      }
      Error::InvalidArgument(reason) => f.write_str(reason),
      Error::InvalidTargetId { target, reason } => {
        write!(f, "invalid target ID {target}: {reason}")
      }
      Error::PidFile { path, reason, .. } => write!(f, "{}: {reason}", path.display()),
      Error::Process { pid, reason, .. } => write!(f, "process {pid}: {reason}"),
    }
  }
}

impl std::error::Error for Error {}

/// An I/O error in words, without Rust's ` (os error N)` suffix: the C library's description of its errno
/// ("No such file or directory"), or the error's own text when it has no errno.
pub(crate) fn describe(err: &io::Error) -> String {
  match err.raw_os_error() {
    #[cfg(unix)]
    Some(raw) => nix::errno::Errno::from_raw(raw).desc().to_owned(),
    _ => err.to_string(),
  }
}

/// The errno number of a symbolic name (`"ENOENT"` is 2), `None` for names that are not errno names. The
/// inverse of [`errno_name`], looked up only on the error path.
pub(crate) fn errno_number(name: &str) -> Option<i32> {
  #[cfg(unix)]
  {
    (1..256).find(|&raw| format!("{:?}", nix::errno::Errno::from_raw(raw)) == name)
  }
  #[cfg(not(unix))]
  {
    let _ = name;
    None
  }
}

/// The symbolic name of an I/O error's errno (`ENOENT`), or `EIO` when it has none.
pub(crate) fn errno_name(err: &io::Error) -> String {
  match err.raw_os_error() {
    #[cfg(unix)]
    Some(raw) => format!("{:?}", nix::errno::Errno::from_raw(raw)),
    _ => "EIO".to_owned(),
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn io_errors_keep_their_errno_name() {
    let err = io::Error::from_raw_os_error(libc::ENOENT);
    let e = Error::slot_io(Path::new("/x"), "open", &err);
    assert_eq!(e.code(), "ENOENT");
    assert_eq!(
      e.to_string(),
      "slot file /x: open: No such file or directory"
    );
    assert_eq!(e.errno(), Some(libc::ENOENT));
    assert_eq!(e.kind(), "slot-file");
    assert_eq!(
      Error::slot_file("ESYMLINK", Path::new("/x"), "link").errno(),
      None
    );
    assert_eq!(errno_name(&io::Error::other("no errno")), "EIO");
  }
}
