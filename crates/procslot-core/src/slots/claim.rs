//! Claiming and giving back slots: the claiming order, the lock-then-word claim, the release that tells
//! waiters, freeing dead holders' slots, and the table as every holder's lock and word say.

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

use super::file::{Inner, SlotFile, RECHECK_AFTER};
use super::lease::{Lease, Owner};
use super::map::SlotMap;
use super::word::{offset, Holder, SLOT_BYTES};
use crate::error::{Error, Result};
use crate::liveness::{holder_is_dead, SystemProbe};
use crate::sync::lock;
use crate::sys::{self, LockOutcome, LockProbe};

/// Which slot a claim is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
  /// The slot to try first (the cluster worker's index, PM2's instance number).
  pub preferred: Option<usize>,
  /// Only the preferred slot will do (PM2's instance N keeps slot N through a reload).
  pub exact: bool,
}

/// Above this many holders (non-zero words) a table is crowded: [`SlotFile::acquire`] tries the free
/// words first instead of probing holders' locks in ascending order.
pub const CROWDED: usize = 64;

/// One slot, as [`SlotFile::snapshot`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotInfo {
  /// The slot's index.
  pub slot: usize,
  /// The holder as the word names it (`pid` 0: free).
  pub holder: Holder,
  /// Whether the holder is alive: its lock is held (or, without locks, its PID is live).
  pub alive: bool,
  /// Whether this process holds the slot.
  pub is_self: bool,
}

impl SlotFile {
  /// Takes the lock of `slot` without waiting. `None`: the filesystem refuses locks (and from now on
  /// liveness is decided by PIDs).
  fn try_lock(&self, slot: usize) -> Result<Option<bool>> {
    match sys::try_lock(&self.file, offset(slot), SLOT_BYTES as u64) {
      Ok(LockOutcome::Acquired) => Ok(Some(true)),
      Ok(LockOutcome::Busy) => Ok(Some(false)),
      Ok(LockOutcome::Unsupported) => {
        self.locks.store(false, Ordering::Relaxed);
        Ok(None)
      }
      Err(e) => Err(Error::slot_io(&self.path, "lock slot", &e)),
    }
  }

  fn unlock(&self, slot: usize) {
    if self.uses_locks() {
      // Failing to unlock cannot be acted on; the lock goes with the descriptor at the latest.
      let _ = sys::unlock(&self.file, offset(slot), SLOT_BYTES as u64);
    }
  }

  /// Claims a slot for this process: its own slot if it holds one already, else `preferred` if free, else
  /// the lowest slot with no live holder. `Ok(None)` when every slot is held by a live process.
  ///
  /// In a crowded table (more than [`CROWDED`] words name a holder, some lease held) the free words come
  /// first: the slots whose word is 0 (free, most probably) are tried before the holders' slots; a
  /// crowded table with no lease held at all (dead holders only) is taken in ascending order. Probing a holder's
  /// lock is a system call that walks the file's whole lock list, so in a table of a thousand live
  /// holders an ascending scan would cost a thousand such walks to find the one free slot; with few
  /// holders a probe is cheap, and the order is exactly "the lowest slot with no live holder".
  ///
  /// The slot is held until [`SlotFile::release`] or the end of the process: dropping every handle to
  /// this file does not free it.
  ///
  /// # Errors
  /// A lock or `fstat` failure other than "held" or "unsupported"; `ESHRUNK`.
  pub fn acquire(self: &Arc<Self>, preferred: Option<usize>) -> Result<Option<usize>> {
    let want = Want {
      preferred,
      exact: false,
    };
    Ok(self.claim(want)?.map(|(slot, _)| slot))
  }

  /// As [`SlotFile::acquire`], for the slot `want` names, also saying whether this call took the slot
  /// (`false`: this process held it already — with `exact`, only if it is that very slot).
  ///
  /// # Errors
  /// As [`SlotFile::acquire`].
  pub fn claim(self: &Arc<Self>, want: Want) -> Result<Option<(usize, bool)>> {
    self.claim_as(want, None)
  }

