//! The shared mapping: the one place raw pointers live.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use super::word::SLOT_BYTES;

/// The mapping of a slot file's words.
///
/// Invariant: `slots * 8` bytes are mapped for as long as this value lives, and slot files never shrink
/// (this crate only grows them, and refuses a file it finds shrunk), so every `&AtomicU64` handed out
/// points into mapped memory for as long as the borrow of `self` lasts.
pub(super) struct SlotMap {
  map: MmapRaw,
  pub(super) slots: usize,
}

impl SlotMap {
  pub(super) fn new(file: &File, slots: usize) -> io::Result<Self> {
    let map = MmapOptions::new().len(slots * SLOT_BYTES).map_raw(file)?;
    Ok(SlotMap { map, slots })
  }

  fn word(&self, slot: usize) -> &AtomicU64 {
    assert!(slot < self.slots, "slot {slot} out of range");
    // SAFETY: the mapping is page-aligned and `slot * 8 + 8 <= len`, so the pointer is in bounds and
    // 8-byte aligned; the memory stays mapped while `self` is borrowed (see the type's invariant); and
    // every access to it, from any process, is atomic.
    unsafe { &*(self.map.as_mut_ptr().add(slot * SLOT_BYTES) as *const AtomicU64) }
  }

  /// The word of `slot`, in file order (little-endian on every platform).
  pub(super) fn load(&self, slot: usize) -> u64 {
    u64::from_le(self.word(slot).load(Ordering::SeqCst))
  }

  /// Compare-and-swap on the word of `slot`.
  pub(super) fn cas(&self, slot: usize, current: u64, new: u64) -> std::result::Result<u64, u64> {
    self
      .word(slot)
      .compare_exchange(
        current.to_le(),
        new.to_le(),
        Ordering::SeqCst,
        Ordering::SeqCst,
      )
      .map(u64::from_le)
      .map_err(u64::from_le)
  }
}
