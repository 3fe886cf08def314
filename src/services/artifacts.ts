// Rows of oidc_payloads written before migration 0011 hold bearer values as presented (a refresh
// token as its id, a session id in an interaction). They are converted in place to the hashed form
// (src/domain/artifact-hashing.ts) once the artifact key is at hand: when a server or a CLI command
// starts, and on each pruning round, which catches rows that processes of the older version still
// write during a rolling upgrade. Nothing valid is lost: a converted row is found by its value.
import type { ArtifactKey } from '../domain/artifact-hashing.ts';
import type { Db } from '../db/tables.ts';
import * as payloads from '../store/oidc-payloads.ts';

const BATCH = 500;

/**
 * Converts every row still in an older version's form; returns how many. One transaction under a
 * lock, so processes starting together convert each row once; a second call finds nothing to do.
 */
export async function hashStoredArtifacts(db: Db, key: ArtifactKey, now = new Date()): Promise<number> {
  if (!(await payloads.hasUnhashedPayloads(db))) return 0;
  return db.transaction().execute(async (trx) => {
    await payloads.lockPayloadConversion(trx);
    await payloads.deleteExpiredUnhashedPayloads(trx, now);
    let converted = 0;
    for (;;) {
      const rows = await payloads.takeUnhashedPayloads(trx, BATCH);
      if (!rows.length) return converted;
      converted += await payloads.insertConvertedPayloads(trx, rows.map((row) => {
        const stored = key.convert(row.model, row);
        return { ...row, id: stored.id, payload: stored.payload, userCode: stored.userCode };
      }));
    }
  });
}
