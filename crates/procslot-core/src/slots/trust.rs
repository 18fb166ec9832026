//! The slot file's trust rules: its private default directory, an open that follows no link and never
//! blocks, and the checks a file must pass before a byte of it is touched. (The crate's other
//! file and directory rules are to join these in one place.)

use std::fs::File;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::options::MAX_FILE_BYTES;
use super::word::SLOT_BYTES;
use crate::error::{Error, Result};

/// Makes sure `dir` is a private directory of this user: creates it with mode 0700 if it is missing, and
/// refuses (`EUNSAFE`) anything that is not a directory (a symbolic link included), is owned by another
/// user, or can be written by group or others — in a shared `/tmp`, anyone could have created it first.
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
  let euid = nix::unistd::geteuid().as_raw();
  let why = if !meta.file_type().is_dir() {
    Some("is not a directory (a symbolic link is not followed)".to_owned())
  } else if meta.uid() != euid {
    Some(format!(
      "is owned by uid {}, not by this user (uid {euid}); refusing a directory someone else made",
      meta.uid()
    ))
  } else if meta.mode() & 0o022 != 0 {
    Some(format!(
      "has mode {:o}: writable by other users, who could replace the slot file",
      meta.mode() & 0o7777
    ))
  } else {
    None
  };
  match why {
    Some(reason) => Err(Error::slot_file("EUNSAFE", dir, reason)),
    None => Ok(()),
  }
}

/// Opens without following symlinks and without blocking (a FIFO must not hang us), creating the file
/// with `mode` if it does not exist. Returns the file and whether this call created it.
pub(super) fn open_file(path: &Path, mode: u32) -> Result<(File, bool)> {
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

/// Refuses a file that is not a regular file, is another user's (unless allowed), has another name, or
/// whose size cannot be a slot file's.
pub(super) fn check_file(
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
  let len = meta.len();
  if len > MAX_FILE_BYTES {
    return Err(Error::slot_file(
      "ETOOLARGE",
      path,
      format!("is {len} bytes, over the {MAX_FILE_BYTES}-byte limit; not a slot file"),
    ));
  }
  if !len.is_multiple_of(SLOT_BYTES as u64) {
    return Err(Error::slot_file(
      "EBADSIZE",
      path,
      format!("is {len} bytes, not a multiple of {SLOT_BYTES}; not a slot file"),
    ));
  }
  Ok(())
}
