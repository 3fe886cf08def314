// LoginProtection directly, on a real database with a clock the test moves: the exact delays,
// the lockout boundaries, which counter wins, and what a success or a prune clears. The same
// rules over HTTP are in login-protection.test.ts.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LoginProtection, type LoginProtectionSettings } from '../src/services/login-protection.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { unique } from './support/fixtures.ts';

let tdb: TestDatabase;
let clock = Date.parse('2026-01-01T00:00:00Z');
const now = () => clock;
const pass = (seconds: number) => { clock += seconds * 1000; };

const SETTINGS: LoginProtectionSettings = { maxFailures: 6, addressMaxFailures: 10, lockoutSeconds: 900, windowSeconds: 600, slowDownAfter: 3 };
const protection = (settings: Partial<LoginProtectionSettings> = {}) => new LoginProtection(tdb.database.db, { ...SETTINGS, ...settings }, now);
const address = () => `192.0.2.${Math.floor(Math.random() * 250)}-${unique('a')}`;

beforeAll(async () => { tdb = await createTestDatabase(); });
afterAll(async () => { await tdb?.drop(); });
beforeEach(async () => { await tdb.database.db.deleteFrom('login_failures').execute(); });

async function fail(p: LoginProtection, username: string, from: string, times: number) {
  let last = { locked: false };
  for (let i = 0; i < times; i += 1) last = await p.recordFailure(username, from);
  return last;
}

describe('the delay of a username', () => {
  it('starts at the slowDownAfter-th failure: 1 s, then doubling, capped at 60 s', async () => {
    const p = protection({ maxFailures: 100, addressMaxFailures: 100 });
    const user = unique('u');
    const from = address();
    await fail(p, user, from, 2);
    expect(await p.check(user, from)).toEqual({ allowed: true });
    await fail(p, user, from, 1); // 3 = slowDownAfter: 2^0 s
    expect(await p.check(user, from)).toEqual({ allowed: false, locked: false, retryAfterSeconds: 1 });
    pass(0.5);
    expect(await p.check(user, from)).toEqual({ allowed: false, locked: false, retryAfterSeconds: 1 });
    pass(0.5);
    expect(await p.check(user, from)).toEqual({ allowed: true });
    await fail(p, user, from, 1); // 4: 2 s
    expect(await p.check(user, from)).toEqual({ allowed: false, locked: false, retryAfterSeconds: 2 });
    pass(1.2);
    expect(await p.check(user, from)).toEqual({ allowed: false, locked: false, retryAfterSeconds: 1 });
    await fail(p, user, from, 1); // 5: 4 s
    expect(await p.check(user, from)).toEqual({ allowed: false, locked: false, retryAfterSeconds: 4 });
    await fail(p, user, from, 3); // 8: 32 s
    expect(await p.check(user, from)).toEqual({ allowed: false, locked: false, retryAfterSeconds: 32 });
    await fail(p, user, from, 1); // 9: 64 s, capped at 60
    expect(await p.check(user, from)).toEqual({ allowed: false, locked: false, retryAfterSeconds: 60 });
    await fail(p, user, from, 5); // 14: still 60
    expect(await p.check(user, from)).toEqual({ allowed: false, locked: false, retryAfterSeconds: 60 });
  });

  it('ends with the window: failures older than windowSeconds no longer slow it down', async () => {
    const p = protection({ maxFailures: 100, windowSeconds: 100 });
    const user = unique('u');
    const from = address();
    await fail(p, user, from, 9); // 64 s -> 60 s
    pass(99.5);
    expect(await p.check(user, from)).toEqual({ allowed: true }); // the delay has passed anyway
    const p2 = protection({ maxFailures: 100, windowSeconds: 30, slowDownAfter: 1 });
    const other = unique('u');
    await fail(p2, other, from, 7); // 2^6 = 64 s -> 60 s, but the window is 30 s
    pass(29);
    expect((await p2.check(other, from)).allowed).toBe(false);
    pass(1);
    expect(await p2.check(other, from)).toEqual({ allowed: true });
  });

  it('belongs to the username, trimmed and in any case, not to the address', async () => {
    const p = protection({ maxFailures: 100, slowDownAfter: 1 });
    const user = unique('Carol');
    await fail(p, `  ${user.toUpperCase()} `, address(), 1);
    expect((await p.check(user.toLowerCase(), address())).allowed).toBe(false);
    expect(await p.check(unique('dave'), address())).toEqual({ allowed: true });
  });

  it('folds case as lower case: "straße" and "STRASSE" are two usernames', async () => {
    const p = protection({ maxFailures: 100, slowDownAfter: 1 });
    await fail(p, 'straße', address(), 1);
    expect((await p.check('STRAßE', address())).allowed).toBe(false);
    expect(await p.check('STRASSE', address())).toEqual({ allowed: true });
  });

  it('is not applied to an address: many usernames from one address are not slowed down', async () => {
    const p = protection({ slowDownAfter: 1, addressMaxFailures: 50 });
    const from = address();
    for (let i = 0; i < 5; i += 1) await p.recordFailure(unique('spray'), from);
    expect(await p.check(unique('fresh'), from)).toEqual({ allowed: true });
  });
});

