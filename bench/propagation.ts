// `npm run bench:propagation`: what the acknowledgement of a change costs with N processes. A
// write that others cache (a client disabled, a role changed, a token revoked) commits, publishes
// a marker, and waits until every live process has acknowledged it (src/propagation/). Here N
// listeners stand for N processes: each is Postern's own change feed (one LISTEN connection) and
// Propagation (which acknowledges markers with one UPDATE), all in this process and sharing one
// small pool for their UPDATEs (so the UPDATEs queue more than across separate processes: a
// pessimistic measure). For each N: the writer's wait, the statements per change, and how fast
// Postgres and the listeners take a stream of notifications.
//   BENCH_DATABASE_URL   Postgres server to create the throw-away database on
//   BENCH_LISTENERS      comma-separated N to measure (default 1,2,4,8,16); each needs N connections
import { sql } from 'kysely';
import { PostgresChangeFeed } from '../src/db/change-feed.ts';
import { openPostgres } from '../src/db/database.ts';
import { migrate } from '../src/db/migrator.ts';
import { Propagation, writeAndPropagate } from '../src/propagation/index.ts';
import { acknowledgeMarker, registerProcess } from '../src/store/changes.ts';
import { createBenchDatabase } from './bench-db.ts';

const CHANGES = 40;
const BURST = 500;
const ACKNOWLEDGEMENTS = 500;

const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))]!;

async function main(): Promise<void> {
  const base = process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  const sizes = (process.env.BENCH_LISTENERS || '1,2,4,8,16').split(',').map(Number);
  const bench = await createBenchDatabase(base);
  const writer = openPostgres(bench.url, { poolSize: 2, listen: false });
  const shared = openPostgres(bench.url, { poolSize: 4, listen: false });
  // Statements of the writer, and of the listeners' acknowledgements.
  const statements = { writer: 0, listeners: 0 };
  for (const [database, who] of [[writer, 'writer'], [shared, 'listeners']] as const) {
    database.pool!.on('connect', (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
        statements[who] += 1;
        return query(...args);
      };
    });
  }
  const rows: string[] = [];
  try {
    await migrate(writer);
    const { rows: [limits] } = await sql<{ max: number; used: number }>`
      select current_setting('max_connections')::int as max, (select count(*)::int from pg_stat_activity) as used`.execute(writer.db);
    // What one acknowledgement costs on its own: the UPDATE a process makes per marker (and per heartbeat).
    const acknowledgement = await (async () => {
      const member = new Propagation(shared.db, null);
      const id = member.processId;
      await member.close();
      await registerProcess(writer.db, id);
      const started = performance.now();
      for (let i = 1; i <= ACKNOWLEDGEMENTS; i += 1) await acknowledgeMarker(writer.db, id, i);
      return (performance.now() - started) / ACKNOWLEDGEMENTS;
    })();
    rows.push(`one acknowledgement (UPDATE of the process's row), one after the other on one connection: ${acknowledgement.toFixed(3)} ms`);
    for (const n of sizes) {
      // Leave room for everyone else on the server.
      if (limits!.used + n + 10 > limits!.max - 30) {
        rows.push(`N=${n}: skipped (${limits!.used} of ${limits!.max} connections in use)`);
        continue;
      }
      const feeds: PostgresChangeFeed[] = [];
      const members: Propagation[] = [];
      let received = 0;
      for (let i = 0; i < n; i += 1) {
        const feed = new PostgresChangeFeed(bench.url);
        members.push(new Propagation(shared.db, feed));
        feed.subscribe({ onMessage: (payload) => { if (payload.includes('"burst"')) received += 1; }, onReset: () => {} });
        await feed.start();
        feeds.push(feed);
      }
      // The writer's wait, change after change.
      const waits: number[] = [];
      const before = { ...statements };
      for (let i = 0; i < CHANGES; i += 1) {
        const started = performance.now();
        await writeAndPropagate(writer.db, { kind: 'config' }, async () => {});
        waits.push(performance.now() - started);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
      const writerStatements = (statements.writer - before.writer) / CHANGES;
      const acknowledgements = (statements.listeners - before.listeners) / CHANGES;
      // A stream of notifications (as heartbeats are): how many deliveries a second all listeners take.
      received = 0;
      const started = performance.now();
      for (let i = 0; i < BURST; i += 1) await sql`select pg_notify('postern_changes', ${JSON.stringify({ kind: 'burst', i })})`.execute(writer.db);
      const sent = performance.now();
      while (received < BURST * n && performance.now() - started < 60_000) await new Promise((resolve) => setTimeout(resolve, 5));
      const deliveries = received / ((performance.now() - started) / 1000);
      rows.push(`N=${String(n).padStart(3)}: wait median ${percentile(waits, 0.5).toFixed(1)} ms, p95 ${percentile(waits, 0.95).toFixed(1)} ms; `
        + `statements per change: writer ${writerStatements.toFixed(1)}, acknowledgements ${acknowledgements.toFixed(1)}; `
        + `${BURST} notifications sent in ${(sent - started).toFixed(0)} ms, ${deliveries.toFixed(0)} deliveries/s to all listeners`);
      process.stderr.write(`${rows.at(-1)}\n`);
      for (const member of members) await member.close();
      for (const feed of feeds) await feed.close();
    }
  } finally {
    await shared.close();
    await writer.close();
    await bench.drop();
  }
  console.log(rows.join('\n'));
  console.log(`\n${CHANGES} changes per N, one after the other; writer statements: the change's transaction, the marker and the `
    + 'polls of server_processes until every process has acknowledged; acknowledgements: one UPDATE per listener and marker.');
}

await main();
