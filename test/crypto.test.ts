// Identifiers and client secrets.
import { describe, expect, it } from 'vitest';
import { generateClientSecret, hashClientSecret, randomId, secretMatchesAny } from '../src/crypto.ts';

describe('identifiers and secrets', () => {
  it('never starts an identifier with "-" or "_", which a command line would misread', () => {
    for (let i = 0; i < 5000; i += 1) expect(randomId()).toMatch(/^[A-Za-z0-9][A-Za-z0-9_-]{21}$/);
    expect(randomId('api_')).toMatch(/^api_[A-Za-z0-9]/);
  });

  it('makes 256-bit secrets and matches them only against their own hash', () => {
    const secret = generateClientSecret();
    expect(Buffer.from(secret, 'base64url')).toHaveLength(32);
    const other = generateClientSecret();
    expect(secretMatchesAny(secret, [hashClientSecret(other), hashClientSecret(secret)])).toBe(true);
    expect(secretMatchesAny(secret, [hashClientSecret(other)])).toBe(false);
    expect(secretMatchesAny(secret, [])).toBe(false);
  });
});
