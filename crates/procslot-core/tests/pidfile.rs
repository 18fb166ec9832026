//! PID files on a real directory, judged for trust, and the per-target lock between two open files.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use procslot_core::{PidFileStatus, PidFileStore};

mod common;
use common::TempDir;

#[test]
fn writes_are_standard_pid_files_with_mode_0644_and_no_temporary_left() {
  let tmp = TempDir::new();
  let dir = tmp.0.join("nested/pids");
  let store = PidFileStore::open(&dir).unwrap();
  assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o755);
  store.write("target-123", 12345).unwrap();
  let path = store.path_for("target-123").unwrap();
  assert_eq!(path, dir.join("target-123.pid"));
  assert_eq!(fs::read_to_string(&path).unwrap(), "12345\n");
  assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
  assert_eq!(store.read("target-123").unwrap(), Some(12345));
  store.write("target-123", 23456).unwrap();
  assert_eq!(store.read("target-123").unwrap(), Some(23456));
  let names: Vec<_> = fs::read_dir(&dir)
    .unwrap()
    .map(|e| e.unwrap().file_name().into_string().unwrap())
    .collect();
  assert_eq!(names, vec!["target-123.pid"]);
  assert!(store.delete("target-123").unwrap());
  assert!(!store.delete("target-123").unwrap());
  assert_eq!(store.read("target-123").unwrap(), None);
}

#[test]
fn hand_written_files_are_read_and_bad_ones_reported_not_trusted() {
  let tmp = TempDir::new();
  let store = PidFileStore::open(&tmp.0).unwrap();
  fs::write(tmp.0.join("by-hand.pid"), "4242").unwrap();
  fs::write(tmp.0.join("garbage.pid"), "hello\n").unwrap();
  fs::write(tmp.0.join("huge.pid"), "9".repeat(4096)).unwrap();
  fs::write(tmp.0.join("other-writable.pid"), "4242\n").unwrap();
  fs::set_permissions(
    tmp.0.join("other-writable.pid"),
    fs::Permissions::from_mode(0o666),
  )
  .unwrap();
  std::os::unix::fs::symlink(tmp.0.join("by-hand.pid"), tmp.0.join("link.pid")).unwrap();
  fs::write(tmp.0.join("not a target.pid"), "4242\n").unwrap();
  fs::write(tmp.0.join("README"), "not a pid file\n").unwrap();
  let list = store.list().unwrap();
  let got: Vec<(&str, &PidFileStatus)> = list
    .iter()
    .map(|e| (e.target_id.as_str(), &e.status))
    .collect();
  assert_eq!(got.len(), 5, "{got:?}");
  assert_eq!(got[0], ("by-hand", &PidFileStatus::Valid(4242)));
  assert!(matches!(got[1], ("garbage", PidFileStatus::Invalid(_))));
  assert!(matches!(got[2], ("huge", PidFileStatus::Invalid(_))));
  assert!(matches!(got[3], ("link", PidFileStatus::Untrusted(_))));
  assert!(matches!(
    got[4],
    ("other-writable", PidFileStatus::Untrusted(_))
  ));
  assert_eq!(store.read("garbage").unwrap(), None);
  assert_eq!(store.read("link").unwrap(), None);
  assert_eq!(
    fs::read_to_string(tmp.0.join("by-hand.pid")).unwrap(),
    "4242",
    "reading changes nothing"
  );
}

#[test]
fn invalid_target_ids_never_become_paths() {
  let tmp = TempDir::new();
  let store = PidFileStore::open(&tmp.0).unwrap();
  for bad in ["../x", "a/b", "", ".x", "a\0b"] {
    assert_eq!(store.path_for(bad).unwrap_err().code(), "EINVALIDTARGET");
    assert_eq!(store.write(bad, 1234).unwrap_err().code(), "EINVALIDTARGET");
    assert_eq!(store.read(bad).unwrap_err().code(), "EINVALIDTARGET");
    assert_eq!(store.delete(bad).unwrap_err().code(), "EINVALIDTARGET");
  }
  for pid in [0, 1, u32::MAX] {
    assert_eq!(store.write("t", pid).unwrap_err().code(), "EINVAL");
  }
  assert_eq!(fs::read_dir(&tmp.0).unwrap().count(), 0);
}

