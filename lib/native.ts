/**
 * The native binding (the napi-rs loader generated as `binding.js`), loaded after a clear refusal on
 * platforms the Rust core does not support.
 * @internal
 */
import './platform'

export * from '../binding'
