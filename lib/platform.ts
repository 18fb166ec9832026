/**
 * Refuses unsupported platforms with a clear message before the native loader runs.
 * @internal
 */
if (process.platform === 'win32') {
  throw new Error(
    `procslot: unsupported platform ${process.platform}-${process.arch}. ` +
      'procslot needs POSIX byte-range locks and process start times: it supports Linux and macOS.',
  )
}

export {}
