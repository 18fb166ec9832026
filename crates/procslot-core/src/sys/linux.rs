//! Linux: process state, start time and group from `/proc/<pid>/stat` (read and parsed in one place,
//! `stat_fields`), the PID limit from `/proc/sys/kernel/pid_max`, process file descriptors
//! (`pidfd_open`, `pidfd_send_signal`), clocks and filesystem kinds. The mount table is `mountinfo`'s.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::ProcStat;

/// The largest PID Linux can ever hand out (`PID_MAX_LIMIT` on 64-bit).
const PID_MAX_LIMIT: u32 = 4_194_304;

/// `/proc`, opened once (`O_PATH`): each `/proc/<pid>/stat` is opened relative to it, one path component
/// to walk instead of three. `None` when it cannot be opened; then the full path is used.
fn proc_dir() -> Option<BorrowedFd<'static>> {
  static PROC: OnceLock<Option<OwnedFd>> = OnceLock::new();
  PROC
    .get_or_init(|| {
      let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
      nix::fcntl::open("/proc", flags, Mode::empty()).ok()
    })
    .as_ref()
    .map(|fd| fd.as_fd())
}

/// State and start time of `pid`, `Ok(None)` when it does not exist.
///
/// # Errors
/// `/proc` unreadable for another reason, or a line that does not parse.
pub fn proc_stat(pid: u32) -> io::Result<Option<ProcStat>> {
  Ok(stat_fields(pid)?.map(|f| f.stat))
}

/// What is read of a `/proc/<pid>/stat` line: state and start time, and the process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatFields {
  stat: ProcStat,
  pgrp: u32,
}

/// Reads and parses `/proc/<pid>/stat`: the one reader of the process table. `Ok(None)` when there is no
/// such process.
fn stat_fields(pid: u32) -> io::Result<Option<StatFields>> {
  let gone = |e: &io::Error| matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH));
  // `<pid>/stat` formatted on the stack: a load of thousands of PID files reads one of these per file.
  let mut name = [0u8; 24];
  let len = {
    let mut w = &mut name[..];
    write!(w, "{pid}/stat").expect("a u32 and /stat fit in 24 bytes");
    24 - w.len()
  };
  // Out of descriptors, the one kept in reserve is used: a supervisor must still tell whether its
  // daemons live.
  let opened = super::with_reserve(|| match proc_dir() {
    Some(dir) => nix::fcntl::openat(
      dir,
      &name[..len],
      OFlag::O_RDONLY | OFlag::O_CLOEXEC,
      Mode::empty(),
    )
    .map(File::from)
    .map_err(io::Error::from),
    None => File::open(format!("/proc/{pid}/stat")),
  });
  let mut file = match opened {
    Ok(f) => f,
    Err(e) if gone(&e) => return Ok(None),
    Err(e) => return Err(e),
  };
  // The line is generated whole and a few hundred bytes long: one read with room for it takes it all
  // (std's read_to_string would add a stat and several small reads).
  let mut buf = [0u8; 2048];
  let len = loop {
    match file.read(&mut buf) {
      Ok(n) => break n,
      Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
      Err(e) if gone(&e) => return Ok(None),
      Err(e) => return Err(e),
    }
  };
  Some(&buf[..len])
    .filter(|_| len < buf.len())
    .and_then(parse_fields)
    .map(Some)
    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc/<pid>/stat"))
}

/// Parses a `/proc/<pid>/stat` line. The command name (field 2) may hold spaces and parentheses, so the
/// fields are counted from the last `)`: field 3 is the state, field 5 the process group, field 22 the
/// start time in clock ticks since boot.
fn parse_fields(text: &[u8]) -> Option<StatFields> {
  // The command name is whatever bytes the process chose (not always UTF-8); what follows it is ASCII.
  let close = text.iter().rposition(|&b| b == b')')?;
  let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
  let mut fields = rest.split_ascii_whitespace();
  let state = fields.next()?;
  let pgrp = fields.nth(1)?.parse().ok()?;
  let start_time = fields.nth(16)?.parse().ok()?;
  Some(StatFields {
    // A zombie has exited (`Z`), a dead process is being torn down (`X`): neither runs.
    stat: ProcStat {
      zombie: state == "Z" || state == "X",
      start_time,
    },
    pgrp,
  })
}

