// The linux-x64-gnu binary runs on glibc 2.17 and later (RHEL/CentOS 7, Ubuntu 16.04, Amazon Linux 2), as
// napi-rs packages do: no dynamic symbol it imports may need a newer glibc version. `npm run
// build:glibc-2.17` builds it so (cargo-zigbuild against glibc 2.17); CI builds and tests that binary.
// A developer's `npm run build` links against the build machine's glibc instead, so outside CI this runs
// only after that build (PROCSLOT_BUILD_SCRIPT=build:glibc-2.17, as .ci/run sets it).
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = dirname(dirname(fileURLToPath(import.meta.url)))
const BINARY = join(repo, 'procslot.linux-x64-gnu.node')
/** The native launcher (the `procslot` program) of the same build. */
const LAUNCHER = join(repo, 'procslot.linux-x64-gnu.launcher')
const FLOOR = [2, 17]
const linuxGnu = process.platform === 'linux' && process.arch === 'x64' && !existsSync('/lib/ld-musl-x86_64.so.1')
const built217 = process.env.PROCSLOT_BUILD_SCRIPT === 'build:glibc-2.17'
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
  glibcTest(`the linux-x64-gnu ${what} needs no glibc symbol newer than 2.17`, (t) => {
    t.true(built217, 'CI tests the binary of npm run build:glibc-2.17 (PROCSLOT_BUILD_SCRIPT)')
    // objdump -T: the dynamic symbol table, each imported symbol with its version (`(GLIBC_2.14) memcpy`;
    // older binutils print it without the parentheses).
    const table = execFileSync('objdump', ['-T', file], { encoding: 'utf8' })
    t.regex(table, /file format elf64-x86-64/)
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
