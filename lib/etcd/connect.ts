/**
 * The etcd v3 client: the `etcd3` package (gRPC through `@grpc/grpc-js`), an optional peer dependency
 * loaded on first use, so programs that only use slot files never load it.
 */
import type * as Etcd3 from 'etcd3'

import { EtcdError } from '../errors'
import { elapsedSince, stamp } from './clock'
import type { Settings } from './options'

export type Etcd3Module = typeof Etcd3
export type Client = Etcd3.Etcd3

let etcd3: Promise<Etcd3Module> | undefined

export function loadEtcd3(settings: Settings): Promise<Etcd3Module> {
  etcd3 ??= import('etcd3').then((m) => ((m as { default?: Etcd3Module }).default?.Etcd3 ? m.default! : m))
  return etcd3.catch((err: unknown) => {
    etcd3 = undefined
    throw new EtcdError(
      'slots on etcd need the etcd3 package, an optional peer dependency of procslot: npm install etcd3',
      { code: 'EETCDCLIENT', prefix: settings.prefix, endpoints: settings.endpoints, cause: err },
    )
  })
}

/** A fault-handling policy of the etcd3 client, reduced to what its connection pool calls. */
type Policy = { execute<T>(fn: (context: { attempt: number; signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> }

export function newClient(lib: Etcd3Module, settings: Settings, options: Record<string, unknown>): Client {
  const never = new AbortController().signal
  // No per-host circuit breaker (the default one shuts a restarted endpoint out for 5 s). A call that
  // fails for a transient reason (unreachable, no leader during an election, a deadline) is tried again on
  // the next endpoint, after a pause growing from 50 ms to 1 s, until callTimeoutMs has passed since its
  // first try. Transactions are safe to repeat: a claim finds its own key (see claim.ts).
  const host: Policy = { execute: async (fn) => fn({ attempt: 0, signal: never }) }
  const global: Policy = {
    async execute(fn) {
      const start = stamp()
      for (let attempt = 0; ; attempt++) {
        try {
          return await fn({ attempt, signal: never })
        } catch (err) {
          const pause = Math.min(1000, 50 * 2 ** attempt)
          const budget = settings.callTimeoutMs - elapsedSince(start)
          if (!lib.isRecoverableError(err as Error) || pause >= budget) throw err
          await new Promise((resolve) => setTimeout(resolve, pause))
        }
      }
    },
  }
  const constantBackoff = { duration: 200, next: () => constantBackoff }
  return new lib.Etcd3({
    hosts: [...settings.endpoints],
    dialTimeout: settings.callTimeoutMs,
    credentials: options.credentials as Etcd3.IOptions['credentials'],
    auth: options.auth as Etcd3.IOptions['auth'],
    grpcOptions: {
      // Reconnect quickly after an etcd restart (gRPC's default backoff grows to two minutes).
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
      ...(options.grpcOptions as Record<string, string | number> | undefined),
    },
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + settings.callTimeoutMs }),
    faultHandling: {
      host: () => host as unknown as ReturnType<NonNullable<NonNullable<Etcd3.IOptions['faultHandling']>['host']>>,
      global: global as unknown as NonNullable<NonNullable<Etcd3.IOptions['faultHandling']>['global']>,
      watchBackoff: constantBackoff as unknown as NonNullable<NonNullable<Etcd3.IOptions['faultHandling']>['watchBackoff']>,
    },
  })
}

/** A streaming gRPC call of the etcd3 client (a keep-alive or a watch stream). */
interface StreamCall {
  end(): unknown
  cancel?: () => void
  on(event: 'error', listener: (err: Error) => void): unknown
}

/**
 * Ends a streaming call at once, on this side: no answer from etcd is awaited. A call left open keeps its
 * HTTP/2 session, and so the process, alive even after the client is closed (closing a gRPC channel lets
 * its calls run on). Half-closing it first makes the client see it as no longer writable, so the
 * cancellation is not mistaken for a failed endpoint.
 */
export function endCall(call: StreamCall): void {
  call.on('error', () => {})
  call.end()
  call.cancel?.()
}
