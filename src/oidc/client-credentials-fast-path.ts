// The plain client-credentials request, answered without the provider's detour: a service
// authenticating with its client secret (Basic or in the body), asking for a JWT for one API with
// scopes its roles grant, and nothing else in play: no DPoP proof, no client certificate, no
// assertion, no network allow-list, no certificate- or DPoP-bound client or API, no parameter
// beyond grant_type, scope, resource and the credentials. A federated client (a platform token as
// its assertion) counts as plain once federated-client-auth.ts, in front of this, has verified
// the token (signature, lifetime, audience, single-use jti, binding) and put its proof in place
// of the assertion: the proof is then its secret, as the provider's compareClientSecret takes it.
// The token is what the provider would issue (same claims, same key, same header), the answer the
// same JSON and headers, and the issuance counted the same way (audit count and metrics).
// Everything else, and every failure, goes to the provider untouched (the body is put back on the
// stream), so every error response still comes from the provider.
// test/client-credentials-fast-path.test.ts and test/federated-fast-path.test.ts send tables of
// requests to a server with this path and one without and compare the answers.
import { randomBytes } from 'node:crypto';
import { CompactSign, importJWK, type CryptoKey, type KeyObject } from 'jose';
import type Koa from 'koa';
import { SECRET_AUTH_METHODS } from '../domain/client-keys.ts';
import { FEDERATED_AUTH_METHOD } from '../domain/trusted-issuers.ts';
import { secretMatchesAny } from '../domain/crypto.ts';
import type { KeySet } from '../domain/signing-keys.ts';
import type { ApiEntry, ClientEntry, Directory } from './directory.ts';
import { callerOf, readPlainForm, type Caller } from './fast-path-request.ts';
import { federatedProofHolds } from './federated-client-auth.ts';

const ALLOWED_PARAMS = new Set(['grant_type', 'scope', 'resource', 'client_id', 'client_secret']);

/** RFC 6749 §3.3 scope tokens, separated by single spaces; anything else is the provider's. */
const SCOPE_LIST = /^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/;

export interface ClientCredentialsFastPathOptions {
  directory: Directory;
  /** The provider's key set: it signs with the one signing key of each type (jwks.ts). */
  keys: KeySet;
  issuer: string;
  /** The token endpoint's path. */
  path: string;
  maxBodyBytes: number;
  /** The provider's own scopes (OpenID scopes): requests naming one are the provider's. */
  providerScopes: ReadonlySet<string>;
  /** Whether the request presents a TLS client certificate (mutual TLS is the provider's). */
  hasCertificate(req: Koa.Context['req']): boolean;
  /** Told of each token issued here, as the provider's issuance events tell (audit, metrics). */
  onIssued(clientId: string, api: string): void;
}

type SigningKey = { alg: string; kid: string; key: Promise<CryptoKey | KeyObject | Uint8Array> };

/** The key the provider signs `alg` with: the signing key of that type (providerJwks). */
function signingKeys(set: KeySet): Map<string, SigningKey> {
  const keys = new Map<string, SigningKey>();
  for (const key of set.keys) {
    if (!key.signs || !key.privateJwk || keys.has(key.alg)) continue;
    const loaded = importJWK(key.privateJwk, key.alg);
    loaded.catch(() => {}); // a key that does not load sends its requests to the provider
    keys.set(key.alg, { alg: key.alg, kid: key.kid, key: loaded });
  }
  return keys;
}

/**
 * The client, when it is enabled, plain, and the secret is one of its live ones, or for a
 * federated client the proof of the assertion verified for it in this very request.
 */
