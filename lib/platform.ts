/**
 * Loads the native binding once, before anything uses it, and turns a failure into one clear error:
 * Windows and other unsupported platforms are refused by name, and a supported platform whose prebuilt
 * binary is missing (installed with `--omit=optional`, or from a lockfile made on another platform) or
 * does not load (a too-old glibc) names its platform and the package to install.
 * @internal
 */

/** The platforms with a prebuilt binary: `npm/<platform>/` holds the package `procslot-<platform>`. */
const PLATFORMS = ['linux-x64-gnu', 'linux-arm64-gnu', 'linux-x64-musl', 'linux-arm64-musl', 'darwin-x64', 'darwin-arm64']

/** `linux-x64-gnu` and the like: the napi-rs name of this machine's platform. */
function platformName(): string {
  const name = `${process.platform}-${process.arch}`
  if (process.platform !== 'linux') return name
  // Only on the error path: a report is a few milliseconds.
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
  return `${name}-${report?.header?.glibcVersionRuntime ? 'gnu' : 'musl'}`
}

function unsupported(platform: string): Error {
  return Object.assign(
    new Error(
      `procslot: unsupported platform ${platform}. procslot needs POSIX byte-range locks and process start ` +
        `times, and has prebuilt binaries for ${PLATFORMS.join(', ')}.`,
    ),
    { code: 'ERR_PROCSLOT_UNSUPPORTED_PLATFORM' },
  )
}

function resolves(specifier: string): boolean {
  try {
    require.resolve(specifier)
    return true
  } catch {
    return false
  }
}

/** The error for a binding that did not load on `platform`; `cause` is the loader's own error. */
function missingBinary(platform: string, cause: unknown): Error {
  if (!PLATFORMS.includes(platform)) return Object.assign(unsupported(platform), { cause })
  const pkg = `procslot-${platform}`
  const message = resolves(`${pkg}/package.json`)
    ? `procslot: the prebuilt binary for ${platform} (package ${pkg}) is installed but could not be loaded: ` +
      `${loadFailure(cause)}${platform.endsWith('-gnu') ? ' (it needs glibc 2.17 or later)' : ''}`
    : `procslot: no prebuilt binary for ${platform}: the package ${pkg} is not installed. npm installs it ` +
      `with procslot as an optional dependency; it was left out (--omit=optional, --no-optional, or a ` +
      `lockfile made on another platform). Install it: npm install ${pkg}`
  return Object.assign(new Error(message, { cause }), { code: 'ERR_PROCSLOT_NO_BINARY', platform, package: pkg })
}

/**
 * Why the binary did not load: napi-rs chains every candidate's failure through `cause` (a missing local
 * `.node` file, the platform package, a WASI fallback); the first that is not "not found" is the reason
 * (`version 'GLIBC_2.28' not found`, a wrong ELF class).
 */
function loadFailure(err: unknown): string {
  const messages: string[] = []
  for (let e: unknown = err; e instanceof Error; e = e.cause) messages.push(e.message.split('\n')[0] ?? '')
  const reasons = messages.filter((m) => !m.startsWith('Cannot find module') && !/wasi/i.test(m))
  return reasons.at(-1) ?? messages[0] ?? String(err)
}

if (process.platform === 'win32') throw unsupported(`${process.platform}-${process.arch}`)

try {
  // The generated loader caches itself: `./native` re-exports this very module object.
  require('../binding')
} catch (err) {
  throw missingBinary(platformName(), err)
}

export {}
