//! The slot file from one process: other processes' leases are played by other open file descriptions
//! (byte-range locks of a separate open conflict with ours, as another process's would).

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command};

use procslot_core::{Holder, Locking, OpenOptions, SlotFile};

mod common;
use common::TempDir;

fn opts(slots: usize) -> OpenOptions {
  OpenOptions {
    default_slots: Some(slots),
    ..OpenOptions::default()
  }
}

fn word(path: &Path, slot: usize) -> Holder {
  let bytes = fs::read(path).unwrap();
  let w = u64::from_le_bytes(bytes[slot * 8..slot * 8 + 8].try_into().unwrap());
  Holder::from_word(w)
}

fn write_word(path: &Path, slot: usize, holder: Holder) {
  let mut bytes = fs::read(path).unwrap();
  bytes[slot * 8..slot * 8 + 8].copy_from_slice(&holder.to_word().to_le_bytes());
  fs::write(path, bytes).unwrap();
}

/// Another "process": a separate open of the file holding the lock of `slot`.
fn foreign_lease(path: &Path, slot: usize) -> File {
  let file = fs::OpenOptions::new()
    .read(true)
    .write(true)
    .open(path)
    .unwrap();
  // SAFETY: zeroed flock is valid; the fd is open.
  let mut fl: libc::flock = unsafe { std::mem::zeroed() };
  fl.l_type = libc::F_WRLCK as _;
  fl.l_whence = libc::SEEK_SET as _;
  fl.l_start = (slot * 8) as _;
  fl.l_len = 8;
  let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
  assert_eq!(rc, 0, "foreign lease on slot {slot}");
  file
}

fn start_tag(pid: u32) -> u32 {
  let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
  let rest = &stat[stat.rfind(')').unwrap() + 1..];
  rest
    .split_whitespace()
    .nth(19)
    .unwrap()
    .parse::<u64>()
    .unwrap() as u32
}

fn sleeper() -> Child {
  Command::new("sleep").arg("30").spawn().unwrap()
}

#[test]
fn a_new_file_has_the_default_slots_and_our_word() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  let f = SlotFile::open(&path, &opts(5)).unwrap();
  assert_eq!(fs::metadata(&path).unwrap().len(), 40);
  assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
  assert_eq!(f.acquire(None).unwrap(), Some(0));
  assert_eq!(f.acquire(Some(3)).unwrap(), Some(0), "one slot per process");
  let w = word(&path, 0);
  assert_eq!(w.pid, std::process::id());
  assert_eq!(w.tag, start_tag(std::process::id()));
  assert!(f.release(None));
  assert!(!f.release(None), "double release is harmless");
  assert_eq!(word(&path, 0), Holder::default());
  assert_eq!(f.acquire(Some(3)).unwrap(), Some(3), "preferred when free");
}

#[test]
fn opening_a_file_twice_shares_one_open() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  let a = SlotFile::open(&path, &opts(4)).unwrap();
  let b = SlotFile::open(&path, &opts(4)).unwrap();
  assert!(std::sync::Arc::ptr_eq(&a, &b));
  assert_eq!(a.acquire(None).unwrap(), Some(0));
  assert_eq!(b.held(), Some(0));
  drop(a);
  assert_eq!(b.held(), Some(0), "the slot lives while a reference does");
  drop(b);
  assert_eq!(
    word(&path, 0).pid,
    std::process::id(),
    "dropping every handle does not free a held slot: it is pinned until released"
  );
  let again = SlotFile::open(&path, &opts(4)).unwrap();
  assert_eq!(again.held(), Some(0), "a new open joins the pinned file");
  assert!(again.release(None));
  assert_eq!(word(&path, 0), Holder::default(), "release frees it");
  drop(again);
}