/// The kind of filesystem `file` is on, from `fstatfs`'s magic number; `Local` when it cannot be told.
pub fn filesystem_kind(file: &File) -> super::FsKind {
  const FUSE: i64 = 0x6573_5546;
  const NETWORK: [i64; 14] = [
    0x6969,      // NFS
    0x517b,      // SMB
    0xff53_4d42, // CIFS
    0xfe53_4d42, // SMB2
    0x00c3_6400, // Ceph
    0x0102_1997, // 9p
    0x5346_414f, // AFS
    0x7375_7245, // Coda
    0x0116_1970, // GFS2
    0x7461_636f, // OCFS2
    0x0bd0_0bd0, // Lustre
    0x4750_4653, // GPFS
    0xaad7_aaea, // PanFS
    0x2003_0528, // OrangeFS
  ];
  // SAFETY: `statfs` is plain data; all-zero is valid.
  let mut st: libc::statfs = unsafe { std::mem::zeroed() };
  // SAFETY: the descriptor is open for the duration of the call and `st` is writable.
  if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
    return super::FsKind::Local;
  }
  let magic = st.f_type as i64;
  if magic == FUSE {
    super::FsKind::Fuse
  } else if NETWORK.contains(&magic) {
    super::FsKind::Network
  } else {
    super::FsKind::Local
  }
}

/// Whether `pid` catches or ignores signal `sig` (`SigCgt`/`SigIgn` of `/proc/<pid>/status`): `None`
/// when there is no such process or it cannot be told.
pub fn handles_signal(pid: u32, sig: i32) -> Option<bool> {
  let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
  let mask = |field: &str| {
    status
      .lines()
      .find_map(|l| l.strip_prefix(field))
      .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
  };
  let bit = 1u64 << (sig - 1);
  Some((mask("SigCgt:")? | mask("SigIgn:")?) & bit != 0)
}

/// The system's PID limit, read once.
pub fn pid_max() -> u32 {
  static PID_MAX: OnceLock<u32> = OnceLock::new();
  *PID_MAX.get_or_init(|| {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
      .ok()
      .and_then(|s| s.trim().parse().ok())
      .unwrap_or(PID_MAX_LIMIT)
  })
}

/// A file descriptor that refers to process `pid` (`pidfd_open`), readable once the process has exited.
///
/// # Errors
/// `ESRCH`: there is no such process; `ENOSYS` (or `EPERM`, `EINVAL` from a sandbox) where the kernel
/// has no pidfds (before 5.3) or refuses them; `EMFILE`, `ENFILE` out of descriptors.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
  // SAFETY: pidfd_open takes a PID and a flags word and returns a new descriptor or -1; no memory is
  // passed.
  let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0 as libc::c_uint) };
  if fd < 0 {
    return Err(io::Error::last_os_error());
  }
  // SAFETY: the kernel just handed us this descriptor; nothing else owns it.
  Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Sends `sig` to the process a pidfd refers to: never to a process that reused its PID.
///
/// # Errors
/// `ESRCH` when it has exited; `EPERM` when it is not ours to signal.
pub fn pidfd_send_signal(fd: &OwnedFd, sig: libc::c_int) -> io::Result<()> {
  // SAFETY: the descriptor is open for the duration of the call; the info pointer may be null.
  let rc = unsafe {
    libc::syscall(
      libc::SYS_pidfd_send_signal,
      fd.as_raw_fd(),
      sig,
      std::ptr::null::<libc::siginfo_t>(),
      0 as libc::c_uint,
    )
  };
  if rc < 0 {
    Err(io::Error::last_os_error())
  } else {
    Ok(())
  }
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
  // SAFETY: `timespec` is plain data; all-zero is valid.
  let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
  // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
  unsafe { libc::clock_gettime(clock, &mut ts) };
  ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// Clock ticks per second of `/proc/<pid>/stat` times.
pub fn clock_ticks() -> u64 {
  static TICKS: OnceLock<u64> = OnceLock::new();
  *TICKS.get_or_init(|| {
    // SAFETY: sysconf has no memory arguments.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 {
      n as u64
    } else {
      100
    }
  })
}

/// Wall-clock time (milliseconds since the epoch) of a start time read from `/proc/<pid>/stat`. The
/// kernel counts start times from boot on the boot-time clock; boot is "now" on the real-time clock minus
/// "now" on the boot-time clock, precise to the nanosecond, unlike `btime` in `/proc/stat` (whole seconds).
pub fn start_time_ms(start_time: u64) -> f64 {
  let boot_ns = clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_BOOTTIME);
  let ticks = clock_ticks() as i128;
  let start_ns = boot_ns + start_time as i128 * 1_000_000_000 / ticks;
  start_ns as f64 / 1e6
}

