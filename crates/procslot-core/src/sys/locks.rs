//! Exclusive byte-range locks that belong to an open file, not to a thread.
//!
//! Linux uses open-file-description locks (`F_OFD_SETLK`): they are owned by the open file description,
//! released when its last descriptor closes or the process dies, and do not conflict with other locks of
//! the same description. macOS has no OFD locks and uses classic `fcntl` record locks, owned by the
//! process; callers must then keep one open of a given file per process (closing any descriptor of the
//! file drops every lock the process holds on it).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

#[cfg(target_os = "linux")]
const SETLK: libc::c_int = libc::F_OFD_SETLK;
#[cfg(target_os = "linux")]
const SETLKW: libc::c_int = libc::F_OFD_SETLKW;
#[cfg(target_os = "linux")]
const GETLK: libc::c_int = libc::F_OFD_GETLK;

#[cfg(not(target_os = "linux"))]
const SETLK: libc::c_int = libc::F_SETLK;
#[cfg(not(target_os = "linux"))]
const SETLKW: libc::c_int = libc::F_SETLKW;
#[cfg(not(target_os = "linux"))]
const GETLK: libc::c_int = libc::F_GETLK;

/// What an attempt to take a lock came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOutcome {
  /// The lock is ours.
  Acquired,
  /// Another open file holds a conflicting lock.
  Busy,
  /// The filesystem refuses byte-range locks (`ENOLCK`, `EOPNOTSUPP`, `ENOSYS`).
  Unsupported,
}

fn flock(kind: libc::c_int, start: u64, len: u64) -> libc::flock {
  // SAFETY: `flock` is a plain C struct of integers; all-zero is a valid value for every field.
  let mut fl: libc::flock = unsafe { std::mem::zeroed() };
  fl.l_type = kind as _;
  fl.l_whence = libc::SEEK_SET as _;
  fl.l_start = start as _;
  fl.l_len = len as _;
  // OFD locks require l_pid == 0 (it already is).
  fl
}

