// Use-cases for stored tokens: pruning what has expired.
import type { Kysely } from 'kysely';
import type { Tables } from '../db/tables.ts';
import { deleteExpiredClientSecrets } from '../store/clients.ts';
import { deleteExpiredPayloads } from '../store/oidc-payloads.ts';
import { deleteExpiredRevocations } from '../store/revocations.ts';

export interface PruneResult { artifacts: number; revocations: number; clientSecrets: number }

/** Deletes expired codes, tokens, sessions, revocation entries and client secrets. */
export async function pruneExpired(db: Kysely<Tables>, now = new Date()): Promise<PruneResult> {
  return {
    artifacts: await deleteExpiredPayloads(db, now),
    revocations: await deleteExpiredRevocations(db, now),
    clientSecrets: await deleteExpiredClientSecrets(db, now),
  };
}
