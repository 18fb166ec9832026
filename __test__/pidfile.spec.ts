import test from 'ava'
import { execFileSync } from 'node:child_process'
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { InvalidTargetIdError, PidFileError, PidFileStore } from '../index.js'
import { inCI, isRoot, tempDir } from './helpers.ts'

const rootOnly = isRoot || inCI ? test : test.skip

test('the PID directory is created, recursively, mode 0755', (t) => {
  const tmp = tempDir()
  t.teardown(tmp.cleanup)
  const dir = join(tmp.dir, 'run', 'myapp')
  const store = new PidFileStore(dir)
  t.is(store.dir, dir)
  t.true(statSync(dir).isDirectory())
  t.is(statSync(dir).mode & 0o777, 0o755)
})

test('a target has one PID file path, <dir>/<targetId>.pid', (t) => {
  const tmp = tempDir()
  t.teardown(tmp.cleanup)
  const store = new PidFileStore(tmp.dir)
  t.is(store.pathFor('target-123'), join(tmp.dir, 'target-123.pid'))
})

test('write, read and delete a standard PID file that cat and pkill -F understand', (t) => {
  const tmp = tempDir()
  t.teardown(tmp.cleanup)
  const store = new PidFileStore(tmp.dir)
  store.write('target-123', 12345)
  const path = store.pathFor('target-123')
  t.is(readFileSync(path, 'utf8'), '12345\n')
  t.is(statSync(path).mode & 0o777, 0o644)
  t.is(store.read('target-123'), 12345)
  t.is(execFileSync('cat', [path], { encoding: 'utf8' }).trim(), '12345')
  t.true(store.delete('target-123'))
  t.false(existsSync(path))
  t.false(store.delete('target-123'))
})

test('a missing PID file reads as null', (t) => {
  const tmp = tempDir()
  t.teardown(tmp.cleanup)
  t.is(new PidFileStore(tmp.dir).read('nobody'), null)
})

test('invalid content reads as null and is reported by list, never thrown', (t) => {
  const tmp = tempDir()
  t.teardown(tmp.cleanup)
  const store = new PidFileStore(tmp.dir)
  const bad = ['0', '1', '-1', 'garbage', '99999999999999999999', '12 34', '', '0x10', '4194305']
  bad.forEach((content, i) => writeFileSync(join(tmp.dir, `bad-${i}.pid`), content + '\n'))
  writeFileSync(join(tmp.dir, 'by-hand.pid'), '4242') // echo -n: no newline is fine
  for (let i = 0; i < bad.length; i++) t.is(store.read(`bad-${i}`), null, bad[i])
  t.is(store.read('by-hand'), 4242)
  const list = store.list()
  t.is(list.length, bad.length + 1)
  t.deepEqual(
    list.filter((e) => e.status === 'invalid').map((e) => e.targetId),
    bad.map((_, i) => `bad-${i}`),
  )
  const good = list.find((e) => e.targetId === 'by-hand')!
  t.is(good.pid, 4242)
  t.true(good.mtime instanceof Date)
  t.is(good.path, join(tmp.dir, 'by-hand.pid'))
  t.is(readFileSync(join(tmp.dir, 'bad-3.pid'), 'utf8'), 'garbage\n', 'reading changed nothing')
})

test('target IDs like ../x, a/b and the empty string are rejected before any path is built', (t) => {
  const tmp = tempDir()
  t.teardown(tmp.cleanup)
  const store = new PidFileStore(join(tmp.dir, 'pids'))
  for (const bad of ['../x', 'a/b', '', '.hidden', '..', 'a\0b', 'x'.repeat(201), 'sp ace']) {
    for (const call of [
      () => store.pathFor(bad),
      () => store.write(bad, 1234),
      () => store.read(bad),
      () => store.delete(bad),
      () => store.inspect(bad),
    ]) {
      const err = t.throws(call, { instanceOf: InvalidTargetIdError })
      t.is(err?.code, 'EINVALIDTARGET')
    }
  }
  t.throws(() => store.read(42 as unknown as string), { instanceOf: InvalidTargetIdError })
  t.deepEqual(store.list(), [])
  t.false(existsSync(join(tmp.dir, 'x.pid')))
})

test('PIDs that are never a daemon’s cannot be written', (t) => {
  const tmp = tempDir()
  t.teardown(tmp.cleanup)
  const store = new PidFileStore(tmp.dir)
  for (const pid of [0, 1, -1, 1.5, Number.NaN, 2 ** 40]) t.throws(() => store.write('t', pid), { instanceOf: RangeError })
  t.deepEqual(store.list(), [])
})

test('a world-writable PID directory without the sticky bit is refused', (t) => {
  const tmp = tempDir()
  t.teardown(tmp.cleanup)
  const dir = join(tmp.dir, 'open')
  mkdirSync(dir)
  chmodSync(dir, 0o777)
  const err = t.throws(() => new PidFileStore(dir), { instanceOf: PidFileError })
  t.is(err?.code, 'EUNSAFE')
  t.is(err?.path, dir)
  chmodSync(dir, 0o1777)
  t.notThrows(() => new PidFileStore(dir))
})

test('symbolic links and files writable by others are untrusted', (t) => {
  const tmp = tempDir()
  t.teardown(tmp.cleanup)
  const store = new PidFileStore(tmp.dir)
  writeFileSync(join(tmp.dir, 'real.pid'), `${process.pid}\n`)
  symlinkSync(join(tmp.dir, 'real.pid'), join(tmp.dir, 'link.pid'))
  writeFileSync(join(tmp.dir, 'open.pid'), `${process.pid}\n`)
  chmodSync(join(tmp.dir, 'open.pid'), 0o666)
  t.is(store.read('link'), null)
  t.is(store.read('open'), null)
  t.is(store.inspect('link')?.status, 'untrusted')
  t.regex(store.inspect('open')?.reason ?? '', /writable by others/)
})

rootOnly('a PID file owned by another user is untrusted', (t) => {
  const tmp = tempDir()
  t.teardown(tmp.cleanup)
  const store = new PidFileStore(tmp.dir)
  store.write('theirs', process.pid)
  chownSync(store.pathFor('theirs'), 65534, 65534)
  const info = store.inspect('theirs')
  t.is(info?.status, 'untrusted')
  t.regex(info?.reason ?? '', /owned by uid 65534/)
  t.is(store.read('theirs'), null)
})
