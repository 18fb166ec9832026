import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const HOLDER = fileURLToPath(new URL('./fixtures/holder.cjs', import.meta.url))
export const isRoot = process.getuid?.() === 0
export const inCI = Boolean(process.env.CI)

/** A temporary directory, removed by `cleanup()`. */
export function tempDir(prefix = 'procslot-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/**
 * How many times slower than a native run this one is (PROCSLOT_TEST_TIME_SCALE, default 1): every
 * `deadline` is that much longer. The emulated arm64 run sets it (.github/scripts/test-arm64-emulated.sh),
 * where each Node.js process starts in about a second of CPU. A deadline is the bound on a wait for an
 * event that should come, never the measure of a speed, so a slower machine may stretch it.
 */
export const TIME_SCALE = Math.max(1, Number(process.env.PROCSLOT_TEST_TIME_SCALE) || 1)

/** Rejects after `ms` (times TIME_SCALE) with `what` in the message, unless `promise` settles first. */
export function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  ms *= TIME_SCALE
  let timer: NodeJS.Timeout
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

export type Reply = { pid: number; [key: string]: unknown }

/**
 * A holder process (fixtures/holder.cjs), talked to over stdin/stdout lines. `prefix` runs it under
 * another command (e.g. `unshare --pid --fork`).
 */
export class Holder {
  readonly child: ChildProcess
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** The PID the holder reports for itself (in its own PID namespace). */
  pid = 0
  /** The holder's PID in our namespace (differs from `child.pid` when it runs under a prefix command). */
  hostPid = 0
  readonly #replies: Reply[] = []
  readonly #waiters: Array<(r: Reply) => void> = []
  #stderr = ''

  private constructor(file: string, slots: number | undefined, prefix: string[], options: SpawnOptions) {
    const argv = [...prefix, process.execPath, HOLDER, file, ...(slots ? [String(slots)] : [])]
    this.child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], ...options })
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })))
    this.child.stderr!.on('data', (d: Buffer) => (this.#stderr += d.toString()))
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const reply = JSON.parse(line) as Reply
      const waiter = this.#waiters.shift()
      if (waiter) waiter(reply)
      else this.#replies.push(reply)
    })
  }

  /** Starts a holder and waits until it is ready for commands. */
  static async start(
    file: string,
    { slots, prefix = [], ...options }: { slots?: number; prefix?: string[] } & SpawnOptions = {},
  ): Promise<Holder> {
    const holder = new Holder(file, slots, prefix, options)
    // A holder that is not ready in time is not left running (it would keep the test's worker alive).
    const ready = await holder.next('ready').catch((error: unknown) => {
      holder.child.kill('SIGKILL')
      throw error
    })
    holder.pid = ready.pid
    holder.hostPid = prefix.length === 0 ? holder.child.pid! : descendantRunning(holder.child.pid!, process.execPath)
    return holder
  }

  /** The next reply. */
  next(what = 'a reply'): Promise<Reply> {
    const reply = this.#replies.shift()
    if (reply) return Promise.resolve(reply)
    const wait = new Promise<Reply>((resolve) => this.#waiters.push(resolve))
    const died = this.exited.then(({ code, signal }) => {
      throw new Error(`holder exited (${code ?? signal}) before ${what}; stderr: ${this.#stderr}`)
    })
    return deadline(Promise.race([wait, died]), 20_000, what)
  }

  /** Sends a command without waiting for its reply. */
  send(command: string): void {
    this.child.stdin!.write(command + '\n')
  }

  /** Sends a command and returns its reply. */
  async ask(command: string): Promise<Reply> {
    this.send(command)
    return this.next(command)
  }

  /**
   * SIGKILLs the holder itself (not a prefix command in front of it) and waits for it to be gone: a prefix
   * such as `unshare --fork` exits only after it has reaped the holder.
   */
  async kill(): Promise<void> {
    process.kill(this.hostPid, 'SIGKILL')
    await deadline(this.exited, 20_000, 'the holder to exit')
  }

  /** Tells the holder to exit and waits for it. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.stdin!.end()
    }
    await deadline(this.exited, 20_000, 'the holder to exit')
  }
}

/** Whether `exe` (a process's executable) is qemu-user, which runs arm64 programs in the emulated run. */
function isEmulator(exe: string): boolean {
  return /\/qemu-[\w-]+$/.test(exe)
}

/**
 * The emulator this process runs under, or '' natively: qemu-user answers a process's reads of its own
 * `/proc/<pid>/exe` itself (with the emulated program), but not those of its main thread's entry.
 */
const EMULATOR = (() => {
  const exe = readlinkSync(`/proc/${process.pid}/task/${process.pid}/exe`)
  return isEmulator(exe) ? exe : ''
})()

/**
 * The command line `/proc/<pid>/cmdline` shows for a program started as `argv`: the argv itself, or, for
 * a program the kernel runs through an emulator (binfmt_misc, in the emulated arm64 run), the emulator and
 * the program's path in front of its arguments.
 */
export function commandLine(...argv: string[]): string {
  return (EMULATOR ? [EMULATOR, ...argv] : argv).join(' ')
}

/**
 * Whether process `pid` runs `exe`: its executable, or, for a program run by an emulator through
 * binfmt_misc (qemu-user in the emulated arm64 run), the emulator's first argument.
 */
function runs(pid: number, exe: string): boolean {
  const own = readlinkSync(`/proc/${pid}/exe`)
  if (own === exe) return true
  return isEmulator(own) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[1] === exe
}

/** The first descendant of `pid` that runs `exe` (the holder under a prefix command). */
function descendantRunning(pid: number, exe: string): number {
  const queue = [pid]
  while (queue.length > 0) {
    const p = queue.shift()!
    for (const task of readdirSync(`/proc/${p}/task`)) {
      for (const child of readFileSync(`/proc/${p}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) {
        if (runs(Number(child), exe)) return Number(child)
        queue.push(Number(child))
      }
    }
  }
  throw new Error(`no process running ${exe} below PID ${pid}`)
}

/** Stops every holder, ignoring the ones already gone. */
export async function stopAll(holders: Holder[]): Promise<void> {
  await Promise.all(holders.map((h) => h.stop().catch(() => h.kill())))
}

/**
 * Any node script speaking JSON lines on stdout (one object per line), started with `args` — the clients,
 * examples and CLI under test. Lines that are not JSON are kept in `output` only.
 */
export class JsonLines {
  readonly child: ChildProcess
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  output = ''
  readonly #replies: Array<Record<string, unknown>> = []
  readonly #waiters: Array<(r: Record<string, unknown>) => void> = []

  /** `prefix` runs it under another command (`unshare --pid --fork`, `python3 enosys.py ...`). */
  constructor(script: string, args: string[] = [], options: SpawnOptions = {}, prefix: string[] = []) {
    const argv = [...prefix, process.execPath, script, ...args]
    this.child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], ...options })
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })))
    this.child.stderr!.on('data', (d: Buffer) => (this.output += d.toString()))
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.output += line + '\n'
      let reply: Record<string, unknown>
      try {
        reply = JSON.parse(line)
      } catch {
        return
      }
      const waiter = this.#waiters.shift()
      if (waiter) waiter(reply)
      else this.#replies.push(reply)
    })
  }

  /** The next JSON line. */
  next(what = 'a reply'): Promise<Record<string, unknown>> {
    const reply = this.#replies.shift()
    if (reply) return Promise.resolve(reply)
    const wait = new Promise<Record<string, unknown>>((resolve) => this.#waiters.push(resolve))
    const died = this.exited.then(({ code, signal }) => {
      throw new Error(`child exited (${code ?? signal}) before ${what}; output:\n${this.output}`)
    })
    return deadline(Promise.race([wait, died]), 20_000, what)
  }

  /** Sends a line and returns the next JSON reply. */
  async ask(command: string): Promise<Record<string, unknown>> {
    this.child.stdin!.write(command + '\n')
    return this.next(command)
  }

  /** SIGKILLs the child and waits for it to be gone. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
    await deadline(this.exited, 20_000, 'the child to exit')
  }

  /** Closes its stdin (the fixtures exit on that) and waits for it to exit. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.stdin!.end()
    return deadline(this.exited, 20_000, 'the child to exit')
  }
}