/// The granularity of start times, in milliseconds: one clock tick.
pub fn start_time_granularity_ms() -> f64 {
  1000.0 / clock_ticks() as f64
}

/// Every live process (zombies left out) by its process group: one pass over `/proc`.
/// `Ok(Some(..))`: this platform can list them.
///
/// # Errors
/// `/proc` could not be listed.
pub fn process_groups() -> io::Result<Option<HashMap<u32, Vec<u32>>>> {
  let mut out: HashMap<u32, Vec<u32>> = HashMap::new();
  for entry in std::fs::read_dir("/proc")? {
    let Ok(entry) = entry else { continue };
    let Some(pid) = entry
      .file_name()
      .to_str()
      .and_then(|n| n.parse::<u32>().ok())
    else {
      continue;
    };
    if let Ok(Some(f)) = stat_fields(pid) {
      if !f.stat.zombie {
        out.entry(f.pgrp).or_default().push(pid);
      }
    }
  }
  Ok(Some(out))
}

/// The process group of `pid` and whether it is a zombie, `Ok(None)` when there is no such process.
///
/// # Errors
/// `/proc` unreadable for another reason.
pub fn process_group(pid: u32) -> io::Result<Option<(u32, bool)>> {
  Ok(stat_fields(pid)?.map(|f| (f.pgrp, f.stat.zombie)))
}

#[cfg(test)]
mod tests {

  #[test]
  fn our_own_process_group_is_listed() {
    let (pgrp, zombie) = process_group(std::process::id()).unwrap().unwrap();
    assert!(!zombie);
    let groups = process_groups().unwrap().unwrap();
    assert!(groups[&pgrp].contains(&std::process::id()));
  }

  #[test]
  fn start_times_convert_to_wall_clock() {
    let st = proc_stat(std::process::id()).unwrap().unwrap();
    let started = start_time_ms(st.start_time);
    let now = std::time::SystemTime::now()
      .duration_since(std::time::UNIX_EPOCH)
      .unwrap()
      .as_secs_f64()
      * 1000.0;
    assert!(started <= now + 20.0, "started {started} after now {now}");
    assert!(
      now - started < 3_600_000.0,
      "a test process is younger than an hour"
    );
  }

  use super::*;

  #[test]
  fn parses_a_stat_line_with_a_hostile_command_name() {
    let line =
      "1234 (a) b) (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
    let st = parse_fields(line.as_bytes()).unwrap().stat;
    assert!(!st.zombie);
    assert_eq!(st.start_time, 987_654);
    assert_eq!(parse_fields(line.as_bytes()).unwrap().pgrp, 1234);
    let zombie = "99 (x) Z 1 99 99 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0";
    assert!(parse_fields(zombie.as_bytes()).unwrap().stat.zombie);
    assert!(parse_fields(b"garbage").is_none());
    let not_utf8 = b"7 (\xff\xfe)) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0";
    assert_eq!(parse_fields(not_utf8).unwrap().stat.start_time, 55);
  }

  #[test]
  fn reads_a_process_whose_name_is_not_utf8() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    // Only a process itself may rename itself: the shell writes its own comm, says so, and waits.
    let mut child = Command::new("sh")
      .args([
        "-c",
        r#"printf '\377\376)x' > /proc/$$/comm && echo renamed && read x"#,
      ])
      .stdin(Stdio::piped())
      .stdout(Stdio::piped())
      .spawn()
      .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
      .read_line(&mut line)
      .unwrap();
    assert_eq!(line, "renamed\n");
    let pid = child.id();
    let comm = std::fs::read(format!("/proc/{pid}/comm")).unwrap();
    let st = proc_stat(pid);
    drop(child.stdin.take());
    child.wait().unwrap();
    assert_eq!(comm, b"\xff\xfe)x\n");
    let st = st.unwrap().unwrap();
    assert!(!st.zombie);
    assert!(st.start_time > 0);
  }

  #[test]
  fn reads_our_own_stat() {
    let st = proc_stat(std::process::id()).unwrap().unwrap();
    assert!(!st.zombie);
    assert!(st.start_time > 0);
    assert!(pid_max() >= 32_768 || pid_max() > std::process::id());
  }
}