#[test]
fn a_leased_slot_is_skipped_and_comes_back_when_the_lease_ends() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  fs::write(&path, [0u8; 24]).unwrap();
  let lease0 = foreign_lease(&path, 0);
  write_word(&path, 0, Holder { pid: 1, tag: 7 });
  let _lease1 = foreign_lease(&path, 1);
  let f = SlotFile::open(&path, &opts(3)).unwrap();
  assert_eq!(f.acquire(None).unwrap(), Some(2));
  let snap = f.snapshot().unwrap();
  assert!(snap[0].alive && !snap[0].is_self && snap[0].holder.pid == 1);
  assert!(!snap[1].alive, "a lease with a free word shows as free");
  assert!(snap[2].alive && snap[2].is_self);
  assert!(f.release(None));
  drop(lease0);
  // Slot 0's word still names PID 1, alive, but nothing holds its lease: it is free.
  assert_eq!(f.acquire(None).unwrap(), Some(0));
}

#[test]
fn a_full_table_gives_none() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  fs::write(&path, [0u8; 16]).unwrap();
  let _a = foreign_lease(&path, 0);
  let _b = foreign_lease(&path, 1);
  let f = SlotFile::open(&path, &opts(2)).unwrap();
  assert_eq!(f.acquire(None).unwrap(), None);
}

#[test]
fn reclaim_frees_dead_words_only() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  fs::write(&path, [0u8; 32]).unwrap();
  write_word(
    &path,
    0,
    Holder {
      pid: 999_999_999,
      tag: 0,
    },
  );
  write_word(&path, 1, Holder { pid: 1, tag: 0 });
  write_word(&path, 2, Holder { pid: 1, tag: 0 });
  let _live = foreign_lease(&path, 2);
  let f = SlotFile::open(&path, &opts(4)).unwrap();
  assert_eq!(f.reclaim().unwrap(), 2);
  assert_eq!(word(&path, 0).pid, 0);
  assert_eq!(word(&path, 1).pid, 0);
  assert_eq!(word(&path, 2).pid, 1);
  assert_eq!(f.reclaim().unwrap(), 0);
}

#[test]
fn growing_keeps_holders_and_never_shrinks() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  let f = SlotFile::open(&path, &opts(2)).unwrap();
  assert_eq!(f.acquire(Some(1)).unwrap(), Some(1));
  let g = SlotFile::open(
    &path,
    &OpenOptions {
      slots: Some(8),
      ..opts(2)
    },
  )
  .unwrap();
  assert_eq!(g.size().unwrap(), 8);
  assert_eq!(f.held(), Some(1));
  assert_eq!(word(&path, 1).pid, std::process::id());
  f.ensure_slots(4).unwrap();
  assert_eq!(fs::metadata(&path).unwrap().len(), 64);
}

#[test]
fn refused_files_are_left_byte_for_byte() {
  let dir = TempDir::new();
  type Make = Box<dyn Fn(&Path)>;
  let cases: Vec<(&str, Make, &str)> = vec![
    (
      "odd",
      Box::new(|p: &Path| fs::write(p, [7u8; 12]).unwrap()),
      "EBADSIZE",
    ),
    (
      "huge",
      Box::new(|p: &Path| File::create(p).unwrap().set_len((1 << 20) + 8).unwrap()),
      "ETOOLARGE",
    ),
    (
      "dir",
      Box::new(|p: &Path| fs::create_dir(p).unwrap()),
      "ENOTREG",
    ),
    (
      "fifo",
      Box::new(|p: &Path| nix::unistd::mkfifo(p, nix::sys::stat::Mode::S_IRWXU).unwrap()),
      "ENOTREG",
    ),
    (
      "link",
      Box::new(|p: &Path| {
        let target = p.with_extension("target");
        fs::write(&target, [0u8; 16]).unwrap();
        std::os::unix::fs::symlink(&target, p).unwrap();
      }),
      "ESYMLINK",
    ),
  ];
  for (name, make, code) in cases {
    let path = dir.join(name);
    make(&path);
    let before = fs::symlink_metadata(&path).unwrap();
    let read = |p: &Path| {
      fs::symlink_metadata(p)
        .unwrap()
        .is_file()
        .then(|| fs::read(p).unwrap())
    };
    let bytes = read(&path);
    let err = SlotFile::open(&path, &opts(4)).unwrap_err();
    assert_eq!(err.code(), code, "{name}: {err}");
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    let after = fs::symlink_metadata(&path).unwrap();
    assert_eq!(before.len(), after.len(), "{name}");
    assert_eq!(before.mtime_nsec(), after.mtime_nsec(), "{name}");
    assert_eq!(bytes, read(&path), "{name}");
  }
  let missing = dir.join("no/such/dir/slots");
  assert_eq!(
    SlotFile::open(&missing, &opts(4)).unwrap_err().code(),
    "ENOENT"
  );
}

