// A token issuer on loopback for trying workload identity without a cluster
// (docs/workload-identity.md): it serves OpenID discovery and a JWK Set like a Kubernetes API
// server, a SPIRE bundle endpoint or GitHub Actions' token service, and signs tokens on request.
//   node scripts/local-token-issuer.ts [port]           serve (default port 9400)
//   curl 'http://127.0.0.1:9400/sign?sub=...&aud=...[&claim=value...]'   a token with those claims
// A stand-in for trying things out, never for production: anyone who can reach it gets tokens.
import { generateKeyPairSync, sign } from 'node:crypto';
import http from 'node:http';
import { randomUUID } from 'node:crypto';

const port = Number(process.argv[2] ?? 9400);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const kid = `local-${Date.now().toString(36)}`;
const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' };

function token(claims: Record<string, unknown>): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const input = `${encode({ alg: 'ES256', kid, typ: 'JWT' })}.${encode(claims)}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', issuer);
  res.setHeader('cache-control', 'max-age=300');
  if (url.pathname === '/.well-known/openid-configuration') {
    res.setHeader('content-type', 'application/json');
    return res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks`, id_token_signing_alg_values_supported: ['ES256'] }));
  }
  if (url.pathname === '/jwks') {
    res.setHeader('content-type', 'application/json');
    return res.end(JSON.stringify({ keys: [jwk] }));
  }
  if (url.pathname === '/sign') {
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = { iss: issuer, iat: now, nbf: now, exp: now + 600, jti: randomUUID() };
    for (const [name, value] of url.searchParams) claims[name] = name === 'exp' || name === 'iat' ? Number(value) : value;
    if (url.searchParams.get('iss') === '') delete claims.iss;
    if (url.searchParams.get('jti') === '') delete claims.jti;
    res.setHeader('content-type', 'text/plain');
    return res.end(token(claims));
  }
  res.statusCode = 404;
  return res.end();
});
server.listen(port, '127.0.0.1', () => console.log(`token issuer ${issuer} (kid ${kid})`));
