//! Descriptors when they run out. A process at its descriptor limit (`EMFILE`) — or a system at its own
//! (`ENFILE`) — cannot open the one small file that would answer a question (`/proc/<pid>/stat`, a PID
//! file), and a supervisor that cannot answer "is my daemon alive?" is of no use. So the process keeps one
//! descriptor in reserve (`/dev/null`, opened the first time one is needed): an open that fails for want
//! of a descriptor gives the reserve back to the kernel and tries once more, and the reserve is taken
//! again once descriptors are free. Also here: the soft limit itself, so that pidfds leave room for the
//! rest of the program.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// The reserve, `None` while it is lent out (or before it was first taken).
static RESERVE: Mutex<Option<OwnedFd>> = Mutex::new(None);
/// Whether the reserve is to be (re)taken: at first use, and after it was lent out.
static WANTED: AtomicBool = AtomicBool::new(true);

fn out_of_descriptors(e: &io::Error) -> bool {
  matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

fn take_reserve() {
  let mut reserve = RESERVE.lock().unwrap_or_else(|p| p.into_inner());
  if reserve.is_none() {
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    if let Ok(fd) = nix::fcntl::open("/dev/null", flags, Mode::empty()) {
      *reserve = Some(fd);
      WANTED.store(false, Ordering::Relaxed);
    }
  }
}

/// Runs `open` (which opens one descriptor, uses it and usually closes it); if it fails for want of a
/// descriptor, frees the reserve and runs it once more. Another thread may take the freed slot first:
/// then the second failure is returned.
///
/// # Errors
/// What `open` returned.
pub fn with_reserve<T>(mut open: impl FnMut() -> io::Result<T>) -> io::Result<T> {
  if WANTED.load(Ordering::Relaxed) {
    take_reserve();
  }
  match open() {
    Err(e) if out_of_descriptors(&e) => {
      let mut reserve = RESERVE.lock().unwrap_or_else(|p| p.into_inner());
      if reserve.take().is_none() {
        return Err(e);
      }
      WANTED.store(true, Ordering::Relaxed);
      // The reserve's slot is free now; the lock keeps other users of the reserve out until it is used.
      open()
    }
    other => other,
  }
}

/// The soft limit on this process's descriptors (`RLIMIT_NOFILE`), `None` when unlimited or unknown.
pub fn soft_limit() -> Option<u64> {
  let (soft, _) =
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok()?;
  (soft != nix::sys::resource::RLIM_INFINITY).then_some(soft)
}

/// How many descriptors below the soft limit are left to the rest of the program when pidfds are opened:
/// an eighth of the limit, at least 64. A pidfd whose number reaches `limit - headroom` is not kept (its
/// process is watched by PID and start time instead), so that a supervisor of thousands of daemons never
/// takes the descriptors its program needs for its own files and sockets.
pub fn headroom(limit: u64) -> u64 {
  (limit / 8).max(64)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn the_headroom_is_an_eighth_of_the_limit_and_at_least_64() {
    assert_eq!(headroom(256), 64);
    assert_eq!(headroom(1024), 128);
    assert_eq!(headroom(12_000), 1_500);
  }

  #[test]
  fn an_open_that_ran_out_of_descriptors_is_tried_again_with_the_reserve() {
    let mut calls = 0;
    let out = with_reserve(|| {
      calls += 1;
      if calls == 1 {
        Err(io::Error::from_raw_os_error(libc::EMFILE))
      } else {
        Ok(calls)
      }
    });
    assert_eq!(out.unwrap(), 2);
    let other =
      with_reserve(|| -> io::Result<()> { Err(io::Error::from_raw_os_error(libc::ENOENT)) });
    assert_eq!(other.unwrap_err().raw_os_error(), Some(libc::ENOENT));
  }
}