fn fcntl_lock(file: &File, cmd: libc::c_int, fl: &mut libc::flock) -> io::Result<()> {
  loop {
    // SAFETY: the descriptor is open for the lifetime of `file`, and `fl` points to a valid, writable
    // `flock` that outlives the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, fl as *mut libc::flock) };
    if rc != -1 {
      return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.kind() != io::ErrorKind::Interrupted {
      return Err(err);
    }
  }
}

fn is_unsupported(err: &io::Error) -> bool {
  matches!(
    err.raw_os_error(),
    Some(libc::ENOLCK) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
  )
}

/// Takes an exclusive lock on `len` bytes at `start` without waiting.
///
/// # Errors
/// Any failure other than "held by someone else" or "not supported here".
pub fn try_lock(file: &File, start: u64, len: u64) -> io::Result<LockOutcome> {
  let mut fl = flock(libc::F_WRLCK as _, start, len);
  match fcntl_lock(file, SETLK, &mut fl) {
    Ok(()) => Ok(LockOutcome::Acquired),
    Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => {
      Ok(LockOutcome::Busy)
    }
    Err(e) if is_unsupported(&e) => Ok(LockOutcome::Unsupported),
    Err(e) => Err(e),
  }
}

/// Takes an exclusive lock on `len` bytes at `start`, waiting for it as long as it takes. Run it off the
/// JavaScript thread.
///
/// # Errors
/// Any failure other than "not supported here".
pub fn lock_wait(file: &File, start: u64, len: u64) -> io::Result<LockOutcome> {
  let mut fl = flock(libc::F_WRLCK as _, start, len);
  match fcntl_lock(file, SETLKW, &mut fl) {
    Ok(()) => Ok(LockOutcome::Acquired),
    Err(e) if is_unsupported(&e) => Ok(LockOutcome::Unsupported),
    Err(e) => Err(e),
  }
}

/// Takes an exclusive lock on `len` bytes at `start`, waiting for it until `deadline` at the latest
/// ([`LockOutcome::Busy`] then). Used only for short critical sections (growing a file), so a holder
/// that never lets go (stopped, hung, or a foreign program) costs a caller at most its deadline.
///
/// How the wait is bounded: first one `F_OFD_SETLK` try (the common case: nobody holds the lock). Then,
/// on Linux, one blocking `F_OFD_SETLKW` that a per-thread POSIX timer interrupts: `timer_create` with
/// `SIGEV_THREAD_ID` sends a real-time signal to this thread only, caught by a handler installed without
/// `SA_RESTART` that does nothing, so the waiting `fcntl` returns `EINTR`. The timer first fires at the
/// deadline and then every few milliseconds until it is deleted: a signal that lands just before the
/// thread enters `fcntl` (and so interrupts nothing) is followed by another, so no wait can outlive the
/// deadline by more than one interval. No thread per wait and no polling while the lock is held. Where
/// the signal is already used by someone else in this process (its disposition is not the default), or
/// on other platforms, it falls back to `F_SETLK` tries with a doubling back-off (1 to 16 ms).
///
/// # Errors
/// Any failure other than "held" or "not supported here".
pub fn lock_wait_until(
  file: &File,
  start: u64,
  len: u64,
  deadline: std::time::Instant,
) -> io::Result<LockOutcome> {
  match try_lock(file, start, len)? {
    LockOutcome::Busy => {}
    done => return Ok(done),
  }
  #[cfg(target_os = "linux")]
  if let Some(outcome) = timed::lock_wait(file, start, len, deadline)? {
    return Ok(outcome);
  }
  let mut pause = std::time::Duration::from_millis(1);
  loop {
    let now = std::time::Instant::now();
    if now >= deadline {
      return Ok(LockOutcome::Busy);
    }
    std::thread::sleep(pause.min(deadline - now));
    pause = (pause * 2).min(std::time::Duration::from_millis(16));
    match try_lock(file, start, len)? {
      LockOutcome::Busy => {}
      done => return Ok(done),
    }
  }
}

#[cfg(target_os = "linux")]
mod timed {
  use std::fs::File;
  use std::io;
  use std::os::fd::AsRawFd;
  use std::sync::OnceLock;
  use std::time::{Duration, Instant};

  use super::{flock, is_unsupported, LockOutcome, SETLKW};

  /// How often the timer fires again after the deadline (see [`super::lock_wait`]).
  const REPEAT: Duration = Duration::from_millis(2);

  /// The signal that interrupts a timed wait: near the top of the real-time range, which C libraries
  /// reserve at the bottom, and which no runtime we know of (Node.js, libuv, V8) uses.
  fn signal() -> libc::c_int {
    libc::SIGRTMAX() - 3
  }

  extern "C" fn interrupt(_: libc::c_int) {}

  /// Installs the do-nothing handler once, unless the signal already has a handler: `false` then.
  fn installed() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
      // SAFETY: all-zero is a valid `sigaction` (no handler, empty mask, no flags).
      let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
      // SAFETY: querying the disposition (null new action) with a valid out-pointer.
      if unsafe { libc::sigaction(signal(), std::ptr::null(), &mut old) } != 0
        || old.sa_sigaction != libc::SIG_DFL
      {
        return false;
      }
      // SAFETY: as above.
      let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
      action.sa_sigaction = interrupt as extern "C" fn(libc::c_int) as usize;
      action.sa_flags = 0; // no SA_RESTART: the interrupted fcntl must return EINTR
                           // SAFETY: `action` is fully initialised and the mask empty (zeroed); `interrupt` is async-signal
                           // safe (it does nothing).
      unsafe { libc::sigemptyset(&mut action.sa_mask) };
      // SAFETY: a valid action and a null old-action pointer.
      unsafe { libc::sigaction(signal(), &action, std::ptr::null_mut()) == 0 }
    })
  }

  fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
      tv_sec: d.as_secs() as _,
      tv_nsec: d.subsec_nanos() as _,
    }
  }

  /// The timed `F_OFD_SETLKW`. `Ok(None)`: the timer could not be set up; the caller polls instead.
  pub(super) fn lock_wait(
    file: &File,
    start: u64,
    len: u64,
    deadline: Instant,
  ) -> io::Result<Option<LockOutcome>> {
    if !installed() {
      return Ok(None);
    }
    // SAFETY: all-zero is a valid `sigevent`; the fields that matter are set below.
    let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
    event.sigev_notify = libc::SIGEV_THREAD_ID;
    event.sigev_signo = signal();
    // SAFETY: gettid has no preconditions.
    event.sigev_notify_thread_id = unsafe { libc::syscall(libc::SYS_gettid) } as libc::c_int;
    let mut timer: libc::timer_t = std::ptr::null_mut();
    // SAFETY: valid pointers to an initialised event and to the out-parameter.
    if unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut event, &mut timer) } != 0 {
      return Ok(None);
    }
    // SAFETY: all-zero is a valid (empty) signal set; sigaddset/pthread_sigmask get valid pointers.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe {
      libc::sigemptyset(&mut set);
      libc::sigaddset(&mut set, signal());
      libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, &mut old);
    }
    let spec = libc::itimerspec {
      // A zero first expiry would disarm the timer: at least one nanosecond.
      it_value: timespec(
        deadline
          .saturating_duration_since(Instant::now())
          .max(Duration::from_nanos(1)),
      ),
      it_interval: timespec(REPEAT),
    };
    // SAFETY: `timer` was created above; `spec` is valid; the old value is not wanted.
    let armed = unsafe { libc::timer_settime(timer, 0, &spec, std::ptr::null_mut()) } == 0;
    let outcome = if armed {
      let mut fl = flock(libc::F_WRLCK as _, start, len);
      loop {
        // SAFETY: the descriptor is open for the lifetime of `file`; `fl` is a valid flock.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), SETLKW, &mut fl as *mut libc::flock) };
        if rc != -1 {
          break Ok(Some(LockOutcome::Acquired));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
          Some(libc::EINTR) if Instant::now() >= deadline => break Ok(Some(LockOutcome::Busy)),
          Some(libc::EINTR) => continue,
          _ if is_unsupported(&err) => break Ok(Some(LockOutcome::Unsupported)),
          _ => break Err(err),
        }
      }
    } else {
      Ok(None)
    };
    // SAFETY: the timer is ours and deleted once; the mask restored is the one saved above. A signal
    // still pending for this thread is delivered to the do-nothing handler whenever it is unblocked.
    unsafe {
      libc::timer_delete(timer);
      libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
    outcome
  }
}

