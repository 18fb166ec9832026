/**
 * The native binding, loaded once, first, with any failure turned into one clear error: Windows and other
 * platforms without a binary are refused by name, and a supported platform whose prebuilt binary is
 * missing (installed with `--omit=optional`, or a `node_modules` copied from another platform) or does not
 * load (a too-old glibc) names its platform and the package to install. `index.ts` imports this module
 * before anything else.
 *
 * The common case takes a short path: this machine's binary, next to the sources (a checkout) or from its
 * platform package, required directly. Everything else — the `NAPI_RS_*` overrides, WASI, a binary that is
 * there but does not load — goes through the loader napi-rs generates (`binding.js`), which stays the
 * authority and whose error chain is what gets reported. The generated loader alone takes about as long
 * to load as the binary (over a millisecond), which a program that only wants its slot would pay for.
 * @internal
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

import type * as Binding from '../binding.js'
import type * as Errors from './errors.js'

export type * from '../binding.js'

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

/**
 * `linux-x64-gnu` and the like: the napi-rs name of this machine's platform. glibc or musl is decided as
 * the generated loader decides it: does `/usr/bin/ldd` mention musl; without that file, the process
 * report (a few milliseconds).
 */
function platformName(): string {
  const name = `${process.platform}-${process.arch}`
  if (process.platform !== 'linux') return name
  try {
    return `${name}-${readFileSync('/usr/bin/ldd', 'utf8').includes('musl') ? 'musl' : 'gnu'}`
  } catch {}
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
  return `${name}-${report?.header?.glibcVersionRuntime ? 'gnu' : 'musl'}`
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
function missingBinary(platform: string, cause: unknown): Errors.ProcslotError {
  const { ProcslotError } = errors()
  const { name, platforms } = published()
  if (platforms.length === 0) {
    return Object.assign(
      new ProcslotError(
        `procslot: no native binary for ${platform} next to the sources: build it with npm run build` +
          (loadFailure(cause) ? ` (it did not load: ${loadFailure(cause)})` : ''),
        { code: 'ERR_PROCSLOT_NO_BINARY', cause },
      ),
      { platform },
    )
  }
  if (!platforms.includes(platform)) return unsupported(platform, platforms, cause)
  const pkg = `${name}-${platform}`
  const message = resolves(`${pkg}/package.json`)
    ? `procslot: the prebuilt binary for ${platform} (package ${pkg}) is installed but could not be loaded: ` +
      `${loadFailure(cause) ?? String(cause)}${platform.endsWith('-gnu') ? ' (it needs glibc 2.17 or later)' : ''}`
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

/**
 * This machine's platform name when the short path applies: `undefined` when a `NAPI_RS_*` variable asks
 * the generated loader for something else (a library path, WASI, a version check).
 */
function shortPathPlatform(): string | undefined {
  const env = process.env
  if (env.NAPI_RS_NATIVE_LIBRARY_PATH || env.NAPI_RS_FORCE_WASI || env.NAPI_RS_WASI_FLAVOR || env.NAPI_RS_ENFORCE_VERSION_CHECK) {
    return undefined
  }
  return platformName()
}

function load(): typeof Binding {
  if (process.platform === 'win32') throw unsupported(`${process.platform}-${process.arch}`, published().platforms)
  const platform = shortPathPlatform()
  if (platform !== undefined) {
    // The binary `npm run build` puts next to the sources, else the platform package: the generated
    // loader's own first two candidates (looked for with a stat, not a failed require, which costs a
    // thrown error). Any failure is left to it, to try again and report.
    const local = join(__dirname, '..', `procslot.${platform}.node`)
    try {
      return require(existsSync(local) ? local : `procslot-${platform}/procslot.${platform}.node`) as typeof Binding
    } catch {}
  }
  try {
    return require('../binding.js') as typeof Binding
  } catch (err) {
    throw missingBinary(platformName(), err)
  }
}

/** The native binding: the `#[napi]` functions and classes of `src/`. */
export const native: typeof Binding = load()
