/**
 * Opening a PID directory: the store, refused when other users can write to the directory.
 * Internal to the manager (not exported by the package).
 */
import { nativeError } from '../errors'
import { native } from '../native'
import { PidFileStore } from '../pidfile'

/** Refuses a directory other users can write to (`PidFileError` code `EUNSAFE`). */
export function checkPrivate(dir: string): void {
  try {
    native.checkPrivateDir(dir)
  } catch (err) {
    throw nativeError(err, { path: dir })
  }
}

/**
 * The PID directory's store, created if missing (mode 0755).
 * @throws {PidFileError} `EUNSAFE` for a directory other users can write to, or the operating system's
 * error.
 */
export function openPidDir(dir: string): PidFileStore {
  const store = new PidFileStore(dir)
  checkPrivate(dir)
  return store
}
