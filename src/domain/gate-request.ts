// The request a gateway asks about, read from what each gateway sends to the decision endpoint
// (docs/gateways.md), and its path normalised the way the gateway routes it. Pure: no I/O.
//
// Why normalise, and why refuse some spellings: a rule for `/admin/**` must not be dodged by
// `/public/../admin`, `/%61dmin` or `//admin`, which the gateway (and most upstreams) treat as
// `/admin`. RFC 3986 §6.2.2: percent-encoded unreserved characters are decoded, hex digits
// upper-cased, dot segments removed (§5.2.4); doubled slashes are merged, as nginx does with
// merge_slashes on. An encoded `/` or `\` cannot be normalised safely (the upstream may decode it
// into a separator or not), and an encoded NUL is nobody's path: those are refused outright, as
// is a path climbing above the root.

/** Which gateway contract a request speaks (its sub-path of the decision endpoint). */
export type GateContract = 'auth-request' | 'forward-auth' | 'ext-authz';

/** Where the decision endpoint lives (at the root, like /healthz), and its contracts. */
export const GATE_PATH = '/gate';
export const GATE_CONTRACT_PATHS: Record<GateContract, string> = {
  'auth-request': `${GATE_PATH}/auth-request`,
  'forward-auth': `${GATE_PATH}/forward-auth`,
  'ext-authz': `${GATE_PATH}/ext-authz`,
};

/** The request a gateway is about to pass on. */
export interface OriginalRequest {
  method: string;
  /** http or https. */
  scheme: string;
  /** Lower case, without the port: what routes are matched on. */
  hostname: string;
  /** The Host as sent (with its port), for the URL a DPoP proof names. */
  host: string;
  /** Normalised; never holds a query. */
  path: string;
}

export type Refusal = { error: 'bad_gateway_request' | 'bad_path'; description: string };

const UNRESERVED = /[A-Za-z0-9\-._~]/;
const METHOD = /^[A-Z]{1,20}$/;
// RFC 3986 §3.2.2 reg-name or IPv4 (letters, digits, hyphens, dots), or an IPv6 literal; a port.
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})?|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;
// What a path may hold as sent: RFC 3986 pchar, "/" and percent-escapes.
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;

/**
 * `raw` (a request target: path and perhaps a query) normalised, or why it is refused. The query
 * and fragment are dropped: rules match on the path only.
 */
