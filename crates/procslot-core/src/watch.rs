//! Watching processes die: one thread for every watched process of this process. A process with a pidfd
//! is watched through that very descriptor (no copy: one descriptor per watched process) in one epoll
//! set, which reports its exit the moment it happens; nothing is looked at while nothing happens. A
//! process without one — a kernel without pidfds (Linux before 5.3), descriptors gone, another platform —
//! is watched by the fallback: its PID and exact start time are looked at again, at least once a second
//! (every 100 ms for a few, up to a second for many thousands). Either way its callback runs once, on the
//! watcher thread, when it has exited.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::process::ProcessHandle;

/// What runs when a watched process has exited.
pub type OnExit = Box<dyn FnOnce() + Send>;

/// One watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WatchId(u64);

/// A watch as it was set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
  /// Its ID, for [`unwatch`].
  pub id: WatchId,
  /// Whether its exit is seen through its pidfd (at once), or by the fallback (within a second).
  pub by_pidfd: bool,
}

/// Watches `process` until it exits, then calls `on_exit` once (on the watcher thread). The watch keeps
/// the handle (and its pidfd) open until it fires or is [`unwatch`]ed.
///
/// # Errors
/// The watcher thread could not be started.
pub fn watch(process: &Arc<ProcessHandle>, on_exit: OnExit) -> crate::Result<Watch> {
  let w = watcher().map_err(|e| crate::Error::process_io(process.pid(), "watch its exit", &e))?;
  let id = w.next.fetch_add(1, Ordering::Relaxed);
  let by_pidfd = {
    // The entry is there before its pidfd can fire (the watcher takes this lock to find it).
    let mut entries = w.entries();
    let fd = imp::fd_of(process);
    let by_pidfd = match fd {
      Some(fd) if entries.by_fd.contains_key(&fd) => true,
      Some(fd) => imp::add(w, fd),
      None => false,
    };
    if let (true, Some(fd)) = (by_pidfd, fd) {
      entries.by_fd.entry(fd).or_default().push(id);
    }
    entries.entries.insert(
      id,
      Entry {
        process: process.clone(),
        on_exit,
        by_pidfd,
      },
    );
    by_pidfd
  };
  if !by_pidfd {
    // The watcher may be asleep with no deadline: it must learn of a process to look at.
    imp::wake(w);
  }
  Ok(Watch {
    id: WatchId(id),
    by_pidfd,
  })
}

/// Stops watching; whether the watch was still there (its callback has not run and never will).
pub fn unwatch(id: WatchId) -> bool {
  let Some(w) = WATCHER.get().and_then(|w| w.as_ref().ok()) else {
    return false;
  };
  let removed = w.entries().remove(w, id.0);
  removed.is_some()
}

/// How many processes are watched now, and how many of them by the fallback.
pub fn watched() -> (usize, usize) {
  match WATCHER.get() {
    Some(Ok(w)) => {
      let entries = w.entries();
      let fallback = entries.values().filter(|e| !e.by_pidfd).count();
      (entries.len(), fallback)
    }
    _ => (0, 0),
  }
}

/// How often the fallback looks at its `n` processes: every 100 ms, plus 40 µs for each (a look costs a
/// few microseconds), at most once a second.
fn fallback_period(n: usize) -> Duration {
  (Duration::from_millis(100) + Duration::from_micros(40) * n as u32).min(Duration::from_secs(1))
}

struct Entry {
  process: Arc<ProcessHandle>,
  on_exit: OnExit,
  by_pidfd: bool,
}

/// The watches, and which of them wait on each pidfd in the epoll set (a process may be watched more
/// than once: by the supervisor, and by a `kill` waiting for its exit; its pidfd is in the set once).
#[derive(Default)]
struct Watches {
  entries: HashMap<u64, Entry>,
  by_fd: HashMap<i32, Vec<u64>>,
}

impl Watches {
  fn values(&self) -> impl Iterator<Item = &Entry> {
    self.entries.values()
  }

  fn len(&self) -> usize {
    self.entries.len()
  }

  /// Takes a watch out, and its pidfd out of the set when no other watch waits on it.
  fn remove(&mut self, w: &Watcher, id: u64) -> Option<Entry> {
    let entry = self.entries.remove(&id)?;
    if entry.by_pidfd {
      if let Some(fd) = imp::fd_of(&entry.process) {
        let ids = self.by_fd.entry(fd).or_default();
        ids.retain(|&i| i != id);
        if ids.is_empty() {
          self.by_fd.remove(&fd);
          imp::remove(w, &entry.process);
        }
      }
    }
    Some(entry)
  }
}

struct Watcher {
  sys: imp::Sys,
  entries: Mutex<Watches>,
  next: AtomicU64,
}

