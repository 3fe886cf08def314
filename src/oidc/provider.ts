// The protocol engine: oidc-provider built from configuration.ts, with what Postern patches into
// it (client secrets checked by their hash), the middleware around its endpoints, and what it
// reports (audit log, metrics). Only oidc/ imports oidc-provider.
import type Koa from 'koa';
import Provider from 'oidc-provider';
import { secretMatchesAny } from '../domain/crypto.ts';
import { PROVIDER_ROUTES } from '../domain/endpoints.ts';
import { auditProviderEvents } from './audit-events.ts';
import { browserErrorPages } from './browser-errors.ts';
import { clientCredentialsFastPath } from './client-credentials-fast-path.ts';
import { PROVIDER_SCOPES, providerConfiguration, type ProviderDeps, type ProviderSettings } from './configuration.ts';
import type { Directory } from './directory.ts';
import { exchangeFastPath } from './exchange-fast-path.ts';
import { fastPathMiddleware, firstAnswer, type FastPath } from './fast-path-request.ts';
import { GateTokens } from './gate-tokens.ts';
import { introspectionFastPath } from './introspection-fast-path.ts';
import { OpaqueIntrospection } from './opaque-introspection.ts';
import { compareWithFederatedProof, federatedClientAuth } from './federated-client-auth.ts';
import { publishJwks } from './jwks.ts';
import { registrationMiddleware } from './registration.ts';
import { tokenErrorAnswers } from './token-errors.ts';
import { registerTokenExchange } from './token-exchange.ts';
import { TokenDpop } from './token-dpop.ts';
import { TokenPolicy, type AuthorizedCaller } from './token-policy.ts';

/** The protocol engine's type, for the composition root (nothing outside oidc/ imports oidc-provider). */
export type { Provider };
export type { ProviderDeps, ProviderPages, ProviderSettings } from './configuration.ts';

export interface ProviderParts {
  provider: Provider;
  /** Koa middleware to run in front of the provider. */
  fastPaths: Koa.Middleware[];
  /**
   * The same fast paths for the public listener's early lane (src/http/protocol-lane.ts), which
   * answers before Koa; undefined with FAST_PATHS=false (everything goes to Koa and the provider).
   */
  answerEarly?: FastPath;
  /**
   * Checks a Bearer token presented to Postern itself (the admin API): one of our JWT access
   * tokens for `audience`, usable now. Resolves its client, its person if it is a person's, and
   * the scopes it carries that they still hold; undefined when it is not usable.
   */
  verifyAccessToken(token: string, audience: string, certificateThumbprint?: string): Promise<AuthorizedCaller | undefined>;
  /** The access token of a request a gateway asks about (the decision endpoint, docs/gateways.md). */
  gateTokens: GateTokens;
}

/**
 * Client secrets are stored as SHA-256 hashes (never the plaintext the provider would compare):
 * the provider awaits Client.prototype.compareClientSecret for client_secret_basic and
 * client_secret_post, so it is replaced by a check against the client's live secret hashes.
 */
function compareSecretsByHash(provider: Provider, directory: Directory): void {
  // A federated client's only "secret" is the proof of a verified assertion (federated-client-auth.ts).
  (provider.Client.prototype as unknown as { compareClientSecret(actual: string): Promise<boolean> })
    .compareClientSecret = compareWithFederatedProof(async (clientId, actual) => {
      const client = await directory.client(clientId);
      if (!client?.enabled) return false;
      const now = Date.now();
      const live = client.secrets.filter((s) => s.expiresAt === null || s.expiresAt > now).map((s) => s.hash);
      return secretMatchesAny(actual, live);
    });
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
  registerTokenExchange(provider, {
    db: deps.db,
    directory,
    tokenPolicy,
    audit: deps.audit,
    maxDepth: config.tokenExchangeMaxDepth ?? 4,
    certificateOf: (ctx) => deps.clientCertificates?.fromRequest(ctx.req)?.cert,
    hasCertificate: (ctx) => deps.clientCertificates?.fromRequest(ctx.req) !== undefined,
    trustedJwts: deps.trustedJwts,
    // The provider's nonce secret and setting (configuration.ts features.dPoP).
    dpop: new TokenDpop(provider, { nonceSecret: Buffer.from(deps.dpopNonceSecret, 'base64url'), requireNonce: config.dpopRequireNonce }),
  });
  provider.use(publishJwks(deps.keys, config.keyRotation.jwksMaxAgeSeconds));
  if (deps.onServerError) provider.on('server_error', deps.onServerError);
  if (deps.onTokenIssued) countIssuedTokens(provider, deps.onTokenIssued);

  const issuerPath = new URL(config.issuer).pathname.replace(/\/$/, '');
  const { token, introspection, revocation } = PROVIDER_ROUTES;
  const federated = deps.trustedJwts ? [federatedClientAuth({
    verifier: deps.trustedJwts,
    paths: new Set([token, introspection, revocation].map((path) => `${issuerPath}${path}`)),
    maxBodyBytes: config.maxBodyBytes,
    audit: deps.audit,
  })] : [];
  const fastPaths = config.fastPaths === false ? [] : [
    introspectionFastPath(
      provider, tokenPolicy, `${issuerPath}${PROVIDER_ROUTES.introspection}`, config.maxBodyBytes,
      async (clientId) => (await directory.client(clientId))?.networks.length === 0,
      () => deps.onFastPathAnswer?.('introspection'),
      new OpaqueIntrospection(provider, directory, tokenPolicy),
    ),
    clientCredentialsFastPath({
      directory,
      keys: deps.keys,
      issuer: config.issuer,
      path: `${issuerPath}${PROVIDER_ROUTES.token}`,
      maxBodyBytes: config.maxBodyBytes,
      providerScopes: new Set(PROVIDER_SCOPES),
      hasCertificate: (req) => deps.clientCertificates?.fromRequest(req) !== undefined,
      // What the provider's issuance events do (auditProviderEvents, countIssuedTokens).
      onIssued: (clientId, api) => {
        deps.audit.countTokenIssued(clientId);
        deps.onTokenIssued?.('client_credentials', api);
        deps.onFastPathAnswer?.('token');
      },
    }),
    exchangeFastPath({
      provider,
      db: deps.db,
      directory,
      tokenPolicy,
      audit: deps.audit,
      keys: deps.keys,
      issuer: config.issuer,
      path: `${issuerPath}${PROVIDER_ROUTES.token}`,
      maxBodyBytes: config.maxBodyBytes,
      maxDepth: config.tokenExchangeMaxDepth ?? 4,
      hasCertificate: (req) => deps.clientCertificates?.fromRequest(req) !== undefined,
      // What the provider's issuance events do for an exchanged token (gty token_exchange).
      onIssued: (clientId, api) => {
        deps.audit.countTokenIssued(clientId);
        deps.onTokenIssued?.('token_exchange', api);
        deps.onFastPathAnswer?.('token');
      },
    }),
  ];
  return {
    provider,
    verifyAccessToken: (token, audience, certificateThumbprint) =>
      tokenPolicy.authorizeAccessToken(token, audience, certificateThumbprint),
    gateTokens: new GateTokens({ provider, tokenPolicy, directory, db: deps.db }),
    fastPaths: [...federated, ...fastPaths].map(fastPathMiddleware),
    answerEarly: fastPaths.length ? firstAnswer([...federated, ...fastPaths]) : undefined,
  };
}
