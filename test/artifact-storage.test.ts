// Bearer artifacts are stored under a keyed hash of their value: a dump of the database taken
// after a full sign-in, a service token and a registration redeems nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpDatabase, presentAgain, runFullSignIn, valuesIn, WORKING, type Artifacts } from './support/artifacts.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { startServer, type TestServer } from './support/server.ts';

let tdb: TestDatabase;
let server: TestServer;
let seen: Artifacts;

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  seen = await runFullSignIn(server.url, tdb.database.db);
}, 60_000);

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

describe('a dump of the database', () => {
  it('holds no token, code, session or interaction id seen during a sign-in', async () => {
    expect(seen.values.size).toBeGreaterThanOrEqual(15);
    // The audit log is in the dump too, everything it holds written.
    await server.app.audit.flush({ counts: true });
    const dump = await dumpDatabase(tdb.database.db);
    expect(dump).toContain('audit_events: (');
    // The artifacts are there (the dump is not empty of them), under other names.
    for (const model of ['Session', 'Interaction', 'AuthorizationCode', 'RefreshToken', 'AccessToken', 'ClientCredentials', 'RegistrationAccessToken', 'Grant']) {
      expect(dump, model).toContain(`oidc_payloads: (${model},`);
    }
    expect(valuesIn(dump, seen.values)).toEqual([]);
  });

  it('while every one of them still works', async () => {
    expect(await presentAgain(server.url, seen)).toEqual(WORKING);
  });
});
