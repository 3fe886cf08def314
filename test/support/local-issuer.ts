// A token issuer the tests run on loopback, standing in for a Kubernetes API server, a SPIRE
// bundle endpoint or GitHub Actions' token service: discovery and a JWK Set over real HTTP, tokens
// signed with jose. Its behaviour can be changed (down, slow, huge, keys rotated, Cache-Control).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';

export interface LocalIssuer {
  url: string;
  jwksUrl: string;
  /** How many times the JWK Set was fetched. */
  fetches: number;
  /** 'ok' | 'down' (503) | 'slow' (answers after `delayMs`) | 'huge' (a body past any cap) | 'redirect'. */
  mode: 'ok' | 'down' | 'slow' | 'huge' | 'redirect';
  delayMs: number;
  cacheControl: string | undefined;
  /** Keys as served: the current key's `use` for a SPIFFE bundle is "jwt-svid". */
  bundleStyle: boolean;
  kid: string;
  /** Signs a token with the current key (`kid` overrides the header's kid). */
  sign(claims: JWTPayload, options?: { kid?: string; key?: CryptoKey; alg?: string }): Promise<string>;
  /** A new key pair, published from now on; the old one is no longer served. */
  rotate(): Promise<void>;
  /** A key pair that is never published (a forger's). */
  strangerKey(): Promise<CryptoKey>;
  close(): Promise<void>;
}

export async function startLocalIssuer(options: { issuerPath?: string; alg?: string } = {}): Promise<LocalIssuer> {
  const alg = options.alg ?? 'RS256';
  let pair = await generateKeyPair(alg, { extractable: true });
  let counter = 0;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const answer = async () => {
      if (issuer.mode === 'down') {
        res.statusCode = 503;
        return res.end('down');
      }
      if (issuer.mode === 'slow') await new Promise((resolve) => setTimeout(resolve, issuer.delayMs));
      if (issuer.mode === 'redirect') {
        res.statusCode = 302;
        res.setHeader('location', 'http://169.254.169.254/latest/meta-data/');
        return res.end();
      }
      res.setHeader('content-type', 'application/json');
      if (path === `${options.issuerPath ?? ''}/.well-known/openid-configuration`) {
        return res.end(JSON.stringify({ issuer: issuer.url, jwks_uri: issuer.jwksUrl }));
      }
      if (path === '/jwks') {
        issuer.fetches += 1;
        if (issuer.cacheControl) res.setHeader('cache-control', issuer.cacheControl);
        if (issuer.mode === 'huge') {
          // Past the cap without declaring it: the reader must stop on its own.
          res.write('{"keys":[');
          for (let i = 0; i < 2000; i += 1) res.write(`${i ? ',' : ''}{"kty":"oct","k":"${'A'.repeat(500)}"}`);
          return res.end(']}');
        }
        const jwk = { ...(await exportJWK(pair.publicKey)), kid: issuer.kid, alg, use: issuer.bundleStyle ? 'jwt-svid' : 'sig' };
        const keys = issuer.bundleStyle ? [jwk, { kty: 'EC', crv: 'P-256', x: jwk.x ?? 'x', y: 'y', use: 'x509-svid', x5c: [] }] : [jwk];
        return res.end(JSON.stringify(issuer.bundleStyle ? { spiffe_sequence: 1, keys } : { keys }));
      }
      res.statusCode = 404;
      return res.end('{}');
    };
    answer().catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const issuer: LocalIssuer = {
    url: `http://127.0.0.1:${port}${options.issuerPath ?? ''}`,
    jwksUrl: `http://127.0.0.1:${port}/jwks`,
    fetches: 0,
    mode: 'ok',
    delayMs: 0,
    cacheControl: undefined,
    bundleStyle: false,
    kid: `k${++counter}-${port}`,
    async sign(claims, signOptions = {}) {
      return new SignJWT(claims)
        .setProtectedHeader({ alg: signOptions.alg ?? alg, kid: signOptions.kid ?? issuer.kid, typ: 'JWT' })
        .sign(signOptions.key ?? pair.privateKey);
    },
    async rotate() {
      pair = await generateKeyPair(alg, { extractable: true });
      issuer.kid = `k${++counter}-${port}`;
    },
    async strangerKey() {
      return (await generateKeyPair(alg)).privateKey;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return issuer;
}

/** Claims of a Kubernetes projected service-account token (kubelet-issued, audience set by the volume). */
export function kubernetesClaims(issuer: string, audience: string, namespace: string, account: string, lifetime = 3600): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: issuer,
    sub: `system:serviceaccount:${namespace}:${account}`,
    aud: [audience],
    iat: now,
    nbf: now,
    exp: now + lifetime,
    jti: crypto.randomUUID(),
    'kubernetes.io': {
      namespace,
      serviceaccount: { name: account, uid: crypto.randomUUID() },
      pod: { name: `${account}-6d4cf56db6-x2x7k`, uid: crypto.randomUUID() },
      node: { name: 'node-1', uid: crypto.randomUUID() },
    },
  };
}

/** Claims of a GitHub Actions OIDC token. */
export function githubClaims(issuer: string, audience: string, repository: string, ref = 'refs/heads/main'): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  const [owner] = repository.split('/');
  return {
    iss: issuer, aud: audience, sub: `repo:${repository}:ref:${ref}`, iat: now, nbf: now, exp: now + 300,
    jti: crypto.randomUUID(), repository, repository_owner: owner, ref, ref_type: 'branch',
    workflow: 'deploy', event_name: 'push', runner_environment: 'github-hosted',
  };
}

/** Claims of a SPIFFE JWT-SVID (SPIRE: no iss unless jwt_issuer is set; no jti). */
export function spiffeClaims(spiffeId: string, audience: string, lifetime = 300): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  return { sub: spiffeId, aud: [audience], iat: now, exp: now + lifetime };
}
