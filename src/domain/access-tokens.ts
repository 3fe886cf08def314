// Verifying a JWT access token Postern issued (RFC 9068): the one check of signature, issuer,
// type, algorithm, required claims and time, used by introspection and the admin API
// (oidc/token-policy.ts) and by `postern routes check --token` (services/route-check.ts).
// Revocation, the client's state and current grants are checked by each caller afterwards.
import { jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { ACCESS_TOKEN_ALGS } from './signing-keys.ts';

export interface AccessTokenClaims extends JWTPayload {
  client_id?: string;
  scope?: string;
  roles?: string[];
  /** Digest of the grant a person's token was issued from (src/domain/crypto.ts grantDigest). */
  gid?: string;
  cnf?: { jkt?: string; 'x5t#S256'?: string };
  /** RFC 8693 §4.1: who acts for the subject of an exchanged token. */
  act?: unknown;
  /** RFC 8693 §4.4: who may act for the subject. */
  may_act?: unknown;
  /** An exchanged token's lineage (domain/token-exchange.ts). */
  lin?: unknown;
}

export type VerifiedAccessToken =
  | { claims: AccessTokenClaims; usableNow: true }
  /** Valid, but not before its nbf: not usable yet, and not to be remembered as usable. */
  | { claims: AccessTokenClaims; usableNow: false };

/** The claims of a JWT access token of ours, or undefined when it is not one or has expired. */
export async function verifyAccessTokenJwt(token: string, keys: JWTVerifyGetKey, issuer: string): Promise<VerifiedAccessToken | undefined> {
  let payload: AccessTokenClaims;
  try {
    ({ payload } = await jwtVerify<AccessTokenClaims>(token, keys, {
      issuer,
      typ: 'at+jwt', // RFC 9068 §2.1
      algorithms: [...ACCESS_TOKEN_ALGS],
      requiredClaims: ['jti', 'exp', 'client_id'],
    }));
  } catch {
    return undefined;
  }
  const now = Math.floor(Date.now() / 1000);
  return { claims: payload, usableNow: payload.nbf === undefined || payload.nbf <= now };
}

/** The audiences of a token: aud as a string or an array of strings (RFC 7519 §4.1.3). */
export function tokenAudiences(aud: unknown): string[] {
  if (typeof aud === 'string') return [aud];
  return Array.isArray(aud) ? aud.filter((value): value is string => typeof value === 'string') : [];
}