#[test]
fn another_users_file_is_refused_unless_allowed() {
  if !nix::unistd::geteuid().is_root() {
    return; // chown needs root; the ava suite covers this as root in CI.
  }
  let dir = TempDir::new();
  let path = dir.join("slots");
  fs::write(&path, [0u8; 16]).unwrap();
  std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
  assert_eq!(
    SlotFile::open(&path, &opts(2)).unwrap_err().code(),
    "EFOREIGN"
  );
  let f = SlotFile::open(
    &path,
    &OpenOptions {
      allow_foreign_owner: true,
      ..opts(2)
    },
  )
  .unwrap();
  assert_eq!(f.size().unwrap(), 2);
}

#[test]
fn created_mode_is_exact() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  let _f = SlotFile::open(
    &path,
    &OpenOptions {
      mode: 0o666,
      ..opts(2)
    },
  )
  .unwrap();
  assert_eq!(
    fs::metadata(&path).unwrap().permissions().mode() & 0o777,
    0o666
  );
}

#[test]
fn without_locks_liveness_falls_back_to_pids() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  fs::write(&path, [0u8; 40]).unwrap();
  let mut live = sleeper();
  let live_pid = live.id();
  let live_tag = start_tag(live_pid);
  // A zombie: a child that exited and is not reaped.
  let mut zombie = Command::new("true").spawn().unwrap();
  common::wait_unreaped(zombie.id());
  write_word(
    &path,
    0,
    Holder {
      pid: live_pid,
      tag: live_tag,
    },
  );
  write_word(
    &path,
    1,
    Holder {
      pid: live_pid,
      tag: 0,
    },
  );
  write_word(
    &path,
    2,
    Holder {
      pid: live_pid,
      tag: live_tag ^ 1,
    },
  ); // reused PID
  write_word(
    &path,
    3,
    Holder {
      pid: zombie.id(),
      tag: 0,
    },
  );
  write_word(
    &path,
    4,
    Holder {
      pid: 4_000_000_000,
      tag: 0,
    },
  ); // impossible PID
  let f = SlotFile::open(
    &path,
    &OpenOptions {
      locking: Locking::Off,
      ..opts(5)
    },
  )
  .unwrap();
  assert!(!f.uses_locks());
  let snap = f.snapshot().unwrap();
  let alive: Vec<bool> = snap.iter().map(|s| s.alive).collect();
  assert_eq!(alive, [true, true, false, false, false]);
  assert_eq!(f.acquire(None).unwrap(), Some(2));
  assert_eq!(
    f.reclaim().unwrap(),
    2,
    "the zombie's and the impossible PID's"
  );
  live.kill().unwrap();
  live.wait().unwrap();
  zombie.wait().unwrap();
  assert_eq!(f.reclaim().unwrap(), 2, "the dead sleeper's two words");
}

#[test]
fn a_snapshot_finds_every_scattered_lease() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  fs::write(&path, [0u8; 8 * 12]).unwrap();
  let leased = [1, 5, 6, 9, 11];
  let _leases: Vec<File> = leased.iter().map(|&s| foreign_lease(&path, s)).collect();
  for slot in 0..12 {
    write_word(&path, slot, Holder { pid: 1, tag: 0 });
  }
  let f = SlotFile::open(&path, &opts(12)).unwrap();
  let alive: Vec<usize> = f
    .snapshot()
    .unwrap()
    .iter()
    .filter(|s| s.alive)
    .map(|s| s.slot)
    .collect();
  assert_eq!(alive, leased);
}

