//! Mount points: the binding of `procslot_core::mount` (the mount table, waiting for a mount, lazy
//! unmounts). A hung mount may never answer: what could block runs on a thread of its own.

use std::path::Path;
use std::time::Duration;

use napi::bindgen_prelude::{Env, Object};
use napi_derive::napi;
use procslot_core::{MountFound, MountId, MountWait};

use crate::error::{IntoJs, Result};
use crate::process::NativeProcess;
use crate::task::on_thread;

#[napi]
impl NativeProcess {
  /// Waits up to `timeoutMs` until `path` is a mount point or the process exits.
  #[napi(ts_return_type = "Promise<NativeMountWait>")]
  pub fn wait_mount<'env>(
    &self,
    env: &'env Env,
    path: String,
    timeout_ms: u32,
  ) -> Result<Object<'env>> {
    let handle = self.handle(env)?.clone();
    on_thread(env, move || {
      let r = procslot_core::wait_for_mount(
        Path::new(&path),
        &handle,
        Duration::from_millis(timeout_ms as u64),
      )?;
      Ok(NativeMountWait {
        outcome: r.as_str().to_owned(),
        mount: match r {
          MountWait::Mounted(found) => Some(found.into()),
          _ => None,
        },
      })
    })
  }
}

/// How a wait for a mount ended; `mount` is the mount found when `outcome` is `'mounted'`.
#[napi(object)]
pub struct NativeMountWait {
  #[napi(ts_type = "'mounted' | 'exited' | 'timeout'")]
  pub outcome: String,
  pub mount: Option<NativeMount>,
}

/// One mount: its ID, its filesystem's device (`major:minor`) and type.
#[napi(object)]
pub struct NativeMount {
  pub id: f64,
  pub dev: String,
  pub fstype: String,
}

impl From<MountFound> for NativeMount {
  fn from(m: MountFound) -> Self {
    NativeMount {
      id: m.mount.id as f64,
      dev: m.mount.dev,
      fstype: m.fstype,
    }
  }
}

#[napi]
pub fn is_mount_point(env: &Env, path: String) -> Result<bool> {
  procslot_core::is_mount_point(Path::new(&path)).js(env)
}

/// The topmost mount at `path`, from the mount table (never a `stat`); `null` when it is not a mount
/// point.
#[napi]
pub fn mount_at(env: &Env, path: String) -> Result<Option<NativeMount>> {
  let m = procslot_core::mount_at(Path::new(&path)).js(env)?;
  Ok(m.map(Into::into))
}

/// Lazily unmounts `path` only if the topmost mount there is the one given (a dead daemon's).
#[napi]
pub fn unmount_if(env: &Env, path: String, mount_id: f64, mount_dev: String) -> Result<bool> {
  let id = MountId {
    id: mount_id as u64,
    dev: mount_dev,
  };
  procslot_core::unmount_if(Path::new(&path), &id).js(env)
}

/// Prepares a mount point on a thread of its own (a hung mount may never answer): the mount already
/// there, else `null` once the directory exists.
#[napi(ts_return_type = "Promise<NativeMount | null>")]
pub fn prepare_mount_point(env: &Env, path: String) -> Result<Object<'_>> {
  on_thread(env, move || {
    let m = procslot_core::prepare_mount_point(Path::new(&path))?;
    Ok(m.map(NativeMount::from))
  })
}

#[napi]
pub fn unmount_lazy(env: &Env, path: String) -> Result<bool> {
  procslot_core::unmount_lazy(Path::new(&path)).js(env)
}
