// What travels on the change feed (Postgres NOTIFY on one channel, db/change-feed.ts): the changes
// a write publishes for the caches of every process, and the signals of the propagation itself.

/** A change to data that processes cache; published by writes through write.ts. */
export type Change =
  /** One client's metadata, secrets, roles or state. */
  | { kind: 'client'; clientId: string }
  /** APIs or roles: anything a client's grants are derived from. */
  | { kind: 'config' }
  /** A JWT access token (or, `grant:<digest>`, every JWT of a grant) revoked until `exp`. */
  | { kind: 'revoked'; jti: string; exp: number }
  /** Signing keys were added or rescheduled: servers reload their published set. */
  | { kind: 'keys' }
  /** Trusted issuers (workload identity) or the clients bound to their subjects. */
  | { kind: 'issuer' }
  /** Route policies: every process reloads its route table (services/live-routes.ts). */
  | { kind: 'routes' };

/** The propagation's own messages, never shown to caches. */
type Signal =
  /** Every change committed before this marker was assigned has been delivered before it. */
  | { kind: 'marker'; seq: number }
  /** A process checking that its own notifications still come back. */
  | { kind: 'ping'; processId: string };

export type Message = Change | Signal;

export function parseMessage(payload: string): Message | undefined {
  try {
    const value = JSON.parse(payload) as Message;
    return typeof value === 'object' && value && typeof value.kind === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}
