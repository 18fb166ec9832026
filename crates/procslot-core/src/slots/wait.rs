//! Waiting for a free slot on the events themselves, not by looking again and again.
//!
//! A slot frees in one of three ways, and each is something another process does to the slot file: a
//! holder gives it back (and then reads one byte of the file: an access), a holder exits or dies (the
//! last close of its writable open of the file), or someone grows the file (a change of size). A wait
//! watches the file for those events (`sys::Notifier`) and tries to claim a slot after each — holders in
//! other PID namespaces, other containers sharing the file through a volume, included: the watch is on
//! the file, not on processes. While nothing happens, nothing is looked at.
//!
//! Two details keep it exact. The kernel reports a last close a moment *before* it drops the closing
//! file's locks, so a look after a close that found nothing looks again shortly (1 ms, then doubling, for
//! about a second) — only after such an event. And where no event can be trusted to come — no inotify
//! here (another platform, the per-user inotify limit reached), a FUSE or network filesystem whose other
//! hosts' changes are not reported — the wait looks again every [`POLL_EVERY`].
//!
//! Every wait of a process runs on one thread ([`start`]; at most one waiting thread, whatever the number
//! of waits and files), each reporting once through its callback; [`wait_blocking`] waits in the calling
//! thread (`procslot exec`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::{SlotFile, Want};
use crate::error::{Error, Result};
use crate::sync::lock;
use crate::sys::{self, Fired, FsKind, Notifier};

/// How often a wait looks again where events cannot be trusted to come (see the module's note).
pub const POLL_EVERY: Duration = Duration::from_millis(10);

/// The first look again after a close that freed nothing; each further one waits twice as long.
const AFTER_CLOSE_FIRST: Duration = Duration::from_millis(1);
/// The longest of those looks again: past it, the close freed nothing of ours.
const AFTER_CLOSE_LAST: Duration = Duration::from_millis(512);

/// What a wait came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
  /// A slot, and whether this wait took it (`false`: this process held it already).
  Slot(usize, bool),
  /// The deadline passed with every slot held.
  TimedOut,
  /// [`cancel`] was called.
  Cancelled,
}

/// When one wait looks at its file: after an event on it, and on a schedule where events are not enough.
#[derive(Debug)]
struct Looks {
  /// Events cannot be trusted to come: look every [`POLL_EVERY`].
  poll: bool,
  /// An event came (or the wait just began): look at the next turn.
  now: bool,
  /// The last event was a close (its locks may go a moment later).
  closed: bool,
  /// The next look without an event, if any.
  next: Option<Instant>,
  /// The current step of the looks after a close.
  step: Duration,
}

impl Looks {
  fn new(poll: bool) -> Looks {
    Looks {
      poll,
      now: true,
      closed: false,
      next: None,
      step: AFTER_CLOSE_FIRST,
    }
  }

  fn due(&self, now: Instant) -> bool {
    self.now || self.next.is_some_and(|t| t <= now)
  }

  /// An event on the file (`closed`: it was a last close).
  fn fired(&mut self, closed: bool) {
    self.now = true;
    if closed {
      self.closed = true;
      self.step = AFTER_CLOSE_FIRST;
    }
  }

  /// A look found nothing free: when to look again without an event.
  fn missed(&mut self, now: Instant) {
    self.now = false;
    let after_close = if self.closed {
      let step = self.step;
      self.step *= 2;
      if self.step > AFTER_CLOSE_LAST {
        self.closed = false;
        self.step = AFTER_CLOSE_FIRST;
      }
      Some(step)
    } else {
      None
    };
    let poll = self.poll.then_some(POLL_EVERY);
    self.next = match (after_close, poll) {
      (Some(a), Some(p)) => Some(now + a.min(p)),
      (Some(d), None) | (None, Some(d)) => Some(now + d),
      (None, None) => None,
    };
  }
}

/// Whether a file's changes may happen where no event reaches this process.
fn must_poll(notifier: &Notifier, file: &SlotFile, wd: Option<i32>) -> bool {
  wd.is_none() || !notifier.watching() || sys::filesystem_kind(file.file()) != FsKind::Local
}

