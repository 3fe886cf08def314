// All oidc-provider configuration. The only module (with its siblings in oidc/) that imports it.
import { randomBytes } from 'node:crypto';
import type Koa from 'koa';
import type { Kysely } from 'kysely';
import Provider, { type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { Config } from '../config.ts';
import { secretMatchesAny } from '../crypto.ts';
import type { Tables } from '../db/tables.ts';
import { createAdapterFactory } from './adapter.ts';
import type { Directory } from './directory.ts';
import type { PrivateKey } from './keys.ts';
import { renderErrorPage } from './error-page.ts';
import { resourceIndicators } from './resource-policy.ts';
import { introspectionFastPath } from './introspection-fast-path.ts';
import { TokenPolicy } from './token-policy.ts';

export interface ProviderDeps {
  db: Kysely<Tables>;
  directory: Directory;
  signingKeys: PrivateKey[];
  cookieKeys: string[];
  onServerError?: (ctx: KoaContextWithOIDC, error: Error) => void;
  /** Each access token issued, by grant type and API (for metrics). */
  onTokenIssued?: (grantType: string, api: string) => void;
}

// Every lifetime is set here on purpose (the provider's defaults print notices and some are long).
const DEFAULT_ACCESS_TOKEN_TTL = 300;
const TTL = {
  AuthorizationCode: 60,
  BackchannelAuthenticationRequest: 600,
  DeviceCode: 600,
  Grant: 14 * 24 * 3600,
  IdToken: 3600,
  Interaction: 600,
  PreAuthorizedCode: 300,
  RefreshToken: 14 * 24 * 3600,
  Session: 24 * 3600,
};

// Symmetric (HS*) client authentication would derive keys from the plaintext secret, which
// Postern never keeps; client_secret_jwt is off for the same reason.
const ASYMMETRIC_ALGS = ['ES256', 'EdDSA', 'PS256', 'RS256'];

export interface ProviderParts {
  provider: Provider;
  /** Koa middleware to run in front of the provider. */
  fastPaths: Koa.Middleware[];
  /**
   * Checks a Bearer token presented to Postern itself (the admin API): one of our JWT access
   * tokens for `audience`, usable now. Resolves its client id and scopes, or undefined.
   */
  verifyAccessToken(token: string, audience: string): Promise<{ clientId: string; scopes: string[] } | undefined>;
}

export function createProvider(config: Config, deps: ProviderDeps): ProviderParts {
  const { directory } = deps;
  const tokenPolicy = new TokenPolicy({
    db: deps.db,
    directory,
    issuer: config.issuer,
    signingKeys: deps.signingKeys.map((key) => key.privateJwk),
  });
  const accessTokenTtl = (_ctx: KoaContextWithOIDC, token: { resourceServer?: { accessTokenTTL?: number } }) =>
    token.resourceServer?.accessTokenTTL ?? DEFAULT_ACCESS_TOKEN_TTL;

  const configuration: Configuration = {
    adapter: createAdapterFactory(deps.db, directory, randomBytes(32).toString('base64url')),
    clients: [],
    jwks: { keys: deps.signingKeys.map((key) => key.privateJwk) as never },
    cookies: {
      keys: deps.cookieKeys,
      long: { httpOnly: true, sameSite: 'lax', secure: config.mode === 'production' },
      short: { httpOnly: true, sameSite: 'lax', secure: config.mode === 'production' },
    },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    enabledJWA: {
      clientAuthSigningAlgValues: ASYMMETRIC_ALGS as never,
      requestObjectSigningAlgValues: ASYMMETRIC_ALGS as never,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        allowedPolicy: async (ctx, client, token) =>
          tokenPolicy.mayIntrospect(client.clientId, token.clientId as string, (token as { aud?: unknown }).aud, token.iat),
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => {
          tokenPolicy.mayRevoke(client.clientId, token.clientId as string);
          return true;
        },
      },
      resourceIndicators: resourceIndicators(directory) as never,
      registration: { enabled: false },
    },
    extraTokenClaims: async (_ctx, token) => {
      const resourceServer = (token as { resourceServer?: { audience?: string } }).resourceServer;
      if (!resourceServer?.audience || !token.clientId) return undefined;
      const client = await directory.client(token.clientId);
      const roles = client?.grants.get(resourceServer.audience)?.roles;
      return { roles: roles ? [...roles].sort() : [] };
    },
    findAccount: async () => undefined,
    renderError: async (ctx, out) => renderErrorPage(ctx, out),
    pkce: { required: () => true },
    responseTypes: ['code'],
    scopes: ['openid', 'offline_access'],
    ttl: {
      ...TTL,
      AccessToken: accessTokenTtl as never,
      ClientCredentials: accessTokenTtl as never,
    },
  };

  const provider = new Provider(config.issuer, configuration);
  provider.proxy = config.trustProxy;

  // Secrets are stored as SHA-256 hashes; the provider awaits this for client_secret_basic/post.
  (provider.Client.prototype as unknown as { compareClientSecret(actual: string): Promise<boolean> })
    .compareClientSecret = async function compareClientSecret(this: { clientId: string }, actual: string) {
      const client = await directory.client(this.clientId);
      if (!client?.enabled) return false;
      const now = Date.now();
      const live = client.secrets.filter((s) => s.expiresAt === null || s.expiresAt > now).map((s) => s.hash);
      return secretMatchesAny(actual, live);
    };

  provider.use(tokenPolicy.middleware());
  if (deps.onServerError) provider.on('server_error', deps.onServerError);
  const { onTokenIssued } = deps;
  if (onTokenIssued) {
    // JWT tokens are "issued", opaque ones "saved"; each token emits exactly one of the two.
    type Issued = { gty?: string; aud?: unknown; resourceServer?: { audience?: string } };
    const apiOf = (token: Issued) => token.resourceServer?.audience ?? (typeof token.aud === 'string' ? token.aud : 'none');
    const access = (token: unknown) => onTokenIssued((token as Issued).gty ?? 'unknown', apiOf(token as Issued));
    const service = (token: unknown) => onTokenIssued('client_credentials', apiOf(token as Issued));
    provider.on('access_token.issued', access);
    provider.on('access_token.saved', access);
    provider.on('client_credentials.issued', service);
    provider.on('client_credentials.saved', service);
  }
  const issuerPath = new URL(config.issuer).pathname.replace(/\/$/, '');
  return {
    provider,
    verifyAccessToken: async (token, audience) => {
      const claims = await tokenPolicy.verifyAccessToken(token, audience);
      return claims && { clientId: claims.client_id!, scopes: (claims.scope ?? '').split(' ').filter(Boolean) };
    },
    fastPaths: [introspectionFastPath(provider, tokenPolicy, `${issuerPath}/token/introspection`, config.maxBodyBytes)],
  };
}

