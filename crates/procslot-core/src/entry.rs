//! What a PID directory holds, as data: one PID file as read (its content judged for trust, the version
//! read), and the spawn record a manager writes beside it. Read and written by [`pidfile`](crate::pidfile),
//! judged by [`judge`](mod@crate::judge).

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::mount::MountId;
#[cfg(doc)]
use crate::process::Identity;

/// What a PID file says and whether it can be trusted.
#[derive(Debug, Clone, PartialEq)]
pub enum PidFileStatus {
  /// A valid PID in a trusted file.
  Valid(u32),
  /// The content is not a usable PID (why).
  Invalid(String),
  /// The file must not be acted on (why): another owner, writable by others, a link, not a file.
  Untrusted(String),
}

/// What identifies one version of a file: a rewrite (a rename over it) changes the inode, an edit in
/// place the change time. Equal fingerprints mean the file was not touched in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fingerprint {
  /// Device and inode.
  pub dev: u64,
  /// Inode number.
  pub ino: u64,
  /// Size in bytes.
  pub size: u64,
  /// Last status change, nanoseconds since the epoch.
  pub ctime_ns: i128,
  /// Last modification, nanoseconds since the epoch.
  pub mtime_ns: i128,
}

impl Fingerprint {
  pub(crate) fn of(meta: &std::fs::Metadata) -> Self {
    Fingerprint {
      dev: meta.dev(),
      ino: meta.ino(),
      size: meta.size(),
      ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
      mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
    }
  }

  #[allow(clippy::unnecessary_cast)]
  pub(crate) fn from_stat(st: &libc::stat) -> Self {
    Fingerprint {
      dev: st.st_dev as u64,
      ino: st.st_ino as u64,
      size: st.st_size as u64,
      ctime_ns: st.st_ctime as i128 * 1_000_000_000 + st.st_ctime_nsec as i128,
      mtime_ns: st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128,
    }
  }
}

/// The text form, `dev:ino:size:ctime_ns:mtime_ns`: opaque to whoever holds it, read back by
/// [`FromStr`](std::str::FromStr).
impl std::fmt::Display for Fingerprint {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    write!(
      f,
      "{}:{}:{}:{}:{}",
      self.dev, self.ino, self.size, self.ctime_ns, self.mtime_ns
    )
  }
}

impl std::str::FromStr for Fingerprint {
  type Err = crate::error::Error;

  /// Reads what [`Display`](std::fmt::Display) wrote.
  ///
  /// # Errors
  /// [`Error::InvalidArgument`](crate::error::Error::InvalidArgument) for any other text.
  fn from_str(text: &str) -> Result<Self, Self::Err> {
    let parse = || {
      let mut it = text.split(':');
      let f = Fingerprint {
        dev: it.next()?.parse().ok()?,
        ino: it.next()?.parse().ok()?,
        size: it.next()?.parse().ok()?,
        ctime_ns: it.next()?.parse().ok()?,
        mtime_ns: it.next()?.parse().ok()?,
      };
      it.next().is_none().then_some(f)
    };
    parse()
      .ok_or_else(|| crate::error::Error::InvalidArgument(format!("not a fingerprint: {text:?}")))
  }
}

/// What a manager records beside a PID file when it starts a daemon (`.<targetId>.record`).
#[derive(Debug, Clone, PartialEq)]
pub struct SpawnRecord {
  /// The daemon's PID.
  pub pid: u32,
  /// Its exact start time (the platform's raw unit, see [`Identity::start_time`]).
  pub start_time: u64,
  /// The absolute path it mounts.
  pub mount_path: Option<PathBuf>,
  /// The mount it made there, once it was ready.
  pub mount: Option<MountId>,
}

impl SpawnRecord {
  pub(crate) fn to_bytes(&self) -> Vec<u8> {
    // The mount comes last: known only once the daemon is ready, it completes the record written
    // before the daemon ran by lines appended to it (see `PidFileStore::write_record`).
    let mut out = format!("pid {}\nstart {}\n", self.pid, self.start_time).into_bytes();
    if let Some(p) = &self.mount_path {
      out.extend_from_slice(b"path ");
      out.extend_from_slice(p.as_os_str().as_bytes());
      out.push(b'\n');
    }
    if let Some(m) = &self.mount {
      out.extend_from_slice(format!("mount {} {}\n", m.id, m.dev).as_bytes());
    }
    out
  }

  /// Parses a record; `None` for anything that is not one (a missing `pid` or `start`, a bad number, a
  /// path that is not absolute).
  pub(crate) fn parse(bytes: &[u8]) -> Option<Self> {
    let mut pid = None;
    let mut start = None;
    let mut mount = None;
    let mut mount_path = None;
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
      let (key, value) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => return None,
      };
      let text = || std::str::from_utf8(value).ok();
      match key {
        b"pid" => pid = Some(text()?.parse::<u32>().ok()?),
        b"start" => start = Some(text()?.parse::<u64>().ok()?),
        b"mount" => {
          let (id, dev) = text()?.split_once(' ')?;
          mount = Some(MountId {
            id: id.parse().ok()?,
            dev: dev.to_owned(),
          });
        }
        b"path" => {
          let p = PathBuf::from(std::ffi::OsString::from_vec(value.to_vec()));
          if !p.is_absolute() || value.contains(&0) {
            return None;
          }
          mount_path = Some(p);
        }
        _ => {}
      }
    }
    Some(SpawnRecord {
      pid: pid.filter(|&p| p > 1)?,
      start_time: start?,
      mount_path,
      mount,
    })
  }
}

/// One PID file as found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct PidFileEntry {
  /// The target ID (the file name without `.pid`).
  pub target_id: String,
  /// The file's path.
  pub path: PathBuf,
  /// What it says.
  pub status: PidFileStatus,
  /// When it was last written, in milliseconds since the epoch.
  pub mtime_ms: f64,
  /// Its owner.
  pub uid: u32,
  /// Its permission bits.
  pub mode: u32,
  /// The version of the file that was read.
  pub fingerprint: Fingerprint,
}

impl PidFileEntry {
  /// The PID, when the file is valid and trusted.
  pub fn pid(&self) -> Option<u32> {
    match self.status {
      PidFileStatus::Valid(pid) => Some(pid),
      _ => None,
    }
  }
}
