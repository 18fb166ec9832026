//! The napi-rs binding: converts arguments, maps errors, and nothing else. All the work is in
//! `procslot-core`; the typed API is the TypeScript facade (`index.ts`), which loads this as `./binding`.
//! One file per core module it binds; errors cross in one place ([`error`]), blocking work runs through
//! [`task`].
#![deny(clippy::all)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod entry;
mod error;
pub mod mount;
pub mod pidfile;
pub mod process;
pub mod slots;
mod task;
pub mod trust;
pub mod watch;