  /// [`SlotFile::claim`] on behalf of `by` (`None`: the process), whose lease it records.
  pub(super) fn claim_as(
    self: &Arc<Self>,
    want: Want,
    by: Option<Owner>,
  ) -> Result<Option<(usize, bool)>> {
    let mut inner = lock(&self.inner);
    if let Some(lease) = inner.lease.as_mut() {
      let slot = lease.slot;
      if want.exact && want.preferred != Some(slot) {
        return Ok(None);
      }
      lease.found_by(by);
      return Ok(Some((slot, false)));
    }
    self.refresh(&mut inner)?;
    let won = self.pick(&inner.map, want)?;
    if let Some(slot) = won {
      inner.lease = Some(Lease::taken(slot, self, by));
      drop(inner);
      // A file opened by its path a moment ago is the file the path names: look again only on a table
      // that has been open a while (one lstat).
      if self.opened.elapsed() >= RECHECK_AFTER {
        self.replaced();
      }
      return Ok(Some((slot, true)));
    }
    Ok(None)
  }

  /// The claiming order of [`SlotFile::acquire`]; the slot won, if any. With `exact`, only the
  /// preferred slot (none when there is no such slot).
  fn pick(&self, map: &SlotMap, want: Want) -> Result<Option<usize>> {
    let n = map.slots;
    let first = want.preferred.filter(|&p| p < n);
    if let Some(p) = first {
      if self.try_claim(map, p)? {
        return Ok(Some(p));
      }
    }
    if want.exact {
      return Ok(None);
    }
    let rest = move |i: &usize| Some(*i) != first;
    // Crowded, and some lease held in it: the free words first (see `acquire`). A crowded table in which
    // no lease is held at all (its holders are dead: one probe over the whole table says so) is taken
    // in ascending order: the lowest slot, a dead holder's, at the first try.
    let crowded = (0..n).filter(|&i| map.load(i) != 0).nth(CROWDED).is_some()
      && !(self.uses_locks()
        && matches!(
          sys::probe_lock(&self.file, 0, (n * SLOT_BYTES) as u64),
          Ok(LockProbe::Free)
        ));
    if crowded {
      let free = (0..n).filter(rest).filter(|&i| map.load(i) == 0);
      let taken = (0..n).filter(rest).filter(|&i| map.load(i) != 0);
      for slot in free.chain(taken) {
        if self.try_claim(map, slot)? {
          return Ok(Some(slot));
        }
      }
    } else {
      for slot in (0..n).filter(rest) {
        if self.try_claim(map, slot)? {
          return Ok(Some(slot));
        }
      }
    }
    Ok(None)
  }

  /// One claim attempt on `slot`: its lock without waiting, then the word (CAS).
  fn try_claim(&self, map: &SlotMap, slot: usize) -> Result<bool> {
    let mine = self.me.to_word();
    if self.uses_locks() {
      match self.try_lock(slot)? {
        Some(true) => {
          // The lease is ours, so whoever the word names is gone: only lock holders write.
          let mut seen = map.load(slot);
          while let Err(now) = map.cas(slot, seen, mine) {
            seen = now;
          }
          return Ok(true);
        }
        Some(false) => return Ok(false),
        None => {} // locks refused: decide this slot (and the rest) by PID
      }
    }
    let seen = map.load(slot);
    let holder = Holder::from_word(seen);
    Ok(holder_is_dead(&SystemProbe, holder.pid, holder.tag) && map.cas(slot, seen, mine).is_ok())
  }

  /// Frees this process's slot: the word goes back to 0 if it still names this process (and the file
  /// still has that word: a word lost to a truncation is not touched), then the lock is dropped and the
  /// slot forgotten. With `Some(slot)`, only if that is the slot this process holds. Returns whether a
  /// slot was given back.
  pub fn release(&self, slot: Option<usize>) -> bool {
    self.release_in(lock(&self.inner), slot)
  }

  /// [`SlotFile::release`] under the file's mutex, already taken (`inner`), which it lets go.
  pub(super) fn release_in(&self, mut inner: MutexGuard<'_, Inner>, slot: Option<usize>) -> bool {
    let Some(held) = inner.lease.as_ref().map(|l| l.slot) else {
      return false;
    };
    if slot.is_some_and(|s| s != held) {
      return false;
    }
    // Never touch a page past the end of the file (SIGBUS): the word is only cleared if it is still
    // inside the file (see `refresh` for the race that remains).
    let end = offset(held) + SLOT_BYTES as u64;
    if self.file_len().is_ok_and(|len| len >= end) && held < inner.map.slots {
      let _ = inner.map.cas(held, self.me.to_word(), 0);
    }
    self.unlock(held);
    let pin = inner.lease.take().map(Lease::into_pin);
    drop(inner);
    self.tell_waiters(held);
    // Possibly the last reference: dropped after the guard, so the file's own mutex is not held.
    drop(pin);
    true
  }