impl Watcher {
  fn entries(&self) -> MutexGuard<'_, Watches> {
    self.entries.lock().unwrap_or_else(|p| p.into_inner())
  }

  fn run(&'static self) {
    let mut next_look = Instant::now();
    loop {
      let fallback = self.entries().values().filter(|e| !e.by_pidfd).count();
      let timeout = (fallback > 0).then(|| next_look.saturating_duration_since(Instant::now()));
      for fd in imp::wait(self, timeout) {
        self.fired(fd);
      }
      if fallback > 0 && Instant::now() >= next_look {
        self.look_at_fallback();
        next_look = Instant::now() + fallback_period(fallback);
      }
    }
  }

  /// Looks at every process the fallback watches (outside the lock: `watch` and `unwatch` go on).
  fn look_at_fallback(&self) {
    let polled: Vec<(u64, Arc<ProcessHandle>)> = self
      .entries()
      .entries
      .iter()
      .filter(|(_, e)| !e.by_pidfd)
      .map(|(&id, e)| (id, e.process.clone()))
      .collect();
    for (id, process) in polled {
      if !process.is_alive() {
        let entry = self.entries().remove(self, id);
        if let Some(entry) = entry {
          (entry.on_exit)();
        }
      }
    }
  }

  /// The process of the pidfd `fd` exited: ends every watch waiting on it and runs their callbacks.
  fn fired(&self, fd: i32) {
    let entries: Vec<Entry> = {
      let mut watches = self.entries();
      let ids = watches.by_fd.get(&fd).cloned().unwrap_or_default();
      ids
        .into_iter()
        .filter_map(|id| watches.remove(self, id))
        .collect()
    };
    for entry in entries {
      (entry.on_exit)();
    }
  }
}

static WATCHER: OnceLock<Result<Watcher, i32>> = OnceLock::new();

fn watcher() -> std::io::Result<&'static Watcher> {
  let w = WATCHER.get_or_init(|| {
    Ok(Watcher {
      sys: imp::Sys::new()?,
      entries: Mutex::new(Watches::default()),
      next: AtomicU64::new(1),
    })
  });
  let w: &'static Watcher = w
    .as_ref()
    .map_err(|&e| std::io::Error::from_raw_os_error(e))?;
  static STARTED: OnceLock<Result<(), i32>> = OnceLock::new();
  STARTED
    .get_or_init(|| {
      std::thread::Builder::new()
        .name("procslot-watch".into())
        .spawn(move || w.run())
        .map(drop)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EAGAIN))
    })
    .map_err(std::io::Error::from_raw_os_error)?;
  Ok(w)
}

/// Linux: an epoll set over the watched pidfds and an eventfd that wakes the thread.
#[cfg(target_os = "linux")]
mod imp {
  use std::io;
  use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
  use std::time::Duration;

  use super::Watcher;
  use crate::process::ProcessHandle;
  use crate::sys::clamp_ms;

  pub struct Sys {
    epoll: OwnedFd,
    wake: OwnedFd,
  }

  /// The epoll data of the eventfd; watches count from 1.
  const WAKE: u64 = 0;

  impl Sys {
    pub fn new() -> Result<Sys, i32> {
      let errno = || {
        io::Error::last_os_error()
          .raw_os_error()
          .unwrap_or(libc::EIO)
      };
      // SAFETY: epoll_create1 takes a flags word and returns a new descriptor or -1.
      let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
      if epoll < 0 {
        return Err(errno());
      }
      // SAFETY: the kernel just handed us this descriptor; nothing else owns it.
      let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
      // SAFETY: eventfd takes an initial value and flags and returns a new descriptor or -1.
      let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
      if wake < 0 {
        return Err(errno());
      }
      // SAFETY: as above.
      let wake = unsafe { OwnedFd::from_raw_fd(wake) };
      if ctl(
        &epoll,
        libc::EPOLL_CTL_ADD,
        wake.as_raw_fd(),
        WAKE,
        libc::EPOLLIN as u32,
      ) < 0
      {
        return Err(errno());
      }
      Ok(Sys { epoll, wake })
    }
  }

