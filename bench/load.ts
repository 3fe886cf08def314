// One request, replayed by autocannon. Every probe is checked once before it is measured, and
// every response body during the run, so that a fast stream of errors cannot pass for throughput.
import autocannon from 'autocannon';
import { decodeProtectedHeader } from 'jose';

export interface Server {
  label: string;
  url: string;
  clientId: string;
  clientSecret: string;
}

export interface Probe {
  /** POST unless said otherwise (a GET sends no body). */
  method?: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  body: string;
  /** True when a 200 body is the answer we want to measure. */
  ok(body: string): boolean;
  /** A new body for each request (a single-use assertion), instead of replaying `body`. */
  fresh?: () => string;
}

/**
 * autocannon shares request objects between its connections, and each connection's first request
 * is whichever was built last: with a new body per request, the first requests of all
 * connections would be one and the same. So a body that may be sent again (`body`) goes first,
 * then 99 fresh ones, in a loop.
 */
export function freshRequests(probe: Probe) {
  const fresh = probe.fresh!;
  return [{ body: probe.body }, ...Array.from({ length: 99 }, () => ({
    setupRequest: (request: Record<string, unknown>) => ({ ...request, body: fresh() }),
  }))];
}

export interface Measurement {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  /** Connection errors and timeouts, plus 2xx answers whose body was not the expected one. */
  otherFailures: number;
  statusCodes: string;
}

function basicAuth(server: Server): string {
  // RFC 6749 §2.3.1: form-encode id and secret before base64.
  const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(server.clientId)}:${encode(server.clientSecret)}`).toString('base64')}`;
}

function formPost(server: Server, path: string, form: Record<string, string>, ok: Probe['ok']): Probe {
  return {
    url: `${server.url}${path}`,
    headers: { authorization: basicAuth(server), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
    ok,
  };
}

/** Sends the probe once; throws unless the answer is a 200 the probe accepts. */
export async function check(probe: Probe, what: string): Promise<string> {
  const method = probe.method ?? 'POST';
  const response = await fetch(probe.url, { method, headers: probe.headers, body: method === 'GET' ? undefined : probe.body });
  const text = await response.text();
  if (response.status !== 200 || !probe.ok(text)) {
    throw new Error(`${what}: expected a successful answer, got ${response.status} ${text.slice(0, 300)}`);
  }
  return text;
}

const issuedToken = (body: string) => body.includes('"access_token"');
const activeToken = (body: string) => body.includes('"active":true');

export function tokenProbe(server: Server, resource: string): Probe {
  return formPost(server, '/token', { grant_type: 'client_credentials', resource, scope: 'orders:read' }, issuedToken);
}

/** Issues a token for `resource` and checks that it has the format the scenario is about. */
export async function issueToken(server: Server, resource: string, format: 'jwt' | 'opaque'): Promise<string> {
  const body = await check(tokenProbe(server, resource), `${server.label}: token for ${resource}`);
  const token = (JSON.parse(body) as { access_token: string }).access_token;
  const header = format === 'jwt' ? decodeProtectedHeader(token) : undefined;
  if (format === 'jwt' ? header?.alg !== 'ES256' || header.typ !== 'at+jwt' : token.includes('.')) {
    throw new Error(`${server.label}: expected a ${format === 'jwt' ? 'ES256 at+jwt' : 'opaque'} token for ${resource}`);
  }
  return token;
}

/** Introspection of a fresh token, by the client it was issued to. */
export async function introspectionProbe(server: Server, resource: string, format: 'jwt' | 'opaque'): Promise<Probe> {
  const token = await issueToken(server, resource, format);
  return formPost(server, '/token/introspection', { token }, activeToken);
}

/**
 * Token exchange (RFC 8693): `exchanger` trades a fresh token of `subject` for JWT_RESOURCE for a
 * token of `target`, on the subject's behalf.
 */
export async function exchangeProbe(subject: Server, exchanger: Server, resource: string, target: string): Promise<Probe> {
  const subjectToken = await issueToken(subject, resource, 'jwt');
  return formPost(exchanger, '/token', {
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: subjectToken,
    subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    resource: target,
  }, issuedToken);
}

/** One autocannon run that `signal` ends early. */
async function replay(probe: Probe, connections: number, duration: number, signal: AbortSignal) {
  signal.throwIfAborted();
  const run = autocannon({
    url: probe.url,
    method: probe.method ?? 'POST',
    headers: probe.headers,
    body: probe.method === 'GET' ? undefined : probe.body,
    connections,
    duration,
    verifyBody: probe.ok,
    ...(probe.fresh ? { requests: freshRequests(probe) } : {}),
  });
  // On abort, end the load at once: a server asked to stop first drains its busy connections.
  const stop = () => run.stop();
  signal.addEventListener('abort', stop, { once: true });
  try {
    return await run;
  } finally {
    signal.removeEventListener('abort', stop);
  }
}

export async function measure(
  probe: Probe,
  options: { connections: number; duration: number; warmup: number; signal: AbortSignal },
): Promise<Measurement> {
  // Lets the server's JIT and caches settle; its numbers are not reported.
  await replay(probe, options.connections, options.warmup, options.signal);
  const result = await replay(probe, options.connections, options.duration, options.signal);
  options.signal.throwIfAborted();
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    // verifyBody sees no status code, so every non-2xx (an error body) is also a mismatch.
    otherFailures: result.errors + Math.max(0, result.mismatches - result.non2xx),
    statusCodes: Object.entries(result.statusCodeStats).map(([code, { count }]) => `${code}: ${count}`).join(', '),
  };
}
