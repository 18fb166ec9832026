// One error model (SPEC §4): every error has a string `code`; the package's own errors extend
// ProcslotError; argument errors are TypeError/RangeError with Node's codes; native errors cross the
// binding as data (kind, code, path, errno) and carry no Rust wording.
import test, { type ExecutionContext } from 'ava'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import {
  FuseProcessManager,
  InvalidTargetIdError,
  PidFileError,
  PidFileStore,
  ProcslotError,
  SlotFileError,
  SlotTable,
  acquireMultiProcessConfig,
  multiProcessConfig,
  newClient,
  newMultiProcessClient,
  newMultiProcessClientWithFile,
} from '../index.js'
import { tempDir } from './helpers.ts'

const RUST_WORDING = /os error|panicked|unwrap\(\)|Result::|Option::|\bErrno\b|GenericFailure/

/** The error `fn` throws: a string code, one of the expected classes, no Rust wording. */
function bad(t: ExecutionContext, what: string, fn: () => unknown, classes: Array<abstract new (...args: never[]) => Error>): Error & { code: string } {
  let thrown: unknown
  try {
    fn()
  } catch (err) {
    thrown = err
  }
  t.true(thrown instanceof Error, `${what}: throws an Error (got ${String(thrown)})`)
  const err = thrown as Error & { code?: unknown }
  t.is(typeof err.code, 'string', `${what}: has a string code (${err.message})`)
  t.true(classes.some((c) => err instanceof c), `${what}: is one of ${classes.map((c) => c.name)} (got ${err.name})`)
  t.notRegex(err.message, RUST_WORDING, `${what}: no Rust wording`)
  return err as Error & { code: string }
}

const ARG = [TypeError, RangeError]

test('argument errors of the slot and client API are TypeError/RangeError with Node codes', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  const cases: Array<[string, () => unknown, string]> = [
    ['SlotTable.open(42)', () => SlotTable.open(42 as unknown as string), 'ERR_INVALID_ARG_TYPE'],
    ["SlotTable.open('')", () => SlotTable.open(''), 'ERR_INVALID_ARG_VALUE'],
    ['SlotTable.open(a\\0b)', () => SlotTable.open('a\0b'), 'ERR_INVALID_ARG_VALUE'],
    ['SlotTable.open slots 0', () => SlotTable.open(file, { slots: 0 }), 'ERR_OUT_OF_RANGE'],
    ["SlotTable.open slots '4'", () => SlotTable.open(file, { slots: '4' as unknown as number }), 'ERR_INVALID_ARG_TYPE'],
    ['SlotTable.open mode -1', () => SlotTable.open(file, { mode: -1 }), 'ERR_OUT_OF_RANGE'],
    ['SlotTable.open allowForeignOwner 1', () => SlotTable.open(file, { allowForeignOwner: 1 as unknown as boolean }), 'ERR_INVALID_ARG_TYPE'],
    ['multiProcessConfig(NaN, 2)', () => multiProcessConfig(Number.NaN, 2), 'ERR_OUT_OF_RANGE'],
    ["multiProcessConfig('0', 2)", () => multiProcessConfig('0' as unknown as number, 2), 'ERR_INVALID_ARG_TYPE'],
    ['multiProcessConfig(2, 2)', () => multiProcessConfig(2, 2), 'ERR_OUT_OF_RANGE'],
    ["acquireMultiProcessConfig('')", () => acquireMultiProcessConfig(''), 'ERR_INVALID_ARG_VALUE'],
    ["newClient('')", () => newClient(''), 'ERR_INVALID_ARG_VALUE'],
    ['newClient(dir, null)', () => newClient(join(dir, 'd'), null as never), 'ERR_INVALID_ARG_TYPE'],
    ['newMultiProcessClient(dir, { concurrency: 5 })', () => newMultiProcessClient(join(dir, 'd'), { concurrency: 5 as never }), 'ERR_INVALID_ARG_TYPE'],
    ['newMultiProcessClientWithFile(dir, 7)', () => newMultiProcessClientWithFile(join(dir, 'd'), 7 as never), 'ERR_INVALID_ARG_TYPE'],
  ]
  for (const [what, fn, code] of cases) t.is(bad(t, what, fn, ARG).code, code, what)

  const table = SlotTable.open(file, { slots: 2 })
  t.teardown(() => table.close())
  t.is(bad(t, 'acquire preferred -1', () => table.acquire({ preferred: -1 }), ARG).code, 'ERR_OUT_OF_RANGE')
  t.is(bad(t, "release('x')", () => table.release('x' as never), ARG).code, 'ERR_INVALID_ARG_TYPE')
  const client = newMultiProcessClient(join(dir, 'data'), { concurrency: { processCount: 2, processId: 1 } })
  t.is(bad(t, 'owns(-1)', () => client.owns(-1), ARG).code, 'ERR_OUT_OF_RANGE')
  t.is(bad(t, "ownedShards('3')", () => client.ownedShards('3' as never), ARG).code, 'ERR_INVALID_ARG_TYPE')
  client.close()
})

