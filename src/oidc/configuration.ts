// oidc-provider's configuration: every option Postern sets, and why. The provider built from it,
// and what is patched and mounted around it, is provider.ts.
import { randomBytes } from 'node:crypto';
import { errors, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { Db } from '../db/tables.ts';
import type { ArtifactKey } from '../domain/artifact-hashing.ts';
import type { AuditSink } from '../domain/audit-events.ts';
import { certificateMatchesSubject, TLS_SUBJECT_FIELDS, type TlsSubjectField } from '../domain/certificates.ts';
import { CLIENT_AUTH_ALGS } from '../domain/client-keys.ts';
import { grantDigest } from '../domain/crypto.ts';
import { PROVIDER_ROUTES } from '../domain/endpoints.ts';
import type { KeySet } from '../domain/signing-keys.ts';
import type { TrustedJwtVerifier } from '../services/trusted-jwt.ts';
import { findAccount, personGrants, SCOPE_CLAIMS } from './accounts.ts';
import { createAdapterFactory, type NetworkRefusal } from './adapter.ts';
import { ClientCertificates } from './client-certificates.ts';
import type { Directory } from './directory.ts';
import { providerJwks } from './jwks.ts';
import { readLogoutForm } from './provider-texts.ts';
import { checkBeforeConsuming, redemptionCheck } from './redemption-check.ts';
import { registrationFeatures, type RegistrationHandlers } from './registration.ts';
import { resourceIndicators } from './resource-policy.ts';
import { claimsOfExchangedToken } from './token-exchange.ts';
import { TOKEN_DPOP_ALGS } from './token-dpop.ts';
import type { TokenPolicy } from './token-policy.ts';

/** What the provider takes of the configuration (config.ts). */
export interface ProviderSettings {
  mode: 'development' | 'production';
  issuer: string;
  trustProxy: boolean;
  dpopRequireNonce: boolean;
  maxBodyBytes: number;
  keyRotation: { jwksMaxAgeSeconds: number };
  /**
   * Answer the plain client-credentials request and JWT introspection in front of the provider
   * (client-credentials-fast-path.ts, introspection-fast-path.ts). Default on; off, every
   * request goes through the provider (the same answers, slower).
   */
  fastPaths?: boolean;
  /** Token exchange (RFC 8693): how many exchanges a chain may hold; 4 when not given. */
  tokenExchangeMaxDepth?: number;
}

export interface ProviderDeps {
  db: Db;
  directory: Directory;
  /** The published signing keys; a new key set means a new provider (see provider-holder.ts). */
  keys: KeySet;
  cookieKeys: string[];
  /** HMAC key of DPoP nonces, the same on every process (base64url, 32 bytes). */
  dpopNonceSecret: string;
  /** Stored tokens, codes and sessions are found by their keyed hash under it; the same on every process. */
  artifactKey: ArtifactKey;
  onServerError?: (ctx: KoaContextWithOIDC, error: Error) => void;
  /** Each access token issued, by grant type and API (for metrics). */
  onTokenIssued?: (grantType: string, api: string) => void;
  /** A request answered in front of the provider, by endpoint (for metrics). */
  onFastPathAnswer?: (endpoint: 'token' | 'introspection') => void;
  /** Security events (token failures, revocations, registrations) and issuance counts. */
  audit: AuditSink;
  /** Storage of self-registered clients (RFC 7591/7592); without it, registration always fails. */
  registration?: RegistrationHandlers;
  /** A client tried to authenticate from outside its allowed networks (refused with 401). */
  onNetworkRefused?: (refusal: NetworkRefusal) => void;
  /** The browser-facing pages the provider renders itself (views/). */
  pages: ProviderPages;
  /** Client certificates of requests (mutual TLS, RFC 8705); without it, requests have none. */
  clientCertificates?: ClientCertificates;
  /**
   * Tokens of trusted issuers (workload identity): federated client authentication and token
   * exchange subject tokens call `trustedJwts.verifyTrustedJwt(token, {audience})`.
   */
  trustedJwts?: TrustedJwtVerifier;
}

export interface ProviderPages {
  /** An error in a browser flow: no stack, no internal detail. */
  error(ctx: KoaContextWithOIDC, out: { error: string; error_description?: string }): void;
  /** RP-initiated logout: "sign out?" with the provider's form action and anti-forgery value. */
  logout(ctx: KoaContextWithOIDC, form: { action: string; xsrf: string; clientName?: string }): void;
  loggedOut(ctx: KoaContextWithOIDC): void;
}

/** The provider's own scopes (OpenID Connect); every other scope belongs to an API. */
export const PROVIDER_SCOPES = ['openid', 'offline_access', 'profile', 'email', 'roles'];

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

/**
 * RFC 8705. A request's certificate comes from Postern's TLS listener or a trusted proxy
 * (client-certificates.ts); tls_client_auth also needs it issued by a configured CA.
 */
function mtlsFeature(certificates: ClientCertificates) {
  const presented = (ctx: KoaContextWithOIDC) => certificates.fromRequest(ctx.req);
  const subjectFields = new Map(Object.entries(TLS_SUBJECT_FIELDS).map(([field, property]) => [property as string, field as TlsSubjectField]));
  return {
    enabled: true,
    certificateBoundAccessTokens: true,
    tlsClientAuth: true,
    selfSignedTlsClientAuth: true,
    getCertificate: (ctx: KoaContextWithOIDC) => presented(ctx)?.cert,
    certificateAuthorized: (ctx: KoaContextWithOIDC) => presented(ctx)?.trusted === true,
    certificateSubjectMatches: (ctx: KoaContextWithOIDC, property: string, expected: unknown) => {
      const cert = presented(ctx)?.cert;
      const field = subjectFields.get(property);
      return Boolean(cert && field && typeof expected === 'string' && certificateMatchesSubject(cert, field, expected));
    },
  };
}

/** RP-initiated logout, on Postern's own pages. */
function logoutFeature(pages: ProviderPages, issuerPath: string) {
  return {
    enabled: true,
    logoutSource: async (ctx: KoaContextWithOIDC, form: string) => {
      // The provider's own form carries the anti-forgery value; our page renders it.
      const read = readLogoutForm(form);
      const action = read.action ?? `${issuerPath}/session/end/confirm`;
      const xsrf = read.xsrf ?? '';
      const client = ctx.oidc.client;
      pages.logout(ctx, { action, xsrf, clientName: client?.clientName ?? client?.clientId });
    },
    postLogoutSuccessSource: async (ctx: KoaContextWithOIDC) => pages.loggedOut(ctx),
  };
}

/**
 * Claims Postern adds to access tokens (and to opaque-token introspection): the roles behind the
 * scopes, and for a person's token the digest of its grant.
 */
function tokenClaims(db: Db, directory: Directory): NonNullable<Configuration['extraTokenClaims']> {
  return async (ctx, token) => {
    const exchanged = claimsOfExchangedToken(token);
    if (exchanged) return exchanged;
    const resourceServer = (token as { resourceServer?: { audience?: string } }).resourceServer;
    if (!resourceServer?.audience || !token.clientId) return undefined;
    const { accountId, grantId } = token as { accountId?: string; grantId?: string };
    if (accountId) {
      // A person's token: their roles on this API, and the digest of the grant it came from so
      // that revoking the grant (reuse detection, logout everywhere) revokes this JWT too.
      const { roles } = await personGrants(ctx, db, accountId, resourceServer.audience);
      return { roles, ...(grantId ? { gid: grantDigest(grantId) } : {}) };
    }
    const client = await directory.client(token.clientId);
    const roles = client?.grants.get(resourceServer.audience)?.roles;
    return { roles: roles ? [...roles].sort() : [] };
  };
}

/** The provider's features: which are on, and the policies Postern gives them. */
function providerFeatures(
  config: ProviderSettings,
  deps: ProviderDeps,
  tokenPolicy: TokenPolicy,
  requests: { certificates: ClientCertificates; hasCertificate(ctx: KoaContextWithOIDC): boolean; issuerPath: string },
): NonNullable<Configuration['features']> {
  const { certificates, hasCertificate, issuerPath } = requests;
  return {
    devInteractions: { enabled: false },
    // RFC 9449. Nonces are stateless HMACs of a time window under a secret every process shares,
    // so a nonce one process issues is accepted by any other.
    dPoP: {
      enabled: true,
      nonceSecret: Buffer.from(deps.dpopNonceSecret, 'base64url'),
      requireNonce: () => config.dpopRequireNonce,
      allowReplay: false,
    },
    mTLS: mtlsFeature(certificates),
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      allowedPolicy: async (ctx, client, token) => tokenPolicy.mayIntrospect(
        client.clientId, token.clientId as string, (token as { aud?: unknown }).aud, token.iat,
        (token as { extra?: { lin?: unknown; gid?: unknown } }).extra,
      ),
    },
    revocation: {
      enabled: true,
      allowedPolicy: async (_ctx, client, token) => {
        tokenPolicy.mayRevoke(client.clientId, token.clientId as string);
        await tokenPolicy.recordOpaqueRevocation(token as { kind?: string; jti?: string; clientId?: string; exp?: number });
        return true;
      },
    },
    resourceIndicators: resourceIndicators(deps.directory, deps.db, hasCertificate) as never,
    ...registrationFeatures(),
    rpInitiatedLogout: logoutFeature(deps.pages, issuerPath),
  };
}

