/**
 * Slots on etcd, against a local etcd server started for the run (Debian's etcd-server; skipped with a
 * line when it is not installed): acquire latency on an open table (one transaction on the table's lease)
 * vs a bare etcd `put` on the same server; the time from a holder's death (SIGKILL) to a waiter holding its
 * slot, vs from a release to the waiter holding it; and the keep-alive traffic of one idle table, counted
 * on the wire by a TCP proxy between it and etcd.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { EtcdSlotTable } from '../index.js'
import { EtcdCluster, ETCD, etcdInstalled } from '../__test__/fixtures/etcd-server.ts'
import { compareAsync, type AsyncBench, type Case } from './harness.ts'

const HOLDER = fileURLToPath(new URL('../__test__/fixtures/etcd-holder.cjs', import.meta.url))

/** Keep-alive traffic of one idle table: its one lease, the same whether it holds a slot or not. */
export interface KeepAliveTraffic {
  readonly ttlSeconds: number
  readonly windowMs: number
  /** Keep-alive requests sent per minute (counted by the table). */
  readonly requestsPerMinute: number
  /** Bytes on the wire per minute, both directions (TCP payload: HTTP/2 frames), counted by a proxy. */
  readonly bytesPerMinute: number
  readonly bytesUpPerMinute: number
  readonly bytesDownPerMinute: number
}

export interface EtcdBench {
  readonly cases: Case[]
  readonly traffic: KeepAliveTraffic | null
  /** Why the etcd cases did not run, or `null`. */
  readonly skipped: string | null
}

/** A holder process (the tests' fixture) that acquires at once. */
async function startHolder(options: object): Promise<{ kill: () => Promise<void>; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [HOLDER, JSON.stringify(options)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const exited = once(child, 'exit')
  const lines = createInterface({ input: child.stdout! })
  const next = (what: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      lines.once('line', (l) => resolve(JSON.parse(l)))
      child.once('exit', () => reject(new Error(`holder exited before ${what}`)))
    })
  await next('ready')
  child.stdin!.write('acquire\n')
  const r = await next('acquire')
  if (typeof r.slot !== 'number') throw new Error(`holder could not acquire: ${JSON.stringify(r)}`)
  return {
    kill: async () => {
      child.kill('SIGKILL')
      await exited
    },
    stop: async () => {
      child.stdin!.end()
      await exited
    },
  }
}

/** A TCP proxy to `port` that counts the bytes each way. */
async function countingProxy(port: number): Promise<{ server: Server; port: number; up: number; down: number; sockets: Set<Socket> }> {
  const state = { up: 0, down: 0, sockets: new Set<Socket>() }
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1')
    state.sockets.add(client).add(upstream)
    client.on('data', (d) => (state.up += d.length))
    upstream.on('data', (d) => (state.down += d.length))
    client.pipe(upstream).on('error', () => {})
    upstream.pipe(client).on('error', () => {})
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const proxy = {
    server,
    port: (server.address() as { port: number }).port,
    sockets: state.sockets,
    get up() {
      return state.up
    },
    get down() {
      return state.down
    },
  }
  return proxy
}

