/**
 * The manager's options, checked and with their defaults: what a spawn needs, what restarts need, the
 * logger. Every option is checked here, before anything is made on disk.
 * Internal to the manager (not exported by the package).
 */
import { checkFunction, checkMs, checkObject, checkOneOf, checkString, optional } from '../validate'
import type { FuseProcessManagerOptions, Logger, RestartPolicy, SpawnContext } from './types'

/** What a spawn needs of the manager's options. */
export interface SpawnSettings {
  readonly command: string
  readonly args: (context: SpawnContext) => readonly string[]
  readonly ready: 'mount' | 'alive'
  readonly logDir: string
  readonly startTimeoutMs: number
  readonly settleMs: number
  readonly killTimeoutMs: number
}

/** The restart settings of a manager. */
export interface RestartSettings {
  readonly restart: RestartPolicy
  readonly restartDelayMs: number
  readonly restartMaxDelayMs: number
  readonly maxRestarts: number
  readonly restartWindowMs: number
}

/** How long a kill waits after SIGTERM before SIGKILL when not told (`killTimeoutMs`, `procslot stop`). */
export const KILL_TIMEOUT_MS = 10_000

/** The logger of a manager given none (and of `procslot stop`): it says nothing. */
export const SILENT: Logger = { debug() {}, info() {}, warn() {}, error() {} }

/** `options.restart` of the constructor and of `spawn`: one of the policies. */
export const checkRestart = (value: unknown): RestartPolicy => checkOneOf('options.restart', value, ['no', 'on-failure', 'always'] as const)

/** A duration option: `fallback` when not given. */
export function positive(name: string, value: number | undefined, fallback: number): number {
  return optional(value, fallback, (v) => checkMs(name, v))
}

/** The constructor's options, checked, with their defaults. */
export function managerSettings(options: FuseProcessManagerOptions): {
  settings: SpawnSettings
  restart: RestartSettings
  logger: Logger
} {
  checkObject('options', options)
  checkString('options.command', options.command)
  if (options.args !== undefined) checkFunction('options.args', options.args)
  if (options.ready !== undefined) checkOneOf('options.ready', options.ready, ['mount', 'alive'])
  if (options.logDir !== undefined) checkString('options.logDir', options.logDir)
  const settings: SpawnSettings = {
    command: options.command,
    args: options.args ?? (({ mountPath }) => (mountPath === '' ? [] : [mountPath])),
    ready: options.ready ?? 'mount',
    logDir: options.logDir ?? options.pidDir,
    killTimeoutMs: positive('killTimeoutMs', options.killTimeoutMs, KILL_TIMEOUT_MS),
    startTimeoutMs: positive('startTimeoutMs', options.startTimeoutMs, 10_000),
    settleMs: positive('settleMs', options.settleMs, 250),
  }
  const restart: RestartSettings = {
    restart: optional(options.restart, 'no', checkRestart),
    restartDelayMs: positive('restartDelayMs', options.restartDelayMs, 100),
    restartMaxDelayMs: positive('restartMaxDelayMs', options.restartMaxDelayMs, 30_000),
    maxRestarts: positive('maxRestarts', options.maxRestarts, 5),
    restartWindowMs: positive('restartWindowMs', options.restartWindowMs, 60_000),
  }
  return { settings, restart, logger: options.logger ?? SILENT }
}
