//! Stopping a process and the process group it leads: SIGTERM (with SIGCONT), a grace period, SIGKILL
//! to whoever is left — waiting on pidfds, and listing the group's members only once its leader is gone.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{getpgid, Pid};

use super::{ProcessHandle, Signalled};
use crate::error::Result;
use crate::sys;

/// How [`ProcessHandle::stop_group`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
  /// The strongest signal sent (`None`: the process was already gone).
  pub signal: Option<Signal>,
  /// Whether the process and every member of its process group are gone.
  pub gone: bool,
}

/// What [`ProcessHandle::begin_stop`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopBegun {
  /// The signal sent (`None`: the process was already gone).
  pub signal: Option<Signal>,
  /// Whether the process led its process group (the group was signalled).
  pub leads: bool,
}

impl StopBegun {
  /// A stop begun elsewhere, as it was told back: the name of the signal sent (`SIGKILL`; any other
  /// name stands for the SIGTERM of a stop that was not forced; `None`: none was sent) and whether the
  /// process led its group.
  pub fn told(signal: Option<&str>, leads: bool) -> Self {
    let signal = signal.map(|name| match name {
      "SIGKILL" => Signal::SIGKILL,
      _ => Signal::SIGTERM,
    });
    StopBegun { signal, leads }
  }
}

impl ProcessHandle {
  /// Stops this process and the process group it leads: SIGTERM then SIGCONT (a stopped process can act
  /// on it) to the group, or SIGKILL at once with `force`; waits up to `grace` for the process **and
  /// every member of its group** to be gone, then SIGKILLs whoever is left and waits up to `after_kill`
  /// more. A process that does not lead its group is stopped alone.
  ///
  /// While the leader lives, its pidfd is waited on (the group cannot change hands while it lives).
  /// Once it is gone, one `kill(-pgid, 0)` tells whether anyone is left; only then are the members
  /// looked up in the process table (zombies left out) and waited for through their own pidfds — so a
  /// reused group ID is never signalled, and the cost of a stop does not grow with the host.
  ///
  /// # Errors
  /// A signal was refused (`EPERM`).
  pub fn stop_group(&self, force: bool, grace: Duration, after_kill: Duration) -> Result<Stopped> {
    let begun = self.begin_stop(force)?;
    self.finish_stop(begun, grace, after_kill)
  }