/// Another "process" holding the growth lock (a byte far past any slot file's end).
fn foreign_growth_lock(path: &Path) -> File {
  let file = fs::OpenOptions::new()
    .read(true)
    .write(true)
    .open(path)
    .unwrap();
  // SAFETY: zeroed flock is valid; the fd is open.
  let mut fl: libc::flock = unsafe { std::mem::zeroed() };
  fl.l_type = libc::F_WRLCK as _;
  fl.l_whence = libc::SEEK_SET as _;
  fl.l_start = 1 << 40;
  fl.l_len = 1;
  let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
  assert_eq!(rc, 0, "foreign growth lock");
  file
}

#[test]
fn a_new_file_gets_exactly_the_count_asked_for() {
  let dir = TempDir::new();
  for n in [1, 3] {
    let path = dir.join(&format!("slots-{n}"));
    let f = SlotFile::open(
      &path,
      &OpenOptions {
        slots: Some(n),
        default_slots: Some(64),
        ..OpenOptions::default()
      },
    )
    .unwrap();
    assert_eq!(f.size().unwrap(), n);
    assert_eq!(fs::metadata(&path).unwrap().len(), 8 * n as u64);
  }
}

#[test]
fn a_held_growth_lock_times_out_instead_of_hanging() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  fs::write(&path, [0u8; 8]).unwrap();
  let _grower = foreign_growth_lock(&path);
  let started = std::time::Instant::now();
  let err = SlotFile::open(
    &path,
    &OpenOptions {
      slots: Some(4),
      timeout: std::time::Duration::from_millis(200),
      ..OpenOptions::default()
    },
  )
  .unwrap_err();
  let took = started.elapsed();
  assert_eq!(err.code(), "ETIMEDOUT", "{err}");
  assert!(took >= std::time::Duration::from_millis(200), "{took:?}");
  assert!(took < std::time::Duration::from_secs(3), "{took:?}");
  assert_eq!(fs::metadata(&path).unwrap().len(), 8, "not grown");
  // Not waiting at all when the file is big enough.
  let f = SlotFile::open(&path, &opts(1)).unwrap();
  assert_eq!(f.size().unwrap(), 1);
}

#[test]
fn hard_links_and_special_mode_bits_are_refused() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  let bytes: Vec<u8> = (0..32u8).collect();
  fs::write(&path, &bytes).unwrap();
  fs::hard_link(&path, dir.join("other-name")).unwrap();
  let err = SlotFile::open(&path, &opts(4)).unwrap_err();
  assert_eq!(err.code(), "EHARDLINK");
  assert_eq!(fs::read(&path).unwrap(), bytes, "no byte changed");
  for mode in [0o4777, 0o2600, 0o1600, 0o10000] {
    let err = SlotFile::open(
      &dir.join("new"),
      &OpenOptions {
        mode,
        ..OpenOptions::default()
      },
    )
    .unwrap_err();
    assert_eq!(err.code(), "EINVAL", "mode {mode:o}");
  }
  assert!(!dir.join("new").exists());
}

#[test]
fn a_truncated_file_gives_eshrunk_and_releases_cleanly() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  fs::write(&path, [0u8; 32]).unwrap();
  let _a = foreign_lease(&path, 0);
  let _b = foreign_lease(&path, 1);
  let _c = foreign_lease(&path, 2);
  let f = SlotFile::open(&path, &opts(4)).unwrap();
  assert_eq!(f.acquire(None).unwrap(), Some(3));
  // Half the file goes, with our slot in it: nothing touches the lost page (a SIGBUS would kill us).
  fs::OpenOptions::new()
    .write(true)
    .open(&path)
    .unwrap()
    .set_len(16)
    .unwrap();
  assert_eq!(f.snapshot().unwrap_err().code(), "ESHRUNK");
  assert_eq!(f.size().unwrap_err().code(), "ESHRUNK");
  assert_eq!(f.reclaim().unwrap_err().code(), "ESHRUNK");
  assert_eq!(f.acquire(None).unwrap(), Some(3), "held: no touch needed");
  assert!(f.release(None));
  assert_eq!(f.acquire(None).unwrap_err().code(), "ESHRUNK");
  // To nothing at all.
  let g = SlotFile::open(&dir.join("two"), &opts(2)).unwrap();
  assert_eq!(g.acquire(None).unwrap(), Some(0));
  fs::OpenOptions::new()
    .write(true)
    .open(dir.join("two"))
    .unwrap()
    .set_len(0)
    .unwrap();
  assert!(g.release(None));
  drop(g);
  drop(f);
}

