//! Linux: process state and start time from `/proc/<pid>/stat`, the PID limit from
//! `/proc/sys/kernel/pid_max`.

use std::io;
use std::sync::OnceLock;

use crate::liveness::ProcStat;

/// The largest PID Linux can ever hand out (`PID_MAX_LIMIT` on 64-bit).
const PID_MAX_LIMIT: u32 = 4_194_304;

/// State and start time of `pid`, `Ok(None)` when it does not exist.
///
/// # Errors
/// `/proc` unreadable for another reason, or a line that does not parse.
pub fn proc_stat(pid: u32) -> io::Result<Option<ProcStat>> {
  let text = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
    Ok(text) => text,
    Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH)) => {
      return Ok(None)
    }
    Err(e) => return Err(e),
  };
  parse_stat(&text)
    .map(Some)
    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc/<pid>/stat"))
}

/// Parses a `/proc/<pid>/stat` line. The command name (field 2) may hold spaces and parentheses, so the
/// fields are counted from the last `)`: field 3 is the state, field 22 the start time in clock ticks
/// since boot.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
  let rest = &text[text.rfind(')')? + 1..];
  let mut fields = rest.split_ascii_whitespace();
  let state = fields.next()?;
  let start_time = fields.nth(18)?.parse().ok()?;
  Some(ProcStat {
    zombie: state == "Z" || state == "X",
    start_time,
  })
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

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn parses_a_stat_line_with_a_hostile_command_name() {
    let line =
      "1234 (a) b) (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
    let st = parse_stat(line).unwrap();
    assert!(!st.zombie);
    assert_eq!(st.start_time, 987_654);
    let zombie = "99 (x) Z 1 99 99 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0";
    assert!(parse_stat(zombie).unwrap().zombie);
    assert!(parse_stat("garbage").is_none());
  }

  #[test]
  fn reads_our_own_stat() {
    let st = proc_stat(std::process::id()).unwrap().unwrap();
    assert!(!st.zombie);
    assert!(st.start_time > 0);
    assert!(pid_max() >= 32_768 || pid_max() > std::process::id());
  }
}
