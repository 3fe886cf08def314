// The tokens a token exchange (RFC 8693) takes: the subject token and the optional actor token,
// read as one shape whatever their format. Postern's own access tokens only, JWT or opaque, and
// only while they are active: the same checks as introspection (signature, expiry, revocation,
// the person's grant, the clients and tokens of an earlier exchange).
import type Provider from 'oidc-provider';
import { grantDigest } from '../domain/crypto.ts';
import { isActClaim, isLineage, opaqueTokenKey, TOKEN_TYPES, type ActClaim, type Lineage } from '../domain/token-exchange.ts';
import { TrustedJwtError, type TrustedJwtVerifier } from '../services/trusted-jwt.ts';
import type { Directory } from './directory.ts';
import type { AccessTokenClaims, TokenPolicy } from './token-policy.ts';

/** An active token presented to the exchange, whatever its format. */
export interface PresentedToken {
  /** Its revocation-list key: a JWT's jti, a digest of an opaque token. */
  key: string;
  /** The client it was issued to. */
  clientId: string;
  /** Whom it is about: a person's id, or a client's own id. */
  sub: string;
  aud: string[];
  exp: number;
  iat: number;
  act?: ActClaim;
  mayAct?: unknown;
  lineage?: Lineage;
  /** Digest of the person's grant it was issued from. */
  gid?: string;
}

function audiences(aud: unknown): string[] {
  if (typeof aud === 'string') return [aud];
  return Array.isArray(aud) ? aud.filter((value): value is string => typeof value === 'string') : [];
}

/**
 * Three dot-separated parts: read as a JWT access token of Postern's, whose verification checks
 * the rest (typ at+jwt, RFC 9068 §2.1, signature, issuer); an opaque token of Postern's has no
 * dot. Structure only, as the decision endpoint tells them apart (gate-tokens.ts): decoding the
 * header here cost every exchange, though a subject token seen before is answered from the
 * verified tokens TokenPolicy keeps.
 */
export function looksLikeJwt(value: string): boolean {
  const first = value.indexOf('.');
  const second = first < 0 ? -1 : value.indexOf('.', first + 1);
  return second > 0 && value.indexOf('.', second + 1) < 0;
}

/** A well-formed act claim, or undefined; malformed ones make the token unusable (null). */
function readAct(value: unknown): ActClaim | undefined | null {
  if (value === undefined) return undefined;
  return isActClaim(value) ? value : null;
}

function fromJwt(claims: AccessTokenClaims): PresentedToken | undefined {
  const act = readAct(claims.act);
  if (act === null || (claims.lin !== undefined && !isLineage(claims.lin))) return undefined;
  if (typeof claims.sub !== 'string' || typeof claims.exp !== 'number' || typeof claims.iat !== 'number') return undefined;
  return {
    key: claims.jti!,
    clientId: claims.client_id!,
    sub: claims.sub,
    aud: audiences(claims.aud),
    exp: claims.exp,
    iat: claims.iat,
    act,
    mayAct: claims.may_act,
    lineage: claims.lin as Lineage | undefined,
    gid: typeof claims.gid === 'string' ? claims.gid : undefined,
  };
}

interface StoredToken {
  jti: string; clientId: string; accountId?: string; grantId?: string; aud?: unknown; exp: number; iat: number;
  isValid: boolean; extra?: { act?: unknown; lin?: unknown; gid?: unknown; may_act?: unknown };
}

async function findOpaque(provider: Provider, value: string): Promise<StoredToken | undefined> {
  // An opaque token is found by its keyed hash; a made-up value finds nothing and stores nothing.
  const token = (await provider.AccessToken.find(value)) ?? (await provider.ClientCredentials.find(value));
  return token as unknown as StoredToken | undefined;
}

async function fromOpaque(
  provider: Provider, tokenPolicy: TokenPolicy, directory: Directory, value: string,
): Promise<PresentedToken | undefined> {
  const token = await findOpaque(provider, value);
  if (!token?.isValid || !token.clientId) return undefined;
  if (token.grantId) {
    // As introspection does: a person's token is good only while its grant is.
    const grant = await provider.Grant.find(token.grantId, { ignoreExpiration: true });
    if (!grant || grant.isExpired || grant.clientId !== token.clientId || grant.accountId !== token.accountId) return undefined;
  }
  const owner = await directory.client(token.clientId);
  if (!owner?.enabled) return undefined;
  const extra = token.extra ?? {};
  const gid = token.grantId ? grantDigest(token.grantId) : typeof extra.gid === 'string' ? extra.gid : undefined;
  // The client's cut-off, the grant, the lineage: mayIntrospect checks them all for opaque tokens.
  if (!(await tokenPolicy.mayIntrospect(token.clientId, token.clientId, token.aud, token.iat, { lin: extra.lin, gid }))) return undefined;
  const act = readAct(extra.act);
  if (act === null) return undefined;
  return {
    key: opaqueTokenKey(value),
    clientId: token.clientId,
    sub: token.accountId ?? token.clientId,
    aud: audiences(token.aud),
    exp: token.exp,
    iat: token.iat,
    act,
    mayAct: extra.may_act,
    lineage: isLineage(extra.lin) ? extra.lin : undefined,
    gid,
  };
}

/**
 * A JWT of a trusted external issuer (workload identity, docs/workload-identity.md) whose
 * subject is bound to a client: the subject of the exchange is that client. Its audience must be
 * an API the exchanging client serves. Not single-use: the service received it as a bearer token
 * and may exchange it for several APIs. A string: why it was refused.
 */
async function fromTrustedJwt(verifier: TrustedJwtVerifier, value: string, audiences: string[]): Promise<PresentedToken | string> {
  if (audiences.length === 0) return 'this client serves no API: a trusted JWT must be for one of them';
  try {
    const { claims, clientId, unbound } = await verifier.verifyTrustedJwt(value, { audience: audiences, singleUse: false });
    if (!clientId) return `the subject_token's subject is not bound to a client: ${unbound ?? 'none'}`;
    const act = readAct(claims.act);
    if (act === null) return 'the subject_token\'s act claim is malformed';
    return {
      key: '',
      clientId,
      sub: clientId,
      aud: audiences.filter((aud) => audienceList(claims.aud).includes(aud)),
      exp: claims.exp!,
      iat: claims.iat ?? Math.floor(Date.now() / 1000),
      act,
      mayAct: claims.may_act,
    };
  } catch (error) {
    if (error instanceof TrustedJwtError) return `subject_token: ${error.message}`;
    throw error;
  }
}

function audienceList(aud: unknown): string[] {
  return audiences(aud);
}

/**
 * The token if it is an active access token of Postern's of the given type, or a JWT of a trusted
 * issuer bound to a client; undefined (or why, as a string) for anything else (expired, revoked,
 * tampered with, not Postern's, its client disabled). The type is checked by the caller.
 */
export async function readPresentedToken(
  provider: Provider, tokenPolicy: TokenPolicy, directory: Directory, value: string, type: string,
  trusted?: { verifier: TrustedJwtVerifier | undefined; audiences: string[] },
): Promise<PresentedToken | string | undefined> {
  if (type === TOKEN_TYPES.jwt && trusted?.verifier) return fromTrustedJwt(trusted.verifier, value, trusted.audiences);
  if (type !== TOKEN_TYPES.accessToken) return undefined;
  if (looksLikeJwt(value)) {
    const claims = await tokenPolicy.activeJwt(value);
    return claims ? fromJwt(claims) : undefined;
  }
  return fromOpaque(provider, tokenPolicy, directory, value);
}
