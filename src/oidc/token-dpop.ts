// DPoP proofs (RFC 9449 §4.3) sent to the token endpoint with a grant Postern registers itself
// (token exchange). The provider checks the proofs of its own grants with a helper it hands only
// to them (a registered grant gets the request and nothing else, and Postern does not reach into
// the provider's internals), so the same checks are made here, in the same order, with the same
// answers: signature by the public key in the header with an algorithm the provider advertises,
// iat, jti, htm, htu, the nonce, then each jti once. What is shared with the provider's own
// grants is shared for real: the nonces (domain/dpop-nonces.ts, the provider's derivation and
// secret) and the replay record (the provider's ReplayDetection model, keyed as it keys it), so a
// proof spent on client credentials cannot be spent again on an exchange, nor the reverse.
import { calculateJwkThumbprint, EmbeddedJWK, jwtVerify, type JWK } from 'jose';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type Provider from 'oidc-provider';
import { DpopNonces, NONCE_WINDOW_SECONDS } from '../domain/dpop-nonces.ts';
import { REFUSAL_DETAILS } from './provider-texts.ts';

/**
 * The algorithms a proof may be signed with at the token endpoint: oidc-provider's defaults,
 * given to it explicitly (configuration.ts) so that both check the same list and discovery
 * advertises it (`dpop_signing_alg_values_supported`).
 */
export const TOKEN_DPOP_ALGS = ['ES256', 'Ed25519', 'EdDSA'];

/**
 * The provider's descriptions of each refusal (lib/helpers/validate_dpop.js of the version
 * provider-texts.ts names), so that a client is told the same whichever grant it uses;
 * test/token-exchange-binding.test.ts checks them against the installed version.
 */
export const PROOF_REFUSALS = {
  notSigned: 'invalid DPoP key binding',
  iat: 'DPoP proof must have a iat number property',
  jti: 'DPoP proof must have a jti string property',
  nonceType: 'DPoP proof nonce must be a string',
  notRecent: 'DPoP proof iat is not recent enough, use a DPoP nonce instead',
  htm: 'DPoP proof htm mismatch',
  htu: 'DPoP proof htu mismatch',
  nonceRequired: 'nonce is required in the DPoP proof',
  nonceInvalid: 'invalid nonce in DPoP proof',
} as const;

/** A checked proof: the thumbprint of its key (what `cnf.jkt` names), its jti and iat. */
export interface TokenProof { thumbprint: string; jti: string; iat: number }

export interface TokenDpopOptions {
  /** The provider's `features.dPoP.nonceSecret` (32 bytes). */
  nonceSecret: Uint8Array;
  /** DPOP_REQUIRE_NONCE. */
  requireNonce: boolean;
}

const epochTime = () => Math.floor(Date.now() / 1000);

/** `htu` as compared: query and fragment dropped (RFC 9449 §4.3 item 9); undefined if no URL. */
function withoutQuery(htu: unknown): string | undefined {
  if (typeof htu !== 'string') return undefined;
  const url = URL.parse(htu);
  if (!url) return undefined;
  url.hash = '';
  url.search = '';
  return url.href;
}

export class TokenDpop {
  readonly #provider: Provider;
  readonly #nonces: DpopNonces;
  readonly #requireNonce: boolean;

  constructor(provider: Provider, options: TokenDpopOptions) {
    this.#provider = provider;
    this.#nonces = new DpopNonces(options.nonceSecret);
    this.#requireNonce = options.requireNonce;
  }

  /**
   * The request's proof, checked, or undefined when it has none. Refuses a bad proof with
   * invalid_dpop_proof, and one without the nonce it needs with use_dpop_nonce and a fresh nonce
   * in the DPoP-Nonce header (RFC 9449 §8). Its jti is not spent yet: `bind` spends it.
   */
  async check(ctx: KoaContextWithOIDC): Promise<TokenProof | undefined> {
    const proof = ctx.get('DPoP');
    if (!proof) return undefined;
    const now = epochTime();
    const nextNonce = this.#nonces.next(now);
    const askForNonce = (description: string) => {
      ctx.set('dpop-nonce', nextNonce);
      return new errors.UseDpopNonce(description);
    };
    let payload: Record<string, unknown>;
    let jwk: JWK | undefined;
    try {
      ({ payload, protectedHeader: { jwk } } = await jwtVerify(proof, EmbeddedJWK, { algorithms: TOKEN_DPOP_ALGS, typ: 'dpop+jwt' }));
    } catch {
      // Not a JWT, not signed by the public key in its header, another algorithm or type.
      throw new errors.InvalidDpopProof(PROOF_REFUSALS.notSigned);
    }
    if (typeof payload.iat !== 'number' || !payload.iat) throw new errors.InvalidDpopProof(PROOF_REFUSALS.iat);
    if (typeof payload.jti !== 'string' || !payload.jti) throw new errors.InvalidDpopProof(PROOF_REFUSALS.jti);
    const { nonce } = payload;
    if (nonce !== undefined && typeof nonce !== 'string') throw new errors.InvalidDpopProof(PROOF_REFUSALS.nonceType);
    // RFC 9449 §11.1: without a nonce, the proof's own iat says how fresh it is.
    if (!nonce && Math.abs(now - payload.iat) > NONCE_WINDOW_SECONDS) {
      throw askForNonce(PROOF_REFUSALS.notRecent);
    }
    if (payload.htm !== ctx.method) throw new errors.InvalidDpopProof(PROOF_REFUSALS.htm);
    const htu = withoutQuery(payload.htu);
    if (!htu || htu !== new URL(ctx.oidc.urlFor(ctx.oidc.route)).href) throw new errors.InvalidDpopProof(PROOF_REFUSALS.htu);

    if (!nonce && this.#requireNonce) throw askForNonce(PROOF_REFUSALS.nonceRequired);
    if (nonce && !this.#nonces.check(nonce, now)) throw askForNonce(PROOF_REFUSALS.nonceInvalid);
    if (nonce !== nextNonce) ctx.set('dpop-nonce', nextNonce);
    return { thumbprint: await calculateJwkThumbprint(jwk!), jti: payload.jti, iat: payload.iat };
  }

  /**
   * Binds `token` to the proof's key (`cnf.jkt`, RFC 9449 §6), spending the proof's jti first
   * (RFC 9449 §11.1): a proof seen before is refused as the provider refuses it for its own
   * grants (invalid_dpop_proof, token-errors.ts). A token already bound to a certificate cannot
   * be bound to a key too (the provider's invalid_request).
   */
  async bind(ctx: KoaContextWithOIDC, proof: TokenProof | undefined, token: { setThumbprint(kind: 'jkt', value: string): void }): Promise<void> {
    if (!proof) return;
    const unique = await this.#provider.ReplayDetection.unique(ctx.oidc.client!.clientId, proof.jti, epochTime() + NONCE_WINDOW_SECONDS);
    if (!unique) throw new errors.InvalidGrant(REFUSAL_DETAILS.dpopReplay);
    token.setThumbprint('jkt', proof.thumbprint);
  }
}
