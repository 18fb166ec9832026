//! Process identity: a handle on one particular process, not on a PID number.
//!
//! A PID is reused as soon as its process has been reaped, so "signal PID 1234" can hit a stranger. A
//! [`ProcessHandle`] pins the process by its start time (and, on Linux, by a pidfd that refers to the
//! process itself): it answers whether *that* process is alive, signals only *that* process (or the
//! process group it leads), and waits for *that* process to exit — on the pidfd, without polling, where
//! the kernel has one.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::{getpgid, Pid};

use crate::error::{Error, Result};
use crate::liveness::ProcStat;
use crate::sys;

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

/// The identity of `pid`, `Ok(None)` when there is no such process (or the PID cannot be one: 0, or
/// above the system's limit).
///
/// # Errors
/// The process table could not be read.
pub fn identity(pid: u32) -> Result<Option<Identity>> {
  if pid == 0 || pid > sys::pid_max() {
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

/// How [`ProcessHandle::stop_group`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
  /// The strongest signal sent (`None`: the process was already gone).
  pub signal: Option<Signal>,
  /// Whether the process and every member of its process group are gone.
  pub gone: bool,
}

/// One particular process, pinned by its start time and, where the kernel has them, by a pidfd.
#[derive(Debug)]
pub struct ProcessHandle {
  pid: u32,
  start_time: u64,
  start_time_ms: f64,
  pidfd: Option<OwnedFd>,
}

impl ProcessHandle {
  /// A handle on the live process `pid`. With `expected_start` (a raw start time from an earlier
  /// [`Identity`]), only that very process: `Ok(None)` when `pid` now names another one. `Ok(None)` too
  /// when there is no such process or it is a zombie.
  ///
  /// # Errors
  /// `EINVAL` for PIDs that are never a daemon's (0, 1, above the limit); the process table unreadable.
  pub fn open(pid: u32, expected_start: Option<u64>) -> Result<Option<Self>> {
    if pid <= 1 || pid > sys::pid_max() {
      return Err(Error::InvalidArgument(format!(
        "PID {pid} cannot be a supervised process (it must be between 2 and {})",
        sys::pid_max()
      )));
    }
    // Open the pidfd first, then read the start time: if the start time is the expected one, the pidfd
    // (taken earlier) refers to that same process, which cannot have been replaced in between without
    // changing the start time.
    let pidfd = match sys::pidfd_open(pid) {
      Ok(fd) => fd,
      Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
      Err(_) => None, // out of descriptors and the like: fall back to start-time checks
    };
    let Some(id) = identity(pid)? else {
      return Ok(None);
    };
    if id.zombie || expected_start.is_some_and(|s| s != id.start_time) {
      return Ok(None);
    }
    let handle = ProcessHandle {
      pid,
      start_time: id.start_time,
      start_time_ms: id.start_time_ms,
      pidfd,
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

  /// Whether this process is still running (not exited, not a zombie, its PID not reused). With a pidfd
  /// this is one `poll` with no timeout.
  pub fn is_alive(&self) -> bool {
    match &self.pidfd {
      Some(fd) => !poll_readable(fd, 0),
      None => self.still_same(),
    }
  }

  /// The process table still shows this process, running.
  fn still_same(&self) -> bool {
    matches!(
      sys::proc_stat(self.pid),
      Ok(Some(st)) if !st.zombie && st.start_time == self.start_time
    )
  }

  /// Sends `sig` to this process alone. `Ok(false)` when it is gone.
  ///
  /// # Errors
  /// The signal was refused (`EPERM`).
  pub fn signal(&self, sig: Signal) -> Result<bool> {
    if !self.is_alive() || !self.still_same() {
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
    if !self.is_alive() || !self.still_same() {
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
        if poll_readable(fd, clamp_ms(left)) {
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

  /// Stops this process and the process group it leads: SIGTERM then SIGCONT (a stopped process can act
  /// on it) to the group, or SIGKILL at once with `force`; waits up to `grace` for the process **and
  /// every member of its group** to be gone, then SIGKILLs whoever is left and waits up to `after_kill`
  /// more. Members are found by their process group in the process table and signalled through their
  /// own pidfds once the leader is gone, so a reused group ID is never signalled. A process that does
  /// not lead its group is stopped alone.
  ///
  /// # Errors
  /// A signal was refused (`EPERM`) or the process table could not be read.
  pub fn stop_group(&self, force: bool, grace: Duration, after_kill: Duration) -> Result<Stopped> {
    let pgid = self.pid;
    let leads =
      self.is_alive() && matches!(sys::process_group(self.pid), Ok(Some((g, _))) if g == pgid);
    let first = if force {
      Signal::SIGKILL
    } else {
      Signal::SIGTERM
    };
    let mut signal = match self.signal_group(first)? {
      Signalled::Gone => None,
      _ => Some(first),
    };
    if signal.is_some() && !force {
      self.signal_group(Signal::SIGCONT)?;
    }
    let mut deadline = Instant::now() + if force { after_kill } else { grace };
    let mut killed = force;
    loop {
      let mut left: Vec<ProcessHandle> = Vec::new();
      if leads {
        match sys::group_members(pgid) {
          Ok(Some(pids)) => {
            for pid in pids.into_iter().filter(|&p| p != self.pid && p > 1) {
              if let Some(member) = ProcessHandle::open(pid, None)? {
                // Opened, then checked: the pidfd is of a process that was in the group.
                if matches!(sys::process_group(pid), Ok(Some((g, false))) if g == pgid) {
                  left.push(member);
                }
              }
            }
          }
          Ok(None) => {
            // No listing here: the group is empty once `kill(-pgid, 0)` finds nobody.
            if self.is_alive() || group_exists(pgid) {
              if Instant::now() >= deadline {
                if killed {
                  return Ok(Stopped {
                    signal,
                    gone: false,
                  });
                }
                if self.is_alive() {
                  self.signal_group(Signal::SIGKILL)?;
                } else if group_exists(pgid) {
                  let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
                }
                signal = Some(Signal::SIGKILL);
                killed = true;
                deadline = Instant::now() + after_kill;
              }
              std::thread::sleep(Duration::from_millis(5));
              continue;
            }
            return Ok(Stopped { signal, gone: true });
          }
          Err(e) => return Err(Error::process_io(self.pid, "list its process group", &e)),
        }
      }
      let leader_alive = self.is_alive();
      if !leader_alive && left.is_empty() {
        return Ok(Stopped { signal, gone: true });
      }
      if Instant::now() >= deadline {
        if killed {
          return Ok(Stopped {
            signal,
            gone: false,
          });
        }
        if leader_alive {
          self.signal(Signal::SIGKILL)?;
        }
        for m in &left {
          m.signal(Signal::SIGKILL)?;
        }
        signal = Some(Signal::SIGKILL);
        killed = true;
        deadline = Instant::now() + after_kill;
        continue;
      }
      let mut fds: Vec<&OwnedFd> = Vec::new();
      if leader_alive {
        if let Some(fd) = self.pidfd() {
          fds.push(fd);
        }
      }
      fds.extend(left.iter().filter_map(|m| m.pidfd()));
      let wait = deadline.saturating_duration_since(Instant::now());
      if fds.is_empty() {
        // No pidfds (an old kernel): look again soon.
        std::thread::sleep(wait.min(Duration::from_millis(5)));
      } else {
        poll_any(&fds, clamp_ms(wait));
      }
    }
  }

  /// The pidfd, for waiting on it together with other descriptors.
  pub(crate) fn pidfd(&self) -> Option<&OwnedFd> {
    self.pidfd.as_ref()
  }
}

/// Milliseconds for `poll`, rounded up so that a wait never ends early.
pub(crate) fn clamp_ms(d: Duration) -> i32 {
  let ms = d.as_nanos().div_ceil(1_000_000);
  ms.min(i32::MAX as u128) as i32
}

/// Whether any process is in process group `pgid` (`kill(-pgid, 0)`).
fn group_exists(pgid: u32) -> bool {
  pgid > 1 && !matches!(killpg(Pid::from_raw(pgid as i32), None), Err(Errno::ESRCH))
}

/// Waits until any of `fds` is readable or `timeout_ms` passes.
fn poll_any(fds: &[&OwnedFd], timeout_ms: i32) {
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

/// Whether `fd` is readable within `timeout_ms` (a pidfd is readable once its process exited).
fn poll_readable(fd: &OwnedFd, timeout_ms: i32) -> bool {
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
    let members = sys::group_members(child.id()).unwrap().unwrap();
    assert!(members.len() >= 2, "{members:?}");
    let out = h
      .stop_group(false, Duration::from_millis(200), Duration::from_secs(10))
      .unwrap();
    assert!(out.gone);
    assert_eq!(out.signal, Some(Signal::SIGKILL));
    child.wait().unwrap();
    assert_eq!(
      sys::group_members(h.pid()).unwrap().unwrap(),
      Vec::<u32>::new()
    );
  }

  #[test]
  fn a_reused_pid_started_after_the_file() {
    let now = 1_700_000_000_000.0;
    assert!(started_after(now + 5_000.0, now));
    assert!(!started_after(now + 10.0, now), "within the granularity");
    assert!(!started_after(now - 5_000.0, now));
  }
}
