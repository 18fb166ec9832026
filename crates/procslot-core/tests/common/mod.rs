//! What the integration tests share: a temporary directory removed when dropped.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under the system's temporary directory (created empty), removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
  pub fn new() -> Self {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
      "procslot-core-test-{}-{}",
      std::process::id(),
      N.fetch_add(1, Ordering::SeqCst)
    ));
    fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
  }

  #[allow(dead_code)] // used by some test files only
  pub fn join(&self, name: &str) -> PathBuf {
    self.0.join(name)
  }
}

impl Drop for TempDir {
  fn drop(&mut self) {
    let _ = fs::remove_dir_all(&self.0);
  }
}

/// Waits until `pid`, a child of this process, has exited, without reaping it: it stays a zombie.
/// `waitid(P_PID, pid, WEXITED | WNOWAIT)`, through libc: nix offers `waitid` on Linux only, not macOS.
#[allow(dead_code)] // used by some test files only
pub fn wait_unreaped(pid: u32) {
  loop {
    // SAFETY: a zeroed siginfo_t is a valid out-parameter; waitid writes it and reads nothing else.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let rc = unsafe {
      libc::waitid(
        libc::P_PID,
        pid as libc::id_t,
        &mut info,
        libc::WEXITED | libc::WNOWAIT,
      )
    };
    if rc == 0 {
      return;
    }
    let err = std::io::Error::last_os_error();
    assert_eq!(
      err.kind(),
      std::io::ErrorKind::Interrupted,
      "waitid({pid}): {err}"
    );
  }
}
