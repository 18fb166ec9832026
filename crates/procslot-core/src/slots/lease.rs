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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::claim::Want;
use super::file::SlotFile;
use super::registry::lock;
use crate::error::{Error, Result};

/// A held slot of a file, in that file's state.
pub(super) struct Lease {
  /// The slot.
  pub(super) slot: usize,
  /// The tables that give it back: released when the last of them closes. Empty: the process holds it
  /// until [`SlotFile::release`] or its end.
  owners: Vec<u64>,
  /// Taken by a sharing table: other sharing tables join its owners.
  shared: bool,
  /// The file itself, so that it lives (and keeps its lock) whoever drops their handles. Dropped (after
  /// the file's mutex is let go) when the slot is released.
  pin: Arc<SlotFile>,
}

/// A table on whose behalf a slot is claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Owner {
  id: u64,
  shares: bool,
}

impl Lease {
  /// A slot just taken, by `by` (`None`: by the process).
  pub(super) fn taken(slot: usize, file: &Arc<SlotFile>, by: Option<Owner>) -> Lease {
    Lease {
      slot,
      owners: by.map(|o| o.id).into_iter().collect(),
      shared: by.is_some_and(|o| o.shares),
      pin: Arc::clone(file),
    }
  }

  /// A slot inherited across `execve`: the process's.
  pub(super) fn adopted(slot: usize, file: &Arc<SlotFile>) -> Lease {
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
  fn adopt(&mut self, by: Owner) {
    if self.owners.is_empty() {
      self.shared = by.shares;
    }
    if !self.owners.contains(&by.id) {
      self.owners.push(by.id);
    }
  }

  /// `by` lets go; whether it was the last owner (then the slot is to be given back).
  fn leave(&mut self, by: Owner) -> bool {
    let before = self.owners.len();
    self.owners.retain(|&id| id != by.id);
    before != self.owners.len() && self.owners.is_empty()
  }

  /// The pin, for dropping outside the file's mutex.
  pub(super) fn into_pin(self) -> Arc<SlotFile> {
    self.pin
  }
}

/// A handle on a slot file through which a slot is taken, and given back when the handle closes — the
/// lifetime of a JavaScript `SlotTable`. Dropping it (closing nothing) frees nothing.
#[derive(Debug)]
pub struct Table {
  path: PathBuf,
  file: Option<Arc<SlotFile>>,
  owner: Owner,
}

impl Table {
  /// A table on `file`; with `shares`, one of the sharing tables of the file (the clients of a process),
  /// which share one lease.
  pub fn new(file: Arc<SlotFile>, shares: bool) -> Table {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Table {
      path: file.path().to_owned(),
      file: Some(file),
      owner: Owner {
        id: NEXT.fetch_add(1, Ordering::Relaxed),
        shares,
      },
    }
  }

  /// The file's absolute path.
  pub fn path(&self) -> &Path {
    &self.path
  }

  /// The file.
  ///
  /// # Errors
  /// `ECLOSED` once the table is closed or detached.
  pub fn file(&self) -> Result<&Arc<SlotFile>> {
    self
      .file
      .as_ref()
      .ok_or_else(|| Error::slot_file("ECLOSED", &self.path, "this table is closed"))
  }

  /// As [`SlotFile::claim`], on behalf of this table: a slot it takes is given back by its
  /// [`Table::close`].
  ///
  /// # Errors
  /// As [`SlotFile::claim`]; `ECLOSED`.
  pub fn claim(&self, want: Want) -> Result<Option<(usize, bool)>> {
    self.file()?.claim_as(want, Some(self.owner))
  }

  /// Makes this table an owner of `slot`, if this process holds that slot of the file (a slot a wait
  /// took for this table).
  pub fn adopt(&self, slot: usize) {
    if let Some(file) = &self.file {
      if let Some(lease) = lock(&file.inner).lease.as_mut().filter(|l| l.slot == slot) {
        lease.adopt(self.owner);
      }
    }
  }

  /// Closes this table without giving back its slot: the process holds it from now on (until it is
  /// released or the process ends). Idempotent.
  pub fn detach(&mut self) {
    if let Some(file) = self.file.take() {
      if let Some(lease) = lock(&file.inner).lease.as_mut() {
        lease.leave(self.owner);
      }
    }
  }

  /// Closes this table: the slot it took (alone, or as the last of the sharing tables that share it) is
  /// given back. Idempotent.
  pub fn close(&mut self) {
    if let Some(file) = self.file.take() {
      let mut inner = lock(&file.inner);
      // Left and given back under one lock: no other call sees the lease ownerless but held.
      let last = inner
        .lease
        .as_mut()
        .and_then(|lease| lease.leave(self.owner).then_some(lease.slot));
      if let Some(slot) = last {
        file.release_in(inner, Some(slot));
      }
    }
  }
}
