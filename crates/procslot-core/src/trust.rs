//! What a file or a directory must be before procslot acts on what it holds: the one place for the rules
//! of trust.
//!
//! - A file (a PID file, a spawn record, a lock file) is trusted when it is a regular file, owned by us
//!   or root, and not writable by others (`file_distrust`); it is opened without following a link
//!   (`open_no_follow`). A slot file is opened, or created, the same way and never blocks
//!   (`open_or_create_no_follow`), and must be a regular file of this user with one name
//!   (`check_slot_file`).
//! - A directory is trusted by one of three rules ([`DirRule`]): a PID directory may be shared, with the
//!   sticky bit; a manager's private directory is ours or root's and writable by no one else; a slot
//!   file's private directory is this user's alone ([`dir_distrust`], [`ensure_private_dir`]).

use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::sys;

/// Which rule a directory is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirRule {
  /// A PID directory, which may be shared (`/run`, `/tmp`): world-writable only with the sticky bit, so
  /// that no one can replace another user's files in it.
  Shared,
  /// A manager's private directory (logs, locks): ours or root's, writable by no other user, sticky or
  /// not ([`check_private_dir`]).
  Private,
  /// A slot file's private directory: this user's alone (not even root's), writable by no group or
  /// other user, and not a symbolic link (judge it by `lstat`).
  OwnOnly,
}

/// Why a directory with this metadata cannot be trusted under `rule` (`euid`: who we are), `None` when
/// it can: the one place the directory rules live. For [`Shared`](DirRule::Shared) and
/// [`Private`](DirRule::Private), a path that is no directory is the caller's to report (`ENOTDIR`).
pub fn dir_distrust(meta: &std::fs::Metadata, rule: DirRule, euid: u32) -> Option<String> {
  let mode = meta.mode();
  match rule {
    DirRule::Shared => (mode & 0o002 != 0 && mode & 0o1000 == 0).then(|| {
      format!(
        "the PID directory is world-writable without the sticky bit (mode {:o}): anyone could \
         replace its PID files",
        mode & 0o7777
      )
    }),
    DirRule::Private => {
      let why = if mode & 0o002 != 0 {
        let sticky = if mode & 0o1000 != 0 { ", sticky" } else { "" };
        format!("writable by other users (mode {:o}{sticky})", mode & 0o7777)
      } else {
        foreign_owner(meta, euid)?
      };
      Some(format!(
        "{why}: another user could plant files there (logs, locks); use a directory only this user \
         can write to"
      ))
    }
    DirRule::OwnOnly => {
      if !meta.file_type().is_dir() {
        Some("is not a directory (a symbolic link is not followed)".to_owned())
      } else if meta.uid() != euid {
        Some(format!(
          "is owned by uid {}, not by this user (uid {euid}); refusing a directory someone else made",
          meta.uid()
        ))
      } else if mode & 0o022 != 0 {
        Some(format!(
          "has mode {:o}: writable by other users, who could replace the slot file",
          mode & 0o7777
        ))
      } else {
        None
      }
    }
  }
}

/// Refuses a directory that other users could write to (sticky or not) or that belongs to another
/// user (not us, not root): a manager writes logs and takes locks there, and anyone who can plant a
/// file in it can redirect them.
///
/// # Errors
/// `EUNSAFE` saying why; `ENOTDIR`; the operating system's error when it cannot be read.
pub fn check_private_dir(dir: &Path) -> Result<()> {
  let meta = std::fs::metadata(dir).map_err(|e| Error::pid_io(dir, "read the directory", &e))?;
  if !meta.is_dir() {
    return Err(not_a_dir(dir));
  }
  match dir_distrust(&meta, DirRule::Private, nix::unistd::geteuid().as_raw()) {
    Some(reason) => Err(Error::PidFile {
      code: "EUNSAFE".to_owned(),
      path: dir.to_owned(),
      reason,
    }),
    None => Ok(()),
  }
}

/// Makes sure `dir` is a private directory of this user: creates it with mode 0700 if it is missing, and
/// refuses (`EUNSAFE`) anything that is not a directory (a symbolic link included), is owned by another
/// user, or can be written by group or others ([`DirRule::OwnOnly`]) — in a shared `/tmp`, anyone could
/// have created it first.
///
/// # Errors
/// `EUNSAFE`, or the errno name of a failed `mkdir`/`lstat`.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
  use std::os::unix::fs::DirBuilderExt;
  match std::fs::DirBuilder::new().mode(0o700).create(dir) {
    Ok(()) => {}
    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
    Err(e) => return Err(Error::slot_io(dir, "create the private directory", &e)),
  }
  let meta =
    std::fs::symlink_metadata(dir).map_err(|e| Error::slot_io(dir, "lstat the directory", &e))?;
  match dir_distrust(&meta, DirRule::OwnOnly, nix::unistd::geteuid().as_raw()) {
    Some(reason) => Err(Error::slot_file("EUNSAFE", dir, reason)),
    None => Ok(()),
  }
}

/// `ENOTDIR` for a path that is there but no directory.
pub(crate) fn not_a_dir(dir: &Path) -> Error {
  Error::PidFile {
    code: "ENOTDIR".to_owned(),
    path: dir.to_owned(),
    reason: "not a directory".to_owned(),
  }
}

