// The protocol engine: oidc-provider built from configuration.ts, with what Postern patches into
// it (client secrets checked by their hash), the middleware around its endpoints, and what it
// reports (audit log, metrics). Only oidc/ imports oidc-provider.
import type Koa from 'koa';
import Provider from 'oidc-provider';
import { secretMatchesAny } from '../domain/crypto.ts';
import { PROVIDER_ROUTES } from '../domain/endpoints.ts';
import { auditProviderEvents } from './audit-events.ts';
import { browserErrorPages } from './browser-errors.ts';
import { providerConfiguration, type ProviderDeps, type ProviderSettings } from './configuration.ts';
import type { Directory } from './directory.ts';
import { introspectionFastPath } from './introspection-fast-path.ts';
import { publishJwks } from './jwks.ts';
import { registrationMiddleware } from './registration.ts';
import { tokenErrorAnswers } from './token-errors.ts';
import { TokenPolicy, type AuthorizedCaller } from './token-policy.ts';

/** The protocol engine's type, for the composition root (nothing outside oidc/ imports oidc-provider). */
export type { Provider };
export type { ProviderDeps, ProviderPages, ProviderSettings } from './configuration.ts';

export interface ProviderParts {
  provider: Provider;
  /** Koa middleware to run in front of the provider. */
  fastPaths: Koa.Middleware[];
  /**
   * Checks a Bearer token presented to Postern itself (the admin API): one of our JWT access
   * tokens for `audience`, usable now. Resolves its client, its person if it is a person's, and
   * the scopes it carries that they still hold; undefined when it is not usable.
   */
  verifyAccessToken(token: string, audience: string, certificateThumbprint?: string): Promise<AuthorizedCaller | undefined>;
}

/**
 * Client secrets are stored as SHA-256 hashes (never the plaintext the provider would compare):
 * the provider awaits Client.prototype.compareClientSecret for client_secret_basic and
 * client_secret_post, so it is replaced by a check against the client's live secret hashes.
 */
function compareSecretsByHash(provider: Provider, directory: Directory): void {
  (provider.Client.prototype as unknown as { compareClientSecret(actual: string): Promise<boolean> })
    .compareClientSecret = async function compareClientSecret(this: { clientId: string }, actual: string) {
      const client = await directory.client(this.clientId);
      if (!client?.enabled) return false;
      const now = Date.now();
      const live = client.secrets.filter((s) => s.expiresAt === null || s.expiresAt > now).map((s) => s.hash);
      return secretMatchesAny(actual, live);
    };
}

/** Tells `onTokenIssued` of every access token, by grant type and API (the metrics' counter). */
function countIssuedTokens(provider: Provider, onTokenIssued: (grantType: string, api: string) => void): void {
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

export function createProvider(config: ProviderSettings, deps: ProviderDeps): ProviderParts {
  const { directory } = deps;
  const tokenPolicy = new TokenPolicy({
    db: deps.db,
    directory,
    issuer: config.issuer,
    // Every published key verifies, whichever process or key signed the token.
    signingKeys: deps.keys.keys.map((key) => key.publicJwk),
  });
  const provider = new Provider(config.issuer, providerConfiguration(config, deps, tokenPolicy));
  provider.proxy = config.trustProxy;
  compareSecretsByHash(provider, directory);

  // Outermost first: the request context for registration, then the audit of final answers.
  provider.use(registrationMiddleware());
  provider.use(browserErrorPages(deps.pages, (ctx, error) => deps.onServerError?.(ctx, error as Error)));
  auditProviderEvents(provider, deps.audit);
  provider.use(tokenPolicy.middleware());
  provider.use(tokenErrorAnswers(provider));
  provider.use(publishJwks(deps.keys, config.keyRotation.jwksMaxAgeSeconds));
  if (deps.onServerError) provider.on('server_error', deps.onServerError);
  if (deps.onTokenIssued) countIssuedTokens(provider, deps.onTokenIssued);

  const issuerPath = new URL(config.issuer).pathname.replace(/\/$/, '');
  return {
    provider,
    verifyAccessToken: (token, audience, certificateThumbprint) =>
      tokenPolicy.authorizeAccessToken(token, audience, certificateThumbprint),
    fastPaths: [introspectionFastPath(
      provider, tokenPolicy, `${issuerPath}${PROVIDER_ROUTES.introspection}`, config.maxBodyBytes,
      async (clientId) => (await directory.client(clientId))?.networks.length === 0,
    )],
  };
}
