// What the fast paths (introspection-fast-path.ts, client-credentials-fast-path.ts) take of a
// request before answering it themselves: a small url-encoded form with no header that brings a
// feature into play, each parameter at most once, and a caller authenticating with its client
// secret in one of the two plain ways. Anything else is left to the provider, which knows every
// rule; so is every failure.
import type Koa from 'koa';
import { peekRequestBody } from '../platform/peek-body.ts';

export interface Caller { clientId: string; secret: string; method: 'client_secret_basic' | 'client_secret_post' }

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

/**
 * The form of a plain POST to `path` (each name once, only names in `allowed`), read without
 * consuming it; undefined when the request is anything else.
 */
export async function readPlainForm(
  ctx: Koa.Context, path: string, maxBodyBytes: number, allowed: ReadonlySet<string>,
): Promise<URLSearchParams | undefined> {
  if (ctx.method !== 'POST' || ctx.path !== path) return undefined;
  if (!ctx.is('application/x-www-form-urlencoded')) return undefined;
  for (const header of FEATURE_HEADERS) if (ctx.get(header)) return undefined;
  // The one reader every check shares: a declared length or a chunked body, at most maxBodyBytes.
  const body = await peekRequestBody(ctx.req, maxBodyBytes);
  if (!(body instanceof Buffer) || !body.length) return undefined;
  const params = new URLSearchParams(body.toString('utf8'));
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
