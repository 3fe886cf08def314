// Signing-key rotation across two Postern processes (`node src/main.ts`) on one Postgres database,
// under a running load: `postern keys rotate` on the database; both processes publish the new keys
// within seconds, sign with them after the propagation delay, and no request fails meanwhile (a
// verifier that caches the JWKS exactly as long as Cache-Control says, and never refetches on an
// unknown kid, verifies every token). Postgres only: the embedded store is single-process.
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyRotation, KeyView } from '../src/services/key-rotation.ts';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { cleanUp, describeRun, freePort, postern, ServerProcess, type Env } from './support/process.ts';
import { postForm, TEST_MASTER_KEY } from './support/server.ts';

const PROPAGATION_SECONDS = 6;
const MAX_AGE_SECONDS = PROPAGATION_SECONDS / 2;
/** Load: this many requests in flight at once, for at most this long. */
const WORKERS = 4;
const LOAD_LIMIT_MS = 40_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Instance { name: string; url: string; process: ServerProcess }
type Credentials = { id: string; secret: string };

let tdb: TestDatabase;
let issuer: string;
let instances: Instance[] = [];
let client: Credentials;
const resources: Record<string, string> = {};

const env = (): Env => ({
  DATABASE_URL: tdb.url!,
  LOG_LEVEL: 'warn',
  POSTERN_MASTER_KEY: TEST_MASTER_KEY,
  KEY_PROPAGATION_SECONDS: String(PROPAGATION_SECONDS),
  KEY_ROTATION_DAYS: '0',
});

async function startInstance(name: string): Promise<Instance> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // One issuer for both, as behind a load balancer.
  issuer ??= url;
  const process = new ServerProcess({ ...env(), PORT: String(port), HOST: '127.0.0.1', ISSUER: issuer });
  await process.waitUntilHealthy(url, 30_000);
  return { name, url, process };
}

const jwksOf = async (instance: Instance) => {
  const res = await fetch(`${instance.url}/jwks`);
  if (res.status !== 200) throw new Error(`${instance.name} /jwks answered ${res.status}`);
  return { body: (await res.json()) as JSONWebKeySet, cacheControl: res.headers.get('cache-control') ?? '' };
};

