//! Worker slots: a file of N 8-byte words shared by every process of a fleet through `mmap`.
//!
//! Slot `i` is the little-endian word at byte `8*i`: bytes 0..4 hold the holder's PID, bytes 4..8 its
//! start tag (the low 32 bits of its start time), and PID 0 means free. A holder keeps an exclusive
//! byte-range lock on its slot's 8 bytes for as long as it holds the slot; the kernel drops that lock when
//! the holder dies in any way, so **a slot is held exactly while its lock is held**, whatever the holder's
//! PID namespace and however its PID is later reused. The word says who holds it, for display; only where
//! the filesystem refuses locks does liveness fall back to the PID (see [`crate::liveness`]).
//!
//! Within a process, one [`SlotFile`] exists per file (keyed by device and inode), shared by every table
//! that opens it, so the process's locks agree and it never holds two slots of one file (`file`'s registry of
//! open files).
//!
//! **Lifetimes.** A slot is held until this process gives it back ([`SlotFile::release`]) or ends; how it
//! was taken and which handles give it back when they close is recorded in one place (`lease`); a [`Table`] is
//! such a handle.
//!
//! **A file changed behind our back.** Slot files only grow, but another program may truncate or remove
//! one. Every touch of the mapping is preceded by an `fstat` of the open file, and a call that needs a
//! part the file lost fails with `ESHRUNK` instead of touching it (a touch past the end of a file is a
//! `SIGBUS`); `release` and `Drop` never touch a page past the end. A path that now names another file,
//! or nothing, is reported by [`SlotFile::replaced`].
//!
//! The rules, one module each, each importing only those before it: the word format (`word`), the
//! mapping (`map`), opening options (`options`; its trust checks are the crate's `trust`), the lease and
//! its owners (`lease`), this process's open of a file and its registry of open files (`file`), claiming
//! and giving back (`claim`), the handle that owns a lease (`table`), the Go helpers' calls by path
//! (`process_id`), and waiting for a free slot ([`wait`]). The exec hand-off is
//! [`crate::handoff`].

mod claim;
mod file;
mod lease;
mod map;
mod options;
mod process_id;
mod table;
pub mod wait;
mod word;

pub use crate::handoff::env;
pub use crate::trust::ensure_private_dir;
pub use claim::{SlotInfo, Want, CROWDED};
pub use file::SlotFile;
pub use options::{default_file, Locking, OpenOptions, DEFAULT_TIMEOUT, MAX_FILE_BYTES, MAX_SLOTS};
pub use process_id::{get_process_id, opened, release_process_id};
pub use table::Table;
pub use wait::Waited;
pub use word::{Holder, SLOT_BYTES};
