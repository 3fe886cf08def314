// Checking a DPoP proof (RFC 9449 §4.3) that comes with a request to a protected resource, as a
// resource server does: here, the request a gateway asks the decision endpoint about. The proof
// must name the ORIGINAL method and URL (not the decision request's), and the access token it
// accompanies (`ath`). Replay of a proof's jti is the caller's to track (it holds the state).
import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, EmbeddedJWK, jwtVerify, type JWK } from 'jose';
import { normalizeGatePath } from './gate-request.ts';

/** Asymmetric algorithms only (RFC 9449 §4.3: not "none", no MAC). */
const PROOF_ALGS = ['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'RS256', 'PS256', 'PS384', 'PS512'];
/** How old, and how far in the future, a proof's iat may be (RFC 9449 §11.1). */
export const PROOF_MAX_AGE_SECONDS = 120;
const PROOF_MAX_SKEW_SECONDS = 10;

export interface CheckedProof {
  /** The JWK SHA-256 thumbprint of the proof's key (RFC 7638), what cnf.jkt names. */
  jkt: string;
  jti: string;
  iat: number;
}

export type ProofResult = CheckedProof | { error: string };

/** `url` without query or fragment, its path normalised: two spellings of one URL compare equal. */
function comparable(url: string): string | undefined {
  const parsed = URL.parse(url);
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) return undefined;
  const normalised = normalizeGatePath(parsed.pathname);
  return 'path' in normalised ? `${parsed.protocol}//${parsed.host}${normalised.path}` : undefined;
}

/**
 * The proof, checked against the original request: its type, algorithm and signature by the key
 * in its header (which must be public), htm, htu (RFC 9449 §4.3 item 9: query and fragment
 * ignored), iat, jti, and ath, the hash of `accessToken` (§4.3 item 12).
 */
export async function checkDpopProof(
  proof: string, request: { method: string; url: string; accessToken: string; now: number },
): Promise<ProofResult> {
  let payload: Record<string, unknown>;
  let jwk: JWK | undefined;
  try {
    const verified = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: PROOF_ALGS });
    payload = verified.payload;
    jwk = verified.protectedHeader.jwk;
  } catch {
    return { error: 'the DPoP proof is not a valid signed dpop+jwt' };
  }
  if (!jwk || 'd' in jwk) return { error: 'the DPoP proof must carry a public key' };
  const { jti, htm, htu, iat, ath } = payload;
  if (typeof jti !== 'string' || !jti || jti.length > 256) return { error: 'the DPoP proof has no jti' };
  if (htm !== request.method) return { error: 'the DPoP proof names another method' };
  const expected = comparable(request.url);
  if (typeof htu !== 'string' || !expected || comparable(htu) !== expected) return { error: 'the DPoP proof names another URL' };
  const now = Math.floor(request.now / 1000);
  if (typeof iat !== 'number' || iat < now - PROOF_MAX_AGE_SECONDS || iat > now + PROOF_MAX_SKEW_SECONDS) {
    return { error: 'the DPoP proof is too old or from the future' };
  }
  const hash = createHash('sha256').update(request.accessToken).digest('base64url');
  if (ath !== hash) return { error: 'the DPoP proof is not for this access token' };
  return { jkt: await calculateJwkThumbprint(jwk), jti, iat };
}
