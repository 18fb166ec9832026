//! Locks on this process's shared state.

use std::sync::{Mutex, MutexGuard};

/// A mutex's guard, whether or not a panic poisoned it (the state it guards is valid at every unlock).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
  m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
