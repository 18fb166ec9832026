/**
 * Why the native binding did not load, as one clear error: Windows and other platforms without a binary
 * are refused by name, and a supported platform whose prebuilt binary is missing (installed with
 * `--omit=optional`, or a `node_modules` copied from another platform) or does not load (a too-old glibc)
 * names its platform and the package to install. Loaded by `native.ts` on the failure path only.
 * @internal
 */
import type * as Errors from './errors.js'

/** The error classes, for the failure paths only: a program that loads fine never compiles them here. */
const errors = (): typeof Errors => require('./errors.js') as typeof Errors

/**
 * The platforms with a prebuilt binary: the `procslot-<platform>` packages that `napi prepublish` wrote
 * into the published package.json's `optionalDependencies` (none in a checkout, where `npm run build`
 * makes the binary).
 */
function published(): { name: string; platforms: string[] } {
  const pkg = require('../package.json') as { name: string; optionalDependencies?: Record<string, string> }
  const prefix = `${pkg.name}-`
  const platforms = Object.keys(pkg.optionalDependencies ?? {})
    .filter((dep) => dep.startsWith(prefix))
    .map((dep) => dep.slice(prefix.length))
  return { name: pkg.name, platforms }
}

/** The error for Windows and other platforms without a binary (`platform` as napi-rs names it). */
export function unsupportedPlatform(platform: string): Errors.ProcslotError {
  return unsupported(platform, published().platforms)
}

function unsupported(platform: string, platforms: string[], cause?: unknown): Errors.ProcslotError {
  const { ProcslotError } = errors()
  const have = platforms.length > 0 ? platforms.join(', ') : 'Linux and macOS'
  return Object.assign(
    new ProcslotError(
      `procslot: unsupported platform ${platform}. procslot needs POSIX byte-range locks and process start ` +
        `times; it has prebuilt binaries for ${have}.`,
      { code: 'ERR_PROCSLOT_UNSUPPORTED_PLATFORM', cause },
    ),
    { platform },
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
export function missingBinary(platform: string, cause: unknown): Errors.ProcslotError {
  const { ProcslotError } = errors()
  const { name, platforms } = published()
  const failure = loadFailure(cause)
  if (platforms.length === 0) {
    return Object.assign(
      new ProcslotError(
        `procslot: no native binary for ${platform} next to the sources: build it with npm run build` +
          (failure ? ` (it did not load: ${failure})` : ''),
        { code: 'ERR_PROCSLOT_NO_BINARY', cause },
      ),
      { platform },
    )
  }
  if (!platforms.includes(platform)) return unsupported(platform, platforms, cause)
  const pkg = `${name}-${platform}`
  const message = resolves(`${pkg}/package.json`)
    ? `procslot: the prebuilt binary for ${platform} (package ${pkg}) is installed but could not be loaded: ` +
      `${failure ?? String(cause)}${platform.endsWith('-gnu') ? ' (it needs glibc 2.17 or later)' : ''}`
    : `procslot: no prebuilt binary for ${platform}: the package ${pkg} is not installed. npm installs it ` +
      `with procslot as an optional dependency; it was left out (--omit=optional, --no-optional, or a ` +
      `lockfile made on another platform). Install it: npm install ${pkg}`
  return Object.assign(new ProcslotError(message, { code: 'ERR_PROCSLOT_NO_BINARY', cause }), { platform, package: pkg })
}

/**
 * Why a binary that is there did not load, or `undefined` when none was found: napi-rs chains every
 * candidate's failure through `cause` (a missing local `.node` file, the platform package, a WASI fallback),
 * and the first that is not "not found" is the reason (`version 'GLIBC_2.28' not found`, a wrong ELF class).
 */
function loadFailure(err: unknown): string | undefined {
  const messages: string[] = []
  for (let e: unknown = err; e instanceof Error; e = e.cause) messages.push(e.message.split('\n')[0] ?? '')
  const notFound = /^(Cannot find (module|native binding)|Failed to load native binding)|wasi/i
  return messages.filter((m) => !notFound.test(m)).at(-1)
}
