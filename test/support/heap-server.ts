// A Postern server in a process of its own, started with --expose-gc (see startHeapServer), that
// reports its heap in use after full garbage collections: for tests of what requests leave behind.
// It makes its own test database and one service client granted one API.
import { createTestDatabase } from './database.ts';
import { api, role, serviceClient } from './fixtures.ts';
import { startServer } from './server.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('start this with node --expose-gc');

const tdb = await createTestDatabase();
const server = await startServer(tdb.database);
const db = tdb.database.db;
const target = await api(db, { scopes: ['read'] });
const grant = await role(db, [{ api: target.identifier, scopes: ['read'] }]);
const client = await serviceClient(db, [grant.name]);

async function heapUsed(): Promise<number> {
  // Audit events and counts are written first: what the log holds until then is not a leak.
  await server.app.audit.flush({ counts: true });
  for (let i = 0; i < 4; i += 1) {
    gc!();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return process.memoryUsage().heapUsed;
}

process.on('message', (message: { id: number; kind: 'heap' | 'stop' }) => {
  void (async () => {
    if (message.kind === 'heap') {
      process.send!({ id: message.id, heapUsed: await heapUsed() });
      return;
    }
    await server.close();
    await tdb.drop();
    process.send!({ id: message.id }, () => process.exit(0));
  })();
});

// Never outlive the test that started it.
process.on('disconnect', () => process.exit(0));
process.send!({ ready: true, url: server.url, client, resource: target.identifier });
