//! `procslot exec [--file F] [--slots N] [--preferred N [--exact]] [--wait ms] -- COMMAND [ARGS...]`: the
//! command line of [`exec`](super), in one place for both ways it is reached — the native launcher
//! (the `procslot` command an npm install puts in place: no Node.js starts) and `lib/cli/index.js` through the
//! binding (where the launcher is not installed). Messages go to standard error as one line each,
//! `procslot: ...`, and the exit code says what happened: it returns only when it did not become COMMAND.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use super::{exec, ExecFailure};
use crate::slots::{default_file, OpenOptions, Want, MAX_SLOTS};

/// `EX_TEMPFAIL` of sysexits.h: no slot freed within `--wait`; try again later.
pub const EXIT_NO_SLOT: i32 = 75;
/// A refused request: bad arguments, a refused or unusable slot file.
pub const EXIT_USAGE: i32 = 2;
/// The command exists but could not be run (not executable, ...).
pub const EXIT_CANNOT_RUN: i32 = 126;
/// No such command.
pub const EXIT_NOT_FOUND: i32 = 127;

/// The usage line (after `procslot `).
pub const USAGE: &str =
  "exec [--file F] [--slots N] [--preferred N [--exact]] [--wait ms] -- COMMAND [ARGS...]";

/// What `procslot exec` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
  /// The slot file (`DEFAULT_SLOTS_FILE` when none was named).
  pub file: PathBuf,
  /// The fleet size, for a new file.
  pub slots: Option<usize>,
  /// The slot wanted.
  pub want: Want,
  /// How long to wait for a slot to free.
  pub wait: Duration,
  /// The command and its arguments.
  pub command: Vec<OsString>,
}

/// Reads the options up to `--` (or up to the first argument that is not an option: the command).
///
/// # Errors
/// What is wrong, in one line (without the `procslot: ` prefix).
pub fn parse(args: &[OsString]) -> Result<Request, String> {
  let mut req = Request {
    file: default_file(),
    slots: None,
    want: Want::default(),
    wait: Duration::ZERO,
    command: Vec::new(),
  };
  let mut i = 0;
  while i < args.len() {
    let arg = args[i].as_os_str();
    if arg == "--" {
      i += 1;
      break;
    }
    let Some(text) = arg.to_str().filter(|a| a.starts_with('-')) else {
      break;
    };
    let (flag, inline) = match text.split_once('=') {
      Some((f, v)) => (f, Some(v.to_owned())),
      None => (text, None),
    };
    let mut value = || -> Option<String> {
      inline.clone().or_else(|| {
        i += 1;
        args.get(i).map(|v| v.to_string_lossy().into_owned())
      })
    };
    match flag {
      "--file" => match value() {
        Some(f) if !f.is_empty() && !f.contains('\0') => req.file = PathBuf::from(f),
        _ => return Err("exec: --file needs a path".to_owned()),
      },
      "--slots" => req.slots = Some(integer(flag, value(), 1, MAX_SLOTS as u64)? as usize),
      "--preferred" => req.want.preferred = Some(integer(flag, value(), 0, 0xffff_ffff)? as usize),
      "--wait" => req.wait = Duration::from_millis(integer(flag, value(), 0, 0x7fff_ffff)?),
      "--exact" if inline.is_none() => req.want.exact = true,
      _ => {
        return Err(format!(
          "exec: unknown option {}; the command goes after --",
          quoted(text)
        ))
      }
    }
    i += 1;
  }
  if req.want.exact && req.want.preferred.is_none() {
    return Err("exec: --exact needs --preferred N: the one slot to take".to_owned());
  }
  req.command = args[i.min(args.len())..].to_vec();
  if req.command.is_empty() {
    return Err("exec: no command given: procslot exec [options] -- COMMAND [ARGS...]".to_owned());
  }
  Ok(req)
}

