//! The rules of trust for files and directories: the binding of `procslot_core::trust`.

use std::path::Path;

use napi::bindgen_prelude::Env;
use napi_derive::napi;

use crate::error::{IntoJs, Result};

/// Refuses a directory other users can write to or that belongs to another user (`EUNSAFE`).
#[napi]
pub fn check_private_dir(env: &Env, path: String) -> Result<()> {
  procslot_core::check_private_dir(Path::new(&path)).js(env)
}
