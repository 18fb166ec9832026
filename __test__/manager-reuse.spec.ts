/**
 * Exact identity: a spawn records the daemon's start time beside its PID file, so a PID reused however
 * soon after the write is never taken for the daemon.
 */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'

import { isRoot } from './helpers.ts'
import { fuseTest, sandbox } from './manager-helpers.ts'

const REUSE = fileURLToPath(new URL('./fixtures/reuse.cjs', import.meta.url))

fuseTest('a PID reused right after its PID file was written (a fresh PID namespace, ns_last_pid) is never adopted nor signalled; the canary lives', async (t) => {
  t.true(isRoot, 'PID namespaces need root (CI runs as root)')
  const box = sandbox(t)
  const args = JSON.stringify({ pidDir: box.pidDir, mountPath: box.mnt('t'), marker: box.marker })
  const out = await new Promise<string>((resolve, reject) => {
    execFile('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, REUSE, args], { timeout: 60_000 }, (err, stdout) =>
      err ? reject(Object.assign(err, { stdout })) : resolve(stdout),
    )
  })
  const report = JSON.parse(out.trim()) as Record<string, unknown>
  t.is(report.error, undefined, String(report.error))
  t.is(report.canary, report.daemon, 'the canary got the dead daemon’s PID')
  t.log(`the canary started ${report.gapMs} ms after the PID file was written`)
  t.is(report.loaded, 0, 'not adopted at load')
  t.is(report.cleaned, 1, 'the PID file was dropped as reused')
  t.false(report.running, 'isRunning says no')
  t.true(report.killed, 'kill resolves: there was nothing to kill')
  t.is(report.info, null)
  t.deepEqual(report.received, [], 'the canary received no signal')
  t.true(report.canaryAlive)
})
