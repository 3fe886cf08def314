// Federated client credentials (docs/workload-identity.md): a local issuer (a Kubernetes-style
// JWKS on loopback) and a client bound to one of its service accounts; each request carries a
// fresh platform token (its own jti, which Postern records as used), signed here with ES256.
// Measured against secret-based client credentials on the same Postern in the same run.
import { createPrivateKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { openPostgres } from '../src/db/database.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { createClient } from '../src/services/clients.ts';
import { createIssuer } from '../src/services/trusted-issuers.ts';
import type { Probe } from './load.ts';
import { JWT_RESOURCE } from './resources.ts';

export interface FederatedWorld {
  /** A new client assertion each call: the service account's token for `audience`. */
  assertion(audience: string): string;
  /** One without a jti, which may be sent more than once (SPIRE's JWT-SVIDs have none). */
  reusableAssertion(audience: string): string;
  /**
   * Signs `count` assertions ahead, so that the load generator does not sign while Postern is
   * measured (it shares the machine); `assertion` takes from them first.
   */
  prepare(audience: string, count: number): void;
  close(): Promise<void>;
}

const SUBJECT = 'system:serviceaccount:shop:orders-bench';

/** Starts the issuer and registers it and a federated client holding `role` (before Postern starts). */
export async function registerFederated(databaseUrl: string, role: string): Promise<FederatedWorld> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'bench-1', alg: 'ES256', use: 'sig' };
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.setHeader('cache-control', 'max-age=3600');
    if (req.url === '/.well-known/openid-configuration') return res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    return res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const database = openPostgres(databaseUrl, { poolSize: 2, listen: false });
  try {
    await createIssuer(database.db, { name: 'bench-cluster', issuer, kind: 'kubernetes', discovery: true }, { development: true }, NO_AUDIT);
    await createClient(database.db, { name: 'bench-federated', roles: [role], federated: { issuer: 'bench-cluster', subject: SUBJECT } }, NO_AUDIT);
  } finally {
    await database.close();
  }
  const key = createPrivateKey(privateKey.export({ format: 'pem', type: 'pkcs8' }));
  const header = Buffer.from(JSON.stringify({ alg: 'ES256', kid: 'bench-1', typ: 'JWT' })).toString('base64url');
  const prefix = randomBytes(6).toString('hex');
  let counter = 0;
  const signed = (audience: string, jti: string | undefined) => {
    const now = Math.floor(Date.now() / 1000);
    const payload = Buffer.from(JSON.stringify({
      iss: issuer, sub: SUBJECT, aud: [audience], iat: now, nbf: now, exp: now + 600, ...(jti ? { jti } : {}),
    })).toString('base64url');
    const signature = sign('sha256', Buffer.from(`${header}.${payload}`), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    return `${header}.${payload}.${signature}`;
  };
  let ready: string[] = [];
  return {
    assertion: (audience) => ready.pop() ?? signed(audience, `${prefix}-${counter += 1}`),
    prepare: (audience, count) => {
      ready = Array.from({ length: count }, () => signed(audience, `${prefix}-${counter += 1}`));
    },
    reusableAssertion: (audience) => signed(audience, undefined),
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** client_credentials with a fresh platform token per request (no client_id, no secret). */
export function federatedProbe(url: string, world: FederatedWorld, prepared = 0): Probe {
  world.prepare(url, prepared);
  const body = (assertion: string) => new URLSearchParams({
    grant_type: 'client_credentials', resource: JWT_RESOURCE, scope: 'orders:read',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion,
  }).toString();
  // Encoded ahead too, like the tokens: the load generator shares the machine with Postern.
  const ready = Array.from({ length: prepared }, () => body(world.assertion(url)));
  return {
    url: `${url}/token`,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    // Sent once per connection and once in 100 requests (bench/load.ts); every other request's token has a jti of its own.
    body: body(world.reusableAssertion(url)),
    fresh: () => ready.pop() ?? body(world.assertion(url)),
    ok: (text) => text.includes('"access_token"'),
  };
}
