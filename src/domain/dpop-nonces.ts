// DPoP nonces of the token endpoint (RFC 9449 §8): stateless values derived from a secret every
// process shares and the current minute, so a nonce one process hands out is accepted by every
// other and by every grant. The derivation is oidc-provider's own (its ServerChallenge with the
// info "DPoP", 60-second steps, five steps accepted): the grants Postern registers with the
// provider (token exchange) check the nonces the provider issues for its grants, and the other
// way round. test/token-exchange-binding.test.ts checks both directions against the installed
// version. Pure computation.
import { hkdfSync, timingSafeEqual } from 'node:crypto';

const STEP_SECONDS = 60;
/** How far from its iat a proof without a nonce may be, either way, and how long a nonce lasts. */
export const NONCE_WINDOW_SECONDS = STEP_SECONDS * 5;
const INFO = 'DPoP';

export class DpopNonces {
  readonly #secret: Uint8Array;

  constructor(secret: Uint8Array) {
    if (secret.byteLength !== 32) throw new TypeError('the DPoP nonce secret must be 32 bytes');
    this.#secret = Uint8Array.prototype.slice.call(secret);
  }

  #at(step: number): string {
    const salt = Buffer.alloc(8);
    salt.writeBigUInt64BE(BigInt(step));
    return Buffer.from(hkdfSync('sha256', this.#secret, salt, INFO, 32)).toString('base64url');
  }

  /** The nonce to hand out now: the next minute's, so that it stays good for the longest. */
  next(nowSeconds: number): string {
    return this.#at(Math.floor(nowSeconds / STEP_SECONDS) + 1);
  }

  /** Whether `nonce` is one of the two minutes before now, now, or the two after. */
  check(nonce: string, nowSeconds: number): boolean {
    const step = Math.floor(nowSeconds / STEP_SECONDS);
    const presented = Buffer.from(nonce);
    let matched = false;
    for (let each = step - 2; each <= step + 2; each += 1) {
      const expected = Buffer.from(this.#at(each));
      // Compared in constant time; every candidate is looked at whatever the outcome.
      if (expected.length === presented.length && timingSafeEqual(expected, presented)) matched = true;
    }
    return matched;
  }
}
