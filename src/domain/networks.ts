// Networks and addresses: the CIDR ranges a client may authenticate from (RFC 4632; RFC 4291
// §2.3 for IPv6), the proxies trusted to forward client certificates, and loopback hosts.
// Settings and stored lists are validated with normalizeCidr; requests are matched with
// isAddressAllowed (oidc/network-policy.ts decides when).
import ipaddr from 'ipaddr.js';

type Address = ipaddr.IPv4 | ipaddr.IPv6;
export type Network = [Address, number];

/**
 * A network (RFC 4632; RFC 4291 §2.3) in the form connections are compared in, or undefined when
 * `value` is not one: a bare address is one host, an IPv4-mapped IPv6 range is the IPv4 one (a
 * dual-stack socket reports IPv4 peers as IPv4), and "10.1.2.3/8" is "10.0.0.0/8".
 */
export function normalizeCidr(value: string): string | undefined {
  let address: ipaddr.IPv4 | ipaddr.IPv6;
  let bits: number;
  try {
    [address, bits] = value.includes('/') ? ipaddr.parseCIDR(value) : [ipaddr.parse(value), ipaddr.parse(value).kind() === 'ipv4' ? 32 : 128];
  } catch {
    return undefined;
  }
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
    address = (address as ipaddr.IPv6).toIPv4Address();
    bits -= 96;
  }
  const network = address.kind() === 'ipv4'
    ? ipaddr.IPv4.networkAddressFromCIDR(`${address.toString()}/${bits}`)
    : ipaddr.IPv6.networkAddressFromCIDR(`${address.toString()}/${bits}`);
  return `${network.toString()}/${bits}`;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname) || hostname.startsWith('127.');
}

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
export function parseAddress(value: string): Address | undefined {
  try {
    return ipaddr.process(value.trim());
  } catch {
    return undefined;
  }
}

/** An empty list allows every address; otherwise the address must fall in one of the networks. */
export function isAddressAllowed(address: string | undefined, networks: readonly Network[]): boolean {
  if (networks.length === 0) return true;
  const parsed = address === undefined ? undefined : parseAddress(address);
  if (!parsed) return false;
  return networks.some(([network, bits]) => parsed.kind() === network.kind() && parsed.match(network, bits));
}

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const CANONICAL_IPV4 = new RegExp(`^(?:::ffff:)?(${OCTET}(?:\\.${OCTET}){3})$`, 'i');

/**
 * The bucket that per-address limits and lockouts count `address` in. An IPv4 address is itself
 * (an IPv4-mapped IPv6 address, as a dual-stack socket reports one, is that IPv4 address). An
 * IPv6 address counts as its /64: RFC 4291 §2.5.4 makes /64 the subnet of one link, and a
 * single host is routinely given a whole /64 (RFC 8981 temporary addresses rotate inside it), so
 * keyed by the full address one host would own 2^64 counters. A value that is not an address
 * (a test's socket, say) is its own bucket.
 */
export function addressBucket(address: string): string {
  // The common case without a parse: an IPv4 address as sockets write it (no leading zeros),
  // plain or IPv4-mapped, is already what the parse below would return.
  const plain = CANONICAL_IPV4.exec(address);
  if (plain) return plain[1]!;
  const parsed = parseAddress(address);
  if (!parsed) return address;
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const parts = (parsed as ipaddr.IPv6).parts.slice(0, 4).map((part) => part.toString(16));
  return `${parts.join(':')}::/64`;
}
