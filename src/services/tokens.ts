// Use-cases for issued tokens: revoking all of a client's, and pruning what has expired.
import type { Db } from '../db/tables.ts';
import { deleteExpiredClientSecrets } from '../store/clients.ts';
import { deleteExpiredPayloads } from '../store/oidc-payloads.ts';
import { deleteExpiredRevocations } from '../store/revocations.ts';
import { cutOffClientTokens } from './client-tokens.ts';
import { requireClient } from './clients.ts';
import type { AuditSink } from '../domain/audit-events.ts';
import { writeAndPropagate } from '../propagation/index.ts';

export interface PruneResult { artifacts: number; revocations: number; clientSecrets: number }

/** Deletes expired codes, tokens, sessions, revocation entries and client secrets. */
export async function pruneExpired(db: Db, now = new Date()): Promise<PruneResult> {
  return {
    artifacts: await deleteExpiredPayloads(db, now),
    revocations: await deleteExpiredRevocations(db, now),
    clientSecrets: await deleteExpiredClientSecrets(db, now),
  };
}

export interface RevokeClientTokensResult {
  clientId: string;
  /** Tokens of the client issued before this moment are inactive. */
  revokedBefore: string;
  /** Stored artifacts deleted: opaque access tokens, refresh tokens, codes, grants. */
  deletedArtifacts: number;
}

/**
 * Revokes every token a client holds. Stored artifacts are deleted; JWT access tokens, which are
 * not stored, are cut off by time: every process sharing the database honours the cut-off before
 * this returns.
 */
export async function revokeClientTokens(
  db: Db,
  ref: string,
  audit: AuditSink,
  now = new Date(),
): Promise<RevokeClientTokensResult> {
  const result = await writeAndPropagate(db, (result: { clientId: string }) => ({ kind: 'client', clientId: result.clientId }), async (trx) => {
    const client = await requireClient(trx, ref);
    const { revokedBefore, deletedArtifacts } = await cutOffClientTokens(trx, client.client_id, now);
    return { clientId: client.client_id, revokedBefore: revokedBefore.toISOString(), deletedArtifacts };
  });
  audit.record({
    type: 'client.tokens_revoked', target: { type: 'client', id: result.clientId },
    details: { revokedBefore: result.revokedBefore, deletedArtifacts: result.deletedArtifacts },
  });
  return result;
}