test('native slot-file errors cross as data: class, code, path, errno, no Rust wording', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const missing = join(dir, 'no-such-dir', 'slots')
  const enoent = bad(t, 'a file in a missing directory', () => SlotTable.open(missing), [SlotFileError]) as SlotFileError
  t.true(enoent instanceof ProcslotError)
  t.is(enoent.code, 'ENOENT')
  t.is(enoent.path, missing)
  t.is(enoent.errno, -2)
  t.regex(enoent.message, /No such file or directory$/)

  mkdirSync(join(dir, 'a-dir'))
  const notReg = bad(t, 'a directory', () => SlotTable.open(join(dir, 'a-dir')), [SlotFileError]) as SlotFileError
  t.is(notReg.code, 'ENOTREG')
  t.is(notReg.path, join(dir, 'a-dir'))
  t.is(notReg.errno, undefined, 'a code of our own has no errno')

  writeFileSync(join(dir, 'odd'), Buffer.alloc(7))
  t.is(bad(t, 'a 7-byte file', () => SlotTable.open(join(dir, 'odd')), [SlotFileError]).code, 'EBADSIZE')
})

test('PID-file errors: invalid target IDs, impossible PIDs, unusable directories', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const store = new PidFileStore(join(dir, 'pids'))
  for (const target of ['../x', 'a/b', '', '.hidden', 'a\0b', 'x'.repeat(201)]) {
    const err = bad(t, `write(${JSON.stringify(target)})`, () => store.write(target, 1234), [InvalidTargetIdError])
    t.is(err.code, 'EINVALIDTARGET')
    t.true(err instanceof ProcslotError)
  }
  t.is(bad(t, 'read(42)', () => store.read(42 as never), [InvalidTargetIdError]).code, 'EINVALIDTARGET')
  // A PID the core refuses (above the system's limit) is a RangeError, as documented, not a PidFileError.
  t.is(bad(t, 'write(t, 2**31)', () => store.write('t', 2 ** 31), ARG).code, 'ERR_OUT_OF_RANGE')
  t.is(bad(t, 'write(t, 1)', () => store.write('t', 1), ARG).code, 'ERR_OUT_OF_RANGE')
  t.is(bad(t, 'write(t, 2.5)', () => store.write('t', 2.5), ARG).code, 'ERR_OUT_OF_RANGE')
  t.is(bad(t, "new PidFileStore('')", () => new PidFileStore(''), ARG).code, 'ERR_INVALID_ARG_VALUE')

  writeFileSync(join(dir, 'a-file'), '')
  const notDir = bad(t, 'a PID directory that is a file', () => new PidFileStore(join(dir, 'a-file')), [PidFileError]) as PidFileError
  t.true(['EEXIST', 'ENOTDIR'].includes(notDir.code), notDir.code)
  t.is(notDir.path, join(dir, 'a-file'))
  t.is(typeof notDir.errno, 'number')
})

test('FuseProcessManager options and calls: clear argument errors with codes', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const pidDir = join(dir, 'pids')
  const cases: Array<[string, () => unknown, string]> = [
    ['no options', () => new FuseProcessManager(undefined as never), 'ERR_INVALID_ARG_TYPE'],
    ['command 5', () => new FuseProcessManager({ pidDir, command: 5 as never }), 'ERR_INVALID_ARG_TYPE'],
    ["command ''", () => new FuseProcessManager({ pidDir, command: '' }), 'ERR_INVALID_ARG_VALUE'],
    ['args []', () => new FuseProcessManager({ pidDir, command: 'x', args: [] as never }), 'ERR_INVALID_ARG_TYPE'],
    ["ready 'soon'", () => new FuseProcessManager({ pidDir, command: 'x', ready: 'soon' as never }), 'ERR_INVALID_ARG_VALUE'],
    ['killTimeoutMs -1', () => new FuseProcessManager({ pidDir, command: 'x', killTimeoutMs: -1 }), 'ERR_OUT_OF_RANGE'],
    ["restart 'sometimes'", () => new FuseProcessManager({ pidDir, command: 'x', restart: 'sometimes' as never }), 'ERR_INVALID_ARG_VALUE'],
  ]
  for (const [what, fn, code] of cases) t.is(bad(t, what, fn, ARG).code, code, what)
  t.false(existsSync(pidDir), 'a refused option makes no PID directory')

  const manager = new FuseProcessManager({ pidDir, command: 'true' })
  const rejected = async (what: string, p: Promise<unknown>, classes: Array<abstract new (...args: never[]) => Error>) => {
    const err = await p.then(
      () => null,
      (e: unknown) => e,
    )
    bad(t, what, () => {
      throw err
    }, classes)
  }
  await rejected("spawn('../x')", manager.spawn('../x', join(dir, 'm')), [InvalidTargetIdError])
  await rejected("spawn(t, '')", manager.spawn('t', ''), ARG)
  await rejected("spawn(t, m, {}, { restart: 1 })", manager.spawn('t', join(dir, 'm'), {}, { restart: 1 as never }), ARG)
  await rejected('kill(t, { timeoutMs: 1.5 })', manager.kill('t', { timeoutMs: 1.5 }), ARG)
  bad(t, 'isRunning(null)', () => manager.isRunning(null as never), [InvalidTargetIdError])
})
