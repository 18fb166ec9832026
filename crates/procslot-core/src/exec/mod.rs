//! `procslot exec`: take a slot, then become another program with `execve`, which inherits the slot.
//!
//! An open-file-description lock belongs to the open file, not to a program: a descriptor left open
//! across `execve` keeps it, and the process keeps its PID and start time. So the program that this
//! process becomes holds the slot's lease for exactly its own life (and that of any child it hands the
//! descriptor to), whatever language it is written in, and the slot's word — which names the PID and
//! start tag — still names it. The program learns its slot from `PROCSLOT_ID`, `PROCSLOT_COUNT` and
//! `PROCSLOT_FILE`; a procslot call inside it finds the lease through `PROCSLOT_FD` (see
//! [`handoff`]) instead of taking a second slot.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Result;

pub mod cli;
/// The hand-off's both ends, as they were reached from here (the module stands below `slots`).
pub use crate::handoff;
use crate::handoff::env;
use crate::slots::wait::{wait_blocking, Waited};
use crate::slots::{OpenOptions, SlotFile, Want};
use crate::sys;

/// Why [`exec`] returned (it returns only when it could not become the program).
#[derive(Debug)]
pub enum ExecFailure {
  /// Every slot stayed held for the whole wait.
  NoSlot {
    /// The slot file.
    path: PathBuf,
    /// Its slot count.
    slots: usize,
    /// How long it waited.
    waited: Duration,
  },
  /// `execve` failed (`ENOENT`: no such program, `EACCES`: not executable, ...): the slot was given
  /// back.
  Exec {
    /// The program as given.
    program: OsString,
    /// The errno name (`ENOENT`).
    code: String,
    /// The errno number.
    errno: i32,
    /// Why, in words (no Rust wording).
    reason: String,
  },
}

/// Takes a slot of the file at `path` (as `want` says; waiting up to `wait` for one to free), then
/// replaces this process with `program` and `args` (found on `PATH` unless it contains a `/`), with the
/// slot's descriptor left open and `PROCSLOT_ID`, `PROCSLOT_COUNT`, `PROCSLOT_FILE`, `PROCSLOT_FD` added
/// to the environment. Before `execve`, the signal mask is emptied, `SIGPIPE` is reset to its default
/// (runtimes such as Node.js ignore it, and an ignored signal stays ignored across `execve`), and the
/// standard descriptors are kept open across `execve` and made blocking again (Node.js may mark them
/// close-on-exec and makes pipes non-blocking; the latter flag belongs to the open file, which the
/// program shares).
///
/// Returns only when it could not become the program.
///
/// # Errors
/// As [`SlotFile::open`] and [`SlotFile::acquire`].
pub fn exec(
  path: &Path,
  options: &OpenOptions,
  want: Want,
  wait: Duration,
  program: &OsStr,
  args: &[OsString],
) -> Result<ExecFailure> {
  let started = Instant::now();
  let file = SlotFile::open(path, options)?;
  let (slot, took) = match wait_blocking(&file, want, Some(started + wait))? {
    Waited::Slot(slot, took) => (slot, took),
    Waited::TimedOut | Waited::Cancelled => {
      return Ok(ExecFailure::NoSlot {
        path: file.path().to_owned(),
        slots: file.size()?,
        waited: started.elapsed(),
      })
    }
  };
  let slots = file.size()?;
  let error = become_program(&file, slot, slots, program, args);
  if took {
    file.release(Some(slot));
  }
  Ok(ExecFailure::Exec {
    program: program.to_owned(),
    code: crate::error::errno_name(&error),
    errno: error.raw_os_error().unwrap_or(libc::EIO),
    reason: crate::error::describe(&error),
  })
}

/// Does the `execve`; returns only its failure.
fn become_program(
  file: &Arc<SlotFile>,
  slot: usize,
  slots: usize,
  program: &OsStr,
  args: &[OsString],
) -> std::io::Error {
  let fd = file.raw_fd();
  let cstring = |bytes: Vec<u8>| CString::new(bytes).map_err(|_| einval());
  let argv: std::io::Result<Vec<CString>> = std::iter::once(program.to_owned())
    .chain(args.iter().cloned())
    .map(|a| cstring(a.into_vec()))
    .collect();
  let ours = [env::ID, env::COUNT, env::FILE, env::FD];
  let mut vars: Vec<Vec<u8>> = std::env::vars_os()
    .filter(|(k, _)| !ours.iter().any(|o| OsStr::new(o) == k))
    .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat())
    .collect();
  vars.push(format!("{}={slot}", env::ID).into_bytes());
  vars.push(format!("{}={slots}", env::COUNT).into_bytes());
  vars.push(
    [
      env::FILE.as_bytes(),
      b"=",
      file.path().as_os_str().as_bytes(),
    ]
    .concat(),
  );
  vars.push(format!("{}={fd}", env::FD).into_bytes());
  let envp: std::io::Result<Vec<CString>> = vars.into_iter().map(cstring).collect();
  let (argv, envp) = match (argv, envp) {
    (Ok(a), Ok(e)) => (a, e),
    (Err(e), _) | (_, Err(e)) => return e,
  };
  let candidates = match resolve(program) {
    Ok(c) => c,
    Err(e) => return e,
  };
  sys::set_close_on_exec(fd, false);
  sys::prepare_for_exec();
  let mut error = std::io::Error::from_raw_os_error(libc::ENOENT);
  for candidate in candidates {
    let e = sys::execve(&candidate, &argv, &envp);
    let raw = e.raw_os_error();
    // As execvp: keep looking past a missing or unreadable candidate, remember a more telling error.
    if raw != Some(libc::ENOENT) {
      error = e;
    }
    if !matches!(
      raw,
      Some(libc::ENOENT) | Some(libc::EACCES) | Some(libc::ENOTDIR)
    ) {
      break;
    }
  }
  // The `execve` failed: the slot's descriptor close-on-exec again (the rest stays: the caller exits).
  sys::set_close_on_exec(fd, true);
  error
}

fn einval() -> std::io::Error {
  std::io::Error::new(
    std::io::ErrorKind::InvalidInput,
    "an argument or environment entry contains a NUL byte",
  )
}

/// The paths to try for `program`: itself if it contains a `/`, else each `PATH` entry joined with it.
fn resolve(program: &OsStr) -> std::io::Result<Vec<CString>> {
  let bytes = program.as_bytes();
  if bytes.is_empty() {
    return Err(std::io::Error::from_raw_os_error(libc::ENOENT));
  }
  if bytes.contains(&b'/') {
    return Ok(vec![CString::new(bytes).map_err(|_| einval())?]);
  }
  let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
  std::env::split_paths(&path)
    .map(|dir| {
      let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
      } else {
        dir
      };
      CString::new(dir.join(program).into_os_string().into_vec()).map_err(|_| einval())
    })
    .collect()
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn programs_are_found_on_path_or_taken_as_given() {
    assert_eq!(
      resolve(OsStr::new("./x")).unwrap(),
      vec![CString::new("./x").unwrap()]
    );
    assert!(!resolve(OsStr::new("sh")).unwrap().is_empty());
    assert!(resolve(OsStr::new("")).is_err());
  }
}
