/**
 * The manager's public types: options, what it reports, its events.
 * Re-exported by `./index`.
 */

/** Anything with pino- or console-style logging methods. Each is called as `(fields, message)`. */
export interface Logger {
  debug(fields: object, message: string): void
  info(fields: object, message: string): void
  warn(fields: object, message: string): void
  error(fields: object, message: string): void
}

/** What `args` is given to build a daemon's command line. */
export interface SpawnContext {
  /** The target being started. */
  readonly targetId: string
  /** Where its filesystem is to be mounted (absolute); `''` for a daemon that mounts nothing (spawned with `null`). */
  readonly mountPath: string
}

/**
 * When a daemon that died on its own is started again: `'no'`; `'on-failure'`, after a non-zero exit or
 * a signal not sent by this manager (for a daemon whose exit status cannot be known, any death counts);
 * `'always'`.
 */
export type RestartPolicy = 'no' | 'on-failure' | 'always'

/** Options of {@link FuseProcessManager.spawn}. */
export interface SpawnOptions {
  /** Restart policy of this daemon. @default the manager's `restart` ('no') */
  readonly restart?: RestartPolicy
}

/** Options of {@link FuseProcessManager}. */
export interface FuseProcessManagerOptions {
  /**
   * The PID-file directory, created (mode 0755) if missing. Shared by every manager of these daemons.
   * Refused (`PidFileError` code `EUNSAFE`) when other users can write to it, sticky bit or not: the
   * manager takes its locks there.
   */
  readonly pidDir: string
  /** The daemon's executable (looked up on `PATH`), e.g. `bindfs` or your FUSE daemon. */
  readonly command: string
  /**
   * The daemon's arguments for a target. It must stay in the foreground (`-f` for most FUSE daemons):
   * the manager tracks the process it started.
   * @default ({ mountPath }) => (mountPath === '' ? [] : [mountPath])
   */
  readonly args?: (context: SpawnContext) => readonly string[]
  /**
   * When a spawned daemon counts as started: `'mount'` once `mountPath` is a mount point and the daemon
   * handles SIGTERM (libfuse installs its handler just after mounting; a SIGTERM before would kill it and
   * leave a dead mount; looked at for at most 50 ms), `'alive'` once it has stayed up for `settleMs`.
   * @default 'mount'
   */
  readonly ready?: 'mount' | 'alive'
  /**
   * Where each daemon's output is appended, as `<logDir>/<targetId>.log` (never an unread pipe). Log
   * files are opened without following symbolic links, must belong to this user, and are created with
   * mode 0600; like `pidDir`, a `logDir` other users can write to is refused (`EUNSAFE`).
   * @default pidDir
   */
  readonly logDir?: string
  /** Receives what the manager does; secrets in environments are redacted. @default silent */
  readonly logger?: Logger
  /** How long `kill` waits after SIGTERM before SIGKILL. @default 10000 */
  readonly killTimeoutMs?: number
  /** How long `spawn` waits for a daemon to be ready. @default 10000 */
  readonly startTimeoutMs?: number
  /** With `ready: 'alive'`: how long a daemon must stay up to count as started. @default 250 */
  readonly settleMs?: number
  /**
   * Whether a daemon this manager spawned is started again when it dies on its own (see
   * {@link RestartPolicy}); per spawn with `spawn(..., { restart })`. A restart reuses the target's mount
   * path, args and env. Adopted daemons (whose environment only their spawner knew) are watched and
   * cleaned up, not restarted. While a daemon has a restart policy, the process is kept alive (watching
   * alone never keeps it alive).
   * @default 'no'
   */
  readonly restart?: RestartPolicy
  /** The delay before the first restart; each further one within the window doubles it. @default 100 */
  readonly restartDelayMs?: number
  /** The longest delay between restarts. @default 30000 */
  readonly restartMaxDelayMs?: number
  /** How many restarts within `restartWindowMs` before giving up (`failed`). @default 5 */
  readonly maxRestarts?: number
  /** The window `maxRestarts` counts in. @default 60000 */
  readonly restartWindowMs?: number
}

