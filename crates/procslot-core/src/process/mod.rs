//! Process identity: a handle on one particular process, not on a PID number.
//!
//! A PID is reused as soon as its process has been reaped, so "signal PID 1234" can hit a stranger. A
//! [`ProcessHandle`] pins the process by its start time (and, on Linux, by a pidfd that refers to the
//! process itself): it answers whether *that* process is alive, signals only *that* process (or the
//! process group it leads), and waits for *that* process to exit — on the pidfd, without polling, where
//! the kernel has one. Stopping a process and the group it leads is `stop`'s.

mod stop;

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::{getpgid, Pid};

pub use stop::{StopBegun, Stopped};

use crate::error::{Error, Result};
use crate::sys::{self, ProcStat};

/// What the process table says of a PID, on the wall clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Identity {
  /// The PID.
  pub pid: u32,
  /// The start time in the platform's raw unit (Linux: clock ticks since boot): equal start times mean
  /// the same process.
  pub start_time: u64,
  /// The start time in milliseconds since the epoch.
  pub start_time_ms: f64,
  /// The process has exited and waits to be reaped.
  pub zombie: bool,
}

impl Identity {
  /// The start tag a slot word keeps of this process (see [`ProcStat::start_tag`]).
  pub fn start_tag(&self) -> u32 {
    sys::start_tag(self.start_time)
  }
}

/// Whether `pid` can name a process at all: init, or a PID a daemon can have ([`daemon_pids`]: below
/// the system's PID limit — Linux's `pid_max` is one more than the largest PID it hands out; so is
/// macOS's).
pub fn possible_pid(pid: u32) -> bool {
  possible_pid_under(pid, sys::pid_max())
}

/// [`possible_pid`] under the limit `pid_max` (a slot holder's check takes it from its probe).
pub fn possible_pid_under(pid: u32, pid_max: u32) -> bool {
  pid == 1 || daemon_pids(pid_max).contains(&u64::from(pid))
}

/// The PIDs a daemon can have under the system's limit `pid_max`: from 2 (1 is init) up to, not
/// including, `pid_max` — [`possible_pid`] without init. The one rule for PID files (what they may hold,
/// what may be written to them) and process handles.
pub fn daemon_pids(pid_max: u32) -> std::ops::Range<u64> {
  2..u64::from(pid_max)
}

/// Refuses (`EINVAL`) a PID that is never a daemon's ([`daemon_pids`]); `what` the PID cannot do, for
/// the message ("be a supervised process").
pub(crate) fn daemon_pid(pid: u32, what: &str) -> Result<()> {
  let pid_max = sys::pid_max();
  if daemon_pids(pid_max).contains(&u64::from(pid)) {
    return Ok(());
  }
  Err(Error::InvalidArgument(format!(
    "PID {pid} cannot {what} (it must be between 2 and {})",
    pid_max - 1
  )))
}

/// The identity of `pid`, `Ok(None)` when there is no such process (or the PID cannot be one: 0, or
/// at or above the system's limit).
///
/// # Errors
/// The process table could not be read.
pub fn identity(pid: u32) -> Result<Option<Identity>> {
  if !possible_pid(pid) {
    return Ok(None);
  }
  let stat = sys::proc_stat(pid).map_err(|e| Error::process_io(pid, "read its status", &e))?;
  Ok(stat.map(|st| to_identity(pid, st)))
}

fn to_identity(pid: u32, st: ProcStat) -> Identity {
  Identity {
    pid,
    start_time: st.start_time,
    start_time_ms: sys::start_time_ms(st.start_time),
    zombie: st.zombie,
  }
}

/// How far apart (milliseconds) two wall-clock times must be before "started after" can be trusted:
/// the start time's own granularity (one clock tick) plus slack for file timestamps and clock
/// adjustments.
pub fn start_time_slack_ms() -> f64 {
  sys::start_time_granularity_ms() + 1000.0
}

/// Whether a process that started at `start_time_ms` cannot be the one a file written at
/// `written_ms` names: it started after the file was written (beyond the clock's granularity), so the PID
/// in the file was reused.
pub fn started_after(start_time_ms: f64, written_ms: f64) -> bool {
  start_time_ms > written_ms + start_time_slack_ms()
}

