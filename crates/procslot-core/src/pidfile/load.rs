//! A whole PID directory at once: listed, then its files read and judged on several threads.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::records::read_record_at;
use super::store::{epoch_ms, exact_identity, inspect_at, verdict};
use super::{pid_file_name, record_file_name, target_of_pid_file, target_of_record, PidFileStore};
use crate::entry::{PidFileEntry, SpawnRecord};
use crate::error::{Error, Result};
use crate::judge::Verdict;
use crate::process::{identity, Identity};
use crate::sys;

/// What [`PidFileStore::load`] found besides the PID files.
#[derive(Debug, Default)]
pub struct Leftovers {
  /// Spawn records without a PID file: spawns that never finished (or were undone half-way), with the
  /// record and the identity of the process it names.
  pub records: Vec<(String, SpawnRecord, Option<Identity>)>,
  /// Temporary files of writes that never finished (their writer is gone).
  pub temp_files: Vec<PathBuf>,
}

/// How much earlier than a directory listing's start a PID file may be stamped and still count as
/// written during it (file timestamps come from a coarse clock, a tick behind the real one).
const RECENT_MARGIN_MS: f64 = 1000.0;

/// A listing of a PID directory.
struct Scan {
  dir: File,
  pid_files: Vec<String>,
  records: Vec<String>,
  temp_files: Vec<PathBuf>,
}

impl PidFileStore {
  /// Deletes the temporary files of writes that never finished: `.<name>.<pid>.<n>.tmp` files of this
  /// directory whose writer is gone, or that are older than ten minutes. Returns how many.
  ///
  /// # Errors
  /// The directory could not be read.
  pub fn sweep_temp_files(&self) -> Result<usize> {
    let scan = self.scan()?;
    let mut n = 0;
    for path in scan.temp_files {
      if std::fs::remove_file(&path).is_ok() {
        n += 1;
      }
    }
    Ok(n)
  }

  /// Every PID file in the directory (files named `<valid target ID>.pid`), sorted by target ID.
  ///
  /// # Errors
  /// The directory could not be read.
  pub fn list(&self) -> Result<Vec<PidFileEntry>> {
    let pid_max = sys::pid_max();
    let scan = self.scan()?;
    let mut out = Vec::new();
    for target_id in &scan.pid_files {
      if let Some(found) = self.inspect_in(&scan.dir, target_id, pid_max)? {
        out.push(found);
      }
    }
    out.sort_by(|a, b| a.target_id.cmp(&b.target_id));
    Ok(out)
  }

  /// Every PID file (as [`list`](Self::list)) judged ([`judge`](crate::judge::judge)), and what else the directory holds
  /// that a manager must deal with ([`Leftovers`]). The files are read and the processes looked up on
  /// several threads: with thousands of PID files, the system calls are the cost, and they run in
  /// parallel.
  ///
  /// # Errors
  /// The directory could not be read.
  pub fn load(&self) -> Result<(Vec<Verdict>, Leftovers)> {
    // A PID file whose record the scan did not list has none, unless both were written while the
    // directory was being listed (a spawn writes the record, then the PID file; a listing may miss the
    // one and see the other): its PID file is then newer than the listing's start. Its record is read
    // anyway; for the others, the failed open is saved (a third of the opens of a large directory).
    // The margin covers coarse file timestamps.
    let listed_from_ms = now_ms() - RECENT_MARGIN_MS;
    let scan = self.scan()?;
    let dir = &scan.dir;
    let names = &scan.pid_files;
    let records = scan.records.as_slice();
    let threads = sys::available_parallelism()
      .clamp(1, 4)
      .min(names.len().div_ceil(256).max(1));
    let pid_max = sys::pid_max();
    let chunk = names.len().div_ceil(threads).max(1);
    let results: Vec<Result<Vec<Verdict>>> = std::thread::scope(|scope| {
      let workers: Vec<_> = names
        .chunks(chunk)
        .map(|part| {
          scope.spawn(move || {
            let mut out = Vec::with_capacity(part.len());
            for target_id in part {
              if let Some(v) = self.judge_in(dir, target_id, pid_max, records, listed_from_ms)? {
                out.push(v);
              }
            }
            Ok(out)
          })
        })
        .collect();
      workers
        .into_iter()
        .map(|w| w.join().expect("a PID-file loading thread panicked"))
        .collect()
    });
    let mut out = Vec::with_capacity(names.len());
    for part in results {
      out.extend(part?);
    }
    out.sort_by(|a, b| a.entry.target_id.cmp(&b.entry.target_id));
    let mut leftovers = Leftovers::default();
    for target_id in &scan.records {
      if names.binary_search(target_id).is_ok() {
        continue;
      }
      let name = record_file_name(target_id);
      let path = self.dir.join(&name);
      let Some(record) = read_record_at(dir.as_fd(), Path::new(&name), &path, self.euid)? else {
        continue;
      };
      let id = exact_identity(&record)?;
      leftovers.records.push((target_id.clone(), record, id));
    }
    leftovers.temp_files = scan.temp_files;
    Ok((out, leftovers))
  }

