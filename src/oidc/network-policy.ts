// Network allow-lists: a client limited to source networks may authenticate only from them.
// Checked when the provider looks up the client that a request authenticates as, before any
// credential is examined, so a refused request costs no signature or hash check.
import type { IncomingMessage } from 'node:http';
import ipaddr from 'ipaddr.js';

type Address = ipaddr.IPv4 | ipaddr.IPv6;
export type Network = [Address, number];

/** Endpoints where a client authenticates itself (not the browser-facing ones). */
export const CLIENT_AUTH_ROUTES = new Set([
  'token', 'introspection', 'revocation', 'pushed_authorization_request', 'backchannel_authentication',
  'device_authorization',
]);

/** Parses stored, already validated CIDR strings; an unreadable entry matches nothing. */
export function parseNetworks(values: readonly string[]): Network[] {
  const networks: Network[] = [];
  for (const value of values) {
    try {
      networks.push(ipaddr.parseCIDR(value));
    } catch {
      // Written by the services, which validate; never widen the list on a surprise.
    }
  }
  return networks;
}

/** IPv4-mapped IPv6 addresses (::ffff:10.0.0.1, as a dual-stack socket reports) are IPv4. */
function parseAddress(value: string): Address | undefined {
  try {
    return ipaddr.process(value.trim());
  } catch {
    return undefined;
  }
}

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

/** An empty list allows every address; otherwise the address must fall in one of the networks. */
export function isAddressAllowed(address: string | undefined, networks: readonly Network[]): boolean {
  if (networks.length === 0) return true;
  const parsed = address === undefined ? undefined : parseAddress(address);
  if (!parsed) return false;
  return networks.some(([network, bits]) => parsed.kind() === network.kind() && parsed.match(network, bits));
}
