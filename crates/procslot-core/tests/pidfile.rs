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
  assert_eq!(PidFileStore::open(&file).unwrap_err().code(), "ENOTDIR");
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
fn a_spawn_record_is_kept_beside_the_pid_file_trusted_as_it_is_and_deleted_after_it() {
  use procslot_core::{MountId, SpawnRecord};
  use std::path::{Path, PathBuf};
  let tmp = TempDir::new();
  let store = PidFileStore::open(&tmp.0).unwrap();
  assert_eq!(store.read_record("t1").unwrap(), None);
  let record = SpawnRecord {
    pid: 4242,
    start_time: 987_654,
    mount_path: Some(PathBuf::from("/mnt/with space")),
    mount: Some(MountId {
      id: 123,
      dev: "0:52".into(),
    }),
  };
  store.write_record("t1", &record).unwrap();
  store.write("t1", 4242).unwrap();
  let file = tmp.0.join(".t1.record");
  assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o644);
  assert_eq!(store.read_record("t1").unwrap().as_ref(), Some(&record));
  // It is no PID file of its own.
  assert_eq!(store.list().unwrap().len(), 1);

  // Only absolute, plain mount paths are written; invalid target IDs never become paths.
  let with = |p: &str| SpawnRecord {
    mount_path: Some(PathBuf::from(p)),
    ..record.clone()
  };
  assert!(store.write_record("t2", &with("relative/mnt")).is_err());
  assert!(store.write_record("t2", &with("/a\nb")).is_err());
  assert!(store.write_record("../t2", &record).is_err());
  assert!(store.read_record("a/b").is_err());
  assert!(!tmp.0.join(".t2.record").exists());

  // What fails the PID file's trust rules, or does not parse, reads as none.
  fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
  assert_eq!(store.read_record("t1").unwrap(), None);
  fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
  fs::write(
    tmp.0.join(".t3.record"),
    "pid 5\nstart 1\npath relative/mnt\n",
  )
  .unwrap();
  assert_eq!(store.read_record("t3").unwrap(), None);
  fs::write(tmp.0.join(".t4.record"), "pid x\nstart 1\n").unwrap();
  assert_eq!(store.read_record("t4").unwrap(), None);
  std::os::unix::fs::symlink(&file, tmp.0.join(".t5.record")).unwrap();
  assert_eq!(store.read_record("t5").unwrap(), None);
  if nix::unistd::geteuid().is_root() {
    fs::write(tmp.0.join(".t6.record"), "pid 5\nstart 1\n").unwrap();
    std::os::unix::fs::chown(tmp.0.join(".t6.record"), Some(65534), None).unwrap();
    assert_eq!(store.read_record("t6").unwrap(), None);
  }
  let _ = Path::new("/");

  assert!(store.delete("t1").unwrap());
  assert!(!file.exists());
  assert_eq!(store.read_record("t1").unwrap(), None);
}

#[test]
fn load_judges_each_file_and_finds_unfinished_spawns_and_abandoned_temporary_files() {
  use procslot_core::{Judgement, SpawnRecord};
  let tmp = TempDir::new();
  let store = PidFileStore::open(&tmp.0).unwrap();
  let me = procslot_core::identity(std::process::id())
    .unwrap()
    .unwrap();
  store.write("mine", std::process::id()).unwrap();
  let exact = SpawnRecord {
    pid: std::process::id(),
    start_time: me.start_time,
    mount_path: None,
    mount: None,
  };
  store.write_record("mine", &exact).unwrap();
  // The same PID with another start time on record: reused, however recent the file.
  store.write("reused", std::process::id()).unwrap();
  let other = SpawnRecord {
    start_time: me.start_time + 1,
    ..exact.clone()
  };
  store.write_record("reused", &other).unwrap();
  let gone = std::process::Command::new("true").spawn().unwrap();
  let gone_pid = gone.id();
  let mut gone = gone;
  gone.wait().unwrap();
  store.write("dead", gone_pid).unwrap();
  fs::write(tmp.0.join("bad.pid"), "nope\n").unwrap();
  // A record without a PID file: a spawn that never finished.
  store.write_record("half", &exact).unwrap();
  // A temporary file whose writer is gone, and one whose writer (we) still runs.
  fs::write(tmp.0.join(format!(".x.pid.{gone_pid}.0.tmp")), "1").unwrap();
  fs::write(
    tmp.0.join(format!(".y.pid.{}.0.tmp", std::process::id())),
    "1",
  )
  .unwrap();

  let (verdicts, leftovers) = store.load().unwrap();
  let got: Vec<(&str, Judgement)> = verdicts
    .iter()
    .map(|v| (v.entry.target_id.as_str(), v.judgement))
    .collect();
  assert_eq!(
    got,
    vec![
      ("bad", Judgement::Invalid),
      ("dead", Judgement::Stale),
      ("mine", Judgement::Running),
      ("reused", Judgement::Reused),
    ]
  );
  assert_eq!(leftovers.records.len(), 1);
  assert_eq!(leftovers.records[0].0, "half");
  assert_eq!(
    leftovers.records[0].2.map(|i| i.pid),
    Some(std::process::id())
  );
  assert_eq!(
    leftovers.temp_files,
    vec![tmp.0.join(format!(".x.pid.{gone_pid}.0.tmp"))]
  );
  assert_eq!(store.sweep_temp_files().unwrap(), 1);
  let state = store.state("half").unwrap();
  assert!(state.verdict.is_none());
  assert!(state.record_process.is_some());
}