/// What a signal reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signalled {
  /// The process group the process leads.
  Group,
  /// The process alone (it does not lead its own group, so the group cannot be tied to it).
  Process,
  /// Nothing: the process is gone (or its PID now belongs to another process).
  Gone,
}

impl Signalled {
  /// What the signal reached, as the binding spells it: `group`, `process` or `gone`.
  pub fn as_str(self) -> &'static str {
    match self {
      Signalled::Group => "group",
      Signalled::Process => "process",
      Signalled::Gone => "gone",
    }
  }
}

/// One particular process, pinned by its start time and, where the kernel has them, by a pidfd.
#[derive(Debug)]
pub struct ProcessHandle {
  pid: u32,
  start_time: u64,
  start_time_ms: f64,
  pidfd: Option<OwnedFd>,
  /// Why there is no pidfd (an errno: `ENOSYS` no pidfds on this kernel, `EMFILE` out of descriptors).
  no_pidfd: Option<i32>,
}

impl ProcessHandle {
  /// A handle on the live process `pid`. With `expected_start` (a raw start time from an earlier
  /// [`Identity`]), only that very process: `Ok(None)` when `pid` now names another one. `Ok(None)` too
  /// when there is no such process or it is a zombie.
  ///
  /// The handle holds a pidfd where the kernel has them and descriptors allow: a pidfd that would leave
  /// the program less than its headroom (`sys::headroom`) below the descriptor limit is not kept, and the
  /// process is then looked at by PID and start time ([`why_no_pidfd`](Self::why_no_pidfd) says why).
  /// When even the process table cannot be read for want of descriptors, a handle with `expected_start`
  /// is given all the same if the PID exists: it is checked again whenever it is looked at.
  ///
  /// # Errors
  /// `EINVAL` for PIDs that are never a daemon's (0, 1, at or above the limit); the process table
  /// unreadable (without `expected_start`, or for another reason than descriptors).
  pub fn open(pid: u32, expected_start: Option<u64>) -> Result<Option<Self>> {
    daemon_pid(pid, "be a supervised process")?;
    // Open the pidfd first, then read the start time: if the start time is the expected one, the pidfd
    // (taken earlier) refers to that same process, which cannot have been replaced in between without
    // changing the start time.
    let (pidfd, no_pidfd) = match sys::pidfd_open(pid) {
      Ok(fd) if within_headroom(&fd) => (Some(fd), None),
      Ok(_) => (None, Some(libc::EMFILE)),
      Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
      Err(e) => (None, Some(e.raw_os_error().unwrap_or(libc::ENOSYS))),
    };
    let id = match identity(pid) {
      Ok(Some(id)) => id,
      Ok(None) => return Ok(None),
      Err(e) => match (expected_start, e.errno()) {
        (Some(start), Some(libc::EMFILE | libc::ENFILE)) if exists(pid) => Identity {
          pid,
          start_time: start,
          start_time_ms: sys::start_time_ms(start),
          zombie: false,
        },
        _ => return Err(e),
      },
    };
    if id.zombie || expected_start.is_some_and(|s| s != id.start_time) {
      return Ok(None);
    }
    let handle = ProcessHandle {
      pid,
      start_time: id.start_time,
      start_time_ms: id.start_time_ms,
      pidfd,
      no_pidfd,
    };
    // A pidfd taken on a process that died just before a new one got its PID would be readable now.
    if handle.pidfd.is_some() && !handle.is_alive() {
      return Ok(None);
    }
    Ok(Some(handle))
  }

  /// The PID.
  pub fn pid(&self) -> u32 {
    self.pid
  }

  /// The raw start time (see [`Identity::start_time`]).
  pub fn start_time(&self) -> u64 {
    self.start_time
  }

  /// The start time in milliseconds since the epoch.
  pub fn start_time_ms(&self) -> f64 {
    self.start_time_ms
  }

  /// Whether the handle holds a pidfd (exact waits and signals) or falls back to start-time checks.
  pub fn has_pidfd(&self) -> bool {
    self.pidfd.is_some()
  }

