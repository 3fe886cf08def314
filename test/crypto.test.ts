// Identifiers and client secrets.
import { describe, expect, it } from 'vitest';
import { generateClientSecret, sha256Hex, isRandomId, randomId, secretMatchesAny } from '../src/domain/crypto.ts';

describe('identifiers and secrets', () => {
  it('never starts an identifier with "-" or "_", which a command line would misread', () => {
    for (let i = 0; i < 5000; i += 1) expect(randomId()).toMatch(/^[A-Za-z0-9][A-Za-z0-9_-]{21}$/);
    expect(randomId('api_')).toMatch(/^api_[A-Za-z0-9]/);
  });

  it('tells identifiers Postern could have generated from anything else', () => {
    for (let i = 0; i < 1000; i += 1) expect(isRandomId(randomId())).toBe(true);
    for (const value of ['', 'short', 'x'.repeat(23), `-${'a'.repeat(21)}`, `${'a'.repeat(21)}\u0000`, `${'a'.repeat(21)}=`, 42, undefined]) {
      expect(isRandomId(value)).toBe(false);
    }
  });

  it('makes 256-bit secrets and matches them only against their own hash', () => {
    const secret = generateClientSecret();
    expect(Buffer.from(secret, 'base64url')).toHaveLength(32);
    const other = generateClientSecret();
    expect(secretMatchesAny(secret, [sha256Hex(other), sha256Hex(secret)])).toBe(true);
    expect(secretMatchesAny(secret, [sha256Hex(other)])).toBe(false);
    expect(secretMatchesAny(secret, [])).toBe(false);
  });
});