async function token(instance: Instance, alg: string): Promise<string> {
  const res = await postForm(`${instance.url}/token`, { grant_type: 'client_credentials', resource: resources[alg]! }, client);
  if (res.status !== 200) throw new Error(`${instance.name} /token answered ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.access_token as string;
}

async function introspect(instance: Instance, value: string): Promise<boolean> {
  const res = await postForm(`${instance.url}/token/introspection`, { token: value }, client);
  if (res.status !== 200) throw new Error(`${instance.name} introspection answered ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.active === true;
}

/** A resource server verifying with one instance's JWKS, cached exactly as long as it is told. */
class StrictVerifier {
  #instance: Instance;
  #cached: { keys: ReturnType<typeof createLocalJWKSet>; until: number } | undefined;
  #loading: Promise<void> | undefined;
  fetches = 0;

  constructor(instance: Instance) {
    this.#instance = instance;
  }

  async #keys() {
    while (!this.#cached || Date.now() >= this.#cached.until) {
      this.#loading ??= (async () => {
        const { body, cacheControl } = await jwksOf(this.#instance);
        const maxAge = Number(/max-age=(\d+)/.exec(cacheControl)?.[1] ?? 0);
        this.#cached = { keys: createLocalJWKSet(body), until: Date.now() + maxAge * 1000 };
        this.fetches += 1;
      })().finally(() => { this.#loading = undefined; });
      await this.#loading;
    }
    return this.#cached.keys;
  }

  async verify(value: string): Promise<void> {
    await jwtVerify(value, await this.#keys(), { issuer, typ: 'at+jwt' });
  }
}

async function keysList(): Promise<KeyView[]> {
  const result = await postern(['--json', 'keys', 'list'], env());
  expect(result.code, describeRun(['keys', 'list'], result)).toBe(0);
  return JSON.parse(result.stdout) as KeyView[];
}

describe.skipIf(!onPostgres)('signing-key rotation on two processes under load', () => {
  beforeAll(async () => {
    tdb = await createTestDatabase();
    const db = tdb.database.db;
    const grants = [];
    for (const alg of ['ES256', 'RS256', 'EdDSA'] as const) {
      const created = await api(db, { scopes: ['read'], signingAlg: alg });
      resources[alg] = created.identifier;
      grants.push({ api: created.identifier, scopes: ['read'] });
    }
    client = await serviceClient(db, [(await role(db, grants)).name]);
    // The first start generates the development keys; the second one loads them.
    instances = [await startInstance('A')];
    instances.push(await startInstance('B'));
  }, 90_000);

  afterAll(async () => {
    const exits = await Promise.all(instances.map((instance) => instance.process.stop()));
    await cleanUp();
    await tdb?.drop();
    instances.forEach((instance, i) => expect(exits[i], instance.process.output).toEqual({ code: 0, signal: null }));
  }, 60_000);

  it('publishes within seconds, switches after the delay, and fails no request', async () => {
    const [a, b] = instances as [Instance, Instance];
    const { cacheControl } = await jwksOf(a);
    expect(cacheControl).toBe(`public, max-age=${MAX_AGE_SECONDS}`);
    const algs = ['ES256', 'RS256', 'EdDSA'];
    const before = Object.fromEntries(await Promise.all(algs.map(async (alg) => [alg, await token(a, alg)] as const)));

    // The load: each request gets a token from one process, then checks it on the other by
    // introspection and against the other's JWKS as a strictly caching verifier would.
    const verifiers = new Map(instances.map((instance) => [instance, new StrictVerifier(instance)]));
    const failures: string[] = [];
    const kids = new Set<string>();
    let requests = 0;
    let stop = false;
    const started = Date.now();
    const worker = async (w: number) => {
      for (let i = 0; !stop && Date.now() - started < LOAD_LIMIT_MS; i += 1) {
        const [issuing, checking] = (i + w) % 2 === 0 ? [a, b] : [b, a];
        const alg = algs[(i + w) % algs.length]!;
        try {
          const value = await token(issuing, alg);
          kids.add(decodeProtectedHeader(value).kid!);
          if (!(await introspect(checking, value))) throw new Error(`${checking.name} introspected a fresh token as inactive`);
          await verifiers.get(checking)!.verify(value);
          requests += 3;
        } catch (error) {
          failures.push(`${alg} from ${issuing.name}, checked on ${checking.name}: ${(error as Error).message}`);
        }
      }
    };
    const load = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));

    try {
      await sleep(1000);
      const result = await postern(['--json', 'keys', 'rotate'], env());
      const rotatedAt = Date.now();
      expect(result.code, describeRun(['keys', 'rotate'], result)).toBe(0);
      const rotation = JSON.parse(result.stdout) as KeyRotation;
      const added = rotation.added.map((key) => key.kid);
      const activatesAt = Date.parse(rotation.added[0]!.activatesAt);

      // Both processes publish the new keys well before a client's cached JWKS could miss them:
      // publication plus the max-age must end before the first signature.
      const publishedAfter = await Promise.all(instances.map(async (instance) => {
        for (;;) {
          const { body } = await jwksOf(instance);
          if (added.every((kid) => body.keys.some((key) => key.kid === kid))) return Date.now() - rotatedAt;
          if (Date.now() - rotatedAt > PROPAGATION_SECONDS * 1000) throw new Error(`${instance.name} did not publish the new keys in time`);
          await sleep(50);
        }
      }));
      for (const ms of publishedAfter) expect(ms).toBeLessThan((PROPAGATION_SECONDS - MAX_AGE_SECONDS) * 1000);
      // Until the activation, both still sign with the old keys.
      expect(Date.now()).toBeLessThan(activatesAt);
      for (const instance of instances) {
        expect(decodeProtectedHeader(await token(instance, 'ES256')).kid).not.toBe(rotation.added.find((key) => key.alg === 'ES256')!.kid);
      }

      // After the activation both sign with the new keys, without a restart or any event.
      await sleep(activatesAt - Date.now() + 500);
      for (const instance of instances) {
        for (const alg of algs) {
          expect(decodeProtectedHeader(await token(instance, alg)).kid).toBe(rotation.added.find((key) => key.alg === alg)!.kid);
        }
      }
      await sleep(2000);
      stop = true;
      await load;

      expect(failures).toEqual([]);
      expect(requests).toBeGreaterThan(300);
      // The load saw both generations of every key type.
      for (const kid of [...added, ...rotation.retiring.map((key) => key.kid)]) expect(kids).toContain(kid);
      // The verifiers refreshed their JWKS by max-age alone.
      for (const verifier of verifiers.values()) expect(verifier.fetches).toBeGreaterThan(1);

      // Tokens signed before and after the rotation verify against each process's JWKS and
      // introspect active on both.
      const after = Object.fromEntries(await Promise.all(algs.map(async (alg) => [alg, await token(b, alg)] as const)));
      for (const instance of instances) {
        const jwks = createLocalJWKSet((await jwksOf(instance)).body);
        for (const value of [...Object.values(before), ...Object.values(after)]) {
          await expect(jwtVerify(value, jwks, { issuer, typ: 'at+jwt' })).resolves.toBeDefined();
          expect(await introspect(instance, value)).toBe(true);
        }
      }

      const states = Object.fromEntries((await keysList()).map((key) => [key.kid, key.state]));
      for (const kid of added) expect(states[kid]).toBe('active');
      for (const key of rotation.retiring) expect(states[key.kid]).toBe('retiring');
    } finally {
      stop = true;
      await load;
    }
  }, 90_000);
});
