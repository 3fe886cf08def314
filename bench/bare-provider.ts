// The baseline: oidc-provider as its documentation sets it up for client credentials, with the
// in-memory adapter, one static client and no database. Postern's numbers are read against it.
// Run by bench/run.ts with PORT, BENCH_CLIENT_ID and BENCH_CLIENT_SECRET in the environment.
import http from 'node:http';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { errors, type Configuration } from 'oidc-provider';
import { ACCESS_TOKEN_TTL, JWT_RESOURCE, OPAQUE_RESOURCE, SCOPES } from './resources.ts';

const { PORT, BENCH_CLIENT_ID, BENCH_CLIENT_SECRET } = process.env;
if (!PORT || !BENCH_CLIENT_ID || !BENCH_CLIENT_SECRET) {
  throw new Error('PORT, BENCH_CLIENT_ID and BENCH_CLIENT_SECRET are required');
}

async function privateJwk(alg: 'ES256' | 'RS256') {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), use: 'sig' };
}

// Same key types as Postern signs with: EC P-256 for the access tokens, RSA for ID tokens.
const jwks = { keys: [await privateJwk('ES256'), await privateJwk('RS256')] };

const resourceServers: Record<string, object> = {
  [JWT_RESOURCE]: { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } },
  [OPAQUE_RESOURCE]: { accessTokenFormat: 'opaque' },
};

const configuration: Configuration = {
  clients: [{
    client_id: BENCH_CLIENT_ID,
    client_secret: BENCH_CLIENT_SECRET,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  }],
  jwks: jwks as never,
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      getResourceServerInfo: async (_ctx, resource) => {
        const server = resourceServers[resource];
        if (!server) throw new errors.InvalidTarget();
        return { scope: SCOPES.join(' '), audience: resource, accessTokenTTL: ACCESS_TOKEN_TTL, ...server } as never;
      },
    },
  },
};

const port = Number(PORT);
const provider = new Provider(`http://127.0.0.1:${port}`, configuration);
const server = http.createServer(provider.callback());
// The same connection timeouts as Postern's server (src/main.ts).
server.headersTimeout = 10_000;
server.requestTimeout = 30_000;
server.keepAliveTimeout = 5_000;
server.listen(port, '127.0.0.1');

// A normal exit (not death by signal) lets `node --cpu-prof bench/bare-provider.ts` write its profile.
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => process.exit(0));
