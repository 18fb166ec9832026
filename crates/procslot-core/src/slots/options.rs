//! How a slot file is opened: its options, limits, and the default file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::word::SLOT_BYTES;

/// The largest slot file accepted: anything bigger is refused as absurd.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// The most slots a file can hold.
pub const MAX_SLOTS: usize = MAX_FILE_BYTES as usize / SLOT_BYTES;

/// How long opening and growing wait for another process's growth lock by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5000);

/// How liveness is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locking {
  /// Byte-range locks, falling back to PIDs where the filesystem refuses them.
  #[default]
  Auto,
  /// PIDs only, as on a filesystem that refuses locks (for tests and diagnostics).
  Off,
}

/// The slot file used when none is named: `worker-slots` in the per-user directory `procslot-<euid>` of
/// the temporary directory, found as Node.js's `os.tmpdir()` finds it (`TMPDIR`, `TMP`, `TEMP`, else
/// `/tmp`; one trailing `/` dropped), the path normalized as `path.join` does. Open it with
/// [`OpenOptions::private_dir`]: the directory is this user's alone.
pub fn default_file() -> PathBuf {
  let tmp = ["TMPDIR", "TMP", "TEMP"]
    .iter()
    .filter_map(std::env::var_os)
    .find(|v| !v.is_empty())
    .unwrap_or_else(|| "/tmp".into());
  let euid = nix::unistd::geteuid().as_raw();
  let mut out = PathBuf::new();
  // Lexically, as `path.join`: `.` dropped, `..` takes back a component, repeated `/` collapsed.
  for part in Path::new(&tmp)
    .join(format!("procslot-{euid}"))
    .join("worker-slots")
    .components()
  {
    match part {
      std::path::Component::CurDir => {}
      std::path::Component::ParentDir if out.file_name().is_some() => {
        out.pop();
      }
      other => out.push(other),
    }
  }
  out
}

/// How to open a slot file.
#[derive(Debug, Clone)]
pub struct OpenOptions {
  /// Grow the file to at least this many slots (never shrinks it); a new or empty file gets exactly this
  /// many. `None`: keep its size, and give a new file `default_slots`.
  pub slots: Option<usize>,
  /// Slot count for a file that is new or empty when `slots` is `None`. `None`: the machine's available
  /// parallelism (`std::thread::available_parallelism`, which on Linux reads several cgroup files: it
  /// is asked once per process, and only when a file is created), at most [`MAX_SLOTS`].
  pub default_slots: Option<usize>,
  /// Permission bits of a file this call creates (exactly these: the umask does not apply); `0..=0o777`.
  pub mode: u32,
  /// The longest wait for another process's growth lock ([`DEFAULT_TIMEOUT`]); then `ETIMEDOUT`.
  pub timeout: Duration,
  /// The file's directory is a private per-user directory (the default file's): create it with mode
  /// 0700 if missing, and refuse it (`EUNSAFE`) unless it is a directory of this user that no one else
  /// can write to.
  pub private_dir: bool,
  /// Accept a file owned by another user.
  pub allow_foreign_owner: bool,
  /// Locks or PIDs.
  pub locking: Locking,
}

impl Default for OpenOptions {
  fn default() -> Self {
    OpenOptions {
      slots: None,
      default_slots: None,
      mode: 0o600,
      timeout: DEFAULT_TIMEOUT,
      private_dir: false,
      allow_foreign_owner: false,
      locking: Locking::Auto,
    }
  }
}
