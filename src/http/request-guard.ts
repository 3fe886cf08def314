// The first look at every request's input, before anything else reads it. Refused, each with the
// endpoint's usual 4xx and never a 500:
// - NUL bytes and invalid UTF-8 (RFC 3629) anywhere a value is taken from: the path, the query,
//   a form or JSON body, the headers values are derived from (Basic credentials once decoded,
//   Bearer and DPoP tokens, X-Forwarded-*, the client certificate header), and the header and
//   claims of any JWT among them. Postgres refuses NUL in text and \u0000 or a lone surrogate in
//   jsonb, so such a value would otherwise fail deep inside, as a server error.
// - protocol parameters longer than their limit (src/domain/parameter-limits.ts): an authorization
//   request is stored with its interaction, so an unbounded `state` is an unbounded row.
import type Koa from 'koa';
import { findOverlongParameter } from '../domain/parameter-limits.ts';
import { peekRequestBody, TOO_LARGE } from '../platform/peek-body.ts';
import { decodeCleanUtf8, decodeHeaderValue, decodePercent, isCleanJson } from '../domain/text.ts';

export type Params = [string, string][];

/** `a=1&b=2` (query strings and forms), decoded; undefined when any part is not clean text. */
export function parseParams(text: string): Params | undefined {
  const params: Params = [];
  for (const part of text.split('&')) {
    if (!part) continue;
    const at = part.indexOf('=');
    const name = decodePercent(at < 0 ? part : part.slice(0, at), true);
    const value = decodePercent(at < 0 ? '' : part.slice(at + 1), true);
    if (name === undefined || value === undefined) return undefined;
    params.push([name, value]);
  }
  return params;
}

const COMPACT_JOSE = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*){2,4}$/;
/**
 * JSON text of printable ASCII (and JSON's whitespace) without a backslash: valid UTF-8 with no
 * NUL, and no escape that could make a NUL or a lone surrogate, so every string it holds is clean.
 */
const PLAIN_JSON_TEXT = /^[\t\n\r\x20-\x5b\x5d-\x7e]*$/;

/**
 * A value's embedded JSON is clean: a JWT's header and claims (they reach the database as a
 * DPoP proof's or an assertion's jti, say), or a JSON parameter such as `claims`.
 */
export function hasCleanContent(value: string): boolean {
  if (value.startsWith('{') || value.startsWith('[')) {
    try {
      return isCleanJson(JSON.parse(value));
    } catch {
      return true; // not JSON: the endpoint says what is wrong with it
    }
  }
  if (!COMPACT_JOSE.test(value)) return true;
  // The protected header and the claims (of a JWE: its header; the next part is binary).
  for (const segment of value.split('.').slice(0, 2)) {
    const bytes = Buffer.from(segment, 'base64url');
    if (bytes[0] !== 0x7b) continue; // not JSON
    if (PLAIN_JSON_TEXT.test(bytes.toString('latin1'))) continue; // clean without a parse
    const text = decodeCleanUtf8(bytes);
    if (text === undefined) return false;
    try {
      if (!isCleanJson(JSON.parse(text))) return false;
    } catch {
      // Not JSON after all: the endpoint refuses it as it would.
    }
  }
  return true;
}

/** Headers that carry a JWT: their header and claims must be clean too. */
const TOKEN_HEADERS = ['dpop', 'oauth-client-attestation', 'oauth-client-attestation-pop'];
/** Headers whose values Postern or the provider reads (the rest are only passed along). */
const READ_HEADERS = ['host', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'forwarded', ...TOKEN_HEADERS];

/** A request header by its lower-case name, '' when absent (as Koa's ctx.get). */
export type HeaderOf = (name: string) => string;

/** What is wrong with the headers values are taken from; undefined when nothing is. */
export function findUncleanHeader(get: HeaderOf, certificateHeader?: string): string | undefined {
  for (const name of READ_HEADERS) {
    const value = get(name);
    if (!value) continue;
    if (decodeHeaderValue(value) === undefined) return `the ${name} header is not UTF-8 text`;
    if (TOKEN_HEADERS.includes(name) && !hasCleanContent(value)) return `the ${name} header holds a NUL byte or invalid text`;
  }
  if (certificateHeader) {
    const value = get(certificateHeader);
    // A proxy sends the certificate as PEM, URL-encoded PEM or base64 DER (docs/sender-constrained-tokens.md).
    if (value && (decodeHeaderValue(value) === undefined || decodePercent(value, false) === undefined)) {
      return `the ${certificateHeader} header is not a certificate`;
    }
  }
  const authorization = get('authorization');
  if (!authorization) return undefined;
  if (decodeHeaderValue(authorization) === undefined) return 'the Authorization header is not UTF-8 text';
  const [scheme, credentials = ''] = authorization.split(' ');
  if (scheme?.toLowerCase() === 'basic') {
    // RFC 6749 §2.3.1: the id and secret are form-encoded, then base64.
    const decoded = decodeCleanUtf8(Buffer.from(credentials, 'base64'));
    if (decoded === undefined || decoded.split(':').some((part) => decodePercent(part, true) === undefined)) {
      return 'the Basic credentials are not UTF-8 text';
    }
  } else if (!hasCleanContent(credentials)) {
    return 'the Authorization token holds a NUL byte or invalid text';
  }
  return undefined;
}

