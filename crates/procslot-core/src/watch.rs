//! Watching processes die without polling: one thread and one epoll set for every watched process of
//! this process. A process is watched through a duplicate of its pidfd (readable once it has exited);
//! its callback runs once, on the watcher thread, when that happens. Nothing is looked at while nothing
//! happens: an idle watcher is one thread blocked in `epoll_wait`.

use std::io;

use crate::process::ProcessHandle;

/// What runs when a watched process has exited.
pub type OnExit = Box<dyn FnOnce() + Send>;

/// Watches `process` until it exits, then calls `on_exit` once (on the watcher thread). `Ok(None)` when
/// the process has no pidfd (an old kernel, another platform): it cannot be watched this way.
///
/// # Errors
/// The watcher could not be started, or the descriptor could not be added to it.
pub fn watch(process: &ProcessHandle, on_exit: OnExit) -> crate::Result<Option<WatchId>> {
  imp::watch(process, on_exit)
    .map_err(|e: io::Error| crate::Error::process_io(process.pid(), "watch its exit", &e))
}

/// Stops watching; whether the watch was still there (its callback has not run and never will).
pub fn unwatch(id: WatchId) -> bool {
  imp::unwatch(id)
}

/// How many processes are watched now.
pub fn watched() -> usize {
  imp::watched()
}

/// One watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WatchId(u64);

#[cfg(target_os = "linux")]
mod imp {
  use std::collections::HashMap;
  use std::io;
  use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
  use std::sync::atomic::{AtomicU64, Ordering};
  use std::sync::{Mutex, OnceLock};

  use super::{OnExit, WatchId};
  use crate::process::ProcessHandle;

  struct Watcher {
    epoll: OwnedFd,
    entries: Mutex<HashMap<u64, (OwnedFd, OnExit)>>,
    next: AtomicU64,
  }

  static WATCHER: OnceLock<Result<&'static Watcher, i32>> = OnceLock::new();

  fn watcher() -> io::Result<&'static Watcher> {
    let w = WATCHER.get_or_init(|| {
      // SAFETY: epoll_create1 takes a flags word and returns a new descriptor or -1.
      let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
      if fd < 0 {
        return Err(
          io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
        );
      }
      let w: &'static Watcher = Box::leak(Box::new(Watcher {
        // SAFETY: the kernel just handed us this descriptor; nothing else owns it.
        epoll: unsafe { OwnedFd::from_raw_fd(fd) },
        entries: Mutex::new(HashMap::new()),
        next: AtomicU64::new(1),
      }));
      std::thread::Builder::new()
        .name("procslot-watch".into())
        .spawn(move || w.run())
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EAGAIN))?;
      Ok(w)
    });
    w.map_err(io::Error::from_raw_os_error)
  }

  impl Watcher {
    fn run(&self) {
      // SAFETY: `epoll_event` is plain data; all-zero is valid.
      let mut events: [libc::epoll_event; 64] = unsafe { std::mem::zeroed() };
      loop {
        // SAFETY: `events` is a writable array of 64 events for the duration of the call.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), 64, -1) };
        if n < 0 {
          continue; // EINTR
        }
        for ev in &events[..n as usize] {
          let id = ev.u64;
          let entry = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
          if let Some((fd, on_exit)) = entry {
            self.remove(&fd);
            drop(fd);
            on_exit();
          }
        }
      }
    }

    fn remove(&self, fd: &OwnedFd) {
      // SAFETY: both descriptors are open; a null event is allowed for EPOLL_CTL_DEL.
      unsafe {
        libc::epoll_ctl(
          self.epoll.as_raw_fd(),
          libc::EPOLL_CTL_DEL,
          fd.as_raw_fd(),
          std::ptr::null_mut(),
        )
      };
    }
  }

  pub fn watch(process: &ProcessHandle, on_exit: OnExit) -> io::Result<Option<WatchId>> {
    let Some(pidfd) = process.pidfd() else {
      return Ok(None);
    };
    let w = watcher()?;
    let fd = pidfd.try_clone()?;
    let id = w.next.fetch_add(1, Ordering::Relaxed);
    let raw = fd.as_raw_fd();
    w.entries
      .lock()
      .unwrap_or_else(|p| p.into_inner())
      .insert(id, (fd, on_exit));
    let mut ev = libc::epoll_event {
      events: (libc::EPOLLIN | libc::EPOLLONESHOT) as u32,
      u64: id,
    };
    // SAFETY: both descriptors are open (the duplicate is owned by the entry just inserted) and `ev` is
    // a valid event for the duration of the call.
    let rc = unsafe { libc::epoll_ctl(w.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, raw, &mut ev) };
    if rc < 0 {
      let err = io::Error::last_os_error();
      w.entries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
      return Err(err);
    }
    Ok(Some(WatchId(id)))
  }

  pub fn unwatch(id: WatchId) -> bool {
    let Ok(w) = watcher() else { return false };
    let entry = w
      .entries
      .lock()
      .unwrap_or_else(|p| p.into_inner())
      .remove(&id.0);
    match entry {
      Some((fd, _)) => {
        w.remove(&fd);
        true
      }
      None => false,
    }
  }

  pub fn watched() -> usize {
    match WATCHER.get() {
      Some(Ok(w)) => w.entries.lock().unwrap_or_else(|p| p.into_inner()).len(),
      _ => 0,
    }
  }
}

#[cfg(not(target_os = "linux"))]
mod imp {
  use std::io;

  use super::{OnExit, WatchId};
  use crate::process::ProcessHandle;

  pub fn watch(_process: &ProcessHandle, _on_exit: OnExit) -> io::Result<Option<WatchId>> {
    Ok(None)
  }

  pub fn unwatch(_id: WatchId) -> bool {
    false
  }

  pub fn watched() -> usize {
    0
  }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
  use super::*;
  use std::sync::mpsc;
  use std::time::{Duration, Instant};

  #[test]
  fn a_watched_process_reports_its_death_once_and_an_unwatched_one_never() {
    let mut a = std::process::Command::new("sleep")
      .arg("30")
      .spawn()
      .unwrap();
    let mut b = std::process::Command::new("sleep")
      .arg("30")
      .spawn()
      .unwrap();
    let ha = ProcessHandle::open(a.id(), None).unwrap().unwrap();
    let hb = ProcessHandle::open(b.id(), None).unwrap().unwrap();
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    watch(&ha, Box::new(move || tx.send("a").unwrap()))
      .unwrap()
      .unwrap();
    let wb = watch(&hb, Box::new(move || tx2.send("b").unwrap()))
      .unwrap()
      .unwrap();
    assert!(unwatch(wb));
    assert!(!unwatch(wb), "once");
    let t = Instant::now();
    a.kill().unwrap();
    b.kill().unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "a");
    assert!(t.elapsed() < Duration::from_secs(5));
    a.wait().unwrap();
    b.wait().unwrap();
    assert!(
      rx.recv_timeout(Duration::from_millis(200)).is_err(),
      "b was unwatched"
    );
  }
}
