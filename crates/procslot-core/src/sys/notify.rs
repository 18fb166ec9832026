//! Being told that an open file changed, without looking at it again and again.
//!
//! A [`Notifier`] watches open files (Linux: inotify, through `/proc/self/fd/<n>`, so that it is the open
//! file that is watched even when its path now names another file or nothing) and can be woken from
//! another thread (a pipe). Where inotify is missing or refused — another platform, a process that has
//! used up its inotify instances (`fs.inotify.max_user_instances`, 128 per user by default) — it has no
//! watches and the caller looks again at a short interval instead ([`Notifier::watching`] is `false`).
//!
//! The events watched are those another process causes on a slot file: a read (`IN_ACCESS`: a releaser
//! reads one byte once it has let go of a slot, see `slots`), a change of size (`IN_MODIFY`: grown), and
//! the last close of a writable open (`IN_CLOSE_WRITE`: a holder that exited or died, its lock dropped —
//! the kernel reports the close a moment *before* it drops the closing file's locks).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// What woke a [`Notifier::wait`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fired {
  /// The watches that saw an event, and whether any of those events was a close (see the module's
  /// note: the closing file's locks may still be there for a moment).
  pub watches: Vec<(i32, bool)>,
  /// The queue overflowed (or cannot be read): anything may have changed.
  pub all: bool,
}

/// A set of watched files and a way to wake whoever waits on them.
#[derive(Debug)]
pub struct Notifier {
  #[cfg(target_os = "linux")]
  inotify: Option<OwnedFd>,
  wake_read: OwnedFd,
  wake_write: OwnedFd,
}

impl Notifier {
  /// A notifier; without inotify (see the module's note), one that only wakes.
  ///
  /// # Errors
  /// The wake-up pipe could not be made (out of descriptors).
  pub fn new() -> io::Result<Notifier> {
    let (wake_read, wake_write) = wake_pipe()?;
    Ok(Notifier {
      #[cfg(target_os = "linux")]
      inotify: imp::init(),
      wake_read,
      wake_write,
    })
  }

  /// Whether files can be watched (else the caller must look again at an interval).
  pub fn watching(&self) -> bool {
    #[cfg(target_os = "linux")]
    return self.inotify.is_some();
    #[cfg(not(target_os = "linux"))]
    return false;
  }

  /// Watches the open `file`; its watch descriptor, `None` when it cannot be watched (no inotify, or
  /// `fs.inotify.max_user_watches` reached). Watching one file twice gives the same descriptor.
  pub fn watch(&self, file: &File) -> Option<i32> {
    #[cfg(target_os = "linux")]
    return imp::watch(self.inotify.as_ref()?, file);
    #[cfg(not(target_os = "linux"))]
    {
      let _ = file;
      None
    }
  }

  /// Stops a watch.
  pub fn unwatch(&self, wd: i32) {
    #[cfg(target_os = "linux")]
    if let Some(fd) = &self.inotify {
      imp::unwatch(fd, wd);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = wd;
  }

  /// Wakes a [`wait`](Self::wait) in progress (or the next one). From any thread.
  pub fn wake(&self) {
    let _ = nix::unistd::write(&self.wake_write, &[1u8]);
  }

  /// Waits until a watched file sees an event, [`wake`](Self::wake) is called, or `timeout` passes
  /// (`None`: no limit); what fired.
  pub fn wait(&self, timeout: Option<Duration>) -> Fired {
    let mut fds = vec![libc::pollfd {
      fd: self.wake_read.as_raw_fd(),
      events: libc::POLLIN,
      revents: 0,
    }];
    #[cfg(target_os = "linux")]
    if let Some(ino) = &self.inotify {
      fds.push(libc::pollfd {
        fd: ino.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
      });
    }
    let ms = timeout.map_or(-1, super::clamp_ms);
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the duration of the call.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    let mut drain = [0u8; 64];
    while matches!(nix::unistd::read(&self.wake_read, &mut drain), Ok(n) if n > 0) {}
    #[cfg(target_os = "linux")]
    if let Some(ino) = &self.inotify {
      return imp::read_events(ino);
    }
    Fired::default()
  }
}

/// A non-blocking pipe that closes on `execve` (created so, where the platform allows: no window in
/// which a `fork` elsewhere could inherit it).
fn wake_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
  #[cfg(target_os = "linux")]
  return Ok(nix::unistd::pipe2(
    nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC,
  )?);
  #[cfg(not(target_os = "linux"))]
  {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
    let (r, w) = nix::unistd::pipe()?;
    for fd in [&r, &w] {
      fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
      fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    }
    Ok((r, w))
  }
}

#[cfg(target_os = "linux")]
mod imp {
  use std::fs::File;
  use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

  use super::Fired;

  /// A releaser's read, a growth, a writable open's last close.
  const EVENTS: u32 = libc::IN_ACCESS | libc::IN_MODIFY | libc::IN_CLOSE_WRITE;

  pub fn init() -> Option<OwnedFd> {
    // SAFETY: inotify_init1 takes a flags word and returns a new descriptor or -1.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    // SAFETY: the kernel just handed us this descriptor; nothing else owns it.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
  }

  pub fn watch(ino: &OwnedFd, file: &File) -> Option<i32> {
    // The open file itself, whatever its path names now: /proc/self/fd/<n> is followed to it.
    let path = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    // SAFETY: both arguments are valid for the duration of the call.
    let wd = unsafe { libc::inotify_add_watch(ino.as_raw_fd(), path.as_ptr(), EVENTS) };
    (wd >= 0).then_some(wd)
  }

  pub fn unwatch(ino: &OwnedFd, wd: i32) {
    // SAFETY: plain integers; an unknown watch gives EINVAL.
    unsafe { libc::inotify_rm_watch(ino.as_raw_fd(), wd) };
  }

  /// Everything queued, as the watches that fired.
  pub fn read_events(ino: &OwnedFd) -> Fired {
    let mut fired = Fired::default();
    // Aligned for `inotify_event`.
    let mut buf = [0u64; 512];
    loop {
      // SAFETY: `buf` is writable for its whole size for the duration of the call.
      let n = unsafe {
        libc::read(
          ino.as_raw_fd(),
          buf.as_mut_ptr().cast(),
          std::mem::size_of_val(&buf),
        )
      };
      if n <= 0 {
        return fired;
      }
      let bytes = n as usize;
      let base = buf.as_ptr().cast::<u8>();
      let mut at = 0;
      while at + std::mem::size_of::<libc::inotify_event>() <= bytes {
        // SAFETY: the kernel wrote whole events; `at` is the start of one, inside the bytes read.
        let ev = unsafe { std::ptr::read_unaligned(base.add(at).cast::<libc::inotify_event>()) };
        if ev.mask & libc::IN_Q_OVERFLOW != 0 {
          fired.all = true;
        } else if ev.mask & libc::IN_IGNORED == 0 {
          let closed = ev.mask & libc::IN_CLOSE_WRITE != 0;
          match fired.watches.iter_mut().find(|(wd, _)| *wd == ev.wd) {
            Some(seen) => seen.1 |= closed,
            None => fired.watches.push((ev.wd, closed)),
          }
        }
        at += std::mem::size_of::<libc::inotify_event>() + ev.len as usize;
      }
    }
  }
}