/** What is wrong with the path or query; undefined when nothing is. Collects the query's params. */
export function findUncleanUrl(ctx: Koa.Context, params?: Params): string | undefined {
  if (decodePercent(ctx.path, false) === undefined) return 'the path holds a NUL byte or is not UTF-8';
  const query = parseParams(ctx.querystring);
  if (!query || query.some(([, value]) => !hasCleanContent(value))) return 'the query holds a NUL byte or is not UTF-8';
  params?.push(...query);
  return undefined;
}

export interface RequestGuardDeps {
  issuerPath: string;
  maxBodyBytes: number;
  /** TLS_CLIENT_CERT_HEADER, when a proxy forwards client certificates. */
  certificateHeader?: string;
  /** Answers a browser page's refusal with the error page (`status` 400 or 413). */
  refusePage(ctx: Koa.Context, status: number, message: string): void;
}

type Problem = { status: number; message: string };

/** Reads, checks and parses a form or JSON body; adds a form's params. */
async function findUncleanBody(ctx: Koa.Context, deps: RequestGuardDeps, params: Params): Promise<Problem | undefined> {
  const form = ctx.is('application/x-www-form-urlencoded');
  const json = ctx.is('application/json', '+json');
  if (!form && !json) return undefined;
  // bodyLimit has refused declared lengths over the limit; without one, the body is chunked.
  const body = await peekRequestBody(ctx.req, deps.maxBodyBytes);
  if (body === TOO_LARGE) {
    ctx.set('Connection', 'close');
    return { status: 413, message: `request body exceeds ${deps.maxBodyBytes} bytes` };
  }
  if (!body?.length) return undefined;
  if (json) {
    const text = decodeCleanUtf8(body);
    if (text === undefined) return { status: 400, message: 'the body holds a NUL byte or is not UTF-8' };
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return undefined; // the endpoint answers malformed JSON itself
    }
    return isCleanJson(parsed) ? undefined : { status: 400, message: 'a string in the body holds a NUL (\\u0000) or a lone surrogate' };
  }
  const message = findUncleanForm(body, params);
  return message === undefined ? undefined : { status: 400, message };
}

/** What is wrong with a form body; undefined when nothing is. Adds its params. */
export function findUncleanForm(body: Buffer, params: Params): string | undefined {
  const text = decodeCleanUtf8(body);
  const fields = text === undefined ? undefined : parseParams(text);
  if (!fields || fields.some(([, value]) => !hasCleanContent(value))) return 'the body holds a NUL byte or is not UTF-8';
  params.push(...fields);
  return undefined;
}

/** The public listener's guard (the admin API has its own, in its own error format). */
export function requestGuard(deps: RequestGuardDeps): Koa.Middleware {
  const pages = [`${deps.issuerPath}/auth`, `${deps.issuerPath}/session/end`, `${deps.issuerPath}/interaction`];
  const isPage = (path: string) => pages.some((page) => path === page || path.startsWith(`${page}/`));
  return async (ctx, next) => {
    const params: Params = [];
    let problem: Problem | undefined;
    const unclean = findUncleanUrl(ctx, params) ?? findUncleanHeader((name) => ctx.get(name), deps.certificateHeader);
    if (unclean) problem = { status: 400, message: unclean };
    problem ??= await findUncleanBody(ctx, deps, params);
    if (!problem) {
      const overlong = findOverlongParameter(params);
      if (overlong) problem = { status: 400, message: `${overlong.name} must be at most ${overlong.limit} characters` };
    }
    if (!problem) return next();
    // A browser page gets the error page, never a redirect: the redirect_uri is not checked yet.
    if (isPage(ctx.path)) return deps.refusePage(ctx, problem.status, problem.message);
    ctx.status = problem.status;
    ctx.set('Cache-Control', 'no-store');
    // RFC 6749 §5.2: a malformed request is invalid_request.
    ctx.body = { error: 'invalid_request', error_description: problem.message };
    return undefined;
  };
}
