//! The native `procslot` command. `procslot exec` runs here and becomes its COMMAND without starting
//! Node.js (a few milliseconds instead of a Node.js start); every other subcommand, `--help` and
//! `--version` included, is the JavaScript command's: this program becomes `node <package>/lib/cli/index.js`.
//!
//! An npm install puts it in place of the package's `bin/procslot` (a JavaScript file until then, which
//! runs everything itself, `exec` included, where this binary cannot run or install scripts are off):
//! see `bin/install.cjs`. It finds `lib/cli/index.js` next to the directory it runs from (`<package>/bin/`),
//! or beside itself.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use procslot_core::exec::cli;

fn main() {
  let args: Vec<OsString> = std::env::args_os().skip(1).collect();
  let command = args.first().and_then(|a| a.to_str());
  // `exec --help` is the JavaScript command's (it prints every usage the same way).
  let help = args
    .iter()
    .skip(1)
    .take_while(|a| *a != "--")
    .any(|a| a == "--help" || a == "-h");
  match command {
    Some("exec") if !help => std::process::exit(cli::main(&args[1..])),
    // What an installer runs to see that this binary works on this machine.
    Some("--launcher") => println!("procslot launcher {}", env!("CARGO_PKG_VERSION")),
    _ => std::process::exit(javascript(&args)),
  }
}

/// Becomes `node <package>/lib/cli/index.js ARGS...`; returns only when it cannot.
fn javascript(args: &[OsString]) -> i32 {
  let Some(cli_js) = cli_js() else {
    eprintln!(
      "procslot: cannot find lib/cli/index.js beside this program ({}); run `node <procslot package>/lib/cli/index.js` instead",
      std::env::current_exe().map_or_else(|_| "?".into(), |p| p.display().to_string())
    );
    return 1;
  };
  let err = std::process::Command::new("node")
    .arg(cli_js)
    .args(args)
    .exec();
  eprintln!("procslot: cannot start Node.js (node on the PATH): {err}");
  1
}

/// `lib/cli/index.js` of the package this program belongs to.
fn cli_js() -> Option<PathBuf> {
  let exe = std::env::current_exe().ok()?;
  let dir = exe.parent()?;
  let found = [dir.parent(), Some(dir)]
    .into_iter()
    .flatten()
    .map(|d| d.join("lib").join("cli").join("index.js"))
    .find(|p| p.is_file());
  found
}