function plainClient(client: ClientEntry | undefined, caller: Caller, now: number, req: object): client is ClientEntry {
  if (!client?.enabled || client.networks.length > 0) return false;
  const metadata = client.metadata as {
    token_endpoint_auth_method?: string; grant_types?: unknown; client_secret_expires_at?: unknown;
    tls_client_certificate_bound_access_tokens?: unknown; dpop_bound_access_tokens?: unknown;
  };
  const method = metadata.token_endpoint_auth_method ?? 'client_secret_basic';
  // The provider is shown a federated client as client_secret_post (providerAuthMethod).
  const federated = method === FEDERATED_AUTH_METHOD;
  // oidc-provider takes either secret method for a client registered with one of them.
  if (!federated && !SECRET_AUTH_METHODS.includes(method)) return false;
  if (!Array.isArray(metadata.grant_types) || !metadata.grant_types.includes('client_credentials')) return false;
  if (metadata.tls_client_certificate_bound_access_tokens || metadata.dpop_bound_access_tokens) return false;
  if (metadata.client_secret_expires_at !== undefined && metadata.client_secret_expires_at !== 0) return false;
  // As compareWithFederatedProof decides: a verified request's proof, and only for its client.
  const proof = federatedProofHolds(req, client.clientId, caller.secret);
  if (proof !== undefined || federated) return proof === true;
  const live = client.secrets.filter((s) => s.expiresAt === null || s.expiresAt > now).map((s) => s.hash);
  return secretMatchesAny(caller.secret, live);
}

/** The scopes the token carries, as resource-policy.ts and the provider decide them; undefined: not plain. */
function grantedScopes(client: ClientEntry, api: ApiEntry, raw: string | null, providerScopes: ReadonlySet<string>): string[] | undefined {
  const granted = client.grants.get(api.identifier)?.scopes;
  if (!granted?.size) return undefined;
  if (raw === null || raw === '') return [...granted];
  if (!SCOPE_LIST.test(raw)) return undefined;
  const requested = [...new Set(raw.split(' '))];
  for (const scope of requested) {
    if (providerScopes.has(scope) || !api.scopes.has(scope) || !granted.has(scope)) return undefined;
  }
  return requested;
}

export function clientCredentialsFastPath(options: ClientCredentialsFastPathOptions): Koa.Middleware {
  const { directory, issuer, path, maxBodyBytes, providerScopes } = options;
  const keys = signingKeys(options.keys);
  return async (ctx, next) => {
    const params = await readPlainForm(ctx, path, maxBodyBytes, ALLOWED_PARAMS);
    if (!params || params.get('grant_type') !== 'client_credentials' || options.hasCertificate(ctx.req)) return next();
    const caller = callerOf(ctx.get('authorization') || undefined, params);
    if (!caller) return next();
    const client = await directory.client(caller.clientId);
    if (!plainClient(client, caller, Date.now(), ctx.req)) return next();
    // No resource: the client's only API (resource-policy.ts defaultResource).
    let resource = params.get('resource');
    if (resource === null) {
      if (client.grants.size !== 1) return next();
      [resource] = client.grants.keys() as unknown as [string];
    }
    // RFC 8707 §2: an absolute URI without a fragment; the provider words the refusals.
    if (resource.includes('#') || !URL.canParse(resource)) return next();
    const api = await directory.api(resource);
    if (!api || api.tokenFormat !== 'jwt' || api.requireDpop || api.requireMtls) return next();
    const scopes = grantedScopes(client, api, params.get('scope'), providerScopes);
    const signing = keys.get(api.signingAlg);
    if (!scopes || !signing) return next();
    let key;
    try {
      key = await signing.key;
    } catch {
      return next();
    }

    // The claims in the order oidc-provider writes them (lib/models/formats/jwt.js), with
    // Postern's extra claims first (configuration.ts tokenClaims).
    const roles = client.grants.get(api.identifier)?.roles;
    const iat = Math.floor(Date.now() / 1000);
    const scope = scopes.join(' ') || undefined;
    const payload = {
      roles: roles ? [...roles].sort() : [],
      jti: randomBytes(32).toString('base64url'),
      sub: client.clientId,
      iat,
      exp: iat + api.accessTokenTtl,
      scope,
      client_id: client.clientId,
      iss: issuer,
      aud: api.identifier,
    };
    const token = await new CompactSign(Buffer.from(JSON.stringify(payload)))
      .setProtectedHeader({ alg: signing.alg, typ: 'at+jwt', kid: signing.kid })
      .sign(key);

    // The body stays on the stream unread; nothing else will read it.
    ctx.req.resume();
    ctx.state.clientId = client.clientId; // for the access log, as the provider's ctx.oidc.client
    options.onIssued(client.clientId, api.identifier);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { access_token: token, expires_in: api.accessTokenTtl, token_type: 'Bearer', ...(scope ? { scope } : {}) };
  };
}
