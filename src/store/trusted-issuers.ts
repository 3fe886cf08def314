// SQL for trusted issuers (workload identity), the clients bound to their subjects, and the
// single-use record of assertion ids.
import { sql, type Selectable } from 'kysely';
import type { ClientFederationsTable, Db, TrustedIssuersTable } from '../db/tables.ts';

export type TrustedIssuerRow = Selectable<TrustedIssuersTable>;
export type ClientFederationRow = Selectable<ClientFederationsTable>;

export interface IssuerValues {
  name: string;
  issuer: string;
  kind: TrustedIssuerRow['kind'];
  jwksSource: TrustedIssuerRow['jwks_source'];
  jwksUri: string | null;
  jwks: { keys: Record<string, unknown>[] } | null;
}

export async function insertIssuer(db: Db, id: string, values: IssuerValues): Promise<TrustedIssuerRow> {
  return db.insertInto('trusted_issuers')
    .values({
      id,
      name: values.name,
      issuer: values.issuer,
      kind: values.kind,
      jwks_source: values.jwksSource,
      jwks_uri: values.jwksUri,
      jwks: values.jwks === null ? null : JSON.stringify(values.jwks),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function updateIssuer(
  db: Db,
  id: string,
  values: Partial<IssuerValues> & { enabled?: boolean },
): Promise<TrustedIssuerRow | undefined> {
  return db.updateTable('trusted_issuers')
    .set({
      ...(values.name !== undefined ? { name: values.name } : {}),
      ...(values.issuer !== undefined ? { issuer: values.issuer } : {}),
      ...(values.kind !== undefined ? { kind: values.kind } : {}),
      ...(values.jwksSource !== undefined ? { jwks_source: values.jwksSource } : {}),
      ...(values.jwksUri !== undefined ? { jwks_uri: values.jwksUri } : {}),
      ...(values.jwks !== undefined ? { jwks: values.jwks === null ? null : JSON.stringify(values.jwks) } : {}),
      ...(values.enabled !== undefined ? { enabled: values.enabled } : {}),
      updated_at: new Date(),
    })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

export async function findIssuerById(db: Db, id: string): Promise<TrustedIssuerRow | undefined> {
  return db.selectFrom('trusted_issuers').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findIssuerByName(db: Db, name: string): Promise<TrustedIssuerRow | undefined> {
  return db.selectFrom('trusted_issuers').selectAll().where('name', '=', name).executeTakeFirst();
}

export async function findIssuerByIssuer(db: Db, issuer: string): Promise<TrustedIssuerRow | undefined> {
  return db.selectFrom('trusted_issuers').selectAll().where('issuer', '=', issuer).executeTakeFirst();
}

export async function listIssuers(db: Db): Promise<TrustedIssuerRow[]> {
  return db.selectFrom('trusted_issuers').selectAll().orderBy('name').execute();
}

export async function deleteIssuer(db: Db, id: string): Promise<void> {
  await db.deleteFrom('trusted_issuers').where('id', '=', id).execute();
}

// ---- bindings

export async function upsertFederation(
  db: Db,
  binding: { clientId: string; issuerId: string; subject: string; claims: Record<string, string> },
): Promise<void> {
  const values = { issuer_id: binding.issuerId, subject: binding.subject, claims: JSON.stringify(binding.claims) };
  await db.insertInto('client_federations')
    .values({ client_id: binding.clientId, ...values })
    .onConflict((oc) => oc.column('client_id').doUpdateSet(values))
    .execute();
}

export async function findFederationByClient(db: Db, clientId: string): Promise<ClientFederationRow | undefined> {
  return db.selectFrom('client_federations').selectAll().where('client_id', '=', clientId).executeTakeFirst();
}

export async function findFederationBySubject(db: Db, issuerId: string, subject: string): Promise<ClientFederationRow | undefined> {
  return db.selectFrom('client_federations').selectAll()
    .where('issuer_id', '=', issuerId).where('subject', '=', subject).executeTakeFirst();
}

/** The names of the clients bound to an issuer. */
export async function listFederatedClientNames(db: Db, issuerId: string): Promise<string[]> {
  const rows = await db.selectFrom('client_federations')
    .innerJoin('clients', 'clients.client_id', 'client_federations.client_id')
    .select('clients.name').where('client_federations.issuer_id', '=', issuerId).orderBy('clients.name').execute();
  return rows.map((row) => row.name);
}

// ---- single-use assertion ids

/**
 * Claims assertion ids (each at most once in `claims`): the ids claimed now; the others were
 * claimed before (replays). One statement, committed without waiting for the WAL flush
 * (synchronous_commit off for this transaction only): a crash of the database may forget the
 * claims of its last moments (wal_writer_delay, 200 ms by default, times three at most), a window
 * docs/workload-identity.md states; waiting for the flush on every token request would halve the
 * rate of federated clients. services/assertion-claims.ts sends the claims of concurrent requests
 * together.
 */
export async function claimAssertionIds(db: Db, claims: readonly { id: string; expiresAt: Date }[]): Promise<Set<string>> {
  const ids = claims.map((claim) => claim.id);
  const expiries = claims.map((claim) => claim.expiresAt.toISOString());
  const result = await sql<{ id: string }>`/* prepared:claim_assertion_ids */
    INSERT INTO used_assertions (id, expires_at)
    SELECT claimed.id, claimed.expires_at
    FROM unnest(${ids}::text[], ${expiries}::timestamptz[]) AS claimed (id, expires_at),
      (SELECT set_config('synchronous_commit', 'off', true)) AS no_flush
    ON CONFLICT (id) DO NOTHING
    RETURNING id`.execute(db);
  return new Set(result.rows.map((row) => row.id));
}

export async function deleteExpiredAssertionIds(db: Db, now: Date): Promise<number> {
  const result = await db.deleteFrom('used_assertions').where('expires_at', '<=', now).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** The binding of (issuer, subject) with its client's state. */
export async function findFederationWithClient(
  db: Db,
  issuerId: string,
  subject: string,
): Promise<{ client_id: string; claims: Record<string, string>; enabled: boolean } | undefined> {
  return db.selectFrom('client_federations')
    .innerJoin('clients', 'clients.client_id', 'client_federations.client_id')
    .select(['client_federations.client_id', 'client_federations.claims', 'clients.enabled'])
    .where('client_federations.issuer_id', '=', issuerId)
    .where('client_federations.subject', '=', subject)
    .executeTakeFirst();
}
