//! [`Table`]: a handle through which a slot is taken and given back — the lifetime of a JavaScript
//! `SlotTable`, written as an owner of the file's lease ([`super::lease`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::claim::Want;
use super::file::SlotFile;
use super::lease::Owner;
use crate::error::{Error, Result};
use crate::sync::lock;

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
    Table {
      path: file.path().to_owned(),
      file: Some(file),
      owner: Owner::new(shares),
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