  /// Why the handle holds no pidfd, as an errno: `ENOSYS` (or what a sandbox answers) where the kernel
  /// has none, `EMFILE`/`ENFILE` where descriptors ran out or would have left the program too few.
  /// `None` when it has one.
  pub fn why_no_pidfd(&self) -> Option<i32> {
    self.no_pidfd
  }

  /// Whether this process is still running (not exited, not a zombie, its PID not reused). With a pidfd
  /// this is one `poll` with no timeout. Without one, the process table is read; where even that is
  /// impossible for now (no descriptor at all), a PID that exists counts as alive.
  pub fn is_alive(&self) -> bool {
    match &self.pidfd {
      Some(fd) => !sys::poll_readable(fd, 0),
      None => self.same_process().unwrap_or_else(|| exists(self.pid)),
    }
  }

  /// Whether the process table still shows this process, running; `None` when it cannot be read now.
  fn same_process(&self) -> Option<bool> {
    match sys::proc_stat(self.pid) {
      Ok(Some(st)) => Some(!st.zombie && st.start_time == self.start_time),
      Ok(None) => Some(false),
      Err(_) => None,
    }
  }

  /// The process table still shows this process, running (`false` when it cannot be read: nothing is
  /// signalled on a guess).
  fn still_same(&self) -> bool {
    self.same_process() == Some(true)
  }

  /// Sends `sig` to this process alone. `Ok(false)` when it is gone.
  ///
  /// # Errors
  /// The signal was refused (`EPERM`).
  pub fn signal(&self, sig: Signal) -> Result<bool> {
    // With a pidfd the signal reaches this very process or nobody; without one, only after the process
    // table confirmed it.
    if !self.is_alive() || (self.pidfd.is_none() && !self.still_same()) {
      return Ok(false);
    }
    let res = match &self.pidfd {
      Some(fd) => sys::pidfd_send_signal(fd, sig as libc::c_int),
      None => kill(Pid::from_raw(self.pid as i32), sig).map_err(std::io::Error::from),
    };
    match res {
      Ok(()) => Ok(true),
      Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
      Err(e) => Err(Error::process_io(self.pid, &format!("send {sig}"), &e)),
    }
  }

  /// Sends `sig` to the process group this process leads — a daemon started in its own group takes its
  /// children with it — or, when it does not lead its group (the group cannot be tied to it), to the
  /// process alone. Never to a group id <= 1, never after the PID was reused.
  ///
  /// # Errors
  /// The signal was refused (`EPERM`).
  pub fn signal_group(&self, sig: Signal) -> Result<Signalled> {
    // The group is tied to the process by its ID only while the process lives: confirmed by the pidfd,
    // or by the process table.
    if !self.is_alive() || (self.pidfd.is_none() && !self.still_same()) {
      return Ok(Signalled::Gone);
    }
    let pid = Pid::from_raw(self.pid as i32);
    match getpgid(Some(pid)) {
      Ok(pgid) if pgid == pid && pgid.as_raw() > 1 => match killpg(pgid, sig) {
        Ok(()) => Ok(Signalled::Group),
        Err(Errno::ESRCH) => Ok(Signalled::Gone),
        Err(e) => Err(Error::process_io(
          self.pid,
          &format!("send {sig} to its process group"),
          &e.into(),
        )),
      },
      Ok(_) => Ok(if self.signal(sig)? {
        Signalled::Process
      } else {
        Signalled::Gone
      }),
      Err(Errno::ESRCH) => Ok(Signalled::Gone),
      Err(e) => Err(Error::process_io(
        self.pid,
        "read its process group",
        &e.into(),
      )),
    }
  }

  /// Waits up to `timeout` for this process to exit; whether it did. With a pidfd this blocks in `poll`
  /// on it; without one, it looks again at growing intervals (1 ms up to 20 ms).
  pub fn wait_exit(&self, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    match &self.pidfd {
      Some(fd) => loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if sys::poll_readable(fd, sys::clamp_ms(left)) {
          return true;
        }
        if left.is_zero() {
          return false;
        }
      },
      None => {
        let mut pause = Duration::from_millis(1);
        loop {
          if !self.still_same() {
            return true;
          }
          let left = deadline.saturating_duration_since(Instant::now());
          if left.is_zero() {
            return false;
          }
          std::thread::sleep(pause.min(left));
          pause = (pause * 2).min(Duration::from_millis(20));
        }
      }
    }
  }

  /// The pidfd, for waiting on it together with other descriptors.
  pub(crate) fn pidfd(&self) -> Option<&OwnedFd> {
    self.pidfd.as_ref()
  }
}