/** The provider's options: storage, keys, cookies, client authentication, features and lifetimes. */
export function providerConfiguration(config: ProviderSettings, deps: ProviderDeps, tokenPolicy: TokenPolicy): Configuration {
  const { directory } = deps;
  const accessTokenTtl = (_ctx: KoaContextWithOIDC, token: { resourceServer?: { accessTokenTTL?: number } }) =>
    token.resourceServer?.accessTokenTTL ?? DEFAULT_ACCESS_TOKEN_TTL;
  const issuerPath = new URL(config.issuer).pathname.replace(/\/$/, '');
  const certificates = deps.clientCertificates ?? new ClientCertificates({ header: undefined, proxies: [] });
  const hasCertificate = (ctx: KoaContextWithOIDC) => certificates.fromRequest(ctx.req) !== undefined;
  return {
    // A code or refresh token is consumed only once nothing more would refuse the request.
    adapter: checkBeforeConsuming(createAdapterFactory(deps.db, directory, {
      placeholderSecret: randomBytes(32).toString('base64url'),
      trustProxy: config.trustProxy,
      onNetworkRefused: deps.onNetworkRefused,
      registration: deps.registration,
      artifactKey: deps.artifactKey,
    }), redemptionCheck(directory, hasCertificate)),
    clients: [],
    jwks: { keys: providerJwks(deps.keys) as never },
    cookies: {
      keys: deps.cookieKeys,
      long: { httpOnly: true, sameSite: 'lax', secure: config.mode === 'production' },
      short: { httpOnly: true, sameSite: 'lax', secure: config.mode === 'production' },
    },
    // `none`: public clients (SPAs, native apps), which PKCE protects (pkce.required below).
    // tls_client_auth and self_signed_tls_client_auth: RFC 8705 §2 (docs/sender-constrained-tokens.md).
    clientAuthMethods: [
      'client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 'none',
    ],
    extraClientMetadata: {
      properties: ['first_party'],
      validator: (_ctx, key, value) => {
        if (key === 'first_party' && value !== undefined && typeof value !== 'boolean') {
          throw new errors.InvalidClientMetadata('first_party must be a boolean');
        }
      },
    },
    enabledJWA: {
      clientAuthSigningAlgValues: [...CLIENT_AUTH_ALGS] as never,
      requestObjectSigningAlgValues: ASYMMETRIC_ALGS as never,
      // The provider's defaults, named where token-dpop.ts checks the proofs of registered grants.
      dPoPSigningAlgValues: TOKEN_DPOP_ALGS as never,
    },
    features: providerFeatures(config, deps, tokenPolicy, { certificates, hasCertificate, issuerPath }),
    interactions: {
      url: (_ctx, interaction) => `${issuerPath}/interaction/${interaction.uid}`,
    },
    claims: SCOPE_CLAIMS,
    // Given explicitly: the same table decides which paths reach the provider (src/domain/endpoints.ts).
    routes: PROVIDER_ROUTES,
    // OAuth 2.0 Security BCP §4.14: a refresh token is good for one use; a replayed one revokes
    // the grant (the provider's reuse detection), and the adapter's atomic consume lets exactly one
    // of several parallel uses through.
    rotateRefreshToken: true,
    extraTokenClaims: tokenClaims(deps.db, directory),
    findAccount: findAccount(deps.db),
    // The provider's fetch refuses private and loopback addresses (an SSRF guard for dynamic
    // registration, which is off). jwks_uri values are set only by administrators and usually
    // point inside the network, so they are fetched as given (still with the 2.5 s timeout).
    fetch: (url, options) => fetch(url, { ...options, dispatcher: undefined } as RequestInit),
    renderError: async (ctx, out) => deps.pages.error(ctx, out as { error: string; error_description?: string }),
    // RFC 9700 §2.1.1 and OAuth 2.1 §4.1.1: a client always names its redirect_uri, at the
    // authorization and the token endpoint, even with one registered. The provider's default
    // fills it in, and its error handler then fails (a 500) on a resume or authorization URL whose
    // parameters are not a request's.
    allowOmittingSingleRegisteredRedirectUri: false,
    // RFC 9700 §2.1.1: PKCE (S256, the only method enabled) for every client, confidential too.
    pkce: { required: () => true },
    responseTypes: ['code'],
    scopes: PROVIDER_SCOPES,
    ttl: {
      ...TTL,
      AccessToken: accessTokenTtl as never,
      ClientCredentials: accessTokenTtl as never,
      // A session nobody signed in to (an anonymous visit to logout) only carries the logout
      // form's anti-forgery value to the next request: minutes, not a day. The lifetime is
      // worked out again at every save, so signing in gives the full one.
      Session: ((_ctx: unknown, session: { accountId?: string }) => (session.accountId ? TTL.Session : TTL.Interaction)) as never,
    },
  };
}
