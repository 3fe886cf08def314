// Federated client authentication (docs/workload-identity.md): a client proves itself with its
// platform's token (a Kubernetes service-account token, a SPIFFE JWT-SVID, a GitHub Actions
// token) sent as a JWT client assertion (RFC 7523 §2.2). oidc-provider takes an assertion's `sub`
// for the client_id and checks it against keys the client registered; a platform token has the
// platform's `sub` and keys. So the assertion is verified here, in front of the provider
// (services/trusted-jwt.ts): the issuer's signature, the lifetime, the audience, a single-use jti,
// and the client bound to (issuer, sub, claims). A verified request then reaches the provider
// as that client with a per-process proof only this process's compareClientSecret accepts for
// this very request; any failure is answered 401 invalid_client here (RFC 6749 §5.2).
import Provider from 'oidc-provider';
import { randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import type { AuditSink } from '../domain/audit-events.ts';
import { FEDERATED_AUTH_METHOD, JWT_BEARER_ASSERTION_TYPE } from '../domain/trusted-issuers.ts';
import { detach } from '../domain/text.ts';
import { isPlainForm, peekFormParams, replacePeekedBody } from '../platform/peek-body.ts';
import { TrustedJwtError, type TrustedJwtVerifier } from '../services/trusted-jwt.ts';
import type { FastPath, FastPathAnswer } from './fast-path-request.ts';

/** Requests whose assertion was verified here, and the client it proved. */
const verifiedRequests = new WeakMap<object, string>();
/** What stands for the secret of a verified request: random per process, never sent anywhere. */
const PROOF = randomBytes(32).toString('base64url');

/**
 * Whether an assertion is a platform's token rather than a private_key_jwt assertion: the
 * client's own assertion has iss = sub = its client_id (RFC 7523 §3 items 1-2).
 */
export function isFederatedAssertion(assertion: string): boolean {
  try {
    const claims = decodeJwt(assertion);
    return claims.iss === undefined || claims.iss !== claims.sub;
  } catch {
    return false;
  }
}


export interface FederatedClientAuthOptions {
  verifier: TrustedJwtVerifier;
  /** Endpoints where clients authenticate (token, introspection, revocation), full paths. */
  paths: ReadonlySet<string>;
  maxBodyBytes: number;
  audit: AuditSink;
}

/**
 * In front of the provider (see the top of this file): answers a refusal; a verified request goes
 * on (undefined) with its form rewritten, as does every request it leaves to the provider.
 */
export function federatedClientAuth(options: FederatedClientAuthOptions): FastPath {
  const { verifier, paths, maxBodyBytes, audit } = options;
  return async (request) => {
    const { req } = request;
    if (request.method !== 'POST' || !paths.has(request.path) || !isPlainForm(req)) return undefined;
    // However the body is framed: with a length, or chunked (read up to the cap, as every check
    // that reads a body does; a larger one is the body limit's to refuse).
    const params = await peekFormParams(req, maxBodyBytes);
    if (!params) return undefined;
    const assertions = params.getAll('client_assertion');
    // Anything else (duplicates, other mechanisms besides) is the provider's to refuse.
    if (assertions.length !== 1 || params.getAll('client_assertion_type').length !== 1
      || params.get('client_assertion_type') !== JWT_BEARER_ASSERTION_TYPE || request.authorization
      || params.has('client_secret') || params.getAll('client_id').length > 1 || !isFederatedAssertion(assertions[0]!)) {
      return undefined;
    }
    const failed = (description: string, reason: string): FastPathAnswer => {
      audit.record({
        type: 'token.failure', actor: { type: 'anonymous' }, outcome: 'failure', sourceAddress: request.ip,
        requestId: (request.state.requestId as string | undefined) ?? null,
        details: { error: 'invalid_client', errorDescription: description, reason, status: 401, method: FEDERATED_AUTH_METHOD },
      });
      return { status: 401, body: { error: 'invalid_client', error_description: description }, clientId: undefined };
    };
    let clientId: string | null;
    try {
      const verified = await verifier.verifyTrustedJwt(assertions[0]!);
      clientId = verified.clientId;
      if (clientId === null) return failed(`client assertion: ${verified.unbound ?? 'no client is bound to it'}`, 'unbound');
    } catch (error) {
      if (error instanceof TrustedJwtError) return failed(`client assertion: ${error.message}`, error.reason);
      throw error;
    }
    // RFC 7521 §4.2: client_id may be left out; when given, it names the same client.
    const named = params.get('client_id');
    if (named !== null && named !== clientId) return failed('client_id does not name the client the assertion is bound to', 'client_id_mismatch');
    // A copy: the parsed form is shared with every other reader of this request.
    const rewritten = new URLSearchParams(params);
    rewritten.delete('client_assertion');
    rewritten.delete('client_assertion_type');
    rewritten.set('client_id', clientId);
    rewritten.set('client_secret', PROOF);
    if (!(await replacePeekedBody(req, Buffer.from(rewritten.toString(), 'utf8')))) {
      return {
        status: 400,
        body: { error: 'invalid_request', error_description: 'the request body could not be read whole: send it again, with a Content-Length' },
        clientId: undefined,
      };
    }
    verifiedRequests.set(req, detach(clientId));
    return undefined;
  };
}

/**
 * The provider sees a federated client as client_secret_post; the only secret it accepts is the
 * proof of a request verified above, for that request and client. Other clients' secrets are
 * checked by `compare` (their stored hashes).
 */
export function compareWithFederatedProof(
  compare: (clientId: string, presented: string) => Promise<boolean>,
): (this: { clientId: string }, presented: string) => Promise<boolean> {
  return async function compareClientSecret(this: { clientId: string }, presented: string) {
    const req = Provider.ctx?.req;
    const proved = req ? verifiedRequests.get(req) : undefined;
    if (proved !== undefined) return proved === this.clientId && presented === PROOF;
    if (presented === PROOF) return false;
    return compare(this.clientId, presented);
  };
}

/**
 * For the fast paths, which answer in front of the provider: whether this request's secret is the
 * proof of an assertion verified above for `clientId`; undefined when no assertion was verified
 * for this request (the secret is then the caller's own, and the proof is never one).
 */
export function federatedProofHolds(req: object, clientId: string, presented: string): boolean | undefined {
  const proved = verifiedRequests.get(req);
  if (proved === undefined) return presented === PROOF ? false : undefined;
  return proved === clientId && presented === PROOF;
}

/** What the provider is shown of a federated client's auth method (see the top of this file). */
export function providerAuthMethod(stored: unknown): unknown {
  return stored === FEDERATED_AUTH_METHOD ? 'client_secret_post' : stored;
}