  /// The rest of a stop [`begin_stop`](Self::begin_stop) began: waits up to `grace` (after SIGTERM; none
  /// after SIGKILL) for the process and every member of its group, SIGKILLs whoever is left, waits up to
  /// `after_kill` more. See [`stop_group`](Self::stop_group).
  ///
  /// # Errors
  /// A signal was refused (`EPERM`).
  pub fn finish_stop(
    &self,
    begun: StopBegun,
    grace: Duration,
    after_kill: Duration,
  ) -> Result<Stopped> {
    let pgid = self.pid;
    let leads = begun.leads;
    let mut signal = begun.signal;
    let killed_at_once = signal == Some(Signal::SIGKILL);
    let mut deadline = Instant::now() + if killed_at_once { after_kill } else { grace };
    let mut killed = killed_at_once;
    // A listing of the group's members must have begun after this: after the leader was seen dead, then
    // after each wait on the members (one may have started others before it died).
    let mut list_after: Option<Instant> = None;
    loop {
      let leader_alive = self.is_alive();
      if !leader_alive && list_after.is_none() {
        list_after = Some(Instant::now());
      }
      // `None`: members are left but this platform cannot list them (then `kill(-pgid, 0)` says when
      // they are gone, and the group itself gets the SIGKILL).
      let members = if !leader_alive && leads && self.group_outlives_leader(pgid, deadline) {
        live_members(pgid, list_after.unwrap_or_else(Instant::now))
      } else {
        Some(Vec::new())
      };
      if !leader_alive && members.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Stopped { signal, gone: true });
      }
      let members = members.unwrap_or_default();
      if Instant::now() >= deadline {
        if killed {
          return Ok(Stopped {
            signal,
            gone: false,
          });
        }
        self.kill_the_rest(leader_alive, &members)?;
        signal = Some(Signal::SIGKILL);
        killed = true;
        deadline = Instant::now() + after_kill;
        continue;
      }
      let fds: Vec<&OwnedFd> = if leader_alive {
        self.pidfd().into_iter().collect()
      } else {
        members.iter().filter_map(|m| m.pidfd()).collect()
      };
      let wait = deadline.saturating_duration_since(Instant::now());
      if fds.is_empty() {
        // No pidfds (an old kernel, no descriptors left): look again soon.
        std::thread::sleep(wait.min(Duration::from_millis(5)));
      } else {
        sys::poll_any(&fds, sys::clamp_ms(wait));
      }
      if !leader_alive {
        list_after = Some(Instant::now());
      }
    }
  }

  /// The escalation of a stop, the one place SIGKILL goes to whoever outlived the grace period: the
  /// group through its leader while the leader lives; once it is gone, each member found, pinned by its
  /// handle — or, where members cannot be listed (`members` empty), the group by its ID.
  ///
  /// # Errors
  /// A signal was refused (`EPERM`).
  fn kill_the_rest(&self, leader_alive: bool, members: &[ProcessHandle]) -> Result<()> {
    if leader_alive {
      self.signal_group(Signal::SIGKILL)?;
    } else if members.is_empty() {
      let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
    }
    for m in members {
      m.signal(Signal::SIGKILL)?;
    }
    Ok(())
  }

  /// The first step of [`stop_group`](Self::stop_group), for callers that wait for the exit by other
  /// means (an event): whether this process leads its group, then SIGTERM and SIGCONT to the group (or
  /// SIGKILL with `force`).
  ///
  /// # Errors
  /// A signal was refused (`EPERM`).
  pub fn begin_stop(&self, force: bool) -> Result<StopBegun> {
    let leads = self.is_alive()
      && getpgid(Some(Pid::from_raw(self.pid as i32))).is_ok_and(|g| g.as_raw() as u32 == self.pid);
    let first = if force {
      Signal::SIGKILL
    } else {
      Signal::SIGTERM
    };
    let signal = match self.signal_group(first)? {
      Signalled::Gone => None,
      _ => Some(first),
    };
    if signal.is_some() && !force {
      self.signal_group(Signal::SIGCONT)?;
    }
    Ok(StopBegun { signal, leads })
  }

  /// After [`begin_stop`](Self::begin_stop): whether this process has exited and, when it led its group,
  /// the group is empty (one `kill(-pgid, 0)`; an exited leader that is not reaped yet still counts as a
  /// member: then [`stop_group`](Self::stop_group) finishes the work).
  pub fn stopped(&self, begun: StopBegun) -> bool {
    !self.is_alive() && (!begun.leads || !group_exists(self.pid))
  }

  /// Whether process group `pgid` still has members once this process, its leader, has exited. A
  /// leader that exited but is not reaped yet keeps its group in existence for `kill(-pgid, 0)`: its
  /// parent reaps it in a moment (Node.js for a daemon it spawned, init for the others), so that is waited
  /// for first — on the pidfd, which reports the reaping (`POLLHUP`, Linux 6.9 and later), in steps of a
  /// millisecond where it does not, a few milliseconds at most — before anyone is looked for.
  fn group_outlives_leader(&self, pgid: u32, deadline: Instant) -> bool {
    let until = Instant::now() + REAP_GRACE;
    loop {
      if !group_exists(pgid) {
        return false;
      }
      let now = Instant::now();
      if now >= until || now >= deadline || !self.is_zombie() {
        return true;
      }
      match &self.pidfd {
        Some(fd) => {
          if sys::poll_hangup(fd, 1) {
            return group_exists(pgid);
          }
        }
        None => std::thread::sleep(Duration::from_millis(1)),
      }
    }
  }

  /// Whether this process has exited and waits to be reaped (its PID still names it).
  fn is_zombie(&self) -> bool {
    matches!(sys::proc_stat(self.pid), Ok(Some(st)) if st.zombie && st.start_time == self.start_time)
  }
}

/// The live members of process group `pgid` (zombies left out), from a listing of the process table
/// begun after `after`, each pinned by a handle taken before its group was checked again: a member is
/// never a process that only reused a member's PID. `None` where the process table cannot be listed
/// (another platform, or no descriptor left to list it).
///
/// Listing means reading every process of the host, so one listing serves every stop that needs one:
/// a group whose leader is gone gains members only through members it has, so a listing begun after
/// the leader was seen dead (or after its last member seen alive was waited for) shows every member the
/// group can have, whoever asked for it.
fn live_members(pgid: u32, after: Instant) -> Option<Vec<ProcessHandle>> {
  struct Listing {
    begun: Instant,
    groups: std::collections::HashMap<u32, Vec<u32>>,
  }
  static LAST: std::sync::Mutex<Option<std::sync::Arc<Listing>>> = std::sync::Mutex::new(None);
  let listing = {
    // Held while listing: a stop that needs a listing meanwhile waits for this one and takes it.
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    match last.as_ref() {
      Some(l) if l.begun >= after => l.clone(),
      _ => {
        let begun = Instant::now();
        let groups = sys::process_groups().ok().flatten()?;
        let l = std::sync::Arc::new(Listing { begun, groups });
        *last = Some(l.clone());
        l
      }
    }
  };
  let pids = listing.groups.get(&pgid).map_or(&[][..], Vec::as_slice);
  let members = pids
    .iter()
    .copied()
    .filter(|&p| p != pgid && p > 1)
    .filter_map(|p| ProcessHandle::open(p, None).ok().flatten())
    .filter(|m| matches!(sys::process_group(m.pid), Ok(Some((g, false))) if g == pgid))
    .collect();
  Some(members)
}

/// Whether any process is in process group `pgid` (`kill(-pgid, 0)`).
fn group_exists(pgid: u32) -> bool {
  pgid > 1 && !matches!(killpg(Pid::from_raw(pgid as i32), None), Err(Errno::ESRCH))
}

/// How long a stop waits for an exited group leader to be reaped before it looks for members.
const REAP_GRACE: Duration = Duration::from_millis(20);