/// The earliest of some instants (`None`: none of them).
fn earliest(times: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
  times.into_iter().flatten().min()
}

/// Claims a slot of `file` as `want` says, or waits in this thread until one frees or `deadline`
/// passes.
///
/// # Errors
/// As [`SlotFile::claim`]; the notifier could not be made (out of descriptors).
pub fn wait_blocking(
  file: &Arc<SlotFile>,
  want: Want,
  deadline: Option<Instant>,
) -> Result<Waited> {
  // The common case first, with nothing to set up: a slot is free, or there is no time to wait.
  if let Some((slot, took)) = file.claim(want)? {
    return Ok(Waited::Slot(slot, took));
  }
  if deadline.is_some_and(|d| d <= Instant::now()) {
    return Ok(Waited::TimedOut);
  }
  let notifier = Notifier::new().map_err(|e| Error::slot_io(file.path(), "wait for a slot", &e))?;
  let wd = notifier.watch(file.file());
  let mut looks = Looks::new(must_poll(&notifier, file, wd));
  loop {
    let now = Instant::now();
    if looks.due(now) {
      if let Some((slot, took)) = file.claim(want)? {
        return Ok(Waited::Slot(slot, took));
      }
      looks.missed(now);
    }
    if deadline.is_some_and(|d| d <= now) {
      return Ok(Waited::TimedOut);
    }
    let wake = earliest([deadline, looks.next]);
    let fired = notifier.wait(wake.map(|t| t.saturating_duration_since(Instant::now())));
    for (w, closed) in fired.watches {
      if Some(w) == wd {
        looks.fired(closed);
      }
    }
    if fired.all {
      looks.fired(true);
    }
  }
}

/// What a wait run by the waiting thread calls, once: on that thread, or on the thread that cancels it.
pub type Done = Box<dyn FnOnce(Result<Waited>) + Send>;

/// One wait on the waiting thread, for [`cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitId(u64);

struct Pending {
  file: Arc<SlotFile>,
  want: Want,
  deadline: Option<Instant>,
  done: Done,
  wd: Option<i32>,
  looks: Looks,
}

struct Waiter {
  notifier: Notifier,
  /// Waits by ID, so in the order they began.
  pending: Mutex<BTreeMap<u64, Pending>>,
}

static WAITER: OnceLock<std::result::Result<&'static Waiter, i32>> = OnceLock::new();
static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn waiter() -> std::io::Result<&'static Waiter> {
  let w = WAITER.get_or_init(|| {
    let notifier = Notifier::new().map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    let w: &'static Waiter = Box::leak(Box::new(Waiter {
      notifier,
      pending: Mutex::new(BTreeMap::new()),
    }));
    std::thread::Builder::new()
      .name("procslot-slots".into())
      .spawn(move || w.run())
      .map_err(|e| e.raw_os_error().unwrap_or(libc::EAGAIN))?;
    Ok(w)
  });
  w.map_err(std::io::Error::from_raw_os_error)
}

/// Starts a wait on the waiting thread: `done` is called once, with the slot taken (or held already),
/// [`Waited::TimedOut`] at `deadline`, [`Waited::Cancelled`] on [`cancel`], or an error.
///
/// # Errors
/// The waiting thread or its notifier could not be started.
pub fn start(
  file: &Arc<SlotFile>,
  want: Want,
  deadline: Option<Instant>,
  done: Done,
) -> Result<WaitId> {
  let w = waiter().map_err(|e| Error::slot_io(file.path(), "wait for a slot", &e))?;
  let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
  let wd = w.notifier.watch(file.file());
  let looks = Looks::new(must_poll(&w.notifier, file, wd));
  w.pending().insert(
    id,
    Pending {
      file: file.clone(),
      want,
      deadline,
      done,
      wd,
      looks,
    },
  );
  // Its first look is at once, on the waiting thread: a slot freed since the caller's own try is seen.
  w.notifier.wake();
  Ok(WaitId(id))
}

