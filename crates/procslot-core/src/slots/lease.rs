//! Who holds this process's slot of a file, and who gives it back: the one record of a slot's lifetime.
//!
//! A slot is held by the process, not by a handle: it is taken ([`SlotFile::claim`], a [`Table`]'s
//! claim), adopted from an exec hand-off (opening the file finds the inherited lease), and held until it
//! is released ([`SlotFile::release`]) or the process ends. While held, the lease pins its file (a strong
//! reference from the file's own state), so dropping every handle to it — a garbage-collected JavaScript
//! table, say — never frees the slot, and the open file and its lock live on.
//!
//! A lease may also have owners: the [`Table`]s that took it, which give it back when the last of them
//! closes. A table that found the slot held already (through [`super::get_process_id`], another table,
//! an exec hand-off) is no owner and frees nothing on close; a detached table stops being one without
//! freeing it. Sharing tables (the clients of one file) share a lease one of them took: each joins its
//! owners, and the last to close gives it back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A held slot of a file, in that file's state.
pub(super) struct Lease<F> {
  /// The slot.
  pub(super) slot: usize,
  /// The tables that give it back: released when the last of them closes. Empty: the process holds it
  /// until [`SlotFile::release`] or its end.
  owners: Vec<u64>,
  /// Taken by a sharing table: other sharing tables join its owners.
  shared: bool,
  /// The file itself, so that it lives (and keeps its lock) whoever drops their handles. Dropped (after
  /// the file's mutex is let go) when the slot is released.
  pin: Arc<F>,
}

/// A table on whose behalf a slot is claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Owner {
  id: u64,
  shares: bool,
}

impl Owner {
  /// A new owner, unlike every other of this process; `shares`: a sharing table.
  pub(super) fn new(shares: bool) -> Owner {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Owner {
      id: NEXT.fetch_add(1, Ordering::Relaxed),
      shares,
    }
  }
}

impl<F> Lease<F> {
  /// A slot just taken, by `by` (`None`: by the process).
  pub(super) fn taken(slot: usize, file: &Arc<F>, by: Option<Owner>) -> Lease<F> {
    Lease {
      slot,
      owners: by.map(|o| o.id).into_iter().collect(),
      shared: by.is_some_and(|o| o.shares),
      pin: Arc::clone(file),
    }
  }

  /// A slot inherited across `execve`: the process's.
  pub(super) fn adopted(slot: usize, file: &Arc<F>) -> Lease<F> {
    Lease::taken(slot, file, None)
  }

  /// `by` found the slot held already: a sharing table joins a lease that sharing tables own.
  pub(super) fn found_by(&mut self, by: Option<Owner>) {
    if let Some(o) = by {
      if o.shares && self.shared && !self.owners.is_empty() && !self.owners.contains(&o.id) {
        self.owners.push(o.id);
      }
    }
  }

  /// `by` becomes an owner (a slot a wait took for it).
  pub(super) fn adopt(&mut self, by: Owner) {
    if self.owners.is_empty() {
      self.shared = by.shares;
    }
    if !self.owners.contains(&by.id) {
      self.owners.push(by.id);
    }
  }

  /// `by` lets go; whether it was the last owner (then the slot is to be given back).
  pub(super) fn leave(&mut self, by: Owner) -> bool {
    let before = self.owners.len();
    self.owners.retain(|&id| id != by.id);
    before != self.owners.len() && self.owners.is_empty()
  }

  /// The pin, for dropping outside the file's mutex.
  pub(super) fn into_pin(self) -> Arc<F> {
    self.pin
  }
}