/// Drops our lock on `len` bytes at `start` (a no-op where we hold none).
///
/// # Errors
/// The `fcntl` failure, if any.
pub fn unlock(file: &File, start: u64, len: u64) -> io::Result<()> {
  let mut fl = flock(libc::F_UNLCK as _, start, len);
  match fcntl_lock(file, SETLK, &mut fl) {
    Err(e) if is_unsupported(&e) => Ok(()),
    other => other,
  }
}

/// What [`probe_lock`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockProbe {
  /// No other open file holds a lock in the range.
  Free,
  /// Another open file holds a lock on `len` bytes at `start` (`len` 0: to the end of any file) that
  /// overlaps the range; there may be more.
  Held {
    /// First byte of the lock found.
    start: u64,
    /// Its length; 0 means "to infinity".
    len: u64,
  },
  /// The filesystem refuses byte-range locks.
  Unsupported,
}

/// Looks for a lock of another open file (another process) in `len` bytes at `start` that conflicts
/// with an exclusive lock. Our own locks never conflict.
///
/// # Errors
/// Any `fcntl` failure other than "not supported here".
pub fn probe_lock(file: &File, start: u64, len: u64) -> io::Result<LockProbe> {
  let mut fl = flock(libc::F_WRLCK as _, start, len);
  match fcntl_lock(file, GETLK, &mut fl) {
    Ok(()) if fl.l_type as libc::c_int == libc::F_UNLCK as libc::c_int => Ok(LockProbe::Free),
    Ok(()) => Ok(LockProbe::Held {
      start: fl.l_start as u64,
      len: fl.l_len as u64,
    }),
    Err(e) if is_unsupported(&e) => Ok(LockProbe::Unsupported),
    Err(e) => Err(e),
  }
}