export async function etcdCases(dir: string, progress: (m: string) => void, firstId: number): Promise<EtcdBench> {
  if (!etcdInstalled) {
    const why = `${ETCD} not installed (apt-get install etcd-server)`
    progress(`etcd cases skipped: ${why}`)
    return { cases: [], traffic: null, skipped: why }
  }
  const out: Case[] = []
  const cluster = await EtcdCluster.start(join(dir, 'etcd'), 1)
  const endpoint = cluster.endpoint
  const tables: EtcdSlotTable[] = []
  const { Etcd3 } = await import('etcd3')
  const raw = new Etcd3({ hosts: endpoint })
  try {
    // 1. acquire on an open table vs a bare put of a key of the same size. The table's lease is granted by
    // its first acquire, untimed: each timed acquire is one transaction on it (a release, untimed, deletes
    // the key only).
    progress(`${firstId}. etcd: acquire() on an open table vs a bare put`)
    const table = await EtcdSlotTable.open({ endpoints: endpoint, prefix: '/bench/acquire', slots: 64 })
    tables.push(table)
    await table.acquire()
    const lease = (await table.snapshot()).find((s) => s.self)!.lease
    await table.release()
    let n = 0
    const value = JSON.stringify({ host: 'bench', pid: process.pid, since: new Date().toISOString() })
    const c1 = await compareAsync(
      { name: 'EtcdSlotTable acquire()', fn: () => table.acquire(), after: async () => void (await table.release()) },
      { name: 'etcd3 put(key).value(v)', fn: () => raw.put(`/bench/put/${n++ % 64}`).value(value).exec() },
      { samples: 300, warmup: 20, maxTimeMs: 10_000 },
    )
    await table.acquire()
    if ((await table.snapshot()).find((s) => s.self)!.lease !== lease) {
      // A stalled keep-alive made the table take a new lease: some samples were a grant and a transaction.
      progress('etcd: the acquire() case changed leases during the run (its samples include a grant)')
    }
    await table.release()
    out.push({ name: c1.ours.name, comparison: c1, aim: '≤ 1.5× the put', met: c1.ratio <= 1.5 })

    // 2. A holder SIGKILLed: how long until a waiter holds its slot (TTL 2 s), vs a release.
    progress(`${firstId + 1}. etcd: holder SIGKILLed → waiter holds its slot (TTL 2 s), vs a release`)
    const options = { endpoints: endpoint, prefix: '/bench/takeover', slots: 1, ttlSeconds: 2 }
    const waiter = await EtcdSlotTable.open(options)
    tables.push(waiter)
    let holder: Awaited<ReturnType<typeof startHolder>> | undefined
    let waiting: Promise<number> | undefined
    // Each sample: a new holder takes the slot and the waiter starts waiting (untimed), then the holder
    // ends as `end` ends it, timed until the waiter holds the slot.
    const takeover = (name: string, end: () => Promise<void>): AsyncBench => ({
      name,
      before: async () => {
        holder = await startHolder(options)
        waiting = waiter.waitForSlot({ timeoutMs: 30_000 })
      },
      fn: async () => {
        void end()
        await waiting
      },
      after: async () => void (await waiter.release()),
    })
    const c2 = await compareAsync(
      takeover('SIGKILL of the holder → waiter holds the slot', () => holder!.kill()),
      takeover('holder releases → waiter holds the slot', () => holder!.stop()),
      { samples: 5, warmup: 0, maxTimeMs: 20_000 },
    )
    out.push({ name: c2.ours.name, comparison: c2, aim: '≤ TTL + 0.5 s (2.5 s)', met: c2.ours.median <= 2.5e9 })

    // 3. Keep-alive traffic of one idle table (holding a slot) with the default TTL, through a counting proxy.
    const windowMs = 20_000
    progress(`etcd: keep-alive traffic of an idle table (TTL 10 s) over ${windowMs / 1000} s`)
    const proxy = await countingProxy(Number(new URL(endpoint).port))
    const idle = await EtcdSlotTable.open({ endpoints: `127.0.0.1:${proxy.port}`, prefix: '/bench/idle', slots: 4 })
    tables.push(idle)
    await idle.acquire()
    const [up0, down0, sent0] = [proxy.up, proxy.down, idle.keepAlives.sent]
    await new Promise((resolve) => setTimeout(resolve, windowMs)) // the measuring window itself
    const [up1, down1, sent1] = [proxy.up, proxy.down, idle.keepAlives.sent]
    await idle.close()
    proxy.server.close()
    for (const s of proxy.sockets) s.destroy()
    const perMinute = (x: number) => Math.round((x * 60_000) / windowMs)
    const traffic: KeepAliveTraffic = {
      ttlSeconds: 10,
      windowMs,
      requestsPerMinute: perMinute(sent1 - sent0),
      bytesUpPerMinute: perMinute(up1 - up0),
      bytesDownPerMinute: perMinute(down1 - down0),
      bytesPerMinute: perMinute(up1 - up0 + down1 - down0),
    }
    return { cases: out, traffic, skipped: null }
  } finally {
    await Promise.all(tables.map((t) => t.close()))
    raw.close()
    await cluster.stop()
  }
}