/// Ends a wait: its callback gets [`Waited::Cancelled`] now, on this thread. `false` when it had ended
/// already.
pub fn cancel(id: WaitId) -> bool {
  let Some(Ok(w)) = WAITER.get() else {
    return false;
  };
  match w.remove(id.0) {
    Some(p) => {
      (p.done)(Ok(Waited::Cancelled));
      true
    }
    None => false,
  }
}

impl Waiter {
  fn pending(&self) -> MutexGuard<'_, BTreeMap<u64, Pending>> {
    lock(&self.pending)
  }

  /// Takes a wait out (and its file's watch, when no other wait uses it).
  fn remove(&self, id: u64) -> Option<Pending> {
    let mut pending = self.pending();
    let p = pending.remove(&id)?;
    if let Some(wd) = p.wd {
      if !pending.values().any(|o| o.wd == Some(wd)) {
        self.notifier.unwatch(wd);
      }
    }
    Some(p)
  }

  /// Ends wait `id` with `result`. A slot taken for a wait cancelled meanwhile is given back.
  fn finish(&self, id: u64, file: &SlotFile, result: Result<Waited>) {
    match self.remove(id) {
      Some(p) => (p.done)(result),
      None => {
        if let Ok(Waited::Slot(slot, true)) = result {
          file.release(Some(slot));
        }
      }
    }
  }

  fn run(&'static self) {
    loop {
      let now = Instant::now();
      let due: Vec<(u64, Arc<SlotFile>, Want)> = self
        .pending()
        .iter()
        .filter(|(_, p)| p.looks.due(now))
        .map(|(&id, p)| (id, p.file.clone(), p.want))
        .collect();
      // In the order the waits began; the claim runs outside the lock (`start` and `cancel` go on).
      for (id, file, want) in due {
        match file.claim(want) {
          Ok(Some((slot, took))) => self.finish(id, &file, Ok(Waited::Slot(slot, took))),
          Ok(None) => {
            if let Some(p) = self.pending().get_mut(&id) {
              p.looks.missed(now);
            }
          }
          Err(e) => self.finish(id, &file, Err(e)),
        }
      }
      let expired: Vec<(u64, Arc<SlotFile>)> = self
        .pending()
        .iter()
        .filter(|(_, p)| p.deadline.is_some_and(|d| d <= now))
        .map(|(&id, p)| (id, p.file.clone()))
        .collect();
      for (id, file) in expired {
        self.finish(id, &file, Ok(Waited::TimedOut));
      }
      let wake = earliest(
        self
          .pending()
          .values()
          .flat_map(|p| [p.deadline, p.looks.next, p.looks.now.then_some(now)]),
      );
      let fired: Fired = self
        .notifier
        .wait(wake.map(|t| t.saturating_duration_since(Instant::now())));
      let mut pending = self.pending();
      for p in pending.values_mut() {
        let closed = fired
          .watches
          .iter()
          .find(|(wd, _)| Some(*wd) == p.wd)
          .map(|&(_, closed)| closed);
        if let Some(closed) = closed {
          p.looks.fired(closed);
        } else if fired.all {
          p.looks.fired(true);
        }
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn after_a_close_the_looks_double_then_stop_and_polling_keeps_its_pace() {
    let t0 = Instant::now();
    let mut l = Looks::new(false);
    assert!(l.due(t0), "a new wait looks at once");
    l.missed(t0);
    assert_eq!(l.next, None, "nothing to look at until an event");
    l.fired(true);
    let mut steps = Vec::new();
    while l.due(t0) || l.next.is_some() {
      let at = if l.now { t0 } else { l.next.unwrap() };
      l.missed(at);
      if let Some(next) = l.next {
        steps.push((next - at).as_millis());
      }
    }
    assert_eq!(steps, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]);
    let mut p = Looks::new(true);
    p.missed(t0);
    assert_eq!(p.next, Some(t0 + POLL_EVERY));
    p.fired(true);
    p.missed(t0);
    assert_eq!(
      p.next,
      Some(t0 + AFTER_CLOSE_FIRST),
      "the sooner of the two"
    );
  }
}
