// Brute-force protection of the login page over real HTTP: the growing delay belongs to a
// username, the lockout of an address comes only after many failures, and neither holds up
// other people behind the same address. The server's clock is the test's, so delays and lockouts
// pass without waiting for them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser } from '../src/services/users.ts';
import type { Page } from './support/browser.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { unique } from './support/fixtures.ts';
import { startServer, type TestServer } from './support/server.ts';
import { CALLBACK, PASSWORD, signInWorld, startAuthorization, type World } from './support/sign-in.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { LoginProtection } from '../src/services/login-protection.ts';

let database: TestDatabase;
let world: World;
const servers: TestServer[] = [];
let offset = 0;
/** The servers' clock: now, moved on by what the tests let pass. */
const now = () => Date.now() + offset;
const pass = (seconds: number) => { offset += seconds * 1000; };

beforeAll(async () => {
  database = await createTestDatabase();
  world = await signInWorld(database.database.db, { firstParty: true });
}, 60_000);

afterAll(async () => {
  for (const server of servers) await server.close();
  await database?.drop();
});

async function server(env: Record<string, string>): Promise<TestServer> {
  const started = await startServer(database.database, env, '', { now });
  servers.push(started);
  return started;
}

/** Another person with a password of their own, on the same app. */
async function person(): Promise<string> {
  const username = unique('bob');
  await createUser(database.database.db, { username, password: PASSWORD, roles: [world.role.name] }, NO_AUDIT);
  return username;
}

const WRONG = 'not the password at all';
const signedIn = (page: Page) => Boolean(page.location?.startsWith(CALLBACK));
const retryAfter = (page: Page) => Number(page.headers.get('retry-after'));

describe('login protection', () => {
  it('slows down a username, not its address: two people mistype, a third signs in at once', async () => {
    const { url } = await server({ LOGIN_SLOW_DOWN_AFTER: '2', LOGIN_MAX_FAILURES: '10', LOGIN_ADDRESS_MAX_FAILURES: '50' });
    const [ann, ben, cat] = [await person(), await person(), await person()];
    for (const username of [ann, ben]) {
      const flow = await startAuthorization(url, world);
      let page = flow.page;
      for (let i = 0; i < 2; i += 1) {
        page = await flow.browser.submit(page, { username, password: WRONG });
        expect(page.status).toBe(401);
      }
      // Their own next attempt waits, even with the right password.
      const waits = await flow.browser.submit(page, { username, password: PASSWORD }, { stopAt: CALLBACK });
      expect(waits.status).toBe(429);
      expect(retryAfter(waits)).toBe(1);
    }
    // Four failures from this address so far: a colleague is not held up by them.
    const flow = await startAuthorization(url, world);
    const page = await flow.browser.submit(flow.page, { username: cat, password: PASSWORD }, { stopAt: CALLBACK });
    expect(signedIn(page), `${page.status}: ${page.html.slice(0, 200)}`).toBe(true);
  });

  it('grows the delay of a username with each failure: 1 s, 2 s, 4 s, 8 s', async () => {
    const { url } = await server({ LOGIN_SLOW_DOWN_AFTER: '1', LOGIN_MAX_FAILURES: '20', LOGIN_ADDRESS_MAX_FAILURES: '50' });
    const username = await person();
    const flow = await startAuthorization(url, world);
    let page = flow.page;
    const delays: number[] = [];
    for (let i = 0; i < 4; i += 1) {
      page = await flow.browser.submit(page, { username, password: WRONG });
      expect(page.status).toBe(401);
      page = await flow.browser.submit(page, { username, password: WRONG });
      expect(page.status).toBe(429);
      expect(page.html).toContain('Too many failed sign-in attempts');
      delays.push(retryAfter(page));
      // One second short of the delay: still waiting; past it, the next attempt is checked.
      pass(retryAfter(page) - 1);
      page = await flow.browser.submit(page, { username, password: PASSWORD }, { stopAt: CALLBACK });
      expect(page.status).toBe(429);
      pass(1.5);
    }
    expect(delays).toEqual([1, 2, 4, 8]);
    page = await flow.browser.submit(page, { username, password: PASSWORD }, { stopAt: CALLBACK });
    expect(signedIn(page), `${page.status}: ${page.html.slice(0, 200)}`).toBe(true);
  });

  it('locks an address out after LOGIN_ADDRESS_MAX_FAILURES failures, whatever the usernames, for LOGIN_LOCKOUT_SECONDS', async () => {
    const { url } = await server({
      TRUST_PROXY: 'true', LOGIN_ADDRESS_MAX_FAILURES: '3', LOGIN_MAX_FAILURES: '10', LOGIN_SLOW_DOWN_AFTER: '10', LOGIN_LOCKOUT_SECONDS: '600',
    });
    const [victim, sprayer] = ['198.51.100.7', '198.51.100.8'];
    const username = await person();
    const spray = await startAuthorization(url, world);
    spray.browser.forwardedFor = sprayer;
    let page = spray.page;
    for (let i = 0; i < 3; i += 1) {
      page = await spray.browser.submit(page, { username: unique('guess'), password: WRONG });
      expect(page.status).toBe(401);
    }
    expect(page.html).toContain('sign-in is paused');
    // The right password of a real account, from the locked address: refused until the lockout ends.
    page = await spray.browser.submit(page, { username, password: PASSWORD }, { stopAt: CALLBACK });
    expect(page.status).toBe(429);
    expect(retryAfter(page)).toBeGreaterThan(590);
    expect(retryAfter(page)).toBeLessThanOrEqual(600);
    // Another address is not affected.
    const other = await startAuthorization(url, world);
    other.browser.forwardedFor = victim;
    expect(signedIn(await other.browser.submit(other.page, { username, password: PASSWORD }, { stopAt: CALLBACK }))).toBe(true);
    pass(595);
    page = await spray.browser.submit(page, { username, password: PASSWORD }, { stopAt: CALLBACK });
    expect(page.status).toBe(429);
    pass(10);
    const later = await startAuthorization(url, world);
    later.browser.forwardedFor = sprayer;
    expect(signedIn(await later.browser.submit(later.page, { username, password: PASSWORD }, { stopAt: CALLBACK }))).toBe(true);
  });

  it('locks out an IPv6 /64 as one address, and an IPv4-mapped address as its IPv4 address', async () => {
    const settings = { maxFailures: 100, addressMaxFailures: 3, lockoutSeconds: 60, windowSeconds: 600, slowDownAfter: 100 };
    const protection = new LoginProtection(database.database.db, settings, now);
    // Three failures from three addresses of one /64 (a host rotating its addresses).
    const network = `2001:db8:${Math.floor(Math.random() * 0xffff).toString(16)}:7`;
    for (const host of ['::1', '::2', ':abcd:1234:5678:9abc']) await protection.recordFailure(unique('guess'), `${network}${host}`);
    const locked = await protection.check(unique('someone'), `${network}::99`);
    expect(locked).toMatchObject({ allowed: false, locked: true });
    expect(await protection.check(unique('someone'), `${network.slice(0, -1)}8::1`)).toEqual({ allowed: true });
    // A dual-stack socket's spelling of an IPv4 peer is that peer.
    const v4 = `192.0.2.${Math.floor(Math.random() * 250) + 1}`;
    for (let i = 0; i < 3; i += 1) await protection.recordFailure(unique('guess'), `::ffff:${v4}`);
    expect(await protection.check(unique('someone'), v4)).toMatchObject({ allowed: false, locked: true });
  });
});