#[test]
fn load_reads_the_listed_record_of_an_old_pid_file_and_judges_one_without_by_its_time() {
  use procslot_core::{Judgement, SpawnRecord};
  use std::time::{Duration, SystemTime};
  let tmp = TempDir::new();
  let store = PidFileStore::open(&tmp.0).unwrap();
  let me = procslot_core::identity(std::process::id())
    .unwrap()
    .unwrap();
  // Both files name this process, stamped an hour before it started: only an exact record says it is
  // theirs (the load opens records only for listed names once a PID file is older than the listing).
  for target in ["recorded", "unrecorded"] {
    store.write(target, std::process::id()).unwrap();
  }
  store
    .write_record(
      "recorded",
      &SpawnRecord {
        pid: std::process::id(),
        start_time: me.start_time,
        mount_path: None,
        mount: None,
      },
    )
    .unwrap();
  let hour_ago = SystemTime::now() - Duration::from_secs(3600);
  for target in ["recorded", "unrecorded"] {
    fs::File::options()
      .write(true)
      .open(tmp.0.join(format!("{target}.pid")))
      .unwrap()
      .set_modified(hour_ago)
      .unwrap();
  }
  let (verdicts, _) = store.load().unwrap();
  let got: Vec<(&str, Judgement, bool)> = verdicts
    .iter()
    .map(|v| (v.entry.target_id.as_str(), v.judgement, v.record.is_some()))
    .collect();
  assert_eq!(
    got,
    vec![
      ("recorded", Judgement::Running, true),
      ("unrecorded", Judgement::Reused, false),
    ]
  );
}

#[test]
fn a_record_completed_with_its_mount_is_extended_in_place_and_any_other_replaced() {
  use procslot_core::{MountId, SpawnRecord};
  let tmp = TempDir::new();
  let store = PidFileStore::open(&tmp.0).unwrap();
  let before = SpawnRecord {
    pid: 4242,
    start_time: 77,
    mount_path: Some("/mnt/t".into()),
    mount: None,
  };
  store.write_record("t", &before).unwrap();
  let path = tmp.join(".t.record");
  let ino = fs::metadata(&path).unwrap().ino();
  let ready = SpawnRecord {
    mount: Some(MountId {
      id: 45,
      dev: "0:52".into(),
    }),
    ..before.clone()
  };
  store.write_record("t", &ready).unwrap();
  assert_eq!(store.read_record("t").unwrap(), Some(ready.clone()));
  assert_eq!(
    fs::metadata(&path).unwrap().ino(),
    ino,
    "the same file, extended"
  );
  let other = SpawnRecord {
    pid: 4343,
    ..ready.clone()
  };
  store.write_record("t", &other).unwrap();
  assert_eq!(store.read_record("t").unwrap(), Some(other));
  assert_ne!(
    fs::metadata(&path).unwrap().ino(),
    ino,
    "another record: replaced whole"
  );
  assert_eq!(
    fs::read_dir(&tmp.0).unwrap().count(),
    1,
    "no temporary file left"
  );
}
