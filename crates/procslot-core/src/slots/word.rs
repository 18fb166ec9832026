//! The word format: slot `i` is the little-endian word at byte `8*i`; bytes 0..4 hold the holder's PID,
//! bytes 4..8 its start tag (the low 32 bits of its start time), and PID 0 means free.

use std::sync::Mutex;

use crate::liveness::self_start_tag;
use crate::sync::lock;

/// Bytes per slot.
pub const SLOT_BYTES: usize = 8;

/// Who holds a slot, as its word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Holder {
  /// The holder's PID in its own PID namespace; 0 when the slot is free.
  pub pid: u32,
  /// The low 32 bits of the holder's start time; 0 when unknown.
  pub tag: u32,
}

impl Holder {
  /// Packs the holder into a slot word (PID in the low half, tag in the high half).
  pub fn to_word(self) -> u64 {
    u64::from(self.pid) | (u64::from(self.tag) << 32)
  }

  /// Unpacks a slot word.
  pub fn from_word(word: u64) -> Self {
    Holder {
      pid: word as u32,
      tag: (word >> 32) as u32,
    }
  }
}

/// This process, as a word names it.
pub(crate) fn me() -> Holder {
  // Per process: a forked child (whose memory starts as a copy of ours) reads it afresh.
  static ME: Mutex<Holder> = Mutex::new(Holder { pid: 0, tag: 0 });
  let pid = std::process::id();
  let mut me = lock(&ME);
  if me.pid != pid {
    *me = Holder {
      pid,
      tag: self_start_tag(),
    };
  }
  *me
}

/// The byte offset of `slot`'s word (and of its lock).
pub(crate) fn offset(slot: usize) -> u64 {
  (slot * SLOT_BYTES) as u64
}
