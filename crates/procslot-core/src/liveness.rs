//! Whether a slot's holder is dead, judged by its PID alone.
//!
//! This is the fallback for filesystems that refuse byte-range locks: normally the lock *is* the lease and
//! this module is only used for display. A holder is dead when `kill(pid, 0)` fails with `ESRCH`, when the
//! process is a zombie, when a non-zero start tag differs from the PID's current start tag (the PID was
//! reused), or when the PID is above the system's limit. `EPERM` means the process exists: alive.

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::sys;
/// What the process table says of one PID (it is read in `sys`, the platform code).
pub use crate::sys::ProcStat;

/// The questions the liveness check asks of the operating system, so that tests can give other answers.
pub trait Probe {
  /// `kill(pid, 0)`.
  ///
  /// # Errors
  /// The errno of the failed call (`ESRCH`, `EPERM`).
  fn signal0(&self, pid: u32) -> Result<(), Errno>;
  /// The process's state and start time; `Ok(None)` when it does not exist.
  ///
  /// # Errors
  /// The process table could not be read.
  fn stat(&self, pid: u32) -> std::io::Result<Option<ProcStat>>;
  /// The system's PID limit: one more than the largest PID it hands out.
  fn pid_max(&self) -> u32;
}

/// The real operating system.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemProbe;

impl Probe for SystemProbe {
  fn signal0(&self, pid: u32) -> Result<(), Errno> {
    let pid = i32::try_from(pid).map_err(|_| Errno::ESRCH)?;
    kill(Pid::from_raw(pid), None)
  }

  fn stat(&self, pid: u32) -> std::io::Result<Option<ProcStat>> {
    sys::proc_stat(pid)
  }

  fn pid_max(&self) -> u32 {
    sys::pid_max()
  }
}

/// Whether the holder `(pid, tag)` of a slot word is dead, by PID alone. `pid` 0 (a free word) counts as
/// dead. Where the process table cannot be read, a process that answers `kill(pid, 0)` is taken as alive.
pub fn holder_is_dead(probe: &impl Probe, pid: u32, tag: u32) -> bool {
  if !crate::process::possible_pid_under(pid, probe.pid_max()) {
    return true;
  }
  match probe.signal0(pid) {
    Err(Errno::ESRCH) => return true,
    Err(_) => return false, // EPERM: it exists, owned by someone else.
    Ok(()) => {}
  }
  match probe.stat(pid) {
    Ok(None) => true, // exited between the two questions
    Ok(Some(st)) => st.zombie || (tag != 0 && st.start_tag() != tag),
    Err(_) => false,
  }
}

/// The start tag of the calling process (0 when unknown).
pub fn self_start_tag() -> u32 {
  sys::proc_stat(std::process::id())
    .ok()
    .flatten()
    .map_or(0, |st| st.start_tag())
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::process::{Command, Stdio};

  struct Fake {
    signal: Result<(), Errno>,
    stat: Option<ProcStat>,
  }

  impl Probe for Fake {
    fn signal0(&self, _pid: u32) -> Result<(), Errno> {
      self.signal
    }
    fn stat(&self, _pid: u32) -> std::io::Result<Option<ProcStat>> {
      Ok(self.stat)
    }
    fn pid_max(&self) -> u32 {
      4_194_304
    }
  }

  const RUNNING: ProcStat = ProcStat {
    zombie: false,
    start_time: 0x1_0000_0042,
  };

  #[test]
  fn esrch_is_dead_and_eperm_is_alive() {
    let gone = Fake {
      signal: Err(Errno::ESRCH),
      stat: None,
    };
    assert!(holder_is_dead(&gone, 1234, 0));
    let foreign = Fake {
      signal: Err(Errno::EPERM),
      stat: None,
    };
    assert!(!holder_is_dead(&foreign, 1234, 0x42));
  }

  #[test]
  fn a_zombie_is_dead() {
    let zombie = Fake {
      signal: Ok(()),
      stat: Some(ProcStat {
        zombie: true,
        ..RUNNING
      }),
    };
    assert!(holder_is_dead(&zombie, 1234, 0));
  }

  #[test]
  fn a_start_tag_mismatch_is_a_reused_pid() {
    let p = Fake {
      signal: Ok(()),
      stat: Some(RUNNING),
    };
    assert!(
      !holder_is_dead(&p, 1234, 0x42),
      "same low 32 bits: the holder"
    );
    assert!(!holder_is_dead(&p, 1234, 0), "tag unknown: trust the PID");
    assert!(
      holder_is_dead(&p, 1234, 0x43),
      "another start: a reused PID"
    );
  }

  #[test]
  fn impossible_pids_are_dead() {
    let p = Fake {
      signal: Ok(()),
      stat: Some(RUNNING),
    };
    assert!(holder_is_dead(&p, 0, 0));
    assert!(holder_is_dead(&p, 4_194_305, 0));
    assert!(
      holder_is_dead(&p, 4_194_304, 0),
      "pid_max itself is never a PID"
    );
    assert!(holder_is_dead(&SystemProbe, u32::MAX, 0));
  }

  #[test]
  fn real_processes_running_exited_zombie_and_reused() {
    let me = std::process::id();
    let tag = self_start_tag();
    assert_ne!(tag, 0);
    assert!(!holder_is_dead(&SystemProbe, me, tag));
    assert!(holder_is_dead(&SystemProbe, me, tag.wrapping_add(1)));

    // A child that exits and is not reaped yet is a zombie.
    let mut child = Command::new("true").stdout(Stdio::null()).spawn().unwrap();
    let pid = child.id();
    let start = SystemProbe
      .stat(pid)
      .unwrap()
      .map(|s| s.start_tag())
      .unwrap_or(0);
    // Wait for it to become a zombie without reaping it: waitid with WNOWAIT (through libc: nix has
    // waitid on Linux only).
    // SAFETY: a zeroed siginfo_t is a valid out-parameter.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOWAIT;
    while unsafe { libc::waitid(libc::P_PID, pid, &mut info, flags) } != 0 {
      assert_eq!(
        std::io::Error::last_os_error().kind(),
        std::io::ErrorKind::Interrupted
      );
    }
    assert!(SystemProbe.stat(pid).unwrap().unwrap().zombie);
    assert!(holder_is_dead(&SystemProbe, pid, start));
    child.wait().unwrap();
    // Reaped: kill(pid, 0) now fails with ESRCH (unless the PID was reused at once, which then has
    // another start time).
    assert!(holder_is_dead(&SystemProbe, pid, start));
  }
}
