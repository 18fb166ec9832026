//! The one place where core errors become JavaScript errors. The error crosses as data: a JavaScript
//! `Error` whose message names the path and the reason, with the core's `code` (stable: `ESYMLINK`,
//! `ENOENT`, ...), `kind` (`slot-file`, `pid-file`, `process`, `invalid-argument`, `invalid-target-id`),
//! `path` when it is about a file, `errno` (negated, as on Node's own system errors) when an operating
//! system call failed, and `pid` when it is about a process, and `reason` (the message without the path or target). The facade (`lib/errors.ts`) picks the class
//! from `kind` and never parses the message.

use napi::bindgen_prelude::{JsObjectValue, JsValue, Object};
use napi::{Env, Status};

/// A result whose error is a JavaScript error carrying the core's error as data.
pub(crate) type Result<T> = napi::Result<T>;

/// `.js(env)` on a core result: its error as the JavaScript error [`to_js`] builds. The one conversion
/// every binding function uses.
pub(crate) trait IntoJs<T> {
  fn js(self, env: &Env) -> Result<T>;
}

impl<T> IntoJs<T> for procslot_core::Result<T> {
  fn js(self, env: &Env) -> Result<T> {
    self.map_err(|e| to_js(env, e))
  }
}

/// The JavaScript error for a core error, to return from a binding function.
pub(crate) fn to_js(env: &Env, err: procslot_core::Error) -> napi::Error {
  match error_object(env, &err) {
    Ok(obj) => napi::Error::from(obj.to_unknown()),
    // Creating the object failed (the environment is shutting down): the code and message still go.
    Err(_) => napi::Error::new(Status::GenericFailure, format!("[{}] {err}", err.code())),
  }
}

fn error_object<'env>(env: &'env Env, err: &procslot_core::Error) -> napi::Result<Object<'env>> {
  let mut obj = env.create_error(napi::Error::new(Status::GenericFailure, err.to_string()))?;
  obj.set_named_property("code", err.code())?;
  obj.set_named_property("kind", err.kind())?;
  obj.set_named_property("reason", err.reason())?;
  if let Some(path) = err.path() {
    obj.set_named_property("path", path.to_string_lossy().as_ref())?;
  }
  if let Some(errno) = err.errno() {
    obj.set_named_property("errno", -errno)?;
  }
  if let Some(pid) = err.pid() {
    obj.set_named_property("pid", pid)?;
  }
  Ok(obj)
}