export function normalizeGatePath(raw: string): { path: string } | Refusal {
  const cut = raw.search(/[?#]/);
  const target = cut < 0 ? raw : raw.slice(0, cut);
  const bad = (description: string): Refusal => ({ error: 'bad_path', description });
  if (!target.startsWith('/')) return bad('the path must start with "/"');
  if (target.length > 4096) return bad('the path is too long');
  if (!PATH_CHARS.test(target)) return bad('the path holds characters that must be percent-encoded');
  // Nothing to decode, no doubled slash, no segment starting with a dot: already normal (the
  // common case, which the steps below would give back unchanged).
  if (!target.includes('%') && !target.includes('//') && !target.includes('/.')) return { path: target };
  let decoded = '';
  for (let i = 0; i < target.length; i += 1) {
    const char = target[i]!;
    if (char !== '%') {
      decoded += char;
      continue;
    }
    const hex = target.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return bad('the path holds a "%" that is not an escape');
    const byte = Number.parseInt(hex, 16);
    if (byte === 0x2f || byte === 0x5c) return bad('an encoded "/" or "\\" is refused');
    if (byte === 0x00) return bad('an encoded NUL is refused');
    const letter = String.fromCharCode(byte);
    // RFC 3986 §6.2.2.2: unreserved characters are decoded; other escapes stay, in upper case.
    decoded += byte < 0x80 && UNRESERVED.test(letter) ? letter : `%${hex.toUpperCase()}`;
    i += 2;
  }
  // Merge doubled slashes, then remove dot segments (RFC 3986 §5.2.4), refusing to climb above "/".
  const segments = decoded.split('/').slice(1);
  const out: string[] = [];
  for (const [index, segment] of segments.entries()) {
    const last = index === segments.length - 1;
    if (segment === '' && !last) continue;
    if (segment === '.') {
      if (last) out.push('');
      continue;
    }
    if (segment === '..') {
      if (out.length === 0) return bad('the path climbs above the root');
      out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(segment);
  }
  return { path: `/${out.join('/')}` };
}

/** Headers as the HTTP layer gives them: one value per name (lower case), or none. */
export type HeaderLookup = (name: string) => string | undefined;

function parseHost(value: string | undefined, scheme: string): { host: string; hostname: string } | undefined {
  // A proxy chain may list several (X-Forwarded-Host: a, b): the first is the client's.
  let host = value?.split(',')[0]?.trim();
  if (!host || !HOST.test(host)) return undefined;
  // RFC 3986 §6.2.3: the default port is the same as none.
  host = host.replace(scheme === 'https' ? /:443$/ : /:80$/, '');
  const hostname = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
  return { host: host.toLowerCase(), hostname: hostname.toLowerCase().replace(/\.$/, '') };
}

function parseScheme(value: string | undefined, fallback: string): string | undefined {
  const scheme = (value?.split(',')[0]?.trim() || fallback).toLowerCase();
  return scheme === 'http' || scheme === 'https' ? scheme : undefined;
}

/**
 * The original request of a decision request, per contract:
 * - `auth-request` (nginx auth_request): X-Original-Method, X-Original-URI, X-Forwarded-Host or
 *   Host, X-Forwarded-Proto;
 * - `forward-auth` (Traefik forwardAuth, Caddy forward_auth): always GET, with
 *   X-Forwarded-Method, -Proto, -Host and -Uri;
 * - `ext-authz` (Envoy ext_authz over HTTP): the method itself, the path after the prefix, Host.
 * `rest` is the request target after `/gate/ext-authz` (ext-authz only).
 */
export function readOriginalRequest(
  contract: GateContract, method: string, header: HeaderLookup, rest: string,
): OriginalRequest | Refusal {
  const missing = (what: string): Refusal => ({ error: 'bad_gateway_request', description: `the gateway did not send ${what}` });
  let originalMethod: string | undefined;
  let target: string | undefined;
  let hostHeader: string | undefined;
  if (contract === 'auth-request') {
    originalMethod = header('x-original-method');
    target = header('x-original-uri');
    hostHeader = header('x-forwarded-host') ?? header('host');
  } else if (contract === 'forward-auth') {
    if (method !== 'GET') return { error: 'bad_gateway_request', description: 'forward-auth requests are GET' };
    originalMethod = header('x-forwarded-method');
    target = header('x-forwarded-uri');
    hostHeader = header('x-forwarded-host');
  } else {
    originalMethod = method;
    target = rest || '/';
    hostHeader = header('host');
  }
  if (!originalMethod) return missing('the original method');
  if (!METHOD.test(originalMethod)) return { error: 'bad_gateway_request', description: 'the original method is not an HTTP method' };
  if (target === undefined) return missing('the original URI');
  const scheme = parseScheme(header('x-forwarded-proto'), 'http');
  if (!scheme) return { error: 'bad_gateway_request', description: 'X-Forwarded-Proto must be http or https' };
  const host = parseHost(hostHeader, scheme);
  if (!host) return missing('a valid original host');
  const normalised = normalizeGatePath(target);
  if ('error' in normalised) return normalised;
  return { method: originalMethod, scheme, ...host, path: normalised.path };
}

const AUTH_REQUEST = { contract: 'auth-request', rest: '' } as const;
const FORWARD_AUTH = { contract: 'forward-auth', rest: '' } as const;
const EXT_AUTHZ_ROOT = { contract: 'ext-authz', rest: '' } as const;

/**
 * The contract of a decision request's path, and the rest (ext-authz), or undefined. Asked for
 * every request a gateway passes on: compares, allocates nothing but the ext-authz rest.
 */
export function gateContractOf(path: string): { contract: GateContract; rest: string } | undefined {
  if (path === GATE_CONTRACT_PATHS['auth-request']) return AUTH_REQUEST;
  if (path === GATE_CONTRACT_PATHS['forward-auth']) return FORWARD_AUTH;
  const base = GATE_CONTRACT_PATHS['ext-authz'];
  if (!path.startsWith(base)) return undefined;
  if (path.length === base.length) return EXT_AUTHZ_ROOT;
  return path[base.length] === '/' ? { contract: 'ext-authz', rest: path.slice(base.length) } : undefined;
}

// What the decision endpoint learns of the token of the original request (oidc/gate-tokens.ts).

export interface GateTokenRequest {
  /** The Authorization header of the original request. */
  authorization: string | undefined;
  /** Its DPoP header(s): more than one is refused (RFC 9449 §4.3 item 1). */
  dpop: string | string[] | undefined;
  /** The API the matching rule protects: the token's audience must name it. */
  audience: string;
  /** The original method and URL (without query), which a DPoP proof must name. */
  method: string;
  url: string;
  /** x5t#S256 of the client certificate the gateway forwarded (a trusted proxy only). */
  certificateThumbprint: string | undefined;
}

export interface GateCaller {
  clientId: string;
  /** The person's id, or the client's own for a client's token (RFC 9068 §2.2). */
  subject: string;
  /** The token's scopes that its holder still holds on the audience. */
  scopes: string[];
  /** The roles the holder has now. */
  roles: string[];
  senderConstrained: 'dpop' | 'mtls' | null;
  /** Epoch seconds. */
  expiresAt: number;
  /**
   * The chain of actors of a delegated token (RFC 8693 §4.1 `act`), outermost first: the client
   * that exchanged it, then the one before (docs/token-exchange.md). Empty for other tokens.
   */
  actors: string[];
}

export type GateTokenResult =
  | { ok: true; caller: GateCaller }
  /** `error` absent: no token at all (answered as invalid_token all the same, services/gate.ts). */
  | { ok: false; scheme: 'Bearer' | 'DPoP'; error?: 'invalid_token' | 'invalid_dpop_proof' | 'invalid_request'; description?: string };
