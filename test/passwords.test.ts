// argon2id parameters, rehash on login, the decoy for unknown users, and the password policy.
import argon2 from 'argon2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARGON2_PARAMETERS, hashPassword, passwordNeedsRehash, verifyPassword } from '../src/domain/passwords.ts';
import { checkPassword } from '../src/services/password-policy.ts';
import { authenticateUser, createUser } from '../src/services/users.ts';
import { findUserByUsername, setPasswordHash } from '../src/store/users.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

let tdb: TestDatabase;
beforeAll(async () => { tdb = await createTestDatabase(); }, 60_000);
afterAll(async () => { await tdb?.drop(); });

describe('password hashes', () => {
  it('are argon2id with the parameters of src/domain/passwords.ts', async () => {
    const hash = await hashPassword('tidal-orchard-lamp-5');
    expect(hash).toMatch(/^\$argon2id\$v=19\$m=19456,p=1,t=2\$/);
    expect(await verifyPassword(hash, 'tidal-orchard-lamp-5')).toBe(true);
    expect(await verifyPassword(hash, 'tidal-orchard-lamp-6')).toBe(false);
    expect(await verifyPassword('not a hash', 'x')).toBe(false);
  });

  it('are redone with the current parameters at the next successful login', async () => {
    const db = tdb.database.db;
    await createUser(db, { username: 'rehash-me', password: 'tidal-orchard-lamp-5' }, NO_AUDIT);
    const user = (await findUserByUsername(db, 'rehash-me'))!;
    const weaker = await argon2.hash('tidal-orchard-lamp-5', { ...ARGON2_PARAMETERS, timeCost: 1, memoryCost: 8192 });
    await setPasswordHash(db, user.id, weaker, false);
    expect(passwordNeedsRehash(weaker)).toBe(true);

    expect(await authenticateUser(db, 'rehash-me', 'wrong-password-here')).toBeUndefined();
    expect((await findUserByUsername(db, 'rehash-me'))!.password_hash).toBe(weaker); // not on a failure
    expect((await authenticateUser(db, 'REHASH-ME', 'tidal-orchard-lamp-5'))?.id).toBe(user.id);
    const after = (await findUserByUsername(db, 'rehash-me'))!.password_hash;
    expect(after).not.toBe(weaker);
    expect(passwordNeedsRehash(after)).toBe(false);
  });

  it('are checked against a decoy for unknown and disabled users, which always fails', async () => {
    const db = tdb.database.db;
    const started = performance.now();
    expect(await authenticateUser(db, 'nobody-at-all', 'tidal-orchard-lamp-5')).toBeUndefined();
    // A real argon2id verification happened (tens of milliseconds), not an early return.
    expect(performance.now() - started).toBeGreaterThan(5);
  });
});

describe('the password policy', () => {
  const person = { username: 'alice', email: 'alice@example.com' };
  it.each([
    ['short-pass', 'at least 12'],
    ['x'.repeat(257), 'at most 256'],
    ['password1234', 'commonly used'],
    ['Password2024!', 'commonly used'],
    ['monkeymonkeymonkey', 'commonly used'],
    ['alice-in-wonderland', 'username'],
    ['my-alice@example.com', 'username or email'],
  ])('refuses %s', (password, reason) => {
    expect(() => checkPassword(password, person)).toThrow(reason);
  });

  it.each(['tidal-orchard-lamp-5', 'correct horse battery staple', 'ünïcode-pässwörd-ok'])('accepts %s', (password) => {
    expect(() => checkPassword(password, person)).not.toThrow();
  });
});
