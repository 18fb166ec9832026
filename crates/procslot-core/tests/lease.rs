//! A slot's lease in one process: which handles give it back when they close.

use procslot_core::{get_process_id, release_process_id, OpenOptions, SlotFile, Table, Want};

mod common;
use common::TempDir;

fn opts() -> OpenOptions {
  OpenOptions {
    default_slots: Some(4),
    ..OpenOptions::default()
  }
}

fn any() -> Want {
  Want::default()
}

#[test]
fn a_table_gives_back_only_the_slot_it_took() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  let mut taker = Table::new(SlotFile::open(&path, &opts()).unwrap(), false);
  let mut other = Table::new(SlotFile::open(&path, &opts()).unwrap(), false);
  assert_eq!(taker.claim(any()).unwrap(), Some((0, true)));
  assert_eq!(
    other.claim(any()).unwrap(),
    Some((0, false)),
    "the process's slot"
  );
  other.close();
  assert_eq!(SlotFile::open(&path, &opts()).unwrap().held(), Some(0));
  taker.close();
  taker.close();
  assert_eq!(SlotFile::open(&path, &opts()).unwrap().held(), None);
  assert_eq!(taker.file().unwrap_err().code(), "ECLOSED");
}

#[test]
fn a_slot_held_before_or_detached_is_the_process_s() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  assert_eq!(get_process_id(&path, &opts()).unwrap(), Some(0));
  let mut table = Table::new(SlotFile::open(&path, &opts()).unwrap(), true);
  assert_eq!(table.claim(any()).unwrap(), Some((0, false)));
  table.close();
  assert_eq!(
    get_process_id(&path, &opts()).unwrap(),
    Some(0),
    "still held"
  );
  assert!(release_process_id(&path));

  let mut detached = Table::new(SlotFile::open(&path, &opts()).unwrap(), false);
  assert_eq!(detached.claim(any()).unwrap(), Some((0, true)));
  detached.detach();
  assert_eq!(SlotFile::open(&path, &opts()).unwrap().held(), Some(0));
  detached.close();
  assert_eq!(SlotFile::open(&path, &opts()).unwrap().held(), Some(0));
  assert!(release_process_id(&path));
}

#[test]
fn sharing_tables_give_back_a_slot_one_of_them_took_when_the_last_closes() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  let open = || Table::new(SlotFile::open(&path, &opts()).unwrap(), true);
  let (mut a, mut b) = (open(), open());
  assert_eq!(a.claim(any()).unwrap(), Some((0, true)));
  assert_eq!(b.claim(any()).unwrap(), Some((0, false)));
  a.close();
  assert_eq!(SlotFile::open(&path, &opts()).unwrap().held(), Some(0));
  b.close();
  assert_eq!(SlotFile::open(&path, &opts()).unwrap().held(), None);

  // A wait took the slot for a table: adopt makes it the owner.
  let file = SlotFile::open(&path, &opts()).unwrap();
  let mut waited = Table::new(file.clone(), true);
  assert_eq!(file.claim(any()).unwrap(), Some((0, true)));
  waited.adopt(0);
  waited.close();
  assert_eq!(file.held(), None);
}

#[test]
fn a_table_whose_slot_was_released_behind_it_frees_nothing_another_took_since() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  let mut first = Table::new(SlotFile::open(&path, &opts()).unwrap(), false);
  assert_eq!(first.claim(any()).unwrap(), Some((0, true)));
  // releaseProcessId frees this process's slot however it was taken; another table takes it again.
  assert!(release_process_id(&path));
  let mut second = Table::new(SlotFile::open(&path, &opts()).unwrap(), false);
  assert_eq!(second.claim(any()).unwrap(), Some((0, true)));
  first.close();
  assert_eq!(
    SlotFile::open(&path, &opts()).unwrap().held(),
    Some(0),
    "the first table's close leaves the second's slot held"
  );
  second.close();
  assert_eq!(SlotFile::open(&path, &opts()).unwrap().held(), None);
}
