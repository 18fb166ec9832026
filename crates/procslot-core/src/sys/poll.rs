//! Waiting on descriptors (`poll`): for pidfds, which become readable when their process exits and
//! report a hang-up once it is reaped, and for any other descriptor a wait watches.

use std::os::fd::OwnedFd;
use std::time::Duration;

/// Milliseconds for `poll`, rounded up so that a wait never ends early.
pub fn clamp_ms(d: Duration) -> i32 {
  let ms = d.as_nanos().div_ceil(1_000_000);
  ms.min(i32::MAX as u128) as i32
}

/// Waits until any of `fds` is readable or `timeout_ms` passes.
pub fn poll_any(fds: &[&OwnedFd], timeout_ms: i32) {
  use std::os::fd::AsRawFd;
  let mut pfds: Vec<libc::pollfd> = fds
    .iter()
    .map(|fd| libc::pollfd {
      fd: fd.as_raw_fd(),
      events: libc::POLLIN,
      revents: 0,
    })
    .collect();
  // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structs for the duration of the call.
  unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
}

/// Whether `fd` reports a hang-up within `timeout_ms` (a pidfd does once its process is reaped, on
/// Linux 6.9 and later).
pub fn poll_hangup(fd: &OwnedFd, timeout_ms: i32) -> bool {
  use std::os::fd::AsRawFd;
  let mut pfd = libc::pollfd {
    fd: fd.as_raw_fd(),
    events: 0,
    revents: 0,
  };
  // SAFETY: `pfd` is one valid pollfd for the duration of the call.
  let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
  rc > 0 && pfd.revents & libc::POLLHUP != 0
}

/// Whether `fd` is readable within `timeout_ms` (a pidfd is readable once its process exited).
pub fn poll_readable(fd: &OwnedFd, timeout_ms: i32) -> bool {
  use std::os::fd::AsRawFd;
  let mut pfd = libc::pollfd {
    fd: fd.as_raw_fd(),
    events: libc::POLLIN,
    revents: 0,
  };
  // SAFETY: `pfd` is one valid pollfd for the duration of the call.
  let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
  rc > 0 && pfd.revents != 0
}
