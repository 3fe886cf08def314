// Security events that the audit log will record. Each function is the one place an event is
// reported; until the audit log is wired in here, they are logged as warnings. Only identifiers
// and addresses are passed: never secrets, tokens, assertions or headers.
import type { Logger } from './logger.ts';

export interface ClientNetworkRefused {
  clientId: string;
  /** The source address the decision was made on (socket, or X-Forwarded-For with TRUST_PROXY). */
  address: string | undefined;
  /** The endpoint: token, introspection, revocation, ... */
  route: string;
}

/** A client limited to some networks tried to authenticate from another; it got 401 invalid_client. */
export function recordClientNetworkRefused(logger: Logger, event: ClientNetworkRefused): void {
  // Audit log: record event `client.network_refused` with these fields here.
  logger.warn({ event: 'client.network_refused', ...event }, 'client authentication refused: source address outside the allowed networks');
}
