/**
 * Where a slot file may live: on FUSE the kernel keeps a file's locks per mount, so the same file reached
 * through a FUSE view and directly gives two live processes one ID. Such a file is opened with a
 * warning, once per file.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'

import { SlotTable } from '../index.js'
import { fuseTest, sandbox } from './manager-helpers.ts'

const INDEX = join(import.meta.dirname, '..', 'index.js')

fuseTest('a slot file opened through a FUSE view (bindfs) is warned about once, with its own code; the same file reached directly is another lock domain', async (t) => {
  const box = sandbox(t)
  const view = join(box.dir, 'view')
  mkdirSync(view)
  t.is(spawnSync('bindfs', [box.src, view]).status, 0)
  t.teardown(() => void spawnSync('umount', ['-l', view]))
  const through = join(view, 'slots')
  SlotTable.open(join(box.src, 'slots'), { slots: 2 }).close()

  // A process that opens the file through the view, twice, and takes its ID there: one warning.
  const script = `
    const seen = []
    process.on('warning', (w) => seen.push({ code: w.code, message: w.message }))
    const { SlotTable, getProcessId } = require(${JSON.stringify(INDEX)})
    const a = SlotTable.open(${JSON.stringify(through)})
    const b = SlotTable.open(${JSON.stringify(through)})
    const id = getProcessId(${JSON.stringify(through)})
    a.close(); b.close()
    setImmediate(() => console.log(JSON.stringify({ id, seen })))`
  const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as {
    id: number
    seen: Array<{ code: string; message: string }>
  }
  t.is(out.id, 0)
  const fuse = out.seen.filter((w) => w.code === 'PROCSLOT_SLOT_FILE_ON_FUSE')
  t.is(fuse.length, 1, JSON.stringify(out.seen))
  t.regex(fuse[0]!.message, /locks per mount/)

  // Why: this process holds slot 0 directly on the file, and one through the view still gets slot 0.
  const direct = SlotTable.open(join(box.src, 'slots'))
  t.teardown(() => direct.close())
  t.is(direct.acquire(), 0)
  const viaView = JSON.parse(
    execFileSync(process.execPath, ['-e', `const { SlotTable } = require(${JSON.stringify(INDEX)}); process.on('warning', () => {}); console.log(JSON.stringify(SlotTable.open(${JSON.stringify(through)}).acquire()))`], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }),
  )
  t.is(viaView, 0, 'the kernel keeps a FUSE file’s locks per mount: the direct holder is not seen')
})