/** Options of {@link FuseProcessManager.kill}. */
export interface KillOptions {
  /** SIGKILL at once instead of SIGTERM first. @default false */
  readonly force?: boolean
  /** How long to wait after SIGTERM before SIGKILL. @default the manager's `killTimeoutMs` (10000) */
  readonly timeoutMs?: number
}

/** A tracked daemon. */
export interface ProcessInfo {
  readonly targetId: string
  readonly pid: number
  /**
   * Where it mounts (absolute). For a process loaded from a PID file, the path its spawner recorded
   * beside it (`.<targetId>.record`); `null` when none was (a PID file written by another tool).
   */
  readonly mountPath: string | null
  /** When the process started. */
  readonly startTime: Date
  /** Names (never values) of the environment variables it was given on top of `process.env`. */
  readonly envKeys: readonly string[]
  /** `exited` once it is known to be dead. */
  readonly status: 'running' | 'exited'
  /** Found through its PID file rather than spawned by this manager. */
  readonly loadedFromDisk: boolean
  /** Alive right now. */
  readonly alive: boolean
  /** Its PID file. */
  readonly pidFile: string
  /** Whether its PID file exists right now. */
  readonly pidFileExists: boolean
}

/** What {@link FuseProcessManager.getStats} returns (the Python manager's `get_stats`, camelCased). */
export interface ManagerStats {
  readonly totalTracked: number
  readonly alive: number
  readonly dead: number
  /**
   * How many tracked daemons are watched without a pidfd — the kernel has none (Linux before 5.3), or
   * descriptors ran out (a pidfd is not kept when it would leave the program less than an eighth of its
   * descriptor limit) — by their PID and exact start time, at least once a second: their deaths are
   * reported within a second rather than at once. The daemons a manager finds running when it is
   * constructed are watched from the next turn of the event loop on; until then none of them counts here.
   */
  readonly unwatched: number
  /** How many processes this manager has spawned in its life. */
  readonly allPidsEverSpawned: number
  readonly pidFilesOnDisk: number
  readonly pidDirectory: string
  readonly processes: ReadonlyArray<{
    readonly targetId: string
    readonly pid: number
    readonly alive: boolean
    readonly uptimeSeconds: number
    readonly mountPath: string | null
    readonly pidFile: string
    readonly pidFileExists: boolean
  }>
}

/** A PID file the manager will not touch. */
export interface UntrustedPidFile {
  readonly targetId: string
  readonly path: string
  readonly reason: string
}

/** Payloads of the manager's events. */
export interface ManagerEvents {
  /** A daemon was started and is ready. */
  spawn: [info: ProcessInfo]
  /**
   * A tracked daemon died on its own (not through this manager's `kill`): reported within milliseconds,
   * with no call, once what it left mounted is unmounted and its PID file removed (`code`/`signal` are
   * known for daemons this manager spawned, `null` for adopted ones). A script that only waits for this
   * event needs `manager.ref()`: by default the manager does not keep the process alive.
   */
  exit: [event: { targetId: string; pid: number; code: number | null; signal: NodeJS.Signals | null }]
  /** A daemon was killed through `kill`. */
  kill: [event: { targetId: string; pid: number | null; signal: 'SIGTERM' | 'SIGKILL' | null }]
  /**
   * A PID file was dropped: its process is dead, its PID was reused, or its content is invalid; or a
   * spawn that never finished (its manager died half-way) was undone.
   */
  stale: [event: { targetId: string; pid: number | null; path: string; reason: string }]
  /** A daemon was started again by its restart policy (`attempt` counts within the window). */
  restart: [event: { targetId: string; attempt: number; delayMs: number; pid: number }]
  /** A daemon restarted `maxRestarts` times within the window died again: it is left stopped and clean. */
  failed: [event: { targetId: string; restarts: number }]
  /** Something failed in the background (a cleanup step). */
  error: [error: Error]
}
