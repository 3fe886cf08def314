// Security events reported from deep inside the protocol engine: each function is the one place
// an event is logged and recorded in the audit log. Only identifiers and addresses are passed:
// never secrets, tokens, assertions or headers.
import type { AuditSink } from '../domain/audit-events.ts';
import type { Logger } from '../platform/logger.ts';

export interface ClientNetworkRefused {
  clientId: string;
  /** The source address the decision was made on (socket, or X-Forwarded-For with TRUST_PROXY). */
  address: string | undefined;
  /** The endpoint: token, introspection, revocation, ... */
  route: string;
}

/** A client limited to some networks tried to authenticate from another; it got 401 invalid_client. */
export function recordClientNetworkRefused(logger: Logger, audit: AuditSink, event: ClientNetworkRefused): void {
  audit.record({
    type: 'client.network_refused', actor: { type: 'client', id: event.clientId }, outcome: 'failure',
    sourceAddress: event.address ?? null, details: { route: event.route },
  });
  logger.warn({ event: 'client.network_refused', ...event }, 'client authentication refused: source address outside the allowed networks');
}
