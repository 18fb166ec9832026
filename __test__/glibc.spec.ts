// The linux-gnu binaries run on glibc 2.17 and later (RHEL/CentOS 7, Ubuntu 16.04, Amazon Linux 2), as
// napi-rs packages do: no dynamic symbol they import may need a newer glibc version. `npm run
// build:glibc-2.17` builds the x64 one so (cargo-zigbuild against glibc 2.17), `npm run
// build:glibc-2.17:arm64` the arm64 one; CI builds and tests both (arm64 under emulation:
// .github/scripts/test-arm64-emulated.sh). This checks the binary of the machine that runs the suite. A
// developer's `npm run build` links against the build machine's glibc instead, so outside CI this runs only
// after that build (PROCSLOT_BUILD_SCRIPT names it, as .ci/run and the emulated run set it).
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Per CPU: the ELF machine of its binaries (`e_machine`: EM_X86_64, EM_AARCH64), the musl loader that tells
 * Alpine, the build script.
 */
const CPUS: Partial<Record<NodeJS.Architecture, { machine: number; musl: string; build: string }>> = {
  x64: { machine: 62, musl: '/lib/ld-musl-x86_64.so.1', build: 'build:glibc-2.17' },
  arm64: { machine: 183, musl: '/lib/ld-musl-aarch64.so.1', build: 'build:glibc-2.17:arm64' },
}
const cpu = CPUS[process.arch]
const repo = dirname(dirname(fileURLToPath(import.meta.url)))
const platform = `linux-${process.arch}-gnu`
const BINARY = join(repo, `procslot.${platform}.node`)
/** The native launcher (the `procslot` program) of the same build. */
const LAUNCHER = join(repo, `procslot.${platform}.launcher`)
const FLOOR = [2, 17]
const linuxGnu = process.platform === 'linux' && cpu !== undefined && !existsSync(cpu.musl)
const built217 = process.env.PROCSLOT_BUILD_SCRIPT === cpu?.build
const glibcTest = linuxGnu && (built217 || process.env.CI) ? test : test.skip

/** `[2, 17]` from `GLIBC_2.17`. */
const parse = (version: string): number[] => version.slice('GLIBC_'.length).split('.').map(Number)

function newer(a: number[], b: number[]): boolean {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0)
  }
  return false
}

for (const [what, file] of [
  ['binary', BINARY],
  ['launcher', LAUNCHER],
] as const) {
  glibcTest(`the ${platform} ${what} needs no glibc symbol newer than 2.17`, (t) => {
    t.true(built217, `CI tests the binary of npm run ${cpu?.build} (PROCSLOT_BUILD_SCRIPT)`)
    // This machine's: a 64-bit little-endian ELF file for its CPU (read from the header, as the x64 objdump
    // of the emulated run names an aarch64 file only `elf64-little`).
    const header = readFileSync(file).subarray(0, 20)
    t.is(header.toString('latin1', 0, 4), '\x7fELF')
    t.deepEqual([header[4], header[5], header.readUInt16LE(18)], [2, 1, cpu!.machine], 'ELFCLASS64, little-endian, e_machine')
    // objdump -T: the dynamic symbol table, each imported symbol with its version (`(GLIBC_2.14) memcpy`;
    // older binutils print it without the parentheses).
    const table = execFileSync('objdump', ['-T', file], { encoding: 'utf8' })
    const needs = [...table.matchAll(/\(?(GLIBC_\d+(?:\.\d+)+)\)?\s+(\S+)\s*$/gm)].map((m) => ({
      version: m[1]!,
      symbol: m[2]!,
    }))
    t.true(needs.length > 0, `the ${what} imports versioned glibc symbols`)
    const tooNew = needs.filter((n) => newer(parse(n.version), FLOOR)).map((n) => `${n.symbol}@${n.version}`)
    t.deepEqual(tooNew, [], `symbols that need a glibc newer than ${FLOOR.join('.')}`)
    const newest = needs.map((n) => n.version).sort((a, b) => (newer(parse(a), parse(b)) ? -1 : 1))[0]
    t.log(`newest glibc version needed: ${newest} (${needs.length} versioned symbols)`)
  })
}