#[test]
fn a_removed_or_replaced_file_is_reported() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  let f = SlotFile::open(&path, &opts(2)).unwrap();
  assert_eq!(f.acquire(None).unwrap(), Some(0));
  assert!(!f.replaced());
  fs::remove_file(&path).unwrap();
  assert!(f.replaced(), "removed");
  let g = SlotFile::open(&dir.join("moved"), &opts(2)).unwrap();
  assert!(!g.replaced());
  fs::write(dir.join("other"), [0u8; 16]).unwrap();
  fs::rename(dir.join("other"), dir.join("moved")).unwrap();
  assert!(g.replaced(), "replaced by mv");
  assert!(f.release(None));
}

#[test]
fn the_private_directory_is_created_0700_and_refused_when_unsafe() {
  let dir = TempDir::new();
  let private = dir.join("procslot-me");
  procslot_core::ensure_private_dir(&private).unwrap();
  assert_eq!(fs::metadata(&private).unwrap().mode() & 0o777, 0o700);
  procslot_core::ensure_private_dir(&private).unwrap();
  fs::set_permissions(&private, fs::Permissions::from_mode(0o777)).unwrap();
  let err = procslot_core::ensure_private_dir(&private).unwrap_err();
  assert_eq!(err.code(), "EUNSAFE");
  let link = dir.join("link");
  std::os::unix::fs::symlink(&private, &link).unwrap();
  assert_eq!(
    procslot_core::ensure_private_dir(&link).unwrap_err().code(),
    "EUNSAFE"
  );
}

#[test]
fn a_crowded_table_tries_free_words_before_probing_holders() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  fs::write(&path, [0u8; 8 * 72]).unwrap();
  let me = std::process::id();
  let leases: Vec<File> = (0..69).map(|i| foreign_lease(&path, i)).collect();
  for i in 0..70 {
    // 69 live holders, then slot 69: a word with no lock behind it (a dead holder).
    write_word(&path, i, Holder { pid: me, tag: 1 });
  }
  let f = SlotFile::open(&path, &opts(72)).unwrap();
  assert_eq!(
    f.acquire(None).unwrap(),
    Some(70),
    "crowded: a free word first"
  );
  assert!(f.release(None));
  let _rest = [foreign_lease(&path, 70), foreign_lease(&path, 71)];
  drop(leases);
  assert_eq!(
    f.acquire(None).unwrap(),
    Some(0),
    "no free word left: the lowest dead holder's slot"
  );
  assert!(f.release(None));
}

#[test]
fn a_crowded_table_of_dead_holders_gives_the_lowest_slot_not_its_free_word() {
  let dir = TempDir::new();
  let path = dir.join("slots");
  let mut bytes = vec![0u8; 8 * 1024];
  // 1023 words of a dead holder (no lock behind any of them), the last word free.
  let dead = Holder {
    pid: 4_000_000,
    tag: 7,
  }
  .to_word()
  .to_le_bytes();
  for slot in 0..1023 {
    bytes[slot * 8..slot * 8 + 8].copy_from_slice(&dead);
  }
  fs::write(&path, bytes).unwrap();
  let f = SlotFile::open(&path, &opts(1024)).unwrap();
  assert_eq!(
    f.acquire(None).unwrap(),
    Some(0),
    "the lowest slot with no live holder"
  );
  assert!(f.release(None));
}