  /// The directory, open (files are opened relative to it: no path walk per file), with the target IDs
  /// of its PID files (`<valid target ID>.pid`, sorted), of its spawn records, and its abandoned
  /// temporary files.
  fn scan(&self) -> Result<Scan> {
    let dir =
      File::open(&self.dir).map_err(|e| Error::pid_io(&self.dir, "open the PID directory", &e))?;
    let rd = std::fs::read_dir(&self.dir)
      .map_err(|e| Error::pid_io(&self.dir, "list the PID directory", &e))?;
    let mut scan = Scan {
      dir,
      pid_files: Vec::new(),
      records: Vec::new(),
      temp_files: Vec::new(),
    };
    for entry in rd {
      let entry = entry.map_err(|e| Error::pid_io(&self.dir, "list the PID directory", &e))?;
      let name = entry.file_name();
      let Some(name) = name.to_str() else { continue };
      if let Some(target_id) = target_of_pid_file(name) {
        scan.pid_files.push(target_id.to_owned());
      } else if let Some(target_id) = target_of_record(name) {
        scan.records.push(target_id.to_owned());
      } else if abandoned_temp_file(name, &entry, self.euid) {
        scan.temp_files.push(self.dir.join(name));
      }
    }
    scan.pid_files.sort();
    scan.records.sort();
    Ok(scan)
  }

  /// Judges the PID file of `target_id` (a name from [`scan`](Self::scan)), opened relative to `dir`.
  /// Its record is looked for only when the scan listed it (`records`, sorted) or the PID file is newer
  /// than `listed_from_ms`, a time before the scan began (see [`load`](Self::load)).
  fn judge_in(
    &self,
    dir: &File,
    target_id: &str,
    pid_max: u32,
    records: &[String],
    listed_from_ms: f64,
  ) -> Result<Option<Verdict>> {
    let Some(entry) = self.inspect_in(dir, target_id, pid_max)? else {
      return Ok(None);
    };
    let may_have_record = entry.mtime_ms >= listed_from_ms
      || records
        .binary_search_by(|r| r.as_str().cmp(target_id))
        .is_ok();
    let record = match entry.pid() {
      Some(_) if may_have_record => {
        let name = record_file_name(target_id);
        let path = self.dir.join(&name);
        read_record_at(dir.as_fd(), Path::new(&name), &path, self.euid)?
      }
      _ => None,
    };
    Ok(Some(verdict(entry, record)?))
  }

  /// The PID file of `target_id` (a name from [`scan`](Self::scan)), opened relative to `dir`.
  fn inspect_in(&self, dir: &File, target_id: &str, pid_max: u32) -> Result<Option<PidFileEntry>> {
    let name = pid_file_name(target_id);
    inspect_at(
      dir.as_fd(),
      Path::new(&name),
      &self.dir.join(&name),
      target_id,
      self.euid,
      pid_max,
    )
  }
}

/// Whether `name` is a temporary file of [`write_atomic`] that its writer abandoned: ours, named
/// `.<name>.<pid>.<n>.tmp`, and its writer is not running or it is older than ten minutes.
fn abandoned_temp_file(name: &str, entry: &std::fs::DirEntry, euid: u32) -> bool {
  let Some(stem) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
    return false;
  };
  let mut parts = stem.rsplitn(3, '.');
  let (Some(n), Some(pid), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
    return false;
  };
  let (Ok(_), Ok(pid)) = (n.parse::<u64>(), pid.parse::<u32>()) else {
    return false;
  };
  let Ok(meta) = entry.metadata() else {
    return false;
  };
  if !meta.is_file() || (meta.uid() != euid && euid != 0) {
    return false;
  }
  let old = meta
    .modified()
    .ok()
    .and_then(|m| m.elapsed().ok())
    .is_some_and(|age| age.as_secs() > 600);
  old || !matches!(identity(pid), Ok(Some(id)) if !id.zombie)
}

fn now_ms() -> f64 {
  epoch_ms(std::time::SystemTime::now())
}
