// Cutting off every token a client holds, inside the caller's transaction: for revoke-tokens, and
// for disabling a client, which must not bring its old tokens back when it is enabled again.
import { setTokensRevokedBefore } from '../store/clients.ts';
import { deletePayloadsByClientId } from '../store/oidc-payloads.ts';
import type { Db } from '../db/tables.ts';

export interface ClientTokensCutOff {
  /** The client's tokens issued before this moment are inactive. */
  revokedBefore: Date;
  /** Stored artifacts deleted: opaque access tokens, refresh tokens, codes, grants. */
  deletedArtifacts: number;
}

/**
 * Stored artifacts are deleted (the registration access token of a self-registered client too);
 * JWT access tokens, which are not stored, are cut off by time. The caller publishes the client's
 * change in the same transaction and waits for it to reach every process (writeAndPropagate).
 */
export async function cutOffClientTokens(trx: Db, clientId: string, now: Date): Promise<ClientTokensCutOff> {
  const revokedBefore = await setTokensRevokedBefore(trx, clientId, now);
  const deletedArtifacts = await deletePayloadsByClientId(trx, clientId);
  return { revokedBefore, deletedArtifacts };
}