  fn ctl(epoll: &OwnedFd, op: libc::c_int, fd: libc::c_int, data: u64, events: u32) -> libc::c_int {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: both descriptors are open for the duration of the call and `ev` is a valid event (ignored
    // for EPOLL_CTL_DEL).
    unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd, &mut ev) }
  }

  /// The process's pidfd, if it has one.
  pub fn fd_of(process: &ProcessHandle) -> Option<i32> {
    process.pidfd().map(|fd| fd.as_raw_fd())
  }

  /// Adds a pidfd to the set (its data is the descriptor itself); `false` when the set refuses it
  /// (`max_user_watches` reached): then the fallback watches its process.
  pub fn add(w: &Watcher, fd: i32) -> bool {
    let events = (libc::EPOLLIN | libc::EPOLLONESHOT) as u32;
    ctl(&w.sys.epoll, libc::EPOLL_CTL_ADD, fd, fd as u64 + 1, events) == 0
  }

  /// Takes the process's pidfd out of the set (before the handle may close it).
  pub fn remove(w: &Watcher, process: &ProcessHandle) {
    if let Some(fd) = process.pidfd() {
      ctl(&w.sys.epoll, libc::EPOLL_CTL_DEL, fd.as_raw_fd(), 0, 0);
    }
  }

  pub fn wake(w: &Watcher) {
    let one: u64 = 1;
    // SAFETY: the eventfd is open and `one` is 8 readable bytes for the duration of the call.
    unsafe { libc::write(w.sys.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
  }

  /// Waits for exits (or a wake-up, or `timeout`); the pidfds whose process exited.
  pub fn wait(w: &Watcher, timeout: Option<Duration>) -> Vec<i32> {
    // SAFETY: `epoll_event` is plain data; all-zero is valid.
    let mut events: [libc::epoll_event; 64] = unsafe { std::mem::zeroed() };
    let ms = timeout.map_or(-1, clamp_ms);
    // SAFETY: `events` is a writable array of 64 events for the duration of the call.
    let n = unsafe { libc::epoll_wait(w.sys.epoll.as_raw_fd(), events.as_mut_ptr(), 64, ms) };
    let mut out = Vec::new();
    for ev in events.iter().take(n.max(0) as usize) {
      if ev.u64 == WAKE {
        let mut count = 0u64;
        // SAFETY: the eventfd is open and `count` is 8 writable bytes for the duration of the call.
        unsafe { libc::read(w.sys.wake.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
      } else {
        out.push((ev.u64 - 1) as i32);
      }
    }
    out
  }
}

/// Elsewhere: no pidfds, so every process is the fallback's; the thread sleeps on a condition variable.
#[cfg(not(target_os = "linux"))]
mod imp {
  use std::sync::{Condvar, Mutex};
  use std::time::Duration;

  use super::Watcher;
  use crate::process::ProcessHandle;

  pub struct Sys {
    woken: Mutex<bool>,
    wake: Condvar,
  }

  impl Sys {
    pub fn new() -> Result<Sys, i32> {
      Ok(Sys {
        woken: Mutex::new(false),
        wake: Condvar::new(),
      })
    }
  }

  pub fn fd_of(_process: &ProcessHandle) -> Option<i32> {
    None
  }

  pub fn add(_w: &Watcher, _fd: i32) -> bool {
    false
  }

  pub fn remove(_w: &Watcher, _process: &ProcessHandle) {}

  pub fn wake(w: &Watcher) {
    *w.sys.woken.lock().unwrap_or_else(|p| p.into_inner()) = true;
    w.sys.wake.notify_one();
  }

  pub fn wait(w: &Watcher, timeout: Option<Duration>) -> Vec<i32> {
    let mut woken = w.sys.woken.lock().unwrap_or_else(|p| p.into_inner());
    if !*woken {
      woken = match timeout {
        Some(t) => {
          w.sys
            .wake
            .wait_timeout(woken, t)
            .unwrap_or_else(|p| p.into_inner())
            .0
        }
        None => w.sys.wake.wait(woken).unwrap_or_else(|p| p.into_inner()),
      };
    }
    *woken = false;
    Vec::new()
  }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
  use super::*;
  use std::sync::mpsc;

  fn sleeper() -> std::process::Child {
    std::process::Command::new("sleep")
      .arg("30")
      .spawn()
      .unwrap()
  }

  #[test]
  fn a_watched_process_reports_its_death_once_and_an_unwatched_one_never() {
    let mut a = sleeper();
    let mut b = sleeper();
    let ha = Arc::new(ProcessHandle::open(a.id(), None).unwrap().unwrap());
    let hb = Arc::new(ProcessHandle::open(b.id(), None).unwrap().unwrap());
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    let wa = watch(&ha, Box::new(move || tx.send("a").unwrap())).unwrap();
    assert!(wa.by_pidfd);
    let wb = watch(&hb, Box::new(move || tx2.send("b").unwrap())).unwrap();
    assert!(unwatch(wb.id));
    assert!(!unwatch(wb.id), "once");
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

  #[test]
  fn a_process_watched_twice_reports_to_both_and_an_unwatch_leaves_the_other() {
    let mut a = sleeper();
    let h = Arc::new(ProcessHandle::open(a.id(), None).unwrap().unwrap());
    let (tx, rx) = mpsc::channel();
    let (tx2, tx3) = (tx.clone(), tx.clone());
    let w1 = watch(&h, Box::new(move || tx.send(1).unwrap())).unwrap();
    let w2 = watch(&h, Box::new(move || tx2.send(2).unwrap())).unwrap();
    let w3 = watch(&h, Box::new(move || tx3.send(3).unwrap())).unwrap();
    assert!(
      w1.by_pidfd && w2.by_pidfd && w3.by_pidfd,
      "one pidfd in the set, three watches on it"
    );
    assert!(unwatch(w2.id));
    a.kill().unwrap();
    let mut got = [
      rx.recv_timeout(Duration::from_secs(10)).unwrap(),
      rx.recv_timeout(Duration::from_secs(10)).unwrap(),
    ];
    got.sort();
    assert_eq!(got, [1, 3]);
    a.wait().unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    assert!(!unwatch(w1.id), "a watch that fired is gone");
  }

  #[test]
  fn the_fallback_periods_stay_within_a_second() {
    assert_eq!(fallback_period(0), Duration::from_millis(100));
    assert_eq!(fallback_period(1000), Duration::from_millis(140));
    assert_eq!(fallback_period(10_000), Duration::from_millis(500));
    assert_eq!(fallback_period(1_000_000), Duration::from_secs(1));
  }
}
