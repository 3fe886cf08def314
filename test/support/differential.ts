// What the differential tests of the fast paths (client credentials, federated client
// credentials, token exchange) compare besides the answer itself: the token metrics a request
// moved and the audit records it left, on the server that answered it.
import type { Db } from '../../src/db/tables.ts';
import type { AuditEventRow } from '../../src/store/audit.ts';
import type { TestServer } from './server.ts';

/** The token metrics of a server, each series keyed by its labels. */
export async function metricsOf(server: TestServer) {
  const read = async (metric: { get(): Promise<{ values: { labels: object; value: number }[] }> }) =>
    Object.fromEntries((await metric.get()).values.map((v) => [JSON.stringify(v.labels), v.value]));
  const { metrics } = server.app;
  return {
    issued: await read(metrics.tokensIssued),
    errors: await read(metrics.tokenErrors),
    limited: await read(metrics.rateLimited),
    fast: (await read(metrics.fastPathAnswers))['{"endpoint":"token"}'] ?? 0,
  };
}

/** The series that moved between two readings, by how much. */
export function delta(after: Record<string, number>, before: Record<string, number>) {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(after)) if (value !== (before[key] ?? 0)) out[key] = value - (before[key] ?? 0);
  return out;
}

/**
 * The audit records `run` left on `server`, without times and request ids: type, outcome, actor,
 * client, details, and whatever `columns` adds. Every server in `servers` writes what it holds
 * first, so that nothing earlier is taken for the request's.
 */
export async function auditOf(
  db: Db, servers: TestServer[], server: TestServer, run: () => Promise<void>,
  columns: (row: AuditEventRow) => Record<string, unknown> = () => ({}),
): Promise<unknown[]> {
  for (const each of servers) await each.app.audit.flush({ counts: true });
  const before = new Set((await db.selectFrom('audit_events').select('id').execute()).map((r) => r.id));
  await run();
  await server.app.audit.flush({ counts: true });
  const rows = await db.selectFrom('audit_events').selectAll().execute();
  return rows.filter((row) => !before.has(row.id)).map((row) => {
    const details = { ...(typeof row.details === 'string' ? JSON.parse(row.details) : row.details) } as Record<string, unknown>;
    for (const key of ['since', 'until', 'firstSeen', 'lastSeen']) delete details[key];
    return { type: row.type, outcome: row.outcome, actor: [row.actor_type, row.actor_id], client: row.client_id, ...columns(row), details };
  }).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}