/// Whether the PID names a process now (`kill(pid, 0)` does not say `ESRCH`): the last resort where the
/// process table cannot be read.
fn exists(pid: u32) -> bool {
  i32::try_from(pid).is_ok_and(|p| !matches!(kill(Pid::from_raw(p), None), Err(Errno::ESRCH)))
}

/// Whether a new pidfd leaves the program its headroom below the descriptor limit (descriptors are
/// handed out lowest first, so the number says how many are open at least).
fn within_headroom(fd: &OwnedFd) -> bool {
  use std::os::fd::AsRawFd;
  sys::soft_limit().is_none_or(|limit| (fd.as_raw_fd() as u64) + sys::headroom(limit) < limit)
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::process::{Command, Stdio};

  fn sleeper() -> std::process::Child {
    Command::new("sleep")
      .arg("30")
      .stdin(Stdio::null())
      .spawn()
      .unwrap()
  }

  #[test]
  fn a_handle_follows_its_process_and_refuses_impossible_pids() {
    assert!(ProcessHandle::open(0, None).is_err());
    assert!(ProcessHandle::open(1, None).is_err());
    assert!(ProcessHandle::open(u32::MAX, None).is_err());
    let mut child = sleeper();
    let h = ProcessHandle::open(child.id(), None).unwrap().unwrap();
    assert!(h.is_alive());
    assert!(
      ProcessHandle::open(child.id(), Some(h.start_time() + 1))
        .unwrap()
        .is_none(),
      "another start time is another process"
    );
    assert!(!h.wait_exit(Duration::from_millis(10)));
    assert!(h.signal(Signal::SIGTERM).unwrap());
    assert!(h.wait_exit(Duration::from_secs(10)));
    assert!(!h.is_alive());
    child.wait().unwrap();
    assert!(
      !h.signal(Signal::SIGTERM).unwrap(),
      "a dead process is never signalled"
    );
    assert_eq!(h.signal_group(Signal::SIGTERM).unwrap(), Signalled::Gone);
  }

  #[test]
  fn a_process_that_does_not_lead_its_group_is_signalled_alone() {
    let mut child = sleeper();
    let h = ProcessHandle::open(child.id(), None).unwrap().unwrap();
    assert_eq!(h.signal_group(Signal::SIGKILL).unwrap(), Signalled::Process);
    assert!(h.wait_exit(Duration::from_secs(10)));
    child.wait().unwrap();
  }

  #[test]
  fn stop_group_waits_for_members_that_ignore_sigterm() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    // A leader in its own group whose child ignores SIGTERM; the leader exits on it.
    let mut child = Command::new("sh")
      .args(["-c", "(trap '' TERM; echo ready; exec sleep 600) & wait"])
      .process_group(0)
      .stdout(Stdio::piped())
      .spawn()
      .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
      .read_line(&mut line)
      .unwrap();
    assert_eq!(line, "ready\n");
    let h = ProcessHandle::open(child.id(), None).unwrap().unwrap();
    let groups = sys::process_groups().unwrap().unwrap();
    assert!(groups[&child.id()].len() >= 2, "{groups:?}");
    let out = h
      .stop_group(false, Duration::from_millis(200), Duration::from_secs(10))
      .unwrap();
    assert!(out.gone);
    assert_eq!(out.signal, Some(Signal::SIGKILL));
    child.wait().unwrap();
    assert!(!sys::process_groups()
      .unwrap()
      .unwrap()
      .contains_key(&h.pid()));
  }

  #[test]
  fn a_reused_pid_started_after_the_file() {
    let now = 1_700_000_000_000.0;
    assert!(started_after(now + 5_000.0, now));
    assert!(!started_after(now + 10.0, now), "within the granularity");
    assert!(!started_after(now - 5_000.0, now));
  }
}
