// Revoking a grant (a replayed refresh token, a reused code) revokes the JWTs issued from it on
// every process before the refusal is answered: the next introspection anywhere says inactive.
// Two servers share one database, each with its own pool, change feed and caches.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgres, type Database } from '../src/db/database.ts';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { startServer, type TestServer } from './support/server.ts';
import { exchangeCode, introspect, refresh, signIn, signInWorld, type World } from './support/sign-in.ts';

let tdb: TestDatabase;
let second: Database | undefined;
let a: TestServer;
let b: TestServer;
let world: World;

beforeAll(async () => {
  tdb = await createTestDatabase();
  a = await startServer(tdb.database);
  second = onPostgres ? openPostgres(tdb.url!, { poolSize: 5 }) : undefined;
  b = await startServer(second ?? tdb.database, { ISSUER: a.url });
  world = await signInWorld(tdb.database.db);
}, 60_000);

afterAll(async () => {
  await b?.close();
  await a?.close();
  await second?.close();
  await tdb?.drop();
});

describe('revoking a grant', () => {
  it('makes its JWTs inactive on the other process by the time the replay is refused', async () => {
    for (let round = 0; round < 8; round += 1) {
      const flow = await signIn(a.url, world);
      const tokens = (await exchangeCode(a.url, world, flow.code, flow.verifier)).body;
      const next = await refresh(a.url, world, tokens.refresh_token, { resource: world.api.identifier });
      expect(next.status).toBe(200);
      // B has checked the token once, so its revocation list is loaded and cached.
      expect((await introspect(b.url, world, next.body.access_token)).body.active).toBe(true);
      const replay = await refresh(a.url, world, tokens.refresh_token);
      expect(replay.body.error).toBe('invalid_grant');
      expect((await introspect(b.url, world, next.body.access_token)).body.active).toBe(false);
      expect((await introspect(a.url, world, next.body.access_token)).body.active).toBe(false);
    }
  });
});
