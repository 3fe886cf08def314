// What the fast paths (introspection-fast-path.ts, client-credentials-fast-path.ts) take of a
// request before answering it themselves: a small url-encoded form with no header that brings a
// feature into play, each parameter at most once, and a caller authenticating with its client
// secret in one of the two plain ways. Anything else is left to the provider, which knows every
// rule; so is every failure.
import type Koa from 'koa';
import { SECRET_AUTH_METHODS } from '../domain/client-keys.ts';
import { secretMatchesAny } from '../domain/crypto.ts';
import { TOKEN_EXCHANGE_GRANT } from '../domain/token-exchange.ts';
import { FEDERATED_AUTH_METHOD } from '../domain/trusted-issuers.ts';
import type { FastPath, FastPathRequest } from '../platform/fast-path.ts';
import { isPlainForm, peekFormParams } from '../platform/peek-body.ts';

export type { FastPath, FastPathAnswer, FastPathRequest } from '../platform/fast-path.ts';
import type { ClientEntry } from './directory.ts';
import { federatedProofHolds } from './federated-client-auth.ts';

export interface Caller { clientId: string; secret: string; method: 'client_secret_basic' | 'client_secret_post' }

/** RFC 6749 §3.3 scope tokens, separated by single spaces; anything else is the provider's. */
export const SCOPE_LIST = /^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/;

// Values that would need decoding go to the provider, which knows the rules (RFC 6749 §2.3.1).
const PLAIN = /^[A-Za-z0-9._~-]+$/;

/** Headers that bring a feature into play (DPoP, attestation-based client authentication). */
const FEATURE_HEADERS = ['dpop', 'oauth-client-attestation', 'oauth-client-attestation-pop'];

/** The caller's client id and secret, when it authenticates with its secret plainly. */
export function callerOf(authorization: string | undefined, params: URLSearchParams): Caller | undefined {
  const bodyId = params.get('client_id');
  const bodySecret = params.get('client_secret');
  if (authorization) {
    if (bodyId !== null || bodySecret !== null) return undefined;
    const [scheme, value, extra] = authorization.split(' ');
    if (scheme?.toLowerCase() !== 'basic' || !value || extra !== undefined) return undefined;
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const clientId = decoded.slice(0, colon);
    const secret = decoded.slice(colon + 1);
    if (colon < 1 || !PLAIN.test(clientId) || !PLAIN.test(secret)) return undefined;
    return { clientId, secret, method: 'client_secret_basic' };
  }
  if (!bodyId || !bodySecret) return undefined;
  return { clientId: bodyId, secret: bodySecret, method: 'client_secret_post' };
}

/** A fast path in Koa's middleware chain in front of the provider. */
export function fastPathMiddleware(fastPath: FastPath): Koa.Middleware {
  return async (ctx, next) => {
    const answer = await fastPath({
      req: ctx.req, method: ctx.method, path: ctx.path, authorization: ctx.get('authorization') || undefined, ip: ctx.ip, state: ctx.state,
    });
    if (!answer) return next();
    // The body stays on the stream unread; nothing else will read it.
    ctx.req.resume();
    if (answer.clientId !== undefined) ctx.state.clientId = answer.clientId; // for the access log, as the provider's ctx.oidc.client
    ctx.status = answer.status;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = answer.body;
    return undefined;
  };
}

/** The first answer of `fastPaths`, tried in order; undefined when none answers. */
export function firstAnswer(fastPaths: readonly FastPath[]): FastPath {
  return async (request) => {
    for (const fastPath of fastPaths) {
      const answer = await fastPath(request);
      if (answer) return answer;
    }
    return undefined;
  };
}

/**
 * The form of a plain POST to `path` (each name once, only names in `allowed`), read without
 * consuming it; undefined when the request is anything else.
 */
export async function readPlainForm(
  request: FastPathRequest, path: string, maxBodyBytes: number, allowed: ReadonlySet<string>,
): Promise<URLSearchParams | undefined> {
  if (request.method !== 'POST' || request.path !== path) return undefined;
  const { req } = request;
  if (!isPlainForm(req)) return undefined;
  for (const header of FEATURE_HEADERS) if (req.headers[header]) return undefined;
  // The one reader every check shares: a declared length or a chunked body, at most maxBodyBytes,
  // parsed once for all of them.
  const params = await peekFormParams(req, maxBodyBytes);
  if (!params) return undefined;
  let count = 0;
  for (const name of params.keys()) {
    if (!allowed.has(name)) return undefined;
    count += 1;
  }
  // Repeated parameters are the provider's to refuse.
  const names = new Set(params.keys());
  if (names.size !== count) return undefined;
  return params;
}

/** The grant types the provider is shown for a client (client-adapter.ts). */
function grantTypesOf(client: ClientEntry): string[] {
  const stored = (client.metadata as { grant_types?: unknown }).grant_types;
  const types = Array.isArray(stored) ? stored as string[] : ['authorization_code'];
  // An exchange permission implies the token-exchange grant type.
  return client.exchange.size ? [...types, TOKEN_EXCHANGE_GRANT] : types;
}

/**
 * The client, when it is enabled, plain, and the secret is one of its live ones, or for a
 * federated client the proof of the assertion verified for it in this very request; and it may
 * use `grantType`.
 */
export function plainClient(
  client: ClientEntry | undefined, caller: Caller, now: number, req: object, grantType: 'client_credentials' | typeof TOKEN_EXCHANGE_GRANT,
): client is ClientEntry {
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
  if (!grantTypesOf(client).includes(grantType)) return false;
  if (metadata.tls_client_certificate_bound_access_tokens || metadata.dpop_bound_access_tokens) return false;
  if (metadata.client_secret_expires_at !== undefined && metadata.client_secret_expires_at !== 0) return false;
  // As compareWithFederatedProof decides: a verified request's proof, and only for its client.
  const proof = federatedProofHolds(req, client.clientId, caller.secret);
  if (proof !== undefined || federated) return proof === true;
  const live = client.secrets.filter((s) => s.expiresAt === null || s.expiresAt > now).map((s) => s.hash);
  return secretMatchesAny(caller.secret, live);
}