/// An integer flag: digits only, within bounds.
fn integer(flag: &str, value: Option<String>, min: u64, max: u64) -> Result<u64, String> {
  let Some(value) = value else {
    return Err(format!("exec: {flag} needs a value"));
  };
  match value.parse::<u64>() {
    Ok(n) if value.bytes().all(|b| b.is_ascii_digit()) && (min..=max).contains(&n) => Ok(n),
    _ => Err(format!(
      "exec: {flag} must be an integer from {min} to {max}, got {}",
      quoted(&value)
    )),
  }
}

/// A value as JSON writes a string (what the messages of `lib/cli` show).
fn quoted(s: &str) -> String {
  let mut out = String::from("\"");
  for c in s.chars() {
    match c {
      '"' => out.push_str("\\\""),
      '\\' => out.push_str("\\\\"),
      '\n' => out.push_str("\\n"),
      c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
      c => out.push(c),
    }
  }
  out.push('"');
  out
}

/// `procslot exec` with `args` (the arguments after `exec`): becomes COMMAND, or says why not on
/// standard error and returns the exit code.
pub fn main(args: &[OsString]) -> i32 {
  let say = |msg: &str| eprintln!("procslot: {msg}");
  let req = match parse(args) {
    Ok(r) => r,
    Err(msg) => {
      say(&msg);
      return EXIT_USAGE;
    }
  };
  let default = req.file == default_file();
  let options = OpenOptions {
    slots: req.slots,
    private_dir: default,
    ..OpenOptions::default()
  };
  let program: &OsStr = &req.command[0];
  let shown = program.to_string_lossy();
  match exec(
    &req.file,
    &options,
    req.want,
    req.wait,
    program,
    &req.command[1..],
  ) {
    Err(e) => {
      say(&e.to_string().replace('\n', " "));
      EXIT_USAGE
    }
    Ok(ExecFailure::NoSlot {
      path,
      slots,
      waited,
    }) => {
      say(&format!(
        "exec: all {slots} slots of {} stayed held for {} ms (--wait {}); not running {shown}",
        path.display(),
        waited.as_millis(),
        req.wait.as_millis()
      ));
      EXIT_NO_SLOT
    }
    Ok(ExecFailure::Exec { code, reason, .. }) => {
      say(&format!("exec: cannot run {shown}: {reason} ({code})"));
      if code == "ENOENT" {
        EXIT_NOT_FOUND
      } else {
        EXIT_CANNOT_RUN
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn args(a: &[&str]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
  }

  #[test]
  fn options_come_before_the_command_and_are_checked() {
    let r = parse(&args(&[
      "--file",
      "/x",
      "--slots=4",
      "--preferred",
      "2",
      "--exact",
      "--wait",
      "10",
      "--",
      "sh",
      "-c",
      "x",
    ]))
    .unwrap();
    assert_eq!(r.file, PathBuf::from("/x"));
    assert_eq!(r.slots, Some(4));
    assert_eq!(
      r.want,
      Want {
        preferred: Some(2),
        exact: true
      }
    );
    assert_eq!(r.wait, Duration::from_millis(10));
    assert_eq!(r.command, args(&["sh", "-c", "x"]));
    assert_eq!(
      parse(&args(&["true", "--slots"])).unwrap().command,
      args(&["true", "--slots"])
    );
    for (bad, why) in [
      (
        &["--slots", "0", "true"][..],
        "must be an integer from 1 to 131072, got \"0\"",
      ),
      (&["--wait", "1e3", "true"], "got \"1e3\""),
      (&["--wait"], "--wait needs a value"),
      (&["--nope", "true"], "unknown option \"--nope\""),
      (&["--exact", "true"], "--exact needs --preferred"),
      (&["--file", "", "true"], "--file needs a path"),
      (&["--"], "no command given"),
    ] {
      let err = parse(&args(bad)).unwrap_err();
      assert!(err.contains(why), "{bad:?}: {err}");
    }
  }
}
