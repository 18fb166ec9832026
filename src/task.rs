//! Blocking work off the JavaScript thread: a promise settled from a thread of its own.

use napi::bindgen_prelude::Object;
use napi::{Env, Status};

use crate::error::{IntoJs, Result};

/// Runs `work` on a new thread and settles a promise with its result; a core error rejects it with the
/// same JavaScript error a synchronous call would throw (built on the JavaScript thread, where it settles).
pub(crate) fn on_thread<'env, T, F>(env: &'env Env, work: F) -> Result<Object<'env>>
where
  T: napi::bindgen_prelude::ToNapiValue + Send + 'static,
  F: FnOnce() -> procslot_core::Result<T> + Send + 'static,
{
  type Settle<T> = Box<dyn FnOnce(Env) -> napi::Result<T>>;
  let (deferred, promise) = env.create_deferred::<T, Settle<T>>()?;
  std::thread::Builder::new()
    .name("procslot-wait".into())
    .spawn(move || {
      let result = work();
      deferred.resolve(Box::new(move |env| result.js(&env)))
    })
    .map_err(|e| napi::Error::new(Status::GenericFailure, e.to_string()))?;
  Ok(promise)
}