#[test]
fn a_world_writable_directory_without_the_sticky_bit_is_refused() {
  let tmp = TempDir::new();
  fs::create_dir_all(&tmp.0).unwrap();
  fs::set_permissions(&tmp.0, fs::Permissions::from_mode(0o777)).unwrap();
  assert_eq!(PidFileStore::open(&tmp.0).unwrap_err().code(), "EUNSAFE");
  fs::set_permissions(&tmp.0, fs::Permissions::from_mode(0o1777)).unwrap();
  PidFileStore::open(&tmp.0).unwrap();
  let file = tmp.0.join("file");
  fs::write(&file, "").unwrap();
  assert_eq!(PidFileStore::open(&file).unwrap_err().code(), "EEXIST");
}

#[test]
fn the_target_lock_excludes_another_open_until_released() {
  let tmp = TempDir::new();
  let a = PidFileStore::open(&tmp.0).unwrap();
  let b = PidFileStore::open(&tmp.0).unwrap();
  let held = a.try_lock("t1").unwrap().expect("free");
  assert!(b.try_lock("t1").unwrap().is_none(), "held by another open");
  let other = b.try_lock("t2").unwrap();
  assert!(other.is_some(), "another target is independent");
  drop(held);
  assert!(b.try_lock("t1").unwrap().is_some());
  assert!(
    a.list().unwrap().is_empty(),
    "the lock file is not a PID file"
  );
}

#[test]
fn a_mount_path_is_kept_beside_the_pid_file_trusted_as_it_is_and_deleted_with_it() {
  use std::path::Path;
  let tmp = TempDir::new();
  let store = PidFileStore::open(&tmp.0).unwrap();
  assert_eq!(store.read_mount_path("t1").unwrap(), None);
  let mnt = Path::new("/mnt/with space/and\nnewline");
  store.write_mount_path("t1", mnt).unwrap();
  store.write("t1", 4242).unwrap();
  let file = tmp.0.join(".t1.mount");
  assert_eq!(fs::read(&file).unwrap(), mnt.as_os_str().as_encoded_bytes());
  assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o644);
  assert_eq!(store.read_mount_path("t1").unwrap().as_deref(), Some(mnt));
  // It is no PID file of its own.
  assert_eq!(store.list().unwrap().len(), 1);

  // Only absolute, plain paths are written; invalid target IDs never become paths.
  assert!(store
    .write_mount_path("t2", Path::new("relative/mnt"))
    .is_err());
  assert!(store.write_mount_path("../t2", Path::new("/mnt")).is_err());
  assert!(store.read_mount_path("a/b").is_err());
  assert!(!tmp.0.join(".t2.mount").exists());

  // What fails the PID file's trust rules, or is not a plain absolute path, reads as unknown.
  fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
  assert_eq!(store.read_mount_path("t1").unwrap(), None);
  fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
  fs::write(tmp.0.join(".t3.mount"), "relative/mnt").unwrap();
  assert_eq!(store.read_mount_path("t3").unwrap(), None);
  fs::write(tmp.0.join(".t4.mount"), "/mnt/a\0b").unwrap();
  assert_eq!(store.read_mount_path("t4").unwrap(), None);
  std::os::unix::fs::symlink(&file, tmp.0.join(".t5.mount")).unwrap();
  assert_eq!(store.read_mount_path("t5").unwrap(), None);
  if nix::unistd::geteuid().is_root() {
    fs::write(tmp.0.join(".t6.mount"), "/mnt/x").unwrap();
    std::os::unix::fs::chown(tmp.0.join(".t6.mount"), Some(65534), None).unwrap();
    assert_eq!(store.read_mount_path("t6").unwrap(), None);
  }

  assert!(store.delete("t1").unwrap());
  assert!(!file.exists());
  assert_eq!(store.read_mount_path("t1").unwrap(), None);
}
