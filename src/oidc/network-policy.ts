// Network allow-lists: a client limited to source networks may authenticate only from them.
// Checked when the provider looks up the client that a request authenticates as, before any
// credential is examined, so a refused request costs no signature or hash check.
import type { IncomingMessage } from 'node:http';
import { parseAddress } from '../domain/networks.ts';

export { isAddressAllowed } from '../domain/networks.ts';

/**
 * Endpoints where a client authenticates itself (not the browser-facing ones), with its
 * credentials or, at RFC 7592 client configuration (`client`, `client_update`, `client_delete`),
 * with its registration access token.
 */
export const CLIENT_AUTH_ROUTES = new Set([
  'token', 'introspection', 'revocation', 'pushed_authorization_request', 'backchannel_authentication',
  'device_authorization', 'client', 'client_update', 'client_delete',
]);

/**
 * The address a request comes from: the socket's peer, or with TRUST_PROXY the address the proxy
 * appended last to X-Forwarded-For. Entries before it were written by the client itself and
 * could say anything, so they are never used for a security decision.
 */
export function sourceAddress(req: IncomingMessage, trustProxy: boolean): string | undefined {
  if (trustProxy) {
    const header = req.headers['x-forwarded-for'];
    const value = Array.isArray(header) ? header.join(',') : header;
    const last = value?.split(',').map((part) => part.trim()).filter(Boolean).at(-1);
    if (last) return parseAddress(last)?.toString();
  }
  const socket = req.socket.remoteAddress;
  return socket ? parseAddress(socket)?.toString() : undefined;
}