describe('lockouts', () => {
  it('lock a username at exactly maxFailures, for lockoutSeconds, and say so', async () => {
    const p = protection({ slowDownAfter: 100 });
    const user = unique('u');
    const from = address();
    expect(await fail(p, user, from, 5)).toEqual({ locked: false });
    expect(await p.check(user, from)).toEqual({ allowed: true });
    expect(await p.recordFailure(user, from)).toEqual({ locked: true });
    expect(await p.check(user, from)).toEqual({ allowed: false, locked: true, retryAfterSeconds: 900 });
    pass(899.5);
    expect(await p.check(user, from)).toEqual({ allowed: false, locked: true, retryAfterSeconds: 1 });
    pass(0.5);
    expect(await p.check(user, from)).toEqual({ allowed: true });
  });

  it('lock an address at exactly addressMaxFailures, whatever the usernames', async () => {
    const p = protection({ addressMaxFailures: 4, maxFailures: 100, slowDownAfter: 100 });
    const from = address();
    for (let i = 0; i < 3; i += 1) expect(await p.recordFailure(unique('spray'), from)).toEqual({ locked: false });
    expect(await p.check(unique('fresh'), from)).toEqual({ allowed: true });
    expect(await p.recordFailure(unique('spray'), from)).toEqual({ locked: true });
    expect(await p.check(unique('fresh'), from)).toEqual({ allowed: false, locked: true, retryAfterSeconds: 900 });
    expect(await p.check(unique('fresh'), address())).toEqual({ allowed: true });
  });

  it('answer with the longest wait when both the username and the address hold it up', async () => {
    const p = protection({ addressMaxFailures: 3, maxFailures: 100, slowDownAfter: 1, lockoutSeconds: 20 });
    const user = unique('u');
    const from = address();
    await fail(p, user, from, 2); // address locked 20 s; username delay 2 s
    expect(await p.check(user, from)).toEqual({ allowed: false, locked: false, retryAfterSeconds: 2 });
    await fail(p, user, from, 1); // address locked again (20 s); username 4 s
    expect(await p.check(user, from)).toEqual({ allowed: false, locked: true, retryAfterSeconds: 20 });
    const q = protection({ addressMaxFailures: 2, maxFailures: 100, slowDownAfter: 1, lockoutSeconds: 3 });
    const other = unique('u');
    const there = address();
    await fail(q, other, there, 7); // username 64 -> 60 s; address locked 3 s
    expect(await q.check(other, there)).toEqual({ allowed: false, locked: false, retryAfterSeconds: 60 });
  });

  it('answer with the longest wait whichever counter was written last', async () => {
    // The address locked first (20 s), then the username slowed down from elsewhere (2 s).
    const p = protection({ addressMaxFailures: 3, maxFailures: 100, slowDownAfter: 1, lockoutSeconds: 20 });
    const user = unique('u');
    const from = address();
    for (let i = 0; i < 3; i += 1) await p.recordFailure(unique('spray'), from);
    await fail(p, user, address(), 2);
    expect(await p.check(user, from)).toEqual({ allowed: false, locked: true, retryAfterSeconds: 20 });
    // The username slowed down first (60 s), then the address locked by others (3 s).
    const q = protection({ addressMaxFailures: 2, maxFailures: 100, slowDownAfter: 1, lockoutSeconds: 3 });
    const other = unique('u');
    const there = address();
    await fail(q, other, address(), 7);
    for (let i = 0; i < 2; i += 1) await q.recordFailure(unique('spray'), there);
    expect(await q.check(other, there)).toEqual({ allowed: false, locked: false, retryAfterSeconds: 60 });
  });

  it('with a lockout of no time, reaching the threshold locks nothing', async () => {
    const p = protection({ maxFailures: 1, addressMaxFailures: 1, lockoutSeconds: 0, slowDownAfter: 100 });
    expect(await p.recordFailure(unique('u'), address())).toEqual({ locked: false });
  });

  it('a failure at a locked address says locked even when the username is not', async () => {
    const p = protection({ addressMaxFailures: 1, maxFailures: 100, slowDownAfter: 100 });
    expect(await p.recordFailure(unique('u'), address())).toEqual({ locked: true });
    const q = protection({ addressMaxFailures: 100, maxFailures: 1, slowDownAfter: 100 });
    expect(await q.recordFailure(unique('u'), address())).toEqual({ locked: true });
  });

  it('a lockout that has passed no longer counts as locked at the next failure', async () => {
    const p = protection({ maxFailures: 2, lockoutSeconds: 10, windowSeconds: 5, slowDownAfter: 100 });
    const user = unique('u');
    const from = address();
    expect(await fail(p, user, from, 2)).toEqual({ locked: true });
    pass(11);
    expect(await p.recordFailure(user, from)).toEqual({ locked: false });
  });
});

describe('success and pruning', () => {
  it('a success clears the username, not the address', async () => {
    const p = protection({ addressMaxFailures: 5, maxFailures: 100, slowDownAfter: 1 });
    const user = unique('u');
    const from = address();
    await fail(p, user, from, 4);
    await p.recordSuccess(`  ${user.toUpperCase()}`);
    expect(await p.check(user, from)).toEqual({ allowed: true });
    await p.recordFailure(unique('x'), from); // the fifth from this address
    expect((await p.check(user, from))).toMatchObject({ allowed: false, locked: true });
  });

  it('prune forgets counters past both the window and the lockout, and keeps the rest', async () => {
    const p = protection({ windowSeconds: 100, lockoutSeconds: 300, maxFailures: 1, slowDownAfter: 100 });
    const from = address();
    await p.recordFailure(unique('u'), from); // locked for 300 s; 2 rows
    pass(200);
    expect(await p.prune()).toBe(0); // within the lockout (max of window and lockout)
    pass(101);
    expect(await p.prune()).toBe(2);
    const q = protection({ windowSeconds: 400, lockoutSeconds: 10, maxFailures: 100, addressMaxFailures: 100, slowDownAfter: 100 });
    await q.recordFailure(unique('u'), address());
    pass(300);
    expect(await q.prune()).toBe(0); // within the window
    pass(101);
    expect(await q.prune()).toBe(2);
  });
});
