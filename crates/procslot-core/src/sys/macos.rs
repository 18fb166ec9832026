//! macOS: process state and start time from `proc_pidinfo(PROC_PIDTBSDINFO)`.

use std::io;

use super::ProcStat;

/// `SZOMB` from `<sys/proc.h>`.
const SZOMB: u32 = 5;

/// State and start time (microseconds since the epoch) of `pid`, `Ok(None)` when it does not exist.
///
/// # Errors
/// `proc_pidinfo` failing for a reason other than "no such process".
pub fn proc_stat(pid: u32) -> io::Result<Option<ProcStat>> {
  // SAFETY: `proc_bsdinfo` is a plain C struct; all-zero is a valid value.
  let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
  let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
  // SAFETY: `info` is a writable buffer of exactly `size` bytes that outlives the call.
  let n = unsafe {
    libc::proc_pidinfo(
      pid as libc::c_int,
      libc::PROC_PIDTBSDINFO,
      0,
      &mut info as *mut libc::proc_bsdinfo as *mut libc::c_void,
      size,
    )
  };
  if n != size {
    let err = io::Error::last_os_error();
    return match err.raw_os_error() {
      Some(libc::ESRCH) | Some(0) | None => Ok(None),
      _ => Err(err),
    };
  }
  Ok(Some(ProcStat {
    zombie: info.pbi_status == SZOMB,
    start_time: info.pbi_start_tvsec * 1_000_000 + info.pbi_start_tvusec,
  }))
}

/// macOS hands out PIDs up to 99 999.
pub fn pid_max() -> u32 {
  99_999
}

/// Wall-clock time (milliseconds since the epoch) of a start time from [`proc_stat`] (microseconds since
/// the epoch here).
pub fn start_time_ms(start_time: u64) -> f64 {
  start_time as f64 / 1000.0
}

/// The granularity of start times, in milliseconds.
pub fn start_time_granularity_ms() -> f64 {
  0.001
}