/// Why a file with this metadata cannot be trusted, if it cannot: not a regular file, owned by someone
/// other than us or root, or writable by others.
pub(crate) fn file_distrust(meta: &std::fs::Metadata, euid: u32) -> Option<String> {
  if !meta.is_file() {
    Some("not a regular file".to_owned())
  } else if let Some(why) = foreign_owner(meta, euid) {
    Some(why)
  } else if meta.mode() & 0o002 != 0 {
    Some(format!(
      "writable by others (mode {:o})",
      meta.mode() & 0o7777
    ))
  } else {
    None
  }
}

/// Why a file or directory is not ours: owned by someone other than us (`euid`) or root.
fn foreign_owner(meta: &std::fs::Metadata, euid: u32) -> Option<String> {
  (meta.uid() != euid && meta.uid() != 0).then(|| {
    format!(
      "owned by uid {}, not by us (uid {euid}) or root",
      meta.uid()
    )
  })
}

/// Opens a file for reading as PID files are: a symbolic link is refused with `ELOOP`, not followed
/// (`O_NOFOLLOW`), and a FIFO never blocks the open (`O_NONBLOCK`).
/// Out of descriptors, the one kept in reserve is used (see `sys::with_reserve`).
pub(crate) fn open_no_follow(dir: BorrowedFd<'_>, name: &Path) -> nix::Result<File> {
  let flags =
    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
  sys::with_reserve(|| {
    nix::fcntl::openat(dir, name, flags, Mode::empty())
      .map(File::from)
      .map_err(io::Error::from)
  })
  .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// Opens without following symlinks and without blocking (a FIFO must not hang us), creating the file
/// with `mode` if it does not exist. Returns the file and whether this call created it.
pub(crate) fn open_or_create_no_follow(path: &Path, mode: u32) -> Result<(File, bool)> {
  let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
  let open = |create: bool| {
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).custom_flags(flags);
    if create {
      o.create_new(true).mode(mode & 0o7777);
    }
    o.open(path)
  };
  let explain = |e: io::Error| match e.raw_os_error() {
    Some(libc::ELOOP) => Error::slot_file(
      "ESYMLINK",
      path,
      "is a symbolic link; refusing to follow it",
    ),
    Some(libc::EISDIR) => Error::slot_file("ENOTREG", path, "is a directory, not a regular file"),
    Some(libc::ENXIO) => Error::slot_file("ENOTREG", path, "is not a regular file"),
    _ => Error::slot_io(path, "open", &e),
  };
  // The common case is a file that exists: open it first, create it only when it is missing, and open
  // it again if another process created it in between.
  match open(false) {
    Ok(file) => Ok((file, false)),
    Err(e) if e.kind() == io::ErrorKind::NotFound => match open(true) {
      Ok(file) => Ok((file, true)),
      Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
        open(false).map(|f| (f, false)).map_err(explain)
      }
      Err(e) => Err(explain(e)),
    },
    Err(e) => Err(explain(e)),
  }
}

/// Refuses a slot file that is not a regular file, is another user's (unless allowed), or has another
/// name (a hard link). Its size is the slot format's rule (`slots::file`).
pub(crate) fn check_slot_file(
  path: &Path,
  meta: &std::fs::Metadata,
  allow_foreign_owner: bool,
) -> Result<()> {
  if !meta.file_type().is_file() {
    return Err(Error::slot_file("ENOTREG", path, "is not a regular file"));
  }
  let euid = nix::unistd::geteuid().as_raw();
  if meta.uid() != euid && !allow_foreign_owner {
    return Err(Error::slot_file(
      "EFOREIGN",
      path,
      format!(
        "is owned by uid {} but this process runs as uid {euid}; refusing another user's slot file",
        meta.uid()
      ),
    ));
  }
  if meta.nlink() > 1 {
    return Err(Error::slot_file(
      "EHARDLINK",
      path,
      format!(
        "has {} hard links; refusing a file that can be reached by another name",
        meta.nlink()
      ),
    ));
  }
  Ok(())
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::os::unix::fs::PermissionsExt;

  #[test]
  fn each_directory_rule_refuses_what_it_should() {
    let dir = std::env::temp_dir().join(format!("procslot-trust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let euid = nix::unistd::geteuid().as_raw();
    let judge = |mode: u32, rule: DirRule| {
      std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
      dir_distrust(&std::fs::metadata(&dir).unwrap(), rule, euid)
    };
    for rule in [DirRule::Shared, DirRule::Private, DirRule::OwnOnly] {
      assert_eq!(judge(0o700, rule), None, "{rule:?}");
    }
    assert!(judge(0o777, DirRule::Shared).is_some());
    assert_eq!(judge(0o1777, DirRule::Shared), None);
    assert!(judge(0o1777, DirRule::Private)
      .unwrap()
      .starts_with("writable by other users (mode 1777, sticky)"));
    assert_eq!(judge(0o775, DirRule::Private), None);
    assert!(judge(0o775, DirRule::OwnOnly)
      .unwrap()
      .starts_with("has mode 775"));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::remove_dir(&dir).unwrap();
  }
}