  /// Tells every process waiting for a slot of this file that one was given back: one byte of the
  /// file is read (after the lock was dropped), which a waiter's watch reports as an access (see
  /// [`wait`]). A holder that dies tells them by the last close of its open file.
  fn tell_waiters(&self, slot: usize) {
    let mut byte = [0u8; 1];
    let _ = self.file.read_at(&mut byte, offset(slot));
  }

  /// Frees every slot whose holder is dead; returns how many.
  ///
  /// # Errors
  /// A lock or `fstat` failure; `ESHRUNK`.
  pub fn reclaim(&self) -> Result<usize> {
    let mut inner = lock(&self.inner);
    self.refresh(&mut inner)?;
    let mut freed = 0;
    for slot in 0..inner.map.slots {
      let seen = inner.map.load(slot);
      if seen == 0 || inner.lease.as_ref().is_some_and(|l| l.slot == slot) {
        continue;
      }
      if self.uses_locks() {
        match self.try_lock(slot)? {
          Some(true) => {
            // Nobody holds the lease: free the word (unless someone rewrote it meanwhile).
            freed += usize::from(inner.map.cas(slot, seen, 0).is_ok());
            self.unlock(slot);
            continue;
          }
          Some(false) => continue,
          None => {}
        }
      }
      let holder = Holder::from_word(seen);
      if holder_is_dead(&SystemProbe, holder.pid, holder.tag)
        && inner.map.cas(slot, seen, 0).is_ok()
      {
        freed += 1;
      }
    }
    Ok(freed)
  }

  /// Every slot: who its word names, whether that holder is alive, whether it is this process.
  ///
  /// # Errors
  /// A lock-probe or `fstat` failure; `ESHRUNK`.
  pub fn snapshot(&self) -> Result<Vec<SlotInfo>> {
    self.replaced();
    let mut inner = lock(&self.inner);
    self.refresh(&mut inner)?;
    let n = inner.map.slots;
    let leased = self.leased_slots(n)?;
    let mut out = Vec::with_capacity(n);
    for slot in 0..n {
      let holder = Holder::from_word(inner.map.load(slot));
      let is_self = inner.lease.as_ref().is_some_and(|l| l.slot == slot);
      let alive = if holder.pid == 0 {
        false
      } else if is_self {
        true
      } else if let Some(leased) = &leased {
        leased[slot]
      } else {
        !holder_is_dead(&SystemProbe, holder.pid, holder.tag)
      };
      out.push(SlotInfo {
        slot,
        holder,
        alive,
        is_self,
      });
    }
    Ok(out)
  }

  /// Which of the first `n` slots another process holds the lock of; `None` without locks. Costs one
  /// probe per lock found plus one per gap between them, not one per slot: a probe over a range reports
  /// one conflicting lock, and the ranges on either side of it are probed in turn.
  fn leased_slots(&self, n: usize) -> Result<Option<Vec<bool>>> {
    if !self.uses_locks() {
      return Ok(None);
    }
    let mut leased = vec![false; n];
    let mut ranges = vec![(0, n)];
    while let Some((first, end)) = ranges.pop() {
      if first >= end {
        continue;
      }
      let len = ((end - first) * SLOT_BYTES) as u64;
      match sys::probe_lock(&self.file, offset(first), len) {
        Ok(LockProbe::Free) => {}
        Ok(LockProbe::Held { start, len }) => {
          let lo = ((start / SLOT_BYTES as u64) as usize).max(first);
          let hi = match len {
            0 => end,
            len => (start + len).div_ceil(SLOT_BYTES as u64).min(end as u64) as usize,
          };
          let hi = hi.max(lo + 1);
          leased[lo..hi].iter_mut().for_each(|l| *l = true);
          ranges.push((first, lo));
          ranges.push((hi, end));
        }
        Ok(LockProbe::Unsupported) => {
          self.locks.store(false, Ordering::Relaxed);
          return Ok(None);
        }
        Err(e) => return Err(Error::slot_io(&self.path, "probe slot locks", &e)),
      }
    }
    Ok(Some(leased))
  }
}
